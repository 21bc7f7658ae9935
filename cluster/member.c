/* member: a worker of a cluster node as a member of the cluster — its engine connection on the
 * worker's loop (opened after fork), its inbox pd.w.<node>.<pid>, whether the node serves
 * (the agent's view, and the clock: a worker thawed after a SIGSTOP must not serve before its
 * agent ran), the liveness of other incarnations as the replica says, and the life of the
 * operations (ownership.c, queue.c): each answers on the loop, is forgotten by cl_op_cancel,
 * and waits behind the others of its user (one compare-and-set at a time per user and worker);
 * the user's record as this worker last wrote it, the base of its next compare-and-set. */
#include "member_internal.h"

#include "../common/clock.h"
#include "../common/grow.h"
#include "../common/log.h"
#include "../shm/replica.h"

#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- serving ---- */

bool member_serving_now(struct cl_member *m)
{
    struct shm_cl_self self;
    if (shm_cl_self_get(m->store, &self) != SHM_OK || self.state != SHM_CL_SERVING ||
        self.epoch == 0)
        return false;
    if (clock_wall_ms() - self.heard_ms >= m->cfg->node_timeout_ms)
        return false; /* the agent has not heard the node for node_timeout, or is not running */
    if (m->epoch != 0 && self.epoch != m->epoch)
        return false; /* a new epoch: our connections' entries are dead (watch() moves on) */
    m->epoch = self.epoch;
    return true;
}

/* The fence itself (devices closed) is watch()'s, on a timer of its own: never inside a call. */
bool cl_member_serving(struct cl_member *m)
{
    return member_serving_now(m) && m->serving;
}

uint64_t cl_member_epoch(const struct cl_member *m)
{
    return m->epoch;
}

bool cl_member_connected(const struct cl_member *m)
{
    return engine_connected(m->engine) && m->inbox_sub != NULL;
}

/* Every CL_WATCH_MS: a fence is acted on at once (devices closed 61), and after it, the node's
 * new epoch is taken once the agent serves under it. */
static void watch(uv_timer_t *timer)
{
    struct cl_member *m = timer->data;
    member_written_sweep(m);
    bool now = member_serving_now(m);
    if (now == m->serving) {
        if (!now) {
            struct shm_cl_self self;
            if (shm_cl_self_get(m->store, &self) == SHM_OK && self.state == SHM_CL_SERVING &&
                self.epoch != m->epoch &&
                clock_wall_ms() - self.heard_ms < m->cfg->node_timeout_ms) {
                log_info("serving again as epoch %" PRIu64, self.epoch);
                m->epoch = self.epoch;
                m->serving = true;
            }
        }
        return;
    }
    if (!now) {
        log_warning("the node does not serve (fenced, or its agent silent): closing devices");
        m->serving = false;
        if (m->on.fenced != NULL)
            m->on.fenced(m->on.arg);
        return;
    }
    m->serving = true;
}

/* ---- liveness ---- */

static void node_loaded(void *arg, const char *name, uint64_t rev, int64_t heard_ms,
                        const char *json, size_t len)
{
    struct cl_member *m = arg;
    (void)rev;
    (void)heard_ms;
    if (grow_for((void **)&m->nodes, &m->node_cap, m->node_count, sizeof *m->nodes, 4) != 0)
        return;
    const char *why;
    if (cl_node_decode(json, len, name, &m->nodes[m->node_count], &why) == 0)
        m->node_count++;
}

static void nodes_read(struct cl_member *m)
{
    int64_t now = clock_mono_ms();
    if (m->nodes_read_mono != 0 && now - m->nodes_read_mono < CL_NODES_FRESH_MS)
        return;
    m->node_count = 0;
    m->nodes_read_mono = now;
    shm_cl_nodes(m->store, node_loaded, m);
}

bool cl_member_owner_live(void *member, const struct cl_owner *owner)
{
    struct cl_member *m = member;
    nodes_read(m);
    bool self = strcmp(owner->node, m->cfg->node_name) == 0;
    if (self && owner->epoch != m->epoch)
        return owner->epoch > m->epoch; /* an older epoch of ours is dead by construction */
    for (size_t i = 0; i < m->node_count; i++) {
        const struct cl_node *n = &m->nodes[i];
        if (strcmp(n->name, owner->node) != 0)
            continue;
        if (owner->epoch > n->epoch)
            return true; /* newer than the replica has seen */
        return cl_node_live(n, owner->epoch, owner->pid);
    }
    /* Not in the replica yet (a node that just joined), or ours before the feed showed it. */
    return true;
}

