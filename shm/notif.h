/* notif: each user's queue of pending live notifications — kept across restarts, bounded,
 * expiring (SPEC.md §2). */
#ifndef PRESENCED_SHM_NOTIF_H
#define PRESENCED_SHM_NOTIF_H

#include "conn.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_NOTIF_JSON_MAX 4096 /* one notification as devices receive it */
#define SHM_NOTIF_KEY_MAX (SHM_EMAIL_MAX + 1 + 16)

/* Where a notification sits: e-mail \0, be64 time (ms), be64 store sequence (oldest first; the
 * sequence is never handed out twice, so no two notifications ever share a key). */
struct shm_notif_key {
    size_t len;
    unsigned char bytes[SHM_NOTIF_KEY_MAX];
};

/* Queues json (one notification object) for email until expires_ms. When the queue already holds
 * max_pending live ones, the oldest are dropped (*dropped counts them, and the store's counter).
 * *key names the new one. In the batch. */
int shm_notif_add(struct shm_store *store, const char *email, const char *json, size_t len,
                  int64_t now_ms, int64_t expires_ms, size_t max_pending, struct shm_notif_key *key,
                  size_t *dropped);

/* Queues json for email (as shm_notif_add) and mails it (SHM_MAIL_DELIVER) to the worker of
 * each device connected now. The caller rings the pids written to rings (up to rings_cap,
 * *ring_count of them, each once) after the batch commits. */
int shm_notif_send(struct shm_store *store, const char *email, const char *json, size_t len,
                   int64_t now_ms, int64_t expires_ms, size_t max_pending, int32_t *rings,
                   size_t rings_cap, size_t *ring_count, size_t *dropped);

/* Decodes a SHM_MAIL_DELIVER payload; json points into it. Returns 0 or -1. */
int shm_notif_delivery_decode(const void *payload, size_t len, uint64_t *conn_id,
                              struct shm_notif_key *key, const char **json, size_t *json_len);

/* Calls cb for each pending notification of email, oldest first; expired ones it meets are
 * deleted and counted instead. Returns how many cb saw, or < 0. In the batch. */
typedef void (*shm_notif_cb)(void *arg, const struct shm_notif_key *key, const char *json,
                             size_t len);
int shm_notif_pending(struct shm_store *store, const char *email, int64_t now_ms, shm_notif_cb cb,
                      void *arg);

/* When the notification of key was queued (wall ms). */
int64_t shm_notif_key_queued_ms(const struct shm_notif_key *key);

/* Like shm_notif_pending, but cb gets only the oldest ones whose JSON fits in max_bytes (at
 * least one); *more says whether live ones are left after them. Returns how many cb got. */
int shm_notif_page(struct shm_store *store, const char *email, int64_t now_ms, size_t max_bytes,
                   shm_notif_cb cb, void *arg, bool *more);

/* Whether the notification is still queued (in the batch: its deletes count). */
bool shm_notif_exists(struct shm_store *store, const struct shm_notif_key *key);

/* Removes one notification (written to a device); SHM_NOT_FOUND when it was not there (taken
 * by another device, or expired), which is not an error. */
int shm_notif_delete(struct shm_store *store, const struct shm_notif_key *key);

/* Examines up to max notifications of any user from where sweep stopped and deletes the
 * expired ones; *removed counts them. */
int shm_notif_expire(struct shm_store *store, int64_t now_ms, size_t max, struct shm_sweep *sweep,
                     size_t *removed);

/* Notifications dropped from full queues, and expired unread, since the store was made. */
int shm_notif_counters(struct shm_store *store, uint64_t *dropped, uint64_t *expired);

#endif
