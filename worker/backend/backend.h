/* backend: where a worker's shared state lives and how it reaches another connection — the one
 * interface the channels and pages call for ownership of (e-mail, device), presence, the
 * notification queues, AppService connections and events, apps, grants and web sessions, and
 * the way in for what other processes send to this worker's connections (SPEC.md §2, §5, §7,
 * §8).
 *
 * Two implementations: local (worker/backend/local*.c: the node's LMDB store, mail and doorbell,
 * as one machine runs) and cluster (cluster/: NATS JetStream, SPEC.md §8). worker.c picks one at
 * start (backend_pick: cfg->cluster set → the cluster's) and sets w->backend; nothing else knows
 * which it is — no `if (cluster)` in the channels.
 *
 * Asynchronous where a cluster must ask the engine. Such an operation returns either its answer
 * now (0 or an SPEC.md errno), or BACKEND_LATER: the answer comes through the struct backend_done
 * the caller passed, on the worker's loop, never inside the call. The local implementation gives
 * a write's answer once the store's batch holding it commits (after the turn's status updates are
 * written, commit_before_sleep), as presenced always did: OK is never said of what a rollback
 * undoes. A struct backend_done is copied by the implementation (no allocation per request): the
 * caller names its connection by conn_id, and its done finds it again, or finds it gone.
 *
 * Reads (apps, grants, presence, web sessions) answer now: from the store on one node, from the
 * node's replica in a cluster (a leader get on a miss is the implementation's business).
 *
 * Inbound: mail for one of this worker's connections — superseded (52/4001), kicked or fenced
 * (61/1001), app closed (40/41/42), a live notification, an AppService event — is decoded by the
 * implementation into a struct conn_mail (conn_mail.h) and handed to backend_inbound(), which the
 * worker routes to the connection's channel (session_mail). A channel never sees a mail type. */
#ifndef PRESENCED_BACKEND_H
#define PRESENCED_BACKEND_H

#include "../../shm/app.h"
#include "../../shm/notif.h"
#include "../../shm/presence.h"
#include "../../shm/web_session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;
struct meter;
struct conn_mail;

/* The answer is not known yet: it comes through the caller's struct backend_done. */
#define BACKEND_LATER (-1)

/* How an answer given later reaches its caller: fn(arg, d, result) with result 0 or an errno
 * (60: not stored, the write was undone; 52; 61). d is the implementation's copy: conn_id and
 * held are the caller's own, given back as they were. */
struct backend_done {
    void (*fn)(void *arg, const struct backend_done *d, int result);
    void *arg;
    uint64_t conn_id;  /* whose request: the caller checks it is still open */
    void *held[2];     /* what the caller holds for the answer (its held replies, say) */
    int retry_after_s; /* set by the implementation with 61 (or 50): when to try again */
};

/* Pending notifications, the oldest first, as they are read: key (where it is queued; given
 * back to delivered() once written), json (the notification, not NUL-terminated). */
typedef void (*backend_notif_cb)(void *arg, const struct shm_notif_key *key, const char *json,
                                 size_t len);

/* A device's first verified status update: the connection takes (email, device). Read within
 * the call (the implementation copies what it keeps). */
struct backend_claim {
    const char *email, *device;
    uint64_t conn_id;
    uint8_t status; /* enum shm_status */
    /* The first page of what is pending for email, read after the claim (so that a notification
     * is either in it or delivered live, never both, never neither): at most page_budget bytes
     * of JSON through page, then page_end (more: some are left for pending_page), both before
     * done's answer — within the call on one node, on the loop in a cluster. page_end is called
     * once whenever the claim answers BACKEND_LATER (also when done then says 60/61); page_arg
     * must live until then. */
    size_t page_budget;
    backend_notif_cb page;
    void (*page_end)(void *arg, bool more);
    void *page_arg;
};

/* What arrives at an AppService connection's auth: whether the app comes back from an absence,
 * and the changes missed since when (replayed in pages, app_changes_page). */
struct backend_app_return {
    bool replay;
    int64_t since_ms;
};

/* A missed change, replayed: the user as the app knows it, the status, since when it holds. */
typedef void (*backend_change_cb)(void *arg, const char *puid, uint8_t status, int64_t since_ms);
/* A granted user of an app: PUID and e-mail. */
typedef void (*backend_grant_app_cb)(void *arg, const char *puid, const char *email);
/* An app the user granted, with the PUID. */
typedef void (*backend_grant_user_cb)(void *arg, const char *appid, const char *puid);
typedef void (*backend_app_cb)(void *arg, const struct shm_app *app);
/* The kinds of record look_further looks for. */
enum backend_record { BACKEND_RECORD_APP, BACKEND_RECORD_PUID };

