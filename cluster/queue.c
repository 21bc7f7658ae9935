/* queue: notifications in the cluster — one subject per user (pd.q.<user key>) of the stream
 * PD_Q, whose limits are the queue's (max_pending_notifications per subject, a full one
 * refusing the publish: the oldest is dropped and counted, then the publish made again;
 * notification_ttl as its age limit), replicated by the engine. A notification is published
 * with a Nats-Msg-Id (a publish tried again after a lost answer is not stored twice); an EARLY
 * copy goes to the devices the worker's copy of the record names as it is first published
 * (deliver_early); it is answered once the engine acknowledged it, and then delivered live:
 * each entry that had an EARLY copy, then each live entry of the user's record gets a DELIVER
 * on its worker's inbox, at once from the worker's own copy of the record (the replica), then
 * from the record read from its bucket's leader after the acknowledgement to the entries the
 * copy did not have (a device that claimed a moment ago). A device that connects reads its
 * queue after its claim's compare-and-set; between the two orders (publish then read the
 * record, claim then read the queue) each notification reaches a connecting device at least
 * one way (research/scale-out.md §4.5), and the device reads by sequence, so that one it read
 * is not taken again from a DELIVER. Written to a device, a notification is deleted by its
 * sequence. */
#include "member_internal.h"

#include "../common/clock.h"
#include "../common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_QUEUED "Pd-Queued"
#define HEADER_EXPIRES "Pd-Expires"

static void be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint64_t be64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void cl_notif_key(const char *email, int64_t queued_ms, uint64_t seq, struct shm_notif_key *key)
{
    size_t n = strlen(email);
    if (n + 1 + 16 > sizeof key->bytes)
        n = sizeof key->bytes - 17; /* cannot happen: e-mails are bounded (SHM_EMAIL_MAX) */
    memcpy(key->bytes, email, n);
    key->bytes[n] = '\0';
    be64_put(key->bytes + n + 1, (uint64_t)queued_ms);
    be64_put(key->bytes + n + 9, seq);
    key->len = n + 17;
}

uint64_t cl_notif_key_seq(const struct shm_notif_key *key)
{
    return key->len < 17 ? 0 : be64_get(key->bytes + key->len - 8);
}

static int64_t header_ms(const struct js_result *r, const char *name)
{
    char value[24];
    if (r->hdrs == NULL || js_header_get(r->hdrs, r->hdrs_len, name, value, sizeof value) != 1)
        return 0;
    char *end;
    long long v = strtoll(value, &end, 10);
    return *end == '\0' && v > 0 ? (int64_t)v : 0;
}

static void ignored(void *arg, const struct js_result *r)
{
    (void)arg;
    (void)r;
}

/* ---- notify ---- */

static void publish(struct cl_op *op);
static void deliver_read(struct cl_op *op);

static void notify_answer(struct cl_op *op, int number)
{
    op->answered = true;
    if (!op->cancelled && op->cb.notify != NULL) {
        struct cl_notify_result r = { .number = number, .dropped = op->dropped, .seq = op->seq };
        op->cb.notify(op->arg, &r);
    }
}

static bool notify_retry(struct cl_op *op, void (*step)(struct cl_op *op))
{
    if (op->m->closing || !member_budget_left(op))
        return false;
    member_op_later(op, member_backoff_ms(++op->attempts), step);
    return true;
}

static bool sent_before(const struct cl_op *op, const struct cl_owner *owner)
{
    for (size_t i = 0; i < op->sent_count; i++)
        if (cl_owner_same(&op->sent[i], owner))
            return true;
    return false;
}

/* The notification to owner's worker: a DELIVER with its sequence, or (seq 0) an EARLY copy.
 * Whether it was written to the engine connection. */
static bool inbox_deliver(struct cl_op *op, const struct cl_owner *owner, uint64_t seq)
{
    size_t len;
    char subject[CL_INBOX_SUBJECT_MAX];
    char *msg = cl_inbox_deliver_encode(owner->conn, op->user_key, seq, op->queued_ms, op->json,
                                        op->json_len, &len);
    if (msg == NULL)
        return false;
    cl_inbox_subject(owner->node, owner->pid, subject, sizeof subject);
    bool sent = member_inbox_send(op->m, subject, msg, len) == ENGINE_OK;
    free(msg);
    if (sent && seq != 0)
        op->m->stats.delivers_sent++;
    else if (sent)
        op->m->stats.early_sent++;
    return sent;
}

