/* ownership: the claim of an (e-mail, device) by a connection, its status updates and its
 * release, on the user's record in the engine (cluster/record.c's pure operations) by
 * compare-and-set: apply to the newest copy the worker has (its own last write, or the
 * replica's), write with that copy's revision; a conflict (10071: someone wrote since) reads
 * from the bucket's leader (it sees every acknowledged write) and tries again at once. A
 * decision that writes nothing (unchanged, not the owner, too many devices) is never taken on
 * a copy: the leader's record confirms it. An engine that does not answer (an election: 5-15 s) is tried again with a back-off
 * until CL_OP_BUDGET_MS, then 61 with a jittered retry_after so that a herd spreads. One CAS
 * decides newest-wins and max_devices_per_user cluster-wide, and names the previous holder,
 * which is told to close (52) on its worker's inbox wherever it is. */
#include "member_internal.h"

#include "../common/clock.h"
#include "../common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_SMALL 4096

static void record_get(struct cl_op *op);

static struct cl_owner my_owner(const struct cl_op *op)
{
    struct cl_owner o;
    memset(&o, 0, sizeof o);
    snprintf(o.node, sizeof o.node, "%s", op->m->cfg->node_name);
    o.epoch = op->rev_epoch;
    o.pid = op->m->pid;
    o.conn = op->conn;
    return o;
}

static void claim_answer(struct cl_op *op, int number, bool had_previous)
{
    op->answered = true;
    if (!op->cancelled && op->cb.claim != NULL) {
        struct cl_claim_result r = { .number = number, .had_previous = had_previous,
                                     .rev = number == 0 ? op->rev : 0 };
        if (number == 61)
            r.retry_after_s = 1 + (int)(random() % 5);
        op->cb.claim(op->arg, &r);
    }
    member_op_end(op);
}

static void done_answer(struct cl_op *op, int number)
{
    op->answered = true;
    if (!op->cancelled && op->cb.done != NULL)
        op->cb.done(op->arg, number);
    member_op_end(op);
}

static void give_up(struct cl_op *op)
{
    op->m->stats.unavailable++;
    if (op->kind == OP_CLAIM)
        claim_answer(op, 61, false);
    else if (op->kind == OP_SET_STATUS)
        done_answer(op, 61);
    else {
        log_warning("engine: the release of a device of %s did not go through; the cleaner "
                    "removes it once this worker is gone",
                    op->email);
        member_op_end(op);
    }
}

/* A claim forgotten after its write may have gone through: its entry goes again. */
static void become_release(struct cl_op *op)
{
    op->kind = OP_RELEASE;
    op->answered = true;
    op->attempts = 0;
    op->started_mono = clock_mono_ms();
}

static void retry(struct cl_op *op, bool conflict)
{
    if (op->m->closing) {
        member_op_end(op);
        return;
    }
    if (!member_budget_left(op)) {
        give_up(op);
        return;
    }
    if (conflict && op->local_base) {
        /* The worker's copy was not the newest: the leader's record, at once. A conflict as
         * well (another write came first), counted in both. */
        op->m->stats.stale_copies++;
        op->m->stats.conflicts++;
        op->leader_only = true;
        member_op_later(op, 0, record_get);
        return;
    }
    op->attempts++;
    if (conflict)
        op->m->stats.conflicts++;
    /* A conflict means the engine answers: read again at once, a few times. */
    int64_t delay = conflict && op->attempts < 4 ? 0 : member_backoff_ms(op->attempts);
    member_op_later(op, delay, record_get);
}

/* A claim's, status update's or release's step that finds it forgotten. Returns true when the
 * op ended. */
static bool forgotten(struct cl_op *op)
{
    if (op->m->closing) {
        member_op_end(op);
        return true;
    }
    if (op->kind == OP_CLAIM && op->cancelled) {
        if (!op->maybe_written) {
            member_op_end(op);
            return true;
        }
        become_release(op);
    }
    return false;
}

