/* cluster: the backend of a node of a cluster (SPEC.md §8) — what the node's store cannot
 * decide alone is asked of the engine through cluster/member.h: the claim of an (e-mail,
 * device), its status updates and its release on the user's record (compare-and-set), the
 * notification queues (PD_Q) and the way in from other nodes (the worker's inbox). Everything
 * else — apps, grants, web sessions, presence reads, AppService connections, local mail and
 * doorbells (kicks, the agent's mail) — is the local implementation's, on the node's store,
 * which the agent keeps in step with the engine. Picked at start when cluster is set.
 *
 * Per device connection it keeps what the engine's answers need: the queue sequence read up to
 * (a live DELIVER at or below it was in the pages: dropped, so each notification reaches a
 * device once), the deliveries that come while the claim's pages are still being read (given
 * after them), and the backlog read at the claim (later pages are served from it: pending_page
 * answers at once), and the last sequences given live (a DELIVER sent again is given once).
 * A notification's EARLY copy, sent as its publish starts, is given at once to a bound device;
 * the DELIVER after the engine's acknowledgement then only deletes it from the queue (early.h
 * knows which ones each connection had). */
#include "early.h"
#include "local.h"

#include "../conn_mail.h"
#include "../session/session.h"
#include "../worker_internal.h"

#include "../../cluster/member.h"
#include "../../common/clock.h"
#include "../../common/log.h"
#include "../../common/u64map.h"
#include "../../shm/app_away_shared.h"
#include "../../shm/app_channel.h"
#include "../../shm/outbox.h"
#include "../../shm/replica.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a connection remembers a sequence it was given live, at least (a re-send comes
 * once its sender reconnected: seconds). */
#define GIVEN_KEEP_MS 20000

struct backlog_item {
    struct shm_notif_key key;
    char *json;
    size_t len;
};

struct held_deliver {
    struct held_deliver *next;
    uint64_t seq;
    int64_t queued_ms;
    size_t len;
    char json[];
};

/* One device connection of this worker that claimed, or claims, its device. */
struct cluster_conn {
    struct worker *w;
    uint64_t conn_id;
    char email[SHM_EMAIL_MAX + 1];
    char device[SHM_DEVICE_MAX + 1];
    char user_key[CL_USER_KEY_LEN + 1];
    uint64_t upto; /* the last queue sequence read for it */
    /* The sequences given live lately, in two generations of GIVEN_KEEP_MS each: a DELIVER
     * sent again after its sender's engine server died (cluster/member_resend.c) is dropped;
     * live ones need not come in order, so a high-water mark cannot tell. */
    struct u64map given, given_before;
    int64_t given_since;
    uint64_t rev;  /* the revision of the user record its claim wrote */
    bool claiming; /* the claim or its first read is under way: live ones wait */
    struct cl_op *op;
    struct backend_done done;
    backend_notif_cb page;
    void (*page_end)(void *arg, bool more);
    void *page_arg;
    size_t page_budget;
    struct backlog_item *backlog;
    size_t backlog_count, backlog_cap, backlog_next;
    struct held_deliver *held, **held_tail;
    struct cluster_conn *next_gone; /* gone while claiming: answered on the next turn */
};

struct cluster_state {
    struct cl_member *member;
    struct u64map conns; /* conn_id -> struct cluster_conn */
    /* Connections that went away while their claim was under way: their claim still answers
     * (page_end, then done with 60, as the interface promises), on the next loop turn rather
     * than inside the release that the connection's close made. */
    struct cluster_conn *gone;
    uv_timer_t gone_timer;
    bool timer_open;
    uv_timer_t audit; /* AUDIT_MS: each bound device still holds its entry (the replica) */
    struct early_set early; /* what the connections were given live, by content */
};

#define AUDIT_MS 1000

/* An answer given later (set_status, notify): the caller's done, copied. */
struct later {
    struct worker *w;
    struct backend_done done;
};

static struct cluster_state *state_of(struct worker *w)
{
    return w->backend_state;
}

static void answer(const struct backend_done *done, int result)
{
    if (done->fn != NULL)
        done->fn(done->arg, done, result);
}

/* Shared records this worker left in the outbox that no HTTP answer waits for (a page waits
 * for its own writes: web_shared.c). */
