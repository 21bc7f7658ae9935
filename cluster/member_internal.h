/* member_internal: what the member's files share (member.c: the connection, the inbox,
 * serving, liveness, the operations' life; ownership.c; queue.c). Not for other modules. */
#ifndef PRESENCED_CLUSTER_MEMBER_INTERNAL_H
#define PRESENCED_CLUSTER_MEMBER_INTERNAL_H

#include "member.h"

#include "engine.h"
#include "js.h"
#include "node_record.h"
#include "record.h"

#include "../common/list.h"
#include "../common/u64map.h"

/* How often the member looks at its agent's view (fencing, a new epoch). */
#define CL_WATCH_MS 200
/* The nodes' records read from the replica are used this long before being read again. */
#define CL_NODES_FRESH_MS 100
/* Inbox messages are kept this long for a re-send after a reconnect (member_resend.c): a
 * silent server is left after two pings of 1 s unanswered, plus a margin. */
#define CL_RESEND_MS 3000
#define CL_RESEND_MAX_BYTES (4u << 20)
/* A user record this worker wrote is kept as the base of its next write this long: by then the
 * replica has it (a feed is milliseconds behind), so the copies held stay a few seconds' writes,
 * not one per device; and at most this many. */
#define CL_WRITTEN_KEEP_MS 2000
#define CL_WRITTEN_MAX 65536

struct cl_member {
    uv_loop_t *loop;
    const struct config *cfg;
    struct shm_store *store;
    uint32_t pid;
    struct cl_member_handlers on;
    struct engine *engine;
    struct engine_sub *inbox_sub;
    char inbox[CL_INBOX_SUBJECT_MAX];
    uv_timer_t watch;
    uint64_t epoch; /* the epoch our connections claim under */
    bool serving;   /* as last looked at */
    bool closing;
    struct cl_node *nodes; /* the replica's node records, self included */
    size_t node_count, node_cap;
    int64_t nodes_read_mono;
    struct list_link ops; /* every operation under way */
    struct u64map lanes;  /* user key -> struct lane: one record operation at a time per user */
    struct u64map written; /* user key -> struct written_record: this worker's last write */
    uint64_t next_msg_id;
    struct list_link resend;  /* member_resend.c: inbox messages sent lately, oldest first */
    size_t resend_bytes;
    int64_t disconnected_mono; /* when the engine connection was lost (0: connected) */
    struct cl_member_stats stats;
};

enum cl_op_kind { OP_CLAIM, OP_SET_STATUS, OP_RELEASE, OP_NOTIFY, OP_PENDING, OP_DELIVERED };

/* Operations of this worker on one user record wait for each other (they would only make each
 * other's compare-and-set fail, and two status updates must be stored in the order sent). */
struct lane {
    uint64_t key;
    struct list_link waiting; /* struct cl_op.lane_link, the running one first */
};

/* A user record as this worker last wrote it, at the revision the engine gave the write. */
struct written_record {
    uint64_t rev;
    int64_t kept_mono;
    size_t len;
    unsigned char data[];
};