/* Room for more entries after the count that *list holds — false when out of memory. */
static bool owners_grow(struct cl_owner **list, size_t count, size_t more)
{
    struct cl_owner *grown = realloc(*list, (count + more) * sizeof *grown);
    if (grown == NULL)
        return false;
    *list = grown;
    return true;
}

/* A DELIVER to each live entry of rec that has not had one; those sent are remembered when
 * remember is set (the leader's record comes after, and must not send them twice). */
static void deliver_to(struct cl_op *op, const struct cl_record *rec, bool remember)
{
    struct cl_member *m = op->m;
    if (remember && rec->count > 0 && !owners_grow(&op->sent, op->sent_count, rec->count))
        return; /* the leader's record (deliver_read) sends to all */
    for (size_t i = 0; i < rec->count; i++) {
        const struct cl_entry *e = &rec->entries[i];
        if (!cl_member_owner_live(m, &e->owner) || sent_before(op, &e->owner))
            continue;
        if (inbox_deliver(op, &e->owner, op->seq) && remember)
            op->sent[op->sent_count++] = e->owner;
    }
}

/* As the first publish goes out: an EARLY copy (no sequence yet) to each device the worker's
 * own copy of the record names, which its worker gives at once; so the device does not wait for
 * the engine's replicated write (the R3 acknowledgement, 1-2 ms at p99 here, 5-15 s in an
 * election). After the acknowledgement each of them gets its DELIVER, even one no longer in
 * the record (a device that had it and left): a worker that gave the EARLY copy only deletes
 * the notification from the queue then (worker/backend/cluster.c). A publish that fails after
 * it was sent early was seen by those devices; the app is told 61. */
static void deliver_early(struct cl_op *op)
{
    struct cl_member *m = op->m;
    struct cl_record rec;
    uint64_t rev;
    op->early_sent = true;
    if (member_record_local(m, op->user_key, op->email, &rec, &rev) != 0)
        return;
    if (rec.count > 0 && owners_grow(&op->early, 0, rec.count))
        for (size_t i = 0; i < rec.count; i++) {
            const struct cl_entry *e = &rec.entries[i];
            if (cl_member_owner_live(m, &e->owner) && inbox_deliver(op, &e->owner, 0))
                op->early[op->early_count++] = e->owner;
        }
    cl_record_free(&rec);
}

/* After the acknowledgement, first: the DELIVER of each EARLY copy. */
static void deliver_after_early(struct cl_op *op)
{
    if (op->early_count == 0 || !owners_grow(&op->sent, op->sent_count, op->early_count))
        return;
    for (size_t i = 0; i < op->early_count; i++)
        if (inbox_deliver(op, &op->early[i], op->seq))
            op->sent[op->sent_count++] = op->early[i];
}

/* At once after the acknowledgement: the devices the worker's own copy of the record names
 * (the replica is a feed's length behind the leader: milliseconds). A leader get first would
 * add its round trip to every notification (measured: p50 0.8 ms on a loaded machine). */
static void deliver_local(struct cl_op *op)
{
    struct cl_record rec;
    uint64_t rev;
    if (member_record_local(op->m, op->user_key, op->email, &rec, &rev) != 0)
        return;
    deliver_to(op, &rec, true);
    cl_record_free(&rec);
}

static void delivered_to_entries(void *arg, const struct js_result *r)
{
    struct cl_op *op = arg;
    struct cl_member *m = op->m;
    op->in_flight = false;
    if (m->closing) {
        member_op_end(op);
        return;
    }
    if (r->outcome != JS_OK && r->outcome != JS_NOT_FOUND) {
        /* The next attempt alternates between the leader and a replica (deliver_read). */
        if (!notify_retry(op, deliver_read))
            member_op_end(op); /* it stays queued: the devices read it at their next connect */
        return;
    }
    struct cl_record rec;
    const char *why;
    if (r->outcome == JS_OK && !r->deleted && cl_record_decode(&rec, r->value, r->len, &why) == 0) {
        deliver_to(op, &rec, false);
        cl_record_free(&rec);
    } else if (r->outcome == JS_OK && !r->deleted)
        cl_record_free(&rec);
    member_op_end(op);
}

/* After the acknowledgement: whoever is connected now, as the record's leader says. While that
 * leader is being elected (its server died: 5-15 s), a replica's copy says it (a direct get):
 * only a claim made in those very moments can be missing from it, and that claim's own read of
 * the queue comes after this notification was acknowledged. */