static void shared_not_waited(struct worker *w)
{
    uint64_t first, last;
    if (shm_outbox_enabled(w->store))
        shm_outbox_take_new(w->store, &first, &last);
}

/* ---- the connections' records ---- */

static void conn_free(struct cluster_conn *cc)
{
    u64map_free(&cc->given);
    u64map_free(&cc->given_before);
    for (size_t i = 0; i < cc->backlog_count; i++)
        free(cc->backlog[i].json);
    free(cc->backlog);
    while (cc->held != NULL) {
        struct held_deliver *h = cc->held;
        cc->held = h->next;
        free(h);
    }
    free(cc);
}

static void conn_forget(struct worker *w, struct cluster_conn *cc)
{
    u64map_del(&state_of(w)->conns, cc->conn_id);
    if (cc->op != NULL)
        cl_op_cancel(cc->op);
    cc->op = NULL;
    conn_free(cc);
}

/* Whether seq was given live lately; notes it if not. */
static bool given_before(struct cluster_conn *cc, uint64_t seq)
{
    if (u64map_get(&cc->given, seq) != NULL || u64map_get(&cc->given_before, seq) != NULL)
        return true;
    int64_t now = clock_mono_ms();
    if (now - cc->given_since >= GIVEN_KEEP_MS) {
        u64map_free(&cc->given_before);
        cc->given_before = cc->given;
        cc->given = (struct u64map){ 0 };
        cc->given_since = now;
    }
    if (u64map_put(&cc->given, seq, cc) != 0)
        log_warning("out of memory: a notification sent again may reach its device twice");
    return false;
}

static void cluster_delivered(struct worker *w, const struct shm_notif_key *key);

static void mail_deliver(struct worker *w, struct cluster_conn *cc, const struct shm_notif_key *key,
                         const char *json, size_t len)
{
    struct conn_mail mail = {
        .kind = CONN_MAIL_DELIVER, .key = key, .json = json, .json_len = len
    };
    backend_inbound(w, cc->conn_id, &mail);
}

static void early_note(struct worker *w, uint64_t mark, enum early_state state, uint64_t seq)
{
    if (early_put(&state_of(w)->early, mark, state, seq, clock_mono_ms()) != 0)
        log_warning("out of memory: a notification may reach its device twice");
}

static void live_deliver(struct worker *w, struct cluster_conn *cc, uint64_t seq, int64_t queued_ms,
                         const char *json, size_t len)
{
    if (seq <= cc->upto)
        return; /* read with the pages, given there */
    if (given_before(cc, seq))
        return; /* given already: this one was sent again */
    struct shm_notif_key key;
    cl_notif_key(cc->email, queued_ms, seq, &key);
    uint64_t mark = early_mark(cc->conn_id, json, len);
    switch (early_get(&state_of(w)->early, mark, NULL)) {
    case EARLY_WRITTEN: /* its EARLY copy was written: the queue's one goes */
        cluster_delivered(w, &key);
        return;
    case EARLY_HANDED: /* being written: deleted once it is (cluster_delivered) */
        early_note(w, mark, EARLY_HANDED, seq);
        return;
    case EARLY_DELIVERED:
        return;
    case EARLY_NONE:
        break;
    }
    early_note(w, mark, EARLY_DELIVERED, 0);
    mail_deliver(w, cc, &key, json, len);
}

/* An EARLY copy: given at once to a bound device that had not had it. One that comes while
 * the claim reads the queue is left to its DELIVER (the pages may hold it). */
static void early_deliver(struct worker *w, struct cluster_conn *cc, int64_t queued_ms,
                          const char *json, size_t len)
{
    if (cc->claiming)
        return;
    uint64_t mark = early_mark(cc->conn_id, json, len);
    if (early_get(&state_of(w)->early, mark, NULL) != EARLY_NONE)
        return;
    early_note(w, mark, EARLY_HANDED, 0);
    struct shm_notif_key key;
    cl_notif_key(cc->email, queued_ms, EARLY_KEY_BIT | mark, &key);
    mail_deliver(w, cc, &key, json, len);
}

/* ---- the backlog: read at the claim, given in pages ---- */