struct backend_ops {
    const char *name; /* "local", "cluster": for the log */

    /* The worker starts (its loop, store and cfg are there; no connection yet): 0 or -1. stop:
     * the worker is exiting, its connections close next and the loop runs on until they and
     * every handle have gone (close handles here). close: after the loop's last run; what this
     * worker still holds (owners, AppService connections, statuses) is released, as the master
     * does if the worker died. The local implementation keeps no state in w->backend_state. */
    int (*open)(struct worker *w);
    void (*stop)(struct worker *w);
    void (*close)(struct worker *w);
    /* The end of the loop turn: what was put off is written (before_commit); the store's batch
     * committed, what it holds for others is told (after_commit: the doorbells on one node). */
    void (*before_commit)(struct worker *w);
    void (*after_commit)(struct worker *w);
    /* Whether this worker may answer with what it holds (SPEC.md §8: a node cut off from the
     * engine does not; a worker checks the time itself after a SIGSTOP). Always on one node. */
    bool (*serving)(struct worker *w);
    /* Copies the implementation's own figures into the worker's meter before it is published
     * (the cluster's counters and engine latencies); NULL when it has none. */
    void (*gather)(struct worker *w, struct meter *meter);

    /* -- devices (SPEC.md §2) -- */

    /* Takes (email, device) for conn_id, newest wins: the previous holder, wherever it is, is
     * told to close (52, 4001; counted in w->info.meter.takeovers); the user's presence is
     * recomputed. Answers now with 51 (max_devices_per_user: nothing taken), 60 or 61; or
     * BACKEND_LATER: the first page of pending notifications goes through c->page and
     * c->page_end, then done says 0 once the claim holds (the reply may say OK), or 51/60/61
     * (not bound after all). */
    int (*claim)(struct worker *w, const struct backend_claim *c, const struct backend_done *done);
    /* A bound connection's status update: BACKEND_LATER (or 60/61 now); done says 0 once
     * stored, 52 when conn_id no longer holds the device (a newer connection took it), 60 or 61.
     * The strings are copied: the connection may close meanwhile (then done finds it gone). */
    int (*set_status)(struct worker *w, const char *email, const char *device, uint64_t conn_id,
                      uint8_t status, const struct backend_done *done);
    /* Whether (email, device) has a connection now, on any node: a Web Push wake-up for it is
     * not needed (it gets the notification on its WebSocket). */
    bool (*device_connected)(struct worker *w, const char *email, const char *device);
    /* The bound connection conn_id went away: its status is held for offline_grace, then the
     * device leaves the user's presence. Nothing when a newer connection holds the device. */
    void (*release)(struct worker *w, const char *email, const char *device, uint64_t conn_id);

    /* -- notifications (SPEC.md §2, §5) -- */

    /* The next page of what is pending for email (a backlog the claim's page left, as the
     * device takes it): at most budget bytes of JSON through cb, the oldest first; *more when
     * some are left. Answers now (a cluster serves it from what it read after the claim): 0, or
     * -1 (nothing given). */
    int (*pending_page)(struct worker *w, const char *email, size_t budget, backend_notif_cb cb,
                        void *arg, bool *more);
    /* Whether the notification at key is still pending (not delivered to another device of the
     * user, not expired): a live one mailed after pages were read may be among them. */
    bool (*pending_has)(struct worker *w, const struct shm_notif_key *key);
    /* The notification at key was written to a device: it leaves the queue, and counts in
     * w->info.meter.notifications_delivered if it was still there (another device of the user
     * may have taken it first). */
    void (*delivered)(struct worker *w, const struct shm_notif_key *key);
    /* Queues json for email (expires_ms: wall ms; the oldest goes past max_pending_notifications)
     * and delivers it live to each connected device of the user, wherever it is. 60 now, or
     * BACKEND_LATER: done says 0 once it is queued for good (the reply may say OK), or 60. */
    int (*notify)(struct worker *w, const char *email, const char *json, size_t len,
                  int64_t expires_ms, const struct backend_done *done);

    /* -- AppService connections and events (SPEC.md §5, §7) -- */

