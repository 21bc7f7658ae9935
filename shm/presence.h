/* presence: each user's presence as apps see it — the highest status of their devices, a
 * departed device's status held for offline_grace, since when each status holds, and "last seen"
 * for users who went offline (SPEC.md §7).
 *
 * Two statuses are kept per user. The live one is the highest over the connected devices (what
 * the operator sees). The published one is what apps see (events, snapshots, polling): it is the
 * highest over the connected devices and over the devices that left less than offline_grace ago.
 * A device that goes away leaves a "grace" record — its status, when it left, when the hold ends
 * — so that a page reload or a change of network (the device back on any worker before the end)
 * changes nothing apps see; a status a device sends itself counts at once.
 *
 * Since: each of the two statuses is stored with the wall-clock time it began, and the record
 * lives in the store, not in a process: it outlives every restart, while a device is connected
 * or held and then last_seen_ttl more after the user went offline (the master's sweep forgets
 * the older ones). A fall that only the end of a hold made dates from when the device left, so
 * an offline user's since is when they were last seen, not the end of the grace.
 *
 * Who ends a hold: the grace record's due time is in the store, indexed by time, so any process
 * can end the holds that are due (shm_presence_expire). The worker that saw the device leave
 * arms a timer for it; the master's once-a-second sweep ends the ones whose worker died or exited
 * (a reload, a stop) and those of a previous run. LMDB's single writer makes each hold end once.
 *
 * Counts: the record also holds how many connected devices are at each status. Every change of
 * a user's connections (bound, left, released with a worker) recomputes them from the user's
 * connection records in the same batch; a status update only moves one device from one count to
 * another. An update that finds no counts, or counts that do not hold the device's old status,
 * walks the devices instead (and stores their counts). */
#ifndef PRESENCED_SHM_PRESENCE_H
#define PRESENCED_SHM_PRESENCE_H

#include "store.h"

#include <stdbool.h>
#include <stdint.h>

/* The settings the presence of a user follows (offline_grace, last_seen_ttl). */
struct shm_presence_policy {
    int64_t grace_ms;         /* 0: a departure counts at once */
    int64_t last_seen_ttl_ms; /* how long an offline user's "since" is kept; 0: not kept */
};

struct shm_presence {
    uint8_t status;        /* published (enum shm_status); offline when the user has no record */
    int64_t since_ms;      /* wall clock when the published status began; 0: not known */
    uint8_t live;          /* the highest status over the connected devices */
    int64_t live_since_ms; /* when live began; 0 when no device is connected */
    int devices;           /* connected devices (from the functions that recompute) */
    bool held;             /* a departed device's status is held (offline_grace) */
    /* The connected devices at each status (enum shm_status), when counted: kept in the record
     * so that a status update changes two counts and reads live from them, instead of walking
     * every device of the user. Not counted in a record of the previous layout or one a cluster
     * agent stored: the next update walks the devices and counts them. */
    bool counted;
    uint16_t at_status[3];
};

/* Recomputes email's presence (in the batch: it sees the batch's writes) after a connected
 * device's status changed, and stores it. A hold whose time is up ends here too. *before and
 * *after (either may be NULL) get the old and new presence: apps are told when before->status
 * and after->status differ. */
int shm_presence_refresh(struct shm_store *store, const char *email,
                         const struct shm_presence_policy *policy, int64_t now_ms,
                         struct shm_presence *before, struct shm_presence *after);

/* A connected device's new status: stored (shm_conn_set_status) and the presence derived from
 * the record's counts (one moves from the old status to the new), holds folded in as
 * shm_presence_refresh does. SHM_NOT_FOUND (and nothing done) when (pid, conn_id) no longer owns
 * (email, device). */
int shm_presence_device_status(struct shm_store *store, const char *email, const char *device,
                               int32_t pid, uint64_t conn_id, uint8_t status,
                               const struct shm_presence_policy *policy, int64_t now_ms,
                               struct shm_presence *before, struct shm_presence *after);

/* A device bound a connection (its shm_conn record is claimed): a hold it left ends, since it
 * is back, and the presence is recomputed. */
int shm_presence_device_bound(struct shm_store *store, const char *email, const char *device,
                              const struct shm_presence_policy *policy, int64_t now_ms,
                              struct shm_presence *before, struct shm_presence *after);

/* The connection (pid, conn_id) of (email, device) went away: its record is released, when it
 * still owns it, its status is held for the grace, and the presence is recomputed. SHM_NOT_FOUND
 * (and nothing done) when the connection no longer owned the device. */
int shm_presence_device_left(struct shm_store *store, const char *email, const char *device,
                             int32_t pid, uint64_t conn_id,
                             const struct shm_presence_policy *policy, int64_t now_ms,
                             struct shm_presence *before, struct shm_presence *after);

/* Users with a device connected, by live status (users[SHM_STATUS_OFFLINE]: connected and
 * appearing offline), for /metrics: one read of each user's record. */
int shm_presence_count_live(struct shm_store *store, uint64_t users[3]);

/* A cluster node's agent: stores email's presence as it derived it from the cluster's user
 * records (now->devices: the live ones; no holds, no local devices); *before (may be NULL) gets
 * what was stored. */
int shm_presence_put(struct shm_store *store, const char *email, const struct shm_presence *now,
                     const struct shm_presence_policy *policy, struct shm_presence *before);

/* The stored presence; SHM_NOT_FOUND (and offline, since 0, in *out) for a user without one. */
int shm_presence_get(struct shm_store *store, const char *email, struct shm_presence *out);

/* Releases every connection a (dead or exiting) worker held, holds their statuses for the grace
 * and recomputes the presence of their users; cb (when not NULL) hears each user whose published
 * status changed. */
typedef void (*shm_presence_cb)(void *arg, const char *email, const struct shm_presence *before,
                                const struct shm_presence *after, struct shm_store *store);
int shm_presence_release_worker(struct shm_store *store, int32_t pid,
                                const struct shm_presence_policy *policy, int64_t now_ms,
                                size_t *released, shm_presence_cb cb, void *arg);

/* Ends the holds due by now_ms (at most max of them) and recomputes their users; cb hears each
 * user whose published status changed. *next_due_ms gets the due time of the earliest hold left
 * (0: none). */
int shm_presence_expire(struct shm_store *store, const struct shm_presence_policy *policy,
                        int64_t now_ms, size_t max, shm_presence_cb cb, void *arg,
                        int64_t *next_due_ms);

/* The due time of the earliest hold (0: none), read without writing. */
int shm_presence_next_due(struct shm_store *store, int64_t *due_ms);

/* At the start of the master, before the previous run's connections are dropped: each device
 * they held leaves a hold from now (its users show offline after the grace unless the device
 * reconnects in time: a restart shorter than the grace is no departure), and presence records
 * of another layout go. */
int shm_presence_restart(struct shm_store *store, const struct shm_presence_policy *policy,
                         int64_t now_ms);

/* Forgets, from where sweep stopped, up to max records of users offline for longer than
 * last_seen_ttl; *removed counts them. */
int shm_presence_last_seen_expire(struct shm_store *store, int64_t now_ms, size_t max,
                                  struct shm_sweep *sweep, size_t *removed);

#endif