static void backlog_add(void *arg, const struct shm_notif_key *key, const char *json, size_t len)
{
    struct cluster_conn *cc = arg;
    if (cc->backlog_count == cc->backlog_cap) {
        size_t cap = cc->backlog_cap ? cc->backlog_cap * 2 : 8;
        struct backlog_item *grown = realloc(cc->backlog, cap * sizeof *grown);
        if (grown == NULL)
            return; /* it stays queued: the next connection reads it */
        cc->backlog = grown;
        cc->backlog_cap = cap;
    }
    char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return;
    memcpy(copy, json, len);
    cc->backlog[cc->backlog_count++] = (struct backlog_item){ *key, copy, len };
    /* An EARLY copy of it that comes late is not given again. */
    early_note(cc->w, early_mark(cc->conn_id, json, len), EARLY_DELIVERED, 0);
}

/* Gives the oldest of the backlog that fit in budget (at least one); whether some are left. */
static bool backlog_page(struct cluster_conn *cc, size_t budget, backend_notif_cb cb, void *arg)
{
    size_t used = 0, given = 0;
    while (cc->backlog_next < cc->backlog_count) {
        struct backlog_item *it = &cc->backlog[cc->backlog_next];
        if (given > 0 && used + it->len > budget)
            break;
        cb(arg, &it->key, it->json, it->len);
        used += it->len;
        given++;
        free(it->json);
        it->json = NULL;
        cc->backlog_next++;
    }
    if (cc->backlog_next < cc->backlog_count)
        return true;
    free(cc->backlog);
    cc->backlog = NULL;
    cc->backlog_count = cc->backlog_cap = cc->backlog_next = 0;
    return false;
}

/* ---- claim ---- */

/* The claim's end: its page and page_end (always, once), then done. */
static void claim_answer(struct cluster_conn *cc, int number, int retry_after_s)
{
    struct worker *w = cc->w;
    bool more = number == 0 && cc->page != NULL &&
                backlog_page(cc, cc->page_budget, cc->page, cc->page_arg);
    if (cc->page_end != NULL)
        cc->page_end(cc->page_arg, more);
    struct backend_done done = cc->done;
    done.retry_after_s = retry_after_s;
    if (number != 0) {
        if (u64map_get(&state_of(w)->conns, cc->conn_id) == cc)
            u64map_del(&state_of(w)->conns, cc->conn_id);
        if (cc->op != NULL)
            cl_op_cancel(cc->op);
        cc->op = NULL;
        conn_free(cc);
    }
    answer(&done, number);
}

static void gone_answer(uv_timer_t *timer)
{
    struct cluster_state *st = timer->data;
    while (st->gone != NULL) {
        struct cluster_conn *cc = st->gone;
        st->gone = cc->next_gone;
        claim_answer(cc, 60, 0);
    }
}

static void claim_read(void *arg, int number, bool more, uint64_t last)
{
    struct cluster_conn *cc = arg;
    struct worker *w = cc->w;
    (void)more;
    cc->op = NULL;
    if (number == 0 || last > cc->upto)
        cc->upto = last;
    cc->claiming = false;
    uint64_t conn_id = cc->conn_id;
    if (session_find(w, conn_id) == NULL) {
        /* Gone while the claim went on: its entry goes too. */
        if (state_of(w)->member != NULL)
            cl_release(state_of(w)->member, cc->email, cc->device, conn_id);
        claim_answer(cc, 60, 0);
        return;
    }
    claim_answer(cc, 0, 0);
    /* What came live meanwhile, after the pages. */
    while ((cc = u64map_get(&state_of(w)->conns, conn_id)) != NULL && cc->held != NULL) {
        struct held_deliver *h = cc->held;
        cc->held = h->next;
        if (cc->held == NULL)
            cc->held_tail = &cc->held;
        live_deliver(w, cc, h->seq, h->queued_ms, h->json, h->len);
        free(h);
    }
}