    /* An AppService connection of appid authenticated: recorded (every event of the app's
     * granted users reaches it from now on, wherever they are); *back says whether the app had
     * no connection open and comes back from an absence, with its missed changes. 0, or 60. */
    int (*app_connected)(struct worker *w, const char *appid, uint64_t conn_id,
                         struct backend_app_return *back);
    /* It went away; when it was the app's last connection, the app is away from away_ms (the
     * first change it was not written). */
    void (*app_closed)(struct worker *w, const char *appid, uint64_t conn_id, int64_t away_ms);
    /* One page (at most max) of the latest change of each user of appid since since_ms, in
     * PUID order after after_puid ("" first; advanced to the last one given). *done at the end.
     * Returns the count, or -1. */
    int (*app_changes_page)(struct worker *w, const char *appid, int64_t since_ms, char *after_puid,
                            size_t max, backend_change_cb cb, void *arg, bool *done);
    /* Every open AppService connection of appid, wherever it is, closes with number (40: the
     * app was deleted; 41: deactivated; 42: given a new API key) and 1008. */
    void (*app_close_all)(struct worker *w, const char *appid, int number);
    /* The apps email granted (only_appid, or NULL: all of them) hear that the user's presence is
     * status since since_ms (0: not known): a grant made, a revocation (offline). */
    void (*app_event)(struct worker *w, const char *email, uint8_t status, int64_t since_ms,
                      const char *only_appid);

    /* -- apps, grants, web sessions, presence: reads answer now (SHM_OK, SHM_NOT_FOUND, or
     * < 0); writes answer 0 now (applied here at once: the pages read their own writes), 60, or
     * BACKEND_LATER with done (only where the caller must not say OK before it holds). done
     * may be NULL: the caller takes the answer now (the pages do: in a cluster their writes
     * reach the engine through the node's outbox, shm/outbox.h, and web_shared.c waits). -- */

    int (*presence_get)(struct worker *w, const char *email, struct shm_presence *out);
    /* A read of key (an appid, a PUID) found nothing here: the implementation may look further
     * (a cluster asks the engine: another node wrote it a moment ago and this node's replica
     * may not show it yet). SHM_NOT_FOUND now (nowhere else to look: one machine), or
     * BACKEND_LATER: done says 0 once the record can be read here, or SHM_NOT_FOUND; the caller
     * reads again then (once: a second miss is final). key is read within the call. The
     * AppService channel asks it for an unknown appid at auth and an unknown PUID at notify. */
    int (*look_further)(struct worker *w, enum backend_record kind, const char *key,
                        const struct backend_done *done);
    int (*app_get)(struct worker *w, const char *appid, struct shm_app *out);
    int (*app_list_by_owner)(struct worker *w, const char *owner, backend_app_cb cb, void *arg);
    int (*app_put)(struct worker *w, const struct shm_app *app, const struct backend_done *done);
    /* The app, its owner index and every grant of it. */
    int (*app_delete)(struct worker *w, const char *appid, const struct backend_done *done);
    /* The PUID (SHM_PUID_LEN + 1 bytes) under which email granted appid. */
    int (*grant_get)(struct worker *w, const char *email, const char *appid, char *puid);
    /* Who a PUID stands for: the app (SHM_APPID_LEN + 1) and the user (SHM_EMAIL_MAX + 1). */
    int (*grant_by_puid)(struct worker *w, const char *puid, char *appid, char *email);
    int (*grant_list_user)(struct worker *w, const char *email, backend_grant_user_cb cb,
                           void *arg);
    /* In PUID order after after_puid, at most max; *done at the end. Returns the count or < 0. */
    int (*grant_page_app)(struct worker *w, const char *appid, char *after_puid, size_t max,
                          backend_grant_app_cb cb, void *arg, bool *done);
    int (*grant_put)(struct worker *w, const char *email, const char *appid, const char *puid,
                     const struct backend_done *done);
    /* *puid (may be NULL) gets the PUID the grant had; SHM_NOT_FOUND when there was none. */
    int (*grant_revoke)(struct worker *w, const char *email, const char *appid, char *puid,
                        const struct backend_done *done);
    int (*web_session_get)(struct worker *w, const unsigned char *hash,
                           struct shm_web_session *out);
    int (*web_session_put)(struct worker *w, const unsigned char *hash,
                           const struct shm_web_session *session, const struct backend_done *done);
    int (*web_session_delete)(struct worker *w, const unsigned char *hash,
                              const struct backend_done *done);
};

/* The implementations. */
extern const struct backend_ops backend_local;
/* A node of a cluster (backend/cluster.c, on cluster/member.h): local's table with the devices'
 * and notifications' operations on the engine. */
const struct backend_ops *backend_cluster(void);

/* The implementation this worker runs: worker.c sets w->backend with it before open; an
 * implementation keeps its own state behind w->backend_state. */
const struct backend_ops *backend_pick(const struct worker *w);

/* The way in: mail for the connection conn_id of this worker, decoded (conn_mail.h), to its
 * channel; dropped when the connection has gone or is of another channel. */
void backend_inbound(struct worker *w, uint64_t conn_id, const struct conn_mail *mail);

#endif
