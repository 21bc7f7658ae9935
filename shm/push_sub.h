/* push_sub: the Web Push subscription of each (e-mail, device) — where to wake the device when
 * it is not connected (SPEC.md §7). Kept across restarts, until the device unsubscribes, its
 * push service says it is gone (404, 410), or the user has too many. */
#ifndef PRESENCED_SHM_PUSH_SUB_H
#define PRESENCED_SHM_PUSH_SUB_H

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

/* How many subscriptions the store holds, for /metrics. */
int shm_push_sub_count(struct shm_store *store, uint64_t *count);

#endif