static void claimed(void *arg, const struct cl_claim_result *r)
{
    struct cluster_conn *cc = arg;
    struct worker *w = cc->w;
    cc->op = NULL;
    if (r->number != 0) {
        claim_answer(cc, r->number, r->retry_after_s);
        return;
    }
    if (r->had_previous)
        w->info.meter.takeovers++;
    cc->rev = r->rev;
    /* After the compare-and-set: whatever was queued before it is in this read, whatever is
     * queued after it finds this connection in the record and comes live. */
    struct cl_member *m = state_of(w)->member;
    cc->op = m != NULL ? cl_pending(m, cc->email, 0, SIZE_MAX, backlog_add, claim_read, cc) : NULL;
    if (cc->op == NULL)
        claim_read(cc, 61, false, 0);
}

static int cluster_claim(struct worker *w, const struct backend_claim *c,
                         const struct backend_done *done)
{
    struct cluster_state *st = state_of(w);
    if (st->member == NULL || !cl_member_serving(st->member))
        return 61;
    struct cluster_conn *cc = calloc(1, sizeof *cc);
    if (cc == NULL || strlen(c->email) > SHM_EMAIL_MAX || strlen(c->device) > SHM_DEVICE_MAX) {
        free(cc);
        return 60;
    }
    cc->w = w;
    cc->conn_id = c->conn_id;
    snprintf(cc->email, sizeof cc->email, "%s", c->email);
    snprintf(cc->device, sizeof cc->device, "%s", c->device);
    cl_user_key(c->email, cc->user_key);
    cc->claiming = true;
    cc->done = *done;
    cc->page = c->page;
    cc->page_end = c->page_end;
    cc->page_arg = c->page_arg;
    cc->page_budget = c->page_budget;
    cc->held_tail = &cc->held;
    struct cluster_conn *before = u64map_get(&st->conns, c->conn_id);
    if (before != NULL)
        conn_forget(w, before); /* a connection claims once; this is a new credential's */
    if (u64map_put(&st->conns, c->conn_id, cc) != 0) {
        free(cc);
        return 60;
    }
    cc->op = cl_claim(st->member, c->email, c->device, c->conn_id, c->status,
                      (size_t)w->cfg->max_devices_per_user, claimed, cc);
    if (cc->op == NULL) {
        u64map_del(&st->conns, c->conn_id);
        free(cc);
        return 61;
    }
    return BACKEND_LATER;
}

/* ---- status, release ---- */

static void later_answered(void *arg, int number)
{
    struct later *l = arg;
    answer(&l->done, number);
    free(l);
}

static int cluster_set_status(struct worker *w, const char *email, const char *device,
                              uint64_t conn_id, uint8_t status, const struct backend_done *done)
{
    if (state_of(w)->member == NULL)
        return 61;
    struct later *l = malloc(sizeof *l);
    if (l == NULL)
        return 60;
    *l = (struct later){ w, *done };
    if (cl_set_status(state_of(w)->member, email, device, conn_id, status, later_answered, l) ==
        NULL) {
        free(l);
        return 61;
    }
    return BACKEND_LATER;
}

static void cluster_release(struct worker *w, const char *email, const char *device,
                            uint64_t conn_id)
{
    struct cluster_state *st = state_of(w);
    struct cluster_conn *cc = u64map_get(&st->conns, conn_id);
    if (cc != NULL && cc->claiming) {
        u64map_del(&st->conns, conn_id);
        if (cc->op != NULL)
            cl_op_cancel(cc->op); /* a claim that may have been written is released */
        cc->op = NULL;
        cc->next_gone = st->gone;
        st->gone = cc;
        if (st->timer_open)
            uv_timer_start(&st->gone_timer, gone_answer, 0, 0);
    } else if (cc != NULL)
        conn_forget(w, cc);
    /* After stop, the engine is gone: the master tells the agent this worker died, and from
     * then on no reader counts its entries. */
    if (state_of(w)->member != NULL)
        cl_release(state_of(w)->member, email, device, conn_id);
}

/* ---- notifications ---- */

static int cluster_pending_page(struct worker *w, const char *email, size_t budget,
                                backend_notif_cb cb, void *arg, bool *more)
{
    struct cluster_state *st = state_of(w);
    *more = false;
    for (size_t i = 0; i < st->conns.cap; i++) {
        struct cluster_conn *cc = st->conns.slots[i].value;
        if (st->conns.slots[i].key == 0 || cc->backlog_next >= cc->backlog_count ||
            strcmp(cc->email, email) != 0)
            continue;
        *more = backlog_page(cc, budget, cb, arg);
        return 0;
    }
    return 0;
}