static void written(void *arg, const struct js_result *r)
{
    struct cl_op *op = arg;
    op->in_flight = false;
    if (op->m->closing) {
        member_op_end(op);
        return;
    }
    if (r->outcome == JS_OK) {
        /* The base of this worker's next write of the record; a release's is not kept (the
         * user may have no device here any more: the copy would only grow the map). */
        if (op->kind != OP_RELEASE && op->wrote_len > 0)
            member_written_keep(op->m, op->user_key, r->seq, op->wrote, op->wrote_len);
        else {
            member_written_forget(op->m, op->user_key);
            free(op->wrote);
        }
        op->wrote = NULL;
        op->wrote_len = 0;
        if (op->kind == OP_CLAIM && op->cancelled) {
            op->maybe_written = true;
            become_release(op);
            member_op_later(op, 0, record_get);
            return;
        }
        if (op->kind == OP_CLAIM) {
            if (op->had_previous)
                member_close_send(op->m, &op->previous, 52);
            op->rev = r->seq;
            claim_answer(op, 0, op->had_previous);
        } else if (op->kind == OP_SET_STATUS)
            done_answer(op, 0);
        else
            member_op_end(op);
        return;
    }
    if (r->outcome == JS_CONFLICT) {
        retry(op, true);
        return;
    }
    if (op->kind == OP_CLAIM && r->engine_status == ENGINE_TIMEOUT)
        op->maybe_written = true; /* sent, not answered: it may be in the record */
    if (r->outcome == JS_REFUSED || r->outcome == JS_BAD_ANSWER) {
        log_warning("engine: a write of %s's record refused: %s (%d)", op->email,
                    r->err.description, r->err.err_code);
        give_up(op);
        return;
    }
    retry(op, false);
}

static int record_write(struct cl_op *op, const struct cl_record *rec, uint64_t rev)
{
    free(op->wrote);
    op->wrote = NULL;
    op->wrote_len = 0;
    op->in_flight = true;
    if (rec->count == 0)
        return js_kv_delete(op->m->engine, op->bucket, op->user_key, rev, written, op);
    unsigned char small[RECORD_SMALL], *buf = small;
    long len = cl_record_encode(rec, small, sizeof small);
    if (len < 0) {
        if ((buf = malloc(CL_RECORD_MAX)) == NULL ||
            (len = cl_record_encode(rec, buf, CL_RECORD_MAX)) < 0) {
            free(buf);
            op->in_flight = false;
            return -1;
        }
    }
    int rc =
        js_kv_update(op->m->engine, op->bucket, op->user_key, buf, (size_t)len, rev, written, op);
    if (rc == 0 && (op->wrote = malloc((size_t)len)) != NULL) {
        memcpy(op->wrote, buf, (size_t)len);
        op->wrote_len = (size_t)len;
    }
    if (buf != small)
        free(buf);
    return rc;
}

/* A decision taken on the worker's own copy that writes nothing: the leader's record says. */
static bool confirm_on_leader(struct cl_op *op)
{
    if (!op->local_base)
        return false;
    op->leader_only = true;
    record_get(op);
    return true;
}

/* The record as read at revision rev: the operation applied, then written (or answered when
 * there is nothing to write). */
static void apply(struct cl_op *op, struct cl_record *rec, uint64_t rev)
{
    struct cl_member *m = op->m;
    int64_t now = clock_wall_ms();
    struct cl_owner me = my_owner(op);
    int rc;
    if (op->kind == OP_CLAIM) {
        struct cl_entry entry, previous;
        memset(&entry, 0, sizeof entry);
        snprintf(entry.device, sizeof entry.device, "%s", op->device);
        entry.owner = me;
        entry.status = op->status;
        entry.since_ms = entry.claimed_ms = now;
        bool had = false;
        rc =
            cl_record_claim(rec, &entry, op->max_devices, cl_member_owner_live, m, &previous, &had);
        /* Our own entry already there: a write of ours went through unanswered, and the holder
         * it replaced is the one the first attempt saw (kept from it). */
        if (!(had && cl_owner_same(&previous.owner, &me))) {
            op->had_previous = had;
            if (had)
                op->previous = previous.owner;
        }
        if (rc == CL_REC_TOO_MANY) {
            if (!confirm_on_leader(op))
                claim_answer(op, 51, false);
            return;
        }
    } else if (op->kind == OP_SET_STATUS) {
        rc = cl_record_set_status(rec, op->device, &me, op->status, now);
        if ((rc == CL_REC_NOT_OWNER || rc == CL_REC_UNCHANGED) && !confirm_on_leader(op))
            done_answer(op, rc == CL_REC_NOT_OWNER ? 52 : 0);
        if (rc == CL_REC_NOT_OWNER || rc == CL_REC_UNCHANGED)
            return;
    } else {
        rc = cl_record_release(rec, op->device, &me, now);
        if (rc == CL_REC_NOT_OWNER && !confirm_on_leader(op))
            member_op_end(op); /* superseded, or never written */
        if (rc == CL_REC_NOT_OWNER)
            return;
    }
    if (rc != CL_REC_OK || record_write(op, rec, rev) != 0)
        retry(op, false);
}

