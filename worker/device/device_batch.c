/* device_batch: the status updates of a loop turn, stored all together just before the commit,
 * and the replies that wait for that commit.
 *
 * Why put the writes off: LMDB has one write lock for the node, and a worker held it from its
 * first write of a loop turn to the commit at the turn's end, through everything else the turn
 * did (reading sockets, parsing, writing replies), while every other worker that wanted to
 * write waited. Checked at once and stored at the end, an update keeps its place among the
 * replies (its reply is held from the start) and the lock is held only while writing. The
 * arrays keep their size from one turn to the next: no allocation per update. */
#include "device_session.h"

#include "../../common/grow.h"
#include "../../common/log.h"
#include "../../shm/conn.h"

#include <stdlib.h>
#include <string.h>

struct staged_update {
    uint64_t conn_id;
    struct out_msg *reply; /* held in the session's queue */
    uint8_t status;
};

/* A reply waiting for the commit of the batch that holds its update: OK once stored. */
struct commit_reply {
    uint64_t conn_id;
    bool binding;                  /* the first update: undone if the batch rolls back */
    struct out_msg *reply;         /* held in the session's queue */
    struct out_msg *notifications; /* binding: what was pending for the user, held after it */
};

static const char OK_REPLY[] = "{\"result\":\"OK\"}";
static const char NOT_STORED[] =
    "{\"result\":\"KO\",\"errno\":60,\"error\":\"internal error: not stored\"}";

static void device_unbind(struct device_session *s)
{
    free(s->email);
    free(s->device);
    s->email = s->device = NULL;
    s->owner = false;
    s->backlog = false;
}

static void reply_release(struct worker *w, const struct commit_reply *r, int result)
{
    /* The held messages live as long as their session. */
    struct device_session *s = device_find(w, r->conn_id);
    if (s == NULL)
        return;
    if (result == SHM_OK) {
        session_release(&s->ws, r->reply, OK_REPLY, sizeof OK_REPLY - 1);
        if (r->notifications != NULL)
            session_release(&s->ws, r->notifications, NULL, 0);
        return;
    }
    meter_error_reply(&w->info.meter, METER_DEVICE, 60);
    if (r->binding)
        device_unbind(s);
    if (r->notifications != NULL)
        session_drop(&s->ws, r->notifications);
    session_release(&s->ws, r->reply, NOT_STORED, sizeof NOT_STORED - 1);
}

/* The batch holding the replies' updates is committed (or rolled back). Releasing them writes
 * to the sockets, which may start the next batch, never add replies to this one; those of the
 * next batch go in the other array meanwhile. */
static void replies_committed(void *arg, int result)
{
    struct worker *w = arg;
    struct device_batch *b = &w->device_batch;
    struct commit_reply *list = b->replies;
    size_t count = b->reply_count, cap = b->reply_cap;
    b->replies = b->releasing;
    b->reply_cap = b->releasing_cap;
    b->reply_count = 0;
    b->releasing = NULL;
    b->releasing_cap = 0;
    b->waiting = false;
    for (size_t i = 0; i < count; i++)
        reply_release(w, &list[i], result);
    b->releasing = list;
    b->releasing_cap = cap;
}

int device_batch_reply(struct worker *w, struct device_session *s, struct out_msg *reply,
                       bool binding)
{
    struct device_batch *b = &w->device_batch;
    if (grow_for((void **)&b->replies, &b->reply_cap, b->reply_count, sizeof *b->replies, 64) !=
        0)
        return -1;
    if (!b->waiting) {
        if (shm_batch_on_commit(w->store, replies_committed, w) != SHM_OK)
            return -1;
        b->waiting = true;
    }
    struct commit_reply *r = &b->replies[b->reply_count++];
    *r = (struct commit_reply){ .conn_id = s->ws.conn_id, .binding = binding, .reply = reply };
    if (!binding)
        return 0;
    struct notify_batch pending;
    device_notify_collect(w, s, &pending);
    /* More than a page: the rest follows in pages as the device takes them. */
    s->backlog = pending.more;
    s->paged = s->paged || pending.more;
    r->notifications = device_notify_hold(w, s, &pending);
    return 0;
}

void device_batch_update(struct worker *w, struct device_session *s, uint8_t status)
{
    struct device_batch *b = &w->device_batch;
    struct out_msg *reply = session_hold(&s->ws, DEVICE_REPLY_CAP);
    if (reply == NULL)
        return; /* out of memory: the connection closes (out_append) */
    if (grow_for((void **)&b->updates, &b->update_cap, b->update_count, sizeof *b->updates, 64) !=
        0) {
        session_drop(&s->ws, reply);
        session_error(w, &s->ws, 60, "internal error", 0);
        return;
    }
    b->updates[b->update_count++] =
        (struct staged_update){ .conn_id = s->ws.conn_id, .reply = reply, .status = status };
}

/* One status update, in the batch: stored, or answered with why not. */
static void update_apply(struct worker *w, const struct staged_update *u)
{
    struct device_session *s = device_find(w, u->conn_id);
    if (s == NULL)
        return; /* closed since: its reply went with it */
    int rc = s->owner ? presence_device_status(w, s->email, s->device, s->ws.conn_id, u->status)
                      : SHM_NOT_FOUND;
    if (rc == SHM_NOT_FOUND) {
        /* A newer connection took the device; its mail may still be on the way. */
        s->owner = false;
        session_release_error(w, &s->ws, u->reply, 52, "superseded by a newer connection", 4001);
        return;
    }
    if (rc != SHM_OK) {
        session_release_error(w, &s->ws, u->reply, 60, "internal error", 0);
        return;
    }
    if (device_batch_reply(w, s, u->reply, false) != 0)
        session_release_error(w, &s->ws, u->reply, 60, "internal error", 0);
}

void device_batch_apply(struct worker *w)
{
    struct device_batch *b = &w->device_batch;
    /* In the order they came; an update's store work adds none to the list. */
    for (size_t i = 0; i < b->update_count; i++)
        update_apply(w, &b->updates[i]);
    b->update_count = 0;
}

void device_batch_free(struct worker *w)
{
    struct device_batch *b = &w->device_batch;
    free(b->updates);
    free(b->replies);
    free(b->releasing);
    memset(b, 0, sizeof *b);
}