static bool cluster_pending_has(struct worker *w, const struct shm_notif_key *key)
{
    (void)w;
    (void)key;
    /* Deliveries at or below what a connection read are dropped before its channel sees them
     * (live_deliver): any that reaches it is pending. */
    return true;
}

static void taken(void *arg, bool was_there)
{
    struct worker *w = arg;
    if (was_there)
        w->info.meter.notifications_delivered++;
}

/* Written to a device. An EARLY copy is not in the queue: the DELIVER that came meanwhile
 * brought the sequence to delete, or the one to come finds it written. */
static void cluster_delivered(struct worker *w, const struct shm_notif_key *key)
{
    struct cluster_state *st = state_of(w);
    uint64_t mark = early_key_mark(cl_notif_key_seq(key)), seq = 0;
    struct shm_notif_key queued;
    if (mark != 0) {
        early_get(&st->early, mark, &seq);
        early_note(w, mark, EARLY_WRITTEN, 0);
        if (seq == 0)
            return;
        cl_notif_key((const char *)key->bytes, shm_notif_key_queued_ms(key), seq, &queued);
        key = &queued;
    }
    if (st->member != NULL)
        cl_delivered(st->member, key, taken, w);
}

static void notified(void *arg, const struct cl_notify_result *r)
{
    struct later *l = arg;
    answer(&l->done, r->number);
    free(l);
}

static int cluster_notify(struct worker *w, const char *email, const char *json, size_t len,
                          int64_t expires_ms, const struct backend_done *done)
{
    if (state_of(w)->member == NULL)
        return 61;
    struct later *l = malloc(sizeof *l);
    if (l == NULL)
        return 60;
    *l = (struct later){ w, *done };
    if (cl_notify(state_of(w)->member, email, json, len, expires_ms, notified, l) == NULL) {
        free(l);
        return 61;
    }
    return BACKEND_LATER;
}

/* ---- an AppService's absence, cluster-wide ---- */

struct away_seen {
    struct cl_member *member;
    const char *self;
    bool open_elsewhere; /* a live node has a connection of the app open */
    int64_t latest;      /* the latest time a node's last connection of it closed */
};

static void away_node(void *arg, const char *node, uint64_t epoch, int64_t away_since_ms)
{
    struct away_seen *seen = arg;
    if (strcmp(node, seen->self) == 0)
        return; /* this node's own absence is the store's (app_away) */
    struct cl_owner owner;
    memset(&owner, 0, sizeof owner);
    snprintf(owner.node, sizeof owner.node, "%s", node);
    owner.epoch = epoch;
    if (away_since_ms == 0 && cl_member_owner_live(seen->member, &owner))
        seen->open_elsewhere = true;
    else if (away_since_ms > seen->latest)
        seen->latest = away_since_ms;
}

/* As on one machine, then over the cluster: the app was away only while no node had a
 * connection of it open, and since the latest of the nodes' last closes (a node that never had
 * one, or whose record is older, replays from the latest); this node's record is shared. */
static int cluster_app_connected(struct worker *w, const char *appid, uint64_t conn_id,
                                 struct backend_app_return *back)
{
    int rc = local_app_connected(w, appid, conn_id, back);
    struct cluster_state *st = state_of(w);
    if (rc != 0 || st == NULL || st->member == NULL)
        return rc;
    struct shm_app_conn *conns = NULL;
    size_t count = 0;
    if (shm_app_conns(w->store, appid, &conns, &count) != SHM_OK)
        count = 0;
    free(conns);
    if (count > 1)
        return 0; /* another connection of it is open on this node: it was not away */
    struct away_seen seen = { st->member, w->cfg->node_name, false, 0 };
    if (shm_app_away_nodes(w->store, appid, away_node, &seen) < 0)
        w->info.store_failures_total++;
    int64_t oldest = clock_wall_ms() - SHM_APP_CHANGES_KEEP_MS;
    if (seen.open_elsewhere) {
        back->replay = false; /* it was not away: another node's connection heard it all */
    } else if (seen.latest > 0 && (!back->replay || seen.latest > back->since_ms)) {
        back->replay = true;
        back->since_ms = seen.latest > oldest ? seen.latest : oldest;
    }
    if (shm_app_away_share(w->store, appid, w->cfg->node_name, cl_member_epoch(st->member), 0) !=
        SHM_OK)
        w->info.store_failures_total++;
    shared_not_waited(w);
    return 0;
}

