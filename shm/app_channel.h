/* app_channel: what the AppService channel keeps in the store — which worker connections each
 * app has open, the latest change of each PUID (replayed after an absence), and the events
 * mailed to those connections (SPEC.md §5). */
#ifndef PRESENCED_SHM_APP_CHANNEL_H
#define PRESENCED_SHM_APP_CHANNEL_H

#include "app.h"
#include "grant.h"
#include "presence.h"
#include "store.h"

#include <stdbool.h>
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

/* Forgets every connection of a (dead) worker; gone (may be NULL) is called once for each app
 * that has none left open on the node, away from now_ms (a cluster node shares that). */
typedef void (*shm_app_gone_cb)(void *arg, const char *appid);
int shm_app_conn_release_worker(struct shm_store *store, int32_t pid, int64_t now_ms,
                                shm_app_gone_cb gone, void *arg);

/* The apps with the most open connections, most first: up to max of them in out, *count. One
 * read of every open connection's record (for /status: appids are no metrics label). */
struct shm_app_busy {
    char appid[SHM_APPID_LEN + 1];
    uint64_t connections;
};
int shm_app_conns_busiest(struct shm_store *store, struct shm_app_busy *out, size_t max,
                          size_t *count);

/* At the start of the master, before the previous run's connections are dropped: each app that
 * had one open is away from now, so that it hears what changed meanwhile when it is back. */
int shm_app_conns_restart(struct shm_store *store, int64_t now_ms);

/* Tells every app that email granted that its presence is now status, since since_ms (0: not
 * known): records the change per PUID and mails SHM_MAIL_APP_EVENT to each open connection of
 * the app. The pids to ring after the commit go to rings (each once, up to cap). only_appid (or
 * NULL) limits it to one app. */
int shm_app_event_publish(struct shm_store *store, const char *email, uint8_t status,
                          int64_t since_ms, const char *only_appid, int64_t now_ms, int32_t *rings,
                          size_t cap, size_t *ring_count);

/* The processes to ring once a batch that mailed them is committed, each once. */
#define SHM_RINGS_MAX 64
struct shm_rings {
    int32_t pids[SHM_RINGS_MAX];
    size_t count;
};

/* A shm_presence_cb (arg: a struct shm_rings) for the processes that publish a change as they
 * find it, outside a worker's loop (the master's sweeps, a worker's exit). */
void shm_app_presence_changed(void *arg, const char *email, const struct shm_presence *before,
                              const struct shm_presence *after, struct shm_store *store);

/* Decodes a SHM_MAIL_APP_EVENT payload: *since_ms is since when the user has the status,
 * *changed_ms when the change was recorded (as the changes replayed after an absence count
 * time). Returns 0 or -1. */
int shm_app_event_decode(const void *payload, size_t len, uint64_t *conn_id, char *puid,
                         uint8_t *status, int64_t *since_ms, int64_t *changed_ms);

/* Back from an absence: 1 with *since_ms the time the app went away (at most
 * SHM_APP_CHANGES_KEEP_MS before now_ms), the absence cleared; 0 when it was not away. */
int shm_app_away_take(struct shm_store *store, const char *appid, int64_t now_ms,
                      int64_t *since_ms);

/* The latest change of each PUID of appid recorded since since_ms (its status, and since when
 * the user has it), in PUID order after after_puid ("" for the first page; it is advanced past
 * every PUID examined, so the next page goes on from there): cb gets at most max. *done says
 * the end was reached. Returns how many cb got, or < 0. */
typedef void (*shm_app_change_cb)(void *arg, const char *puid, uint8_t status, int64_t since_ms);
int shm_app_changes_page(struct shm_store *store, const char *appid, int64_t since_ms,
                         char *after_puid, size_t max, shm_app_change_cb cb, void *arg,
                         bool *done);

/* Both at once: cb gets every change since the app went away, and the absence is cleared.
 * Returns the count (0 when it was not away), or < 0. */
int shm_app_changes_since_away(struct shm_store *store, const char *appid, int64_t now_ms,
                               shm_app_change_cb cb, void *arg);

#endif