static void deliver_read(struct cl_op *op)
{
    if (op->m->closing) {
        member_op_end(op);
        return;
    }
    op->in_flight = true;
    int rc =
        op->attempts % 2 == 1
            ? js_kv_get_direct(op->m->engine, op->bucket, op->user_key, delivered_to_entries, op)
            : js_kv_get_leader(op->m->engine, op->bucket, op->user_key, delivered_to_entries, op);
    if (rc != 0) {
        op->in_flight = false;
        member_op_end(op);
    }
}

static void oldest_deleted(void *arg, const struct js_result *r)
{
    struct cl_op *op = arg;
    op->in_flight = false;
    if (r->outcome == JS_OK) {
        op->dropped++;
        op->m->stats.dropped++;
    }
    if (op->m->closing) {
        member_op_end(op);
        return;
    }
    publish(op);
}

static void oldest_read(void *arg, const struct js_result *r)
{
    struct cl_op *op = arg;
    op->in_flight = false;
    if (op->m->closing) {
        member_op_end(op);
        return;
    }
    if (r->outcome == JS_OK) {
        op->in_flight = true;
        if (js_msg_delete(op->m->engine, CL_QUEUE_STREAM, r->seq, oldest_deleted, op) == 0)
            return;
        op->in_flight = false;
    }
    if (r->outcome == JS_NOT_FOUND) {
        publish(op); /* expired or taken meanwhile: room now */
        return;
    }
    if (!notify_retry(op, publish)) {
        notify_answer(op, 61);
        member_op_end(op);
    }
}

/* Reads the oldest of the user's queue, to delete it (oldest_read); whether it was asked. */
static bool oldest_drop_started(struct cl_op *op)
{
    op->in_flight = true;
    if (js_msg_next(op->m->engine, CL_QUEUE_STREAM, op->subject, 0, oldest_read, op) == 0)
        return true;
    op->in_flight = false;
    return false;
}

/* Its turn in the user's lane: the queue was full. */
static void oldest_drop(struct cl_op *op)
{
    if (op->m->closing) {
        member_op_end(op);
        return;
    }
    if (!oldest_drop_started(op) && !notify_retry(op, publish)) {
        op->m->stats.unavailable++;
        notify_answer(op, 61);
        member_op_end(op);
    }
}

static void published(void *arg, const struct js_result *r)
{
    struct cl_op *op = arg;
    struct cl_member *m = op->m;
    op->in_flight = false;
    if (m->closing) {
        member_op_end(op);
        return;
    }
    if (r->outcome == JS_OK) {
        member_lane_leave(op); /* made room in a full queue: the next of the user's may */
        op->seq = r->seq;
        m->stats.notifications++;
        deliver_after_early(op);
        deliver_local(op);
        notify_answer(op, 0);
        /* The delivery has a budget of its own (the publish may have taken an election). */
        op->attempts = 0;
        op->started_mono = clock_mono_ms();
        deliver_read(op);
        return;
    }
    /* 10077 comes with code 503: a full queue, not an engine that cannot answer. */
    if (r->err.err_code == JS_ERR_MAX_PER_SUBJECT && op->attempts < 64) {
        /* A full queue: its oldest goes (max_pending_notifications, SPEC §2), one notification
         * of the user's at a time (its lane): notifications pipelined to a full queue would
         * all drop the same oldest, and all but one find it full again, one more each round
         * (more than 64 of them failed). */
        op->attempts++;
        if (op->lane == NULL) {
            member_lane_enter(op, oldest_drop);
            return;
        }
        if (oldest_drop_started(op))
            return;
    }
    if (r->outcome == JS_REFUSED || r->outcome == JS_BAD_ANSWER)
        log_warning("engine: a notification for %s refused: %s (%d)", op->email, r->err.description,
                    r->err.err_code);
    else if (notify_retry(op, publish))
        return; /* the same Nats-Msg-Id: stored once even when the lost answer was a success */
    m->stats.unavailable++;
    notify_answer(op, 61);
    member_op_end(op);
}

static void publish(struct cl_op *op)
{
    if (op->m->closing) {
        member_op_end(op);
        return;
    }
    char queued[24], expires[24];
    snprintf(queued, sizeof queued, "%" PRId64, op->queued_ms);
    snprintf(expires, sizeof expires, "%" PRId64, op->expires_ms);
    struct engine_header headers[] = { { "Nats-Msg-Id", op->msg_id },
                                       { HEADER_QUEUED, queued },
                                       { HEADER_EXPIRES, expires } };
    if (!op->early_sent)
        deliver_early(op);
    op->in_flight = true;
    if (js_publish(op->m->engine, op->subject, headers, 3, op->json, op->json_len, published, op) !=
        0) {
        op->in_flight = false;
        if (!notify_retry(op, publish)) {
            notify_answer(op, 61);
            member_op_end(op);
        }
    }
}