static void cluster_app_closed(struct worker *w, const char *appid, uint64_t conn_id,
                               int64_t away_ms)
{
    local_app_closed(w, appid, conn_id, away_ms);
    struct cluster_state *st = state_of(w);
    struct shm_app_conn *conns = NULL;
    size_t count = 0;
    if (st == NULL || st->member == NULL ||
        shm_app_conns(w->store, appid, &conns, &count) != SHM_OK)
        return;
    free(conns);
    if (count == 0 && shm_app_away_share(w->store, appid, w->cfg->node_name,
                                         cl_member_epoch(st->member), away_ms) != SHM_OK)
        w->info.store_failures_total++;
    shared_not_waited(w);
}

/* Whether (email, device) has a connection on any node, as this node's replica of the user's
 * record says (the push sender's check before a wake-up: a device that connected a moment ago
 * on another node may still be woken, and drops the duplicate by its id). */
static bool cluster_device_connected(struct worker *w, const char *email, const char *device)
{
    struct cluster_state *st = state_of(w);
    char user_key[CL_USER_KEY_LEN + 1];
    uint64_t rev;
    const void *value;
    size_t len;
    if (st == NULL || st->member == NULL)
        return false;
    cl_user_key(email, user_key);
    if (shm_cl_user_get(w->store, user_key, &rev, &value, &len) != SHM_OK || value == NULL)
        return false;
    struct cl_record rec;
    const char *why;
    if (cl_record_decode(&rec, value, len, &why) != 0)
        return false;
    const struct cl_entry *e = cl_record_find(&rec, device);
    bool live = e != NULL && cl_member_owner_live(st->member, &e->owner);
    cl_record_free(&rec);
    return live;
}

static void cluster_gather(struct worker *w, struct meter *meter)
{
    struct cluster_state *st = state_of(w);
    if (st == NULL || st->member == NULL)
        return;
    struct cl_member_stats ms;
    cl_member_stats(st->member, &ms);
    meter->cluster = (struct meter_cluster){ .claims = ms.claims,
                                             .cas_conflicts = ms.conflicts,
                                             .unavailable = ms.unavailable,
                                             .closes_sent = ms.closes_sent,
                                             .delivers_sent = ms.delivers_sent,
                                             .delivers_received = ms.delivers_received,
                                             .early_sent = ms.early_sent,
                                             .early_received = ms.early_received,
                                             .inbox_resent = ms.resent,
                                             .engine_reconnects = ms.reconnects,
                                             .engine_timeouts = ms.timeouts,
                                             .notifications_published = ms.notifications,
                                             .notifications_dropped = ms.dropped,
                                             .engine_round_trip = ms.round_trip };
}

static bool cluster_serving(struct worker *w)
{
    struct cluster_state *st = state_of(w);
    return st != NULL && st->member != NULL && cl_member_serving(st->member);
}

/* ---- the way in from the engine ---- */

static void on_close(void *arg, uint64_t conn, int number)
{
    struct worker *w = arg;
    struct conn_mail mail = { .kind = number == 52 ? CONN_MAIL_SUPERSEDED : CONN_MAIL_KICKED };
    backend_inbound(w, conn, &mail);
}

/* The DELIVER of a connection gone since: if it wrote the EARLY copy first (a device that
 * closed once it had it), the notification leaves the queue all the same. */
static void gone_deliver(struct worker *w, const struct cl_inbox_msg *m)
{
    if (early_get(&state_of(w)->early, early_mark(m->conn, m->json, m->json_len), NULL) !=
        EARLY_WRITTEN)
        return; /* it stays queued for the next connection */
    struct shm_notif_key key;
    cl_notif_key("", m->queued_ms, m->seq, &key);
    cluster_delivered(w, &key);
}

