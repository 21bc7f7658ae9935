/* local: the single-node implementation of the backend (backend.h) — the node's LMDB store,
 * mail between its processes and their doorbells — shared by its files: local.c (the table,
 * devices, notifications), local_batch.c (what waits for the commit), local_presence.c (presence
 * and the offline_grace holds), local_apps.c (AppService connections and events; apps, grants,
 * web sessions), mailbox.c (mailbox.h: this worker's mail and doorbell, which a cluster node has
 * too). */
#ifndef PRESENCED_BACKEND_LOCAL_H
#define PRESENCED_BACKEND_LOCAL_H

#include "backend.h"
#include "mailbox.h"

#include "../worker_internal.h"

/* local_batch.c: done answers once the store's current batch commits (0), or 60 if it rolls
 * back. 0, or -1 when out of memory. */
int local_wait_commit(struct worker *w, const struct backend_done *done);
/* A status update, stored with the turn's others just before the commit. */
int local_set_status(struct worker *w, const char *email, const char *device, uint64_t conn_id,
                     uint8_t status, const struct backend_done *done);
/* An AppService notification, queued with the turn's other writes (local_notify_now then);
 * BACKEND_LATER, or 60 when out of memory. */
int local_notify_later(struct worker *w, const char *email, const char *json, size_t len,
                       int64_t expires_ms, const struct backend_done *done);
/* A notification written to a device leaves the queue with the turn's other writes. */
void local_delivered_later(struct worker *w, const struct shm_notif_key *key);
/* The deletes of what was written so far, made now in the batch: a read of the queue that
 * takes the batch anyway (a page) must not see them again. */
void local_delivered_flush(struct worker *w);
/* Whether key was written to a device this turn (its delete is still to come). */
bool local_delivered_pending(const struct worker *w, const struct shm_notif_key *key);
/* The mail read this turn (mailbox.c), up to the store sequence upto, is deleted at its end. */
void local_mail_forget_later(struct worker *w, uint64_t upto);
void local_batch_apply(struct worker *w);
void local_batch_free(struct worker *w);

/* local.c: queues json for email in the batch and mails the workers of the user's devices
 * (rung after the commit). 0, or -1. */
int local_notify_now(struct worker *w, const char *email, const char *json, size_t len,
                     int64_t expires_ms);

/* local_presence.c: what apps hear of a user's presence from this worker (SPEC.md §7). A bound
 * device's status update: stored, the presence recomputed and published if it changed (SHM_OK,
 * SHM_NOT_FOUND when conn_id no longer owns the device, or an error). A device bound a
 * connection (a hold it left ends); a bound connection went away (its status is held for
 * offline_grace). */
int presence_device_status(struct worker *w, const char *email, const char *device,
                           uint64_t conn_id, uint8_t status);
void presence_device_bound(struct worker *w, const char *email, const char *device);
void presence_device_left(struct worker *w, const char *email, const char *device,
                          uint64_t conn_id);
int presence_grace_init(struct worker *w);
void presence_grace_close(struct worker *w);

/* local_apps.c: the user's apps hear a presence change (mail + rings). */
void local_app_event(struct worker *w, const char *email, uint8_t status, int64_t since_ms,
                     const char *only_appid);
/* The AppService and data operations of the table. */
int local_app_connected(struct worker *w, const char *appid, uint64_t conn_id,
                        struct backend_app_return *back);
void local_app_closed(struct worker *w, const char *appid, uint64_t conn_id, int64_t away_ms);
int local_app_changes_page(struct worker *w, const char *appid, int64_t since_ms, char *after_puid,
                           size_t max, backend_change_cb cb, void *arg, bool *done);
void local_app_close_all(struct worker *w, const char *appid, int number);
int local_presence_get(struct worker *w, const char *email, struct shm_presence *out);
int local_look_further(struct worker *w, enum backend_record kind, const char *key,
                       const struct backend_done *done);
int local_app_get(struct worker *w, const char *appid, struct shm_app *out);
int local_app_list_by_owner(struct worker *w, const char *owner, backend_app_cb cb, void *arg);
int local_app_put(struct worker *w, const struct shm_app *app, const struct backend_done *done);
int local_app_delete(struct worker *w, const char *appid, const struct backend_done *done);
int local_grant_get(struct worker *w, const char *email, const char *appid, char *puid);
int local_grant_by_puid(struct worker *w, const char *puid, char *appid, char *email);
int local_grant_list_user(struct worker *w, const char *email, backend_grant_user_cb cb, void *arg);
int local_grant_page_app(struct worker *w, const char *appid, char *after_puid, size_t max,
                         backend_grant_app_cb cb, void *arg, bool *done);
int local_grant_put(struct worker *w, const char *email, const char *appid, const char *puid,
                    const struct backend_done *done);
int local_grant_revoke(struct worker *w, const char *email, const char *appid, char *puid,
                       const struct backend_done *done);
int local_web_session_get(struct worker *w, const unsigned char *hash, struct shm_web_session *out);
int local_web_session_put(struct worker *w, const unsigned char *hash,
                          const struct shm_web_session *session, const struct backend_done *done);
int local_web_session_delete(struct worker *w, const unsigned char *hash,
                             const struct backend_done *done);

#endif