struct cl_op *cl_notify(struct cl_member *m, const char *email, const char *json, size_t len,
                        int64_t expires_ms, cl_notify_cb cb, void *arg)
{
    if (!cl_member_serving(m))
        return NULL;
    struct cl_op *op = member_op_new(m, OP_NOTIFY, email);
    if (op == NULL)
        return NULL;
    if ((op->json = malloc(len ? len : 1)) == NULL) {
        member_op_end(op);
        return NULL;
    }
    memcpy(op->json, json, len);
    op->json_len = len;
    op->queued_ms = clock_wall_ms();
    op->expires_ms = expires_ms;
    snprintf(op->msg_id, sizeof op->msg_id, "%s.%" PRIu64 ".%" PRIu32 ".%" PRIu64,
             m->cfg->node_name, m->epoch, m->pid, ++m->next_msg_id);
    op->cb.notify = cb;
    op->arg = arg;
    member_op_later(op, 0, publish);
    return op;
}

/* ---- pending ---- */

static void pending_next(struct cl_op *op);

static void page_answer(struct cl_op *op, int number, bool more)
{
    op->answered = true;
    if (!op->cancelled && op->cb.page_done != NULL)
        op->cb.page_done(op->arg, number, more, op->after);
    member_op_end(op);
}

static void pending_got(void *arg, const struct js_result *r)
{
    struct cl_op *op = arg;
    op->in_flight = false;
    if (op->m->closing || op->cancelled) {
        member_op_end(op);
        return;
    }
    if (r->outcome == JS_NOT_FOUND) {
        page_answer(op, 0, false);
        return;
    }
    if (r->outcome != JS_OK) {
        if (op->m->closing || !member_budget_left(op))
            page_answer(op, 61, false);
        else
            member_op_later(op, member_backoff_ms(++op->attempts), pending_next);
        return;
    }
    int64_t expires = header_ms(r, HEADER_EXPIRES), queued = header_ms(r, HEADER_QUEUED);
    if (expires != 0 && expires <= clock_wall_ms()) {
        js_msg_delete(op->m->engine, CL_QUEUE_STREAM, r->seq, ignored, NULL);
        op->after = r->seq;
        pending_next(op);
        return;
    }
    if (op->count > 0 && op->used + r->len > op->max_bytes) {
        page_answer(op, 0, true); /* this one starts the next page */
        return;
    }
    struct shm_notif_key key;
    cl_notif_key(op->email, queued ? queued : r->time_ms, r->seq, &key);
    op->page_add(op->arg, &key, r->value, r->len);
    op->used += r->len;
    op->count++;
    op->after = r->seq;
    pending_next(op);
}

static void pending_next(struct cl_op *op)
{
    if (op->m->closing || op->cancelled) {
        member_op_end(op);
        return;
    }
    op->in_flight = true;
    if (js_msg_next(op->m->engine, CL_QUEUE_STREAM, op->subject, op->after + 1, pending_got, op) !=
        0) {
        op->in_flight = false;
        page_answer(op, 61, false);
    }
}

struct cl_op *cl_pending(struct cl_member *m, const char *email, uint64_t after, size_t max_bytes,
                         cl_page_add_cb add, cl_page_done_cb done, void *arg)
{
    struct cl_op *op = member_op_new(m, OP_PENDING, email);
    if (op == NULL)
        return NULL;
    op->after = after;
    op->max_bytes = max_bytes;
    op->page_add = add;
    op->cb.page_done = done;
    op->arg = arg;
    member_op_later(op, 0, pending_next);
    return op;
}

/* ---- delivered ---- */

static void taken(void *arg, const struct js_result *r)
{
    struct cl_op *op = arg;
    op->in_flight = false;
    if (!op->m->closing && op->cb.taken != NULL)
        op->cb.taken(op->arg, r->outcome == JS_OK);
    member_op_end(op);
}

void cl_delivered(struct cl_member *m, const struct shm_notif_key *key, cl_taken_cb cb, void *arg)
{
    uint64_t seq = cl_notif_key_seq(key);
    if (seq == 0)
        return;
    struct cl_op *op = member_op_new(m, OP_DELIVERED, "");
    if (op == NULL)
        return;
    op->answered = true;
    op->cb.taken = cb;
    op->arg = arg;
    op->in_flight = true;
    if (js_msg_delete(m->engine, CL_QUEUE_STREAM, seq, taken, op) != 0) {
        op->in_flight = false;
        member_op_end(op);
    }
}