static void on_deliver(void *arg, const struct cl_inbox_msg *m)
{
    struct worker *w = arg;
    struct cluster_conn *cc = u64map_get(&state_of(w)->conns, m->conn);
    if (cc == NULL && m->kind == CL_INBOX_DELIVER) {
        gone_deliver(w, m);
        return;
    }
    if (cc == NULL || strcmp(cc->user_key, m->user_key) != 0)
        return; /* gone (it stays queued for the next connection), or not its user's */
    if (m->kind == CL_INBOX_EARLY) {
        early_deliver(w, cc, m->queued_ms, m->json, m->json_len);
        return;
    }
    if (!cc->claiming) {
        live_deliver(w, cc, m->seq, m->queued_ms, m->json, m->json_len);
        return;
    }
    struct held_deliver *h = malloc(sizeof *h + m->json_len);
    if (h == NULL)
        return;
    h->next = NULL;
    h->seq = m->seq;
    h->queued_ms = m->queued_ms;
    h->len = m->json_len;
    memcpy(h->json, m->json, m->json_len);
    *cc->held_tail = h;
    cc->held_tail = &h->next;
}

struct resync {
    struct worker *w;
    uint64_t conn_id;
};

static void resync_add(void *arg, const struct shm_notif_key *key, const char *json, size_t len)
{
    struct resync *r = arg;
    struct cluster_conn *cc = u64map_get(&state_of(r->w)->conns, r->conn_id);
    uint64_t seq = cl_notif_key_seq(key);
    if (cc == NULL || cc->claiming || seq <= cc->upto)
        return;
    live_deliver(r->w, cc, seq, shm_notif_key_queued_ms(key), json, len);
    if ((cc = u64map_get(&state_of(r->w)->conns, r->conn_id)) != NULL && seq > cc->upto)
        cc->upto = seq;
}

static void resync_done(void *arg, int number, bool more, uint64_t last)
{
    (void)number;
    (void)more;
    (void)last;
    free(arg);
}

/* The engine connection came back: what was delivered meanwhile may be lost, and it is still
 * queued; each bound device reads its queue after what it read. */
static void on_resync(void *arg)
{
    struct worker *w = arg;
    struct cluster_state *st = state_of(w);
    for (size_t i = 0; i < st->conns.cap; i++) {
        struct cluster_conn *cc = st->conns.slots[i].value;
        if (st->conns.slots[i].key == 0 || cc->claiming)
            continue;
        struct resync *r = malloc(sizeof *r);
        if (r == NULL)
            continue;
        *r = (struct resync){ w, cc->conn_id };
        if (cl_pending(st->member, cc->email, cc->upto, SIZE_MAX, resync_add, resync_done, r) ==
            NULL)
            free(r);
    }
}

/* The reliable path of a takeover: the replica's copy of a bound device's user record, once
 * newer than the claim's write, no longer names this connection for the device — a newer one
 * took it (its CLOSE lost, or the holder it replaced misread after a write answered late), or
 * it was cleaned: the connection is superseded (52). A record not newer says nothing. */
static void audit(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    struct cluster_state *st = state_of(w);
    if (st == NULL || st->member == NULL || !cl_member_serving(st->member))
        return;
    uint64_t *ids = malloc((st->conns.count + 1) * sizeof *ids);
    size_t n = 0;
    for (size_t i = 0; ids != NULL && i < st->conns.cap; i++) {
        struct cluster_conn *cc = st->conns.slots[i].value;
        if (st->conns.slots[i].key == 0 || cc->claiming || cc->rev == 0)
            continue;
        uint64_t rev;
        const void *value;
        size_t len;
        if (shm_cl_user_get(w->store, cc->user_key, &rev, &value, &len) != SHM_OK || rev <= cc->rev)
            continue;
        struct cl_record rec;
        const char *why;
        bool mine = false;
        if (value != NULL && cl_record_decode(&rec, value, len, &why) == 0) {
            const struct cl_entry *e = cl_record_find(&rec, cc->device);
            mine = e != NULL && e->owner.pid == (uint32_t)w->info.pid &&
                   e->owner.conn == cc->conn_id && strcmp(e->owner.node, w->cfg->node_name) == 0;
            cl_record_free(&rec);
        } else if (value != NULL)
            continue; /* unreadable: the next look */
        if (mine)
            cc->rev = rev; /* our own update since: look from there */
        else
            ids[n++] = cc->conn_id;
    }
    struct conn_mail mail = { .kind = CONN_MAIL_SUPERSEDED };
    for (size_t i = 0; i < n; i++)
        backend_inbound(w, ids[i], &mail);
    free(ids);
}