struct cl_op {
    struct cl_member *m;
    struct list_link link;      /* in m->ops */
    struct list_link lane_link; /* in its lane, for record operations */
    struct lane *lane;
    enum cl_op_kind kind;
    bool cancelled;     /* the caller forgot it: no callback */
    bool in_flight;     /* an engine request is under way: its answer frees a forgotten op */
    bool answered;      /* the caller had its answer: what follows is the op's own */
    bool ended;         /* freed once its timer closed */
    bool maybe_written; /* a claim's write that may have gone through (no answer came) */
    bool early_sent;    /* a notification's EARLY copies went out with its first publish */
    uv_timer_t timer;
    void (*next)(struct cl_op *op); /* what the timer runs */
    void (*lane_start)(struct cl_op *op);
    int64_t started_mono;
    unsigned attempts;
    char email[SHM_EMAIL_MAX + 1];
    char user_key[CL_USER_KEY_LEN + 1];
    char bucket[16];
    char subject[48]; /* the queue's: pd.q.<user key> */
    char device[SHM_DEVICE_MAX + 1];
    uint64_t conn;
    uint8_t status;
    size_t max_devices;
    uint64_t rev_epoch; /* the epoch the connection claimed under */
    uint64_t rev;       /* a claim's written revision */
    bool local_base;    /* this attempt applies to the worker's own copy, not the leader's */
    bool leader_only;   /* a decision made on the own copy is confirmed on the leader's */
    unsigned char *wrote; /* what the write under way stores (kept once acknowledged) */
    size_t wrote_len;
    bool had_previous;
    struct cl_owner previous;
    union {
        cl_claim_cb claim;
        cl_done_cb done;
        cl_notify_cb notify;
        cl_page_done_cb page_done;
        cl_taken_cb taken;
    } cb;
    cl_page_add_cb page_add;
    void *arg;
    /* notify */
    char *json;
    size_t json_len;
    int64_t expires_ms, queued_ms;
    char msg_id[64];
    size_t dropped;
    uint64_t seq;
    struct cl_owner *sent; /* the entries a DELIVER went to (from the worker's copy) */
    size_t sent_count;
    struct cl_owner *early; /* the entries an EARLY copy went to: each has its DELIVER too */
    size_t early_count;
    /* pending */
    uint64_t after;
    size_t max_bytes, used, count;
};

struct cl_op *member_op_new(struct cl_member *m, enum cl_op_kind kind, const char *email);
/* Ends the op (after its callback, or forgotten): frees it once its timer closed; the next op
 * of its lane starts. */
void member_op_end(struct cl_op *op);
/* Runs fn after delay_ms (0: on the next loop turn: callbacks never run inside a call). */
void member_op_later(struct cl_op *op, int64_t delay_ms, void (*fn)(struct cl_op *op));
/* A back-off for attempt n: 25 ms doubling to 1 s, with jitter. */
int64_t member_backoff_ms(unsigned attempt);
bool member_budget_left(const struct cl_op *op);
/* Queues a record op behind the others of its user; runs start when its turn comes. */
void member_lane_enter(struct cl_op *op, void (*start)(struct cl_op *op));
/* Leaves its lane before the op ends (the next op of the lane starts); none: nothing. */
void member_lane_leave(struct cl_op *op);
/* The epoch and whether we serve, read fresh. */
bool member_serving_now(struct cl_member *m);
/* Publishes an inbox message (member_resend.c) and keeps it for a re-send after a reconnect. */
int member_inbox_send(struct cl_member *m, const char *subject, const char *msg, size_t len);
void member_resend_disconnected(struct cl_member *m);
void member_resend_reconnected(struct cl_member *m);
void member_resend_free(struct cl_member *m);
/* The user key as a u64map key. */
uint64_t member_user_key64(const char *user_key);
/* The newest copy of the user's record this worker has without asking the engine — its own
 * last write or the replica's, whichever has the higher revision — decoded into rec (free it
 * with cl_record_free) with that revision. -1 when it has none (or the copy names another
 * e-mail): the record's leader is asked. */
int member_record_local(struct cl_member *m, const char *user_key, const char *email,
                        struct cl_record *rec, uint64_t *rev);
/* This worker wrote data (len bytes) as the user's record at revision rev; data is taken. */
void member_written_keep(struct cl_member *m, const char *user_key, uint64_t rev,
                         unsigned char *data, size_t len);
void member_written_forget(struct cl_member *m, const char *user_key);
/* Drops the copies kept longer than CL_WRITTEN_KEEP_MS. */
void member_written_sweep(struct cl_member *m);
/* Publishes a CLOSE to the worker holding owner's connection. */
void member_close_send(struct cl_member *m, const struct cl_owner *owner, int number);

#endif
