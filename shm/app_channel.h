/* app_channel: what the AppService channel keeps in the store — which worker connections each
 * app has open, the latest change of each PUID (replayed after an absence), and the events
 * mailed to those connections (SPEC.md §5). */
#ifndef PRESENCED_SHM_APP_CHANNEL_H
#define PRESENCED_SHM_APP_CHANNEL_H

#include "app.h"
#include "grant.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define SHM_APP_CHANGES_KEEP_MS (3600 * 1000) /* older changes are not replayed */

/* Records (pid, conn_id) as a connection of appid; returns how many others the app has open. */
int shm_app_conn_add(struct shm_store *store, const char *appid, int32_t pid, uint64_t conn_id,
                     size_t *others);
/* Forgets the connection; when it was the app's last one, the app is away from now_ms. */
int shm_app_conn_remove(struct shm_store *store, const char *appid, int32_t pid, uint64_t conn_id,
                        int64_t now_ms);
/* One open AppService connection of an app. */
struct shm_app_conn {
    int32_t pid;
    uint64_t conn_id;
};
/* The app's open connections: *out (the caller frees it; NULL when none) holds *count. */
int shm_app_conns(struct shm_store *store, const char *appid, struct shm_app_conn **out,
                  size_t *count);

/* Forgets every connection of a (dead) worker. */
int shm_app_conn_release_worker(struct shm_store *store, int32_t pid, int64_t now_ms);

/* Tells every app that email granted that its presence is now status: records the change per
 * PUID and mails SHM_MAIL_APP_EVENT to each open connection of the app. The pids to ring after
 * the commit go to rings (each once, up to cap). only_appid (or NULL) limits it to one app. */
int shm_app_event_publish(struct shm_store *store, const char *email, uint8_t status,
                          const char *only_appid, int64_t now_ms, int32_t *rings, size_t cap,
                          size_t *ring_count);

/* Decodes a SHM_MAIL_APP_EVENT payload. Returns 0 or -1. */
int shm_app_event_decode(const void *payload, size_t len, uint64_t *conn_id, char *puid,
                         uint8_t *status);

/* After an absence: calls cb with the latest change of each PUID since the app went away (at
 * most SHM_APP_CHANGES_KEEP_MS ago), and clears the absence. Returns the count, or < 0. */
typedef void (*shm_app_change_cb)(void *arg, const char *puid, uint8_t status);
int shm_app_changes_since_away(struct shm_store *store, const char *appid, int64_t now_ms,
                               shm_app_change_cb cb, void *arg);

#endif
