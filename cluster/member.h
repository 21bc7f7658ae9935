/* member: one worker process of a cluster node as a member of the cluster (SPEC §8) — its own
 * engine connection on the worker's libuv loop, its inbox (pd.w.<node>.<pid>) where other
 * workers' CLOSE and DELIVER arrive, whether the node may serve (serving()), and the operations
 * on the cluster's state a device needs: the claim of an (e-mail, device), status updates and
 * the release on the user record by compare-and-set (ownership.c), and notifications on the
 * queue stream (queue.c). Every operation answers through its callback, on the loop, never from
 * inside the call; none waits for the engine. Nothing of lws here: the worker's backend
 * (worker/backend/) adapts this to its interface. */
#ifndef PRESENCED_CLUSTER_MEMBER_H
#define PRESENCED_CLUSTER_MEMBER_H

#include "inbox.h"

#include "../common/config.h"
#include "../common/histogram.h"
#include "../shm/notif.h"
#include "../shm/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct cl_member;
struct cl_op;

/* What the member calls on the worker, on the loop. */
struct cl_member_handlers {
    /* Close connection conn of this worker with errno number (52: a newer connection took its
     * device, on any node). */
    void (*close)(void *arg, uint64_t conn, int number);
    /* A notification queued for the user of connection conn (the receiver checks that conn is
     * bound to that user key); a device may have read it already from its queue, whose reads
     * go by sequence: one at or below the last sequence it read is not new. */
    void (*deliver)(void *arg, const struct cl_inbox_msg *msg);
    /* The engine connection came back after a loss: deliveries sent meanwhile may be lost, so
     * bound devices read their queues again (they stay queued until written). */
    void (*resync)(void *arg);
    /* The node stopped serving (fenced by its agent, its agent's view stale, or a new epoch):
     * every device is closed with 61 and 1001; claims answer 61 until it serves again. */
    void (*fenced)(void *arg);
    void *arg;
};

struct cl_member_options {
    uv_loop_t *loop;
    const struct config *cfg; /* cluster, node_name, node_timeout, max_pending_notifications */
    struct shm_store *store;  /* the node's store: the agent's view (shm/replica.h) */
    uint32_t pid;
    struct cl_member_handlers on;
};

/* Connects (after fork: cnats starts threads) and subscribes to the inbox. 0, or -1 with err. */
int cl_member_open(struct cl_member **out, const struct cl_member_options *opt, char *err,
                   size_t errlen);
/* Answers every operation under way with 61 (their callbacks run within this call, the last
 * ones) and closes the connection; the handles close with the loop's next run. */
void cl_member_close(struct cl_member *m);
/* Once the loop has run its last turn after cl_member_close: cnats's threads and global state
 * go, so that the process ends with nothing of it left (waits up to 2 s). */
void cl_member_library_end(void);

/* Whether this node may serve now: its agent registered an epoch, is not fenced, and heard the
 * node's own heartbeat through the engine within node_timeout — checked against the clock here,
 * so that a worker thawed after a SIGSTOP refuses before its agent has run. */
bool cl_member_serving(struct cl_member *m);
/* The epoch this worker's connections claim under (0 before the first serving()). */
uint64_t cl_member_epoch(const struct cl_member *m);
/* Connected to the engine, with the inbox subscribed. */
bool cl_member_connected(const struct cl_member *m);

/* Whether an entry's incarnation is live as this node's replica knows: its node's record is
 * alive with that epoch (or a newer one than the replica has seen) and the worker is not among
 * that epoch's dead. A node the replica does not know yet counts as live. */
bool cl_member_owner_live(void *member, const struct cl_owner *owner);

/* Forgets an operation: its callback will not run (a claim that commits anyway is released).
 * A handle is the caller's until its callback runs or this is called, not after. */
void cl_op_cancel(struct cl_op *op);

/* ---- ownership.c: the user record ---- */

/* How long an operation goes on trying through conflicts and an engine that does not answer
 * (an election takes 5-15 s) before it answers 61. */
