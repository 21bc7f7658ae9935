/* push_sub: the Web Push subscription of each (e-mail, device) — where to wake the device when
 * it is not connected (SPEC.md §7). Kept across restarts, until the device unsubscribes, its
 * push service says it is gone (404, 410), or the user has too many. */
#ifndef PRESENCED_SHM_PUSH_SUB_H
#define PRESENCED_SHM_PUSH_SUB_H

#include "conn.h"
#include "store.h"

#include "../common/push_subscription.h"

#include <stddef.h>
#include <stdint.h>

/* Stores sub for (email, device), replacing the one it had. A user keeps at most max_per_user
 * subscriptions: a new device's replaces the oldest (the longest-gone device). In the batch. */
int shm_push_sub_put(struct shm_store *store, const char *email, const char *device,
                     const struct push_subscription *sub, int64_t now_ms, size_t max_per_user);

/* Removes the subscription of (email, device); SHM_NOT_FOUND when it had none. */
int shm_push_sub_delete(struct shm_store *store, const char *email, const char *device);

/* Removes it only while its endpoint is still endpoint (a push service said that one is gone;
 * the device may have subscribed anew meanwhile). SHM_NOT_FOUND when it is not. */
int shm_push_sub_delete_endpoint(struct shm_store *store, const char *email, const char *device,
                                 const char *endpoint);

int shm_push_sub_get(struct shm_store *store, const char *email, const char *device,
                     struct push_subscription *out);

/* Calls cb with each subscribed device of email. Returns the count, or < 0. */
typedef void (*shm_push_sub_cb)(void *arg, const char *device, const struct push_subscription *sub);
int shm_push_subs(struct shm_store *store, const char *email, shm_push_sub_cb cb, void *arg);

/* On a node of a cluster (the store's outbox on: shm/outbox.h) every change above is also left
 * in the outbox for the bucket SHM_BUCKET_PUSH, so that the subscription is known on every node
 * (a notification queued on any node wakes the device through it, once: by the node that
 * queued it). The engine's record, key "s." + 32 hex of SHA-256(e-mail \0 device):
 *   u8 op (SHM_PUSH_SHARED_*) | u8 len, e-mail | u8 len, device | a put: the store's value
 *   (be64 created, p256dh, auth, endpoint); a delete by endpoint: the endpoint. */
#define SHM_BUCKET_PUSH "pd_push"
#define SHM_PUSH_KEY_MAX 34
enum { SHM_PUSH_SHARED_PUT = 1, SHM_PUSH_SHARED_DELETE = 2, SHM_PUSH_SHARED_DELETE_ENDPOINT = 3 };
/* One such record, read (the engine's bytes: checked here, fuzzed in fuzz_shared_records). */
struct shm_push_shared {
    uint8_t op;
    char email[SHM_EMAIL_MAX + 1];
    char device[SHM_DEVICE_MAX + 1];
    struct push_subscription sub; /* a put: the subscription; a delete by endpoint: its endpoint */
    int64_t created_ms;           /* a put */
};
/* Returns SHM_OK, or SHM_ERROR when the record is not one. */
int shm_push_shared_decode(const void *record, size_t len, struct shm_push_shared *out);
/* Applies one such record (from the bucket's changefeed) to this store, without an outbox
 * entry of its own. Returns SHM_OK (SHM_NOT_FOUND counts as applied), or SHM_ERROR when the
 * record is unreadable. In the batch. */
int shm_push_sub_apply(struct shm_store *store, const void *record, size_t len,
                       size_t max_per_user);

/* How many subscriptions the store holds, for /metrics. */
int shm_push_sub_count(struct shm_store *store, uint64_t *count);

#endif