/* The node stopped serving: no device stays connected to a state it cannot vouch for. */
static void on_fenced(void *arg)
{
    struct worker *w = arg;
    struct cluster_state *st = state_of(w);
    uint64_t *ids = malloc((st->conns.count + 1) * sizeof *ids);
    size_t n = 0;
    for (size_t i = 0; ids != NULL && i < st->conns.cap; i++)
        if (st->conns.slots[i].key != 0)
            ids[n++] = st->conns.slots[i].key;
    struct conn_mail mail = { .kind = CONN_MAIL_KICKED };
    for (size_t i = 0; i < n; i++)
        backend_inbound(w, ids[i], &mail);
    free(ids);
}

/* ---- the worker's start and end ---- */

static int cluster_open(struct worker *w)
{
    struct cluster_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -1;
    w->backend_state = st;
    uv_timer_init(&w->loop, &st->gone_timer);
    st->gone_timer.data = st;
    uv_timer_init(&w->loop, &st->audit);
    st->audit.data = w;
    uv_timer_start(&st->audit, audit, AUDIT_MS, AUDIT_MS);
    st->timer_open = true;
    if (backend_local.open(w) != 0)
        return -1;
    char err[256];
    struct cl_member_options opt = { .loop = &w->loop,
                                     .cfg = w->cfg,
                                     .store = w->store,
                                     .pid = (uint32_t)w->info.pid,
                                     .on = { .close = on_close,
                                             .deliver = on_deliver,
                                             .resync = on_resync,
                                             .fenced = on_fenced,
                                             .arg = w } };
    if (cl_member_open(&st->member, &opt, err, sizeof err) != 0) {
        log_error("engine: %s", err);
        return -1;
    }
    return 0;
}

/* The worker is exiting: the engine connection goes while the loop still runs (its handles
 * close in the teardown's last run); what was under way answers 61. What this worker's
 * connections hold in the records stops counting once the master tells the agent it died. */
static void cluster_stop(struct worker *w)
{
    struct cluster_state *st = state_of(w);
    if (st != NULL && st->member != NULL) {
        struct cl_member *m = st->member;
        st->member = NULL;  /* what the answers below start goes nowhere */
        cl_member_close(m); /* claims and updates under way answer 61 */
    }
    if (st != NULL && st->timer_open) {
        gone_answer(&st->gone_timer);
        uv_close((uv_handle_t *)&st->gone_timer, NULL);
        uv_close((uv_handle_t *)&st->audit, NULL);
        st->timer_open = false;
    }
    backend_local.stop(w);
}

static void cluster_close(struct worker *w)
{
    struct cluster_state *st = state_of(w);
    if (st != NULL) {
        gone_answer(&st->gone_timer);
        for (size_t i = 0; i < st->conns.cap; i++)
            if (st->conns.slots[i].key != 0)
                conn_free(st->conns.slots[i].value);
        u64map_free(&st->conns);
        early_free(&st->early);
        free(st);
        w->backend_state = NULL;
        cl_member_library_end(); /* the loop has run its last turn: cnats can go */
    }
    backend_local.close(w);
}

const struct backend_ops *backend_cluster(void)
{
    static struct backend_ops ops;
    if (ops.name == NULL) {
        ops = backend_local; /* apps, grants, sessions, presence, AppService, local mail */
        ops.name = "cluster";
        ops.open = cluster_open;
        ops.stop = cluster_stop;
        ops.close = cluster_close;
        ops.serving = cluster_serving;
        ops.gather = cluster_gather;
        ops.device_connected = cluster_device_connected;
        ops.app_connected = cluster_app_connected;
        ops.app_closed = cluster_app_closed;
        ops.claim = cluster_claim;
        ops.set_status = cluster_set_status;
        ops.release = cluster_release;
        ops.pending_page = cluster_pending_page;
        ops.pending_has = cluster_pending_has;
        ops.delivered = cluster_delivered;
        ops.notify = cluster_notify;
    }
    return &ops;
}