#define CL_OP_BUDGET_MS 10000

struct cl_claim_result {
    int number;        /* 0: the device is this connection's; 51: too many devices; 61 */
    int retry_after_s; /* with 61: when to try again (jittered, so a herd spreads) */
    bool had_previous; /* a live connection held the device: it was told to close (52) */
    uint64_t rev;      /* the revision of the user's record the claim wrote */
};
typedef void (*cl_claim_cb)(void *arg, const struct cl_claim_result *r);
/* Makes connection conn of this worker the holder of (email, device), newest wins, at most
 * max_devices live devices. NULL when it cannot start (not serving, out of memory): answer 61. */
struct cl_op *cl_claim(struct cl_member *m, const char *email, const char *device, uint64_t conn,
                       uint8_t status, size_t max_devices, cl_claim_cb cb, void *arg);

/* number: 0 (stored, or unchanged), 52 (no longer the device's holder), 61 (unavailable). */
typedef void (*cl_done_cb)(void *arg, int number);
struct cl_op *cl_set_status(struct cl_member *m, const char *email, const char *device,
                            uint64_t conn, uint8_t status, cl_done_cb cb, void *arg);
/* The connection went away: its entry goes, if it still holds the device (the last one
 * deletes the record). Retried within the budget; what is left then is the cleaner's. */
void cl_release(struct cl_member *m, const char *email, const char *device, uint64_t conn);

/* ---- queue.c: notifications (stream PD_Q, subject pd.q.<user key>) ---- */

#define CL_QUEUE_STREAM "PD_Q"

/* A queued notification's key as a session holds it (the single node's layout: e-mail \0,
 * be64 queued ms, be64 sequence — here the queue stream's). */
void cl_notif_key(const char *email, int64_t queued_ms, uint64_t seq, struct shm_notif_key *key);
uint64_t cl_notif_key_seq(const struct shm_notif_key *key);

struct cl_notify_result {
    int number;     /* 0: queued (acknowledged by the engine); 61: unavailable */
    size_t dropped; /* oldest ones dropped from a full queue to make room */
    uint64_t seq;
};
typedef void (*cl_notify_cb)(void *arg, const struct cl_notify_result *r);
/* Queues json for email until expires_ms (the engine acknowledges it: replicated), answers,
 * then reads the user's record from the stream's leader and delivers it to every live device's
 * worker. NULL when it cannot start. */
struct cl_op *cl_notify(struct cl_member *m, const char *email, const char *json, size_t len,
                        int64_t expires_ms, cl_notify_cb cb, void *arg);

/* A page of email's queue after sequence after: add gets each live one, oldest first, while
 * their JSON fits in max_bytes (at least one); done gets 0 (more: live ones are left; last: the
 * last sequence read, what `after` is for the next page) or 61. Expired ones met are deleted. */
typedef void (*cl_page_add_cb)(void *arg, const struct shm_notif_key *key, const char *json,
                               size_t len);
typedef void (*cl_page_done_cb)(void *arg, int number, bool more, uint64_t last);
struct cl_op *cl_pending(struct cl_member *m, const char *email, uint64_t after, size_t max_bytes,
                         cl_page_add_cb add, cl_page_done_cb done, void *arg);

/* A notification was written to a device: it leaves the queue (taken = whether it was still
 * there: not when another device of the user took it first). cb may be NULL. */
typedef void (*cl_taken_cb)(void *arg, bool taken);
void cl_delivered(struct cl_member *m, const struct shm_notif_key *key, cl_taken_cb cb, void *arg);

struct cl_member_stats {
    uint64_t claims, conflicts, unavailable, closes_sent, delivers_sent, delivers_received,
        early_sent, early_received, notifications, dropped, reconnects, resent, timeouts;
    uint64_t local_bases, stale_copies; /* record writes made on the worker's copy; refused */
    struct histogram round_trip;        /* the engine's requests (cluster/engine.h) */
};
void cl_member_stats(const struct cl_member *m, struct cl_member_stats *out);

#endif