/* ---- the user records this worker wrote ---- */

/* A status update's compare-and-set needs the record at its current revision. Asking the
 * bucket's leader for it first costs a round trip on every update (measured: p50 0.8 ms of
 * 2.3 ms on a loaded machine); the copy this worker wrote last, or the replica's when newer,
 * is that record unless someone else wrote since — and then the write is refused (10071) and
 * the leader is asked. So a copy is only ever a guess the engine checks. */
void member_written_keep(struct cl_member *m, const char *user_key, uint64_t rev,
                         unsigned char *data, size_t len)
{
    uint64_t key = member_user_key64(user_key);
    struct written_record *w = u64map_get(&m->written, key);
    if (w == NULL && m->written.count >= CL_WRITTEN_MAX) {
        free(data);
        return;
    }
    struct written_record *fresh = realloc(w, sizeof *fresh + len);
    if (fresh == NULL) {
        free(data);
        return; /* the old copy stays: a guess (below) */
    }
    fresh->rev = rev;
    fresh->kept_mono = clock_mono_ms();
    fresh->len = len;
    memcpy(fresh->data, data, len);
    free(data);
    if (fresh != w && u64map_put(&m->written, key, fresh) != 0) {
        u64map_del(&m->written, key);
        free(fresh);
    }
}

void member_written_forget(struct cl_member *m, const char *user_key)
{
    uint64_t key = member_user_key64(user_key);
    struct written_record *w = u64map_get(&m->written, key);
    if (w == NULL)
        return;
    u64map_del(&m->written, key);
    free(w);
}

void member_written_sweep(struct cl_member *m)
{
    if (m->written.count == 0)
        return;
    uint64_t *old = malloc(m->written.count * sizeof *old);
    if (old == NULL)
        return;
    size_t n = 0;
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < m->written.cap; i++) {
        const struct written_record *w = m->written.slots[i].value;
        if (m->written.slots[i].key != 0 && now - w->kept_mono >= CL_WRITTEN_KEEP_MS)
            old[n++] = m->written.slots[i].key;
    }
    for (size_t i = 0; i < n; i++) { /* deleting shifts slots: not while walking them */
        free(u64map_get(&m->written, old[i]));
        u64map_del(&m->written, old[i]);
    }
    free(old);
}

int member_record_local(struct cl_member *m, const char *user_key, const char *email,
                        struct cl_record *rec, uint64_t *rev)
{
    const struct written_record *w = u64map_get(&m->written, member_user_key64(user_key));
    uint64_t replica_rev = 0;
    const void *value = NULL;
    size_t len = 0;
    bool replica = shm_cl_user_get(m->store, user_key, &replica_rev, &value, &len) == SHM_OK &&
                   value != NULL && len > 0;
    if (w != NULL && (!replica || w->rev >= replica_rev)) {
        value = w->data;
        len = w->len;
        *rev = w->rev;
    } else if (replica)
        *rev = replica_rev;
    else
        return -1; /* none, or deleted: its delete marker's revision is the leader's to say */
    const char *why;
    if (cl_record_decode(rec, value, len, &why) != 0) {
        cl_record_free(rec);
        return -1;
    }
    if (strcmp(rec->email, email) != 0) {
        cl_record_free(rec);
        return -1;
    }
    return 0;
}

/* ---- the inbox ---- */

void member_close_send(struct cl_member *m, const struct cl_owner *owner, int number)
{
    char subject[CL_INBOX_SUBJECT_MAX], text[64];
    cl_inbox_subject(owner->node, owner->pid, subject, sizeof subject);
    long n = cl_inbox_close_encode(owner->conn, number, text, sizeof text);
    if (n > 0 && member_inbox_send(m, subject, text, (size_t)n) == ENGINE_OK)
        m->stats.closes_sent++;
}