static void record_got(void *arg, const struct js_result *r)
{
    struct cl_op *op = arg;
    op->in_flight = false;
    if (forgotten(op))
        return;
    if (r->outcome != JS_OK && r->outcome != JS_NOT_FOUND) {
        retry(op, false);
        return;
    }
    struct cl_record rec;
    uint64_t rev = r->outcome == JS_OK ? r->seq : 0;
    const char *why = NULL;
    if (r->outcome == JS_OK && !r->deleted) {
        if (cl_record_decode(&rec, r->value, r->len, &why) != 0) {
            log_warning("engine: the record of %s is unreadable (%s): written anew", op->email,
                        why);
            cl_record_free(&rec);
            cl_record_init(&rec, op->email);
        }
    } else
        cl_record_init(&rec, op->email);
    apply(op, &rec, rev);
    cl_record_free(&rec);
}

static void record_get(struct cl_op *op)
{
    if (forgotten(op))
        return;
    /* The first attempt on the worker's own copy; after a conflict, the leader's. */
    op->local_base = false;
    struct cl_record rec;
    uint64_t rev;
    if (op->attempts == 0 && !op->leader_only &&
        member_record_local(op->m, op->user_key, op->email, &rec, &rev) == 0) {
        op->local_base = true;
        op->m->stats.local_bases++;
        apply(op, &rec, rev);
        cl_record_free(&rec);
        return;
    }
    op->in_flight = true;
    if (js_kv_get_leader(op->m->engine, op->bucket, op->user_key, record_got, op) != 0) {
        op->in_flight = false;
        retry(op, false);
    }
}

static struct cl_op *record_op(struct cl_member *m, enum cl_op_kind kind, const char *email,
                               const char *device, uint64_t conn, uint8_t status)
{
    if (strlen(device) > SHM_DEVICE_MAX)
        return NULL;
    struct cl_op *op = member_op_new(m, kind, email);
    if (op == NULL)
        return NULL;
    snprintf(op->device, sizeof op->device, "%s", device);
    op->conn = conn;
    op->status = status;
    op->rev_epoch = m->epoch;
    return op;
}

struct cl_op *cl_claim(struct cl_member *m, const char *email, const char *device, uint64_t conn,
                       uint8_t status, size_t max_devices, cl_claim_cb cb, void *arg)
{
    if (!cl_member_serving(m))
        return NULL;
    struct cl_op *op = record_op(m, OP_CLAIM, email, device, conn, status);
    if (op == NULL)
        return NULL;
    op->max_devices = max_devices;
    op->cb.claim = cb;
    op->arg = arg;
    m->stats.claims++;
    member_lane_enter(op, record_get);
    return op;
}

struct cl_op *cl_set_status(struct cl_member *m, const char *email, const char *device,
                            uint64_t conn, uint8_t status, cl_done_cb cb, void *arg)
{
    if (!cl_member_serving(m))
        return NULL;
    struct cl_op *op = record_op(m, OP_SET_STATUS, email, device, conn, status);
    if (op == NULL)
        return NULL;
    op->cb.done = cb;
    op->arg = arg;
    member_lane_enter(op, record_get);
    return op;
}

void cl_release(struct cl_member *m, const char *email, const char *device, uint64_t conn)
{
    struct cl_op *op = record_op(m, OP_RELEASE, email, device, conn, 0);
    if (op == NULL)
        return;
    op->answered = true; /* nobody waits for it */
    member_lane_enter(op, record_get);
}
