/* app_away_shared: on a node of a cluster, whether each node has an AppService connection of an
 * app open, or since when it has none — so that an app's absence, and the changes replayed at
 * its next auth, are counted over the whole cluster rather than per node (SPEC.md §5, §8). Each
 * node's writers leave their node's record in the outbox (bucket SHM_BUCKET_APP_AWAY, key
 * "<appid>.<node>", value be64 epoch | be64 away since ms, 0 while a connection is open); every
 * node's agent brings them all into cl_app_away. */
#ifndef PRESENCED_SHM_APP_AWAY_SHARED_H
#define PRESENCED_SHM_APP_AWAY_SHARED_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define SHM_BUCKET_APP_AWAY "pd_appaway"
#define SHM_APP_AWAY_VALUE_LEN 16

/* Leaves this node's record for appid in the outbox (nothing without the outbox). In the batch. */
int shm_app_away_share(struct shm_store *store, const char *appid, const char *node,
                       uint64_t epoch, int64_t away_since_ms);

/* Applies a record from the bucket's feed (key "<appid>.<node>"). In the batch. */
int shm_app_away_apply(struct shm_store *store, const char *key, const void *value, size_t len);

/* Every node's record of appid: cb(node, epoch, away_since_ms). Returns the count, or < 0. */
typedef void (*shm_app_away_cb)(void *arg, const char *node, uint64_t epoch,
                                int64_t away_since_ms);
int shm_app_away_nodes(struct shm_store *store, const char *appid, shm_app_away_cb cb, void *arg);

#endif