static void inbox_heard(void *arg, const struct engine_msg *msg)
{
    struct cl_member *m = arg;
    struct cl_inbox_msg in;
    if (cl_inbox_parse(msg->data, msg->len, &in) != 0) {
        log_warning("engine: an unreadable message on %s ignored", m->inbox);
        return;
    }
    if (in.kind == CL_INBOX_CLOSE) {
        if (m->on.close != NULL)
            m->on.close(m->on.arg, in.conn, in.number);
        return;
    }
    if (in.kind == CL_INBOX_EARLY)
        m->stats.early_received++;
    else
        m->stats.delivers_received++;
    if (m->on.deliver != NULL)
        m->on.deliver(m->on.arg, &in);
}

static void engine_event(void *arg, enum engine_event event)
{
    struct cl_member *m = arg;
    if (event == ENGINE_EVENT_CONNECTED && m->inbox_sub == NULL) {
        /* cnats makes it again by itself after a reconnect. */
        if (engine_subscribe(m->engine, m->inbox, inbox_heard, m, &m->inbox_sub) != 0)
            log_error("engine: cannot subscribe to %s: nothing can close or deliver here",
                      m->inbox);
    } else if (event == ENGINE_EVENT_RECONNECTED) {
        log_info("engine: reconnected to %s", engine_server(m->engine));
        m->stats.reconnects++;
        member_resend_reconnected(m); /* what the lost server may not have passed on */
        if (m->on.resync != NULL)
            m->on.resync(m->on.arg);
    } else if (event == ENGINE_EVENT_DISCONNECTED) {
        log_warning("engine: disconnected; reconnecting");
        member_resend_disconnected(m);
    }
}

int cl_member_open(struct cl_member **out, const struct cl_member_options *opt, char *err,
                   size_t errlen)
{
    struct cl_member *m = calloc(1, sizeof *m);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->loop = opt->loop;
    m->cfg = opt->cfg;
    m->store = opt->store;
    m->pid = opt->pid;
    m->on = opt->on;
    list_init(&m->ops);
    list_init(&m->resend);
    cl_inbox_subject(opt->cfg->node_name, opt->pid, m->inbox, sizeof m->inbox);
    char name[96];
    snprintf(name, sizeof name, "presenced %s worker %" PRIu32, opt->cfg->node_name, opt->pid);
    struct engine_options eo = { .loop = opt->loop,
                                 .servers = opt->cfg->cluster,
                                 .name = name,
                                 .on_event = engine_event,
                                 .arg = m };
    if (engine_open(&m->engine, &eo, err, errlen) != 0) {
        free(m);
        return -1;
    }
    uv_timer_init(opt->loop, &m->watch);
    m->watch.data = m;
    uv_timer_start(&m->watch, watch, CL_WATCH_MS, CL_WATCH_MS);
    m->serving = member_serving_now(m);
    *out = m;
    return 0;
}

static void member_freed(uv_handle_t *handle)
{
    struct cl_member *m = handle->data;
    free(m->nodes);
    member_resend_free(m);
    u64map_free(&m->lanes);
    for (size_t i = 0; i < m->written.cap; i++)
        if (m->written.slots[i].key != 0)
            free(m->written.slots[i].value);
    u64map_free(&m->written);
    free(m);
}

void cl_member_library_end(void)
{
    nats_CloseAndWait(2000);
}

void cl_member_close(struct cl_member *m)
{
    if (m == NULL || m->closing)
        return;
    m->closing = true;
    struct list_link *pos, *tmp;
    LIST_EACH_SAFE(pos, tmp, &m->ops) {
        struct cl_op *op = LIST_ENTRY(pos, struct cl_op, link);
        op->cancelled = true;
        if (!op->in_flight)
            member_op_end(op);
    }
    engine_close(m->engine); /* requests under way answer ENGINE_CLOSED: their ops end */
    uv_close((uv_handle_t *)&m->watch, member_freed);
}

void cl_member_stats(const struct cl_member *m, struct cl_member_stats *out)
{
    *out = m->stats;
    struct engine_stats es;
    engine_stats(m->engine, &es);
    out->timeouts = es.timeouts;
    out->round_trip = es.round_trip;
}

/* ---- operations ---- */

static void op_freed(uv_handle_t *handle)
{
    struct cl_op *op = handle->data;
    free(op->json);
    free(op->wrote);
    free(op->sent);
    free(op->early);
    free(op);
}

struct cl_op *member_op_new(struct cl_member *m, enum cl_op_kind kind, const char *email)
{
    if (m->closing || strlen(email) > SHM_EMAIL_MAX)
        return NULL;
    struct cl_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return NULL;
    op->m = m;
    op->kind = kind;
    op->started_mono = clock_mono_ms();
    snprintf(op->email, sizeof op->email, "%s", email);
    cl_user_key(email, op->user_key);
    snprintf(op->bucket, sizeof op->bucket, "pd_u%u",
             cl_user_shard(op->user_key, (unsigned)m->cfg->cluster_shards));
    snprintf(op->subject, sizeof op->subject, "pd.q.%s", op->user_key);
    uv_timer_init(m->loop, &op->timer);
    op->timer.data = op;
    list_push_back(&m->ops, &op->link);
    return op;
}

uint64_t member_user_key64(const char *user_key)
{
    uint64_t k = 0;
    for (int i = 0; i < 16; i++)
        k = k << 4 | (uint64_t)(user_key[i] <= '9' ? user_key[i] - '0' : user_key[i] - 'a' + 10);
    return k | 1; /* never 0: u64map's empty key */
}

static void op_timer_fired(uv_timer_t *timer)
{
    struct cl_op *op = timer->data;
    void (*fn)(struct cl_op *) = op->next;
    op->next = NULL;
    fn(op);
}

void member_op_later(struct cl_op *op, int64_t delay_ms, void (*fn)(struct cl_op *op))
{
    if (op->ended)
        return;
    op->next = fn;
    uv_timer_start(&op->timer, op_timer_fired, (uint64_t)(delay_ms < 0 ? 0 : delay_ms), 0);
}

void member_lane_enter(struct cl_op *op, void (*start)(struct cl_op *op))
{
    struct cl_member *m = op->m;
    uint64_t key = member_user_key64(op->user_key);
    struct lane *lane = u64map_get(&m->lanes, key);
    op->lane_start = start;
    if (lane == NULL) {
        lane = calloc(1, sizeof *lane);
        if (lane == NULL || u64map_put(&m->lanes, key, lane) != 0) {
            free(lane);
            member_op_later(op, 0, start); /* no lane: it runs unordered rather than not */
            return;
        }
        lane->key = key;
        list_init(&lane->waiting);
    }
    op->lane = lane;
    bool first = list_empty(&lane->waiting);
    list_push_back(&lane->waiting, &op->lane_link);
    if (first)
        member_op_later(op, 0, start);
}

void member_lane_leave(struct cl_op *op)
{
    struct lane *lane = op->lane;
    if (lane == NULL)
        return;
    bool was_first = list_first(&lane->waiting) == &op->lane_link;
    list_remove(&op->lane_link);
    op->lane = NULL;
    struct list_link *next = list_first(&lane->waiting);
    if (next == NULL) {
        u64map_del(&op->m->lanes, lane->key);
        free(lane);
        return;
    }
    if (was_first && !op->m->closing) {
        struct cl_op *n = LIST_ENTRY(next, struct cl_op, lane_link);
        member_op_later(n, 0, n->lane_start);
    }
}

void member_op_end(struct cl_op *op)
{
    if (op->ended)
        return; /* a callback closed the member, or forgot its op, before the op ended */
    op->ended = true;
    member_lane_leave(op);
    list_remove(&op->link);
    uv_timer_stop(&op->timer);
    uv_close((uv_handle_t *)&op->timer, op_freed);
}

void cl_op_cancel(struct cl_op *op)
{
    if (op == NULL || op->cancelled || op->ended)
        return;
    op->cancelled = true;
    /* In the engine: its answer sees it. Answered: what follows is the op's own (deliveries, a
     * release). A claim whose write may have gone through releases it in its next step. */
    if (op->in_flight || op->answered || (op->kind == OP_CLAIM && op->maybe_written))
        return;
    member_op_end(op); /* on a timer, or waiting for its turn: nothing of it is in the engine */
}

int64_t member_backoff_ms(unsigned attempt)
{
    int64_t base = 25LL << (attempt > 6 ? 6 : attempt);
    if (base > 1000)
        base = 1000;
    return base / 2 + (int64_t)(random() % (base / 2 + 1));
}

bool member_budget_left(const struct cl_op *op)
{
    return clock_mono_ms() - op->started_mono < CL_OP_BUDGET_MS;
}
