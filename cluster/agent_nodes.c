/* agent_nodes: the nodes of the cluster as this agent sees them — heartbeats on a core subject
 * (heard without any RAFT leader, so an election never looks like a death), the nodes' records
 * through their changefeed, and the dead-node detector with the bus-health rule: a node is
 * declared dead only by a node that has heard its own heartbeats come back through the engine
 * for the whole node_timeout, so a silence caused by the engine or by our own connection is
 * never read as another node's death. */
#include "agent_internal.h"

#include "js.h"

#include "../common/clock.h"
#include "../common/grow.h"
#include "../common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct peer *agent_peer(struct agent *a, const char *name, bool add)
{
    for (size_t i = 0; i < a->peer_count; i++)
        if (strcmp(a->peers[i].name, name) == 0)
            return &a->peers[i];
    if (!add || grow_for((void **)&a->peers, &a->peer_cap, a->peer_count, sizeof *a->peers, 8) != 0)
        return NULL;
    struct peer *p = &a->peers[a->peer_count++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

/* Whether an entry's incarnation is live: its node's record is alive with that epoch and the
 * worker is not among the epoch's dead. Our own node is judged by our own record. */
bool agent_owner_live(void *arg, const struct cl_owner *owner)
{
    struct agent *a = arg;
    if (strcmp(owner->node, a->cfg->node_name) == 0)
        return a->phase == AGENT_SERVING && cl_node_live(&a->self, owner->epoch, owner->pid);
    struct peer *p = agent_peer(a, owner->node, false);
    return p != NULL && p->has_rec && cl_node_live(&p->rec, owner->epoch, owner->pid);
}

static void node_view_write(struct agent *a, struct peer *p)
{
    char json[CL_NODE_RECORD_MAX];
    long len = cl_node_encode(&p->rec, json, sizeof json);
    int64_t heard_wall = clock_wall_ms() - (clock_mono_ms() - p->heard_mono);
    if (len > 0)
        shm_cl_node_put(a->store, p->name, p->rev, heard_wall, json, (size_t)len);
}

/* ---- heartbeats ---- */

void agent_heartbeat_send(struct agent *a)
{
    if (a->hb_sub == NULL || !engine_connected(a->engine))
        return;
    /* Epoch 0 before registering: heard by ourselves for the bus-health rule. */
    char hb[CL_HEARTBEAT_MAX];
    int n = cl_heartbeat_encode(a->cfg->node_name, a->self.epoch, ++a->hb_seq, hb, sizeof hb);
    if (n > 0)
        engine_publish(a->engine, AGENT_HEARTBEAT_SUBJECT, NULL, NULL, 0, hb, (size_t)n);
}

static void heartbeat_heard(void *arg, const struct engine_msg *msg)
{
    struct agent *a = arg;
    char name[CONFIG_NODE_NAME_MAX + 1];
    uint64_t epoch, seq;
    if (cl_heartbeat_parse(msg->data, msg->len, name, &epoch, &seq) != 0)
        return;
    int64_t now = clock_mono_ms();
    if (strcmp(name, a->cfg->node_name) == 0) {
        /* Only this process's own: a second node configured with our name must not count. */
        if (seq == a->hb_seq || seq + 1 == a->hb_seq) {
            a->self_heard_mono = now;
            a->view.heard_ms = clock_wall_ms();
        }
        return;
    }
    struct peer *p = agent_peer(a, name, true);
    if (p != NULL)
        p->heard_mono = now;
}

/* ---- the nodes' feed ---- */

static void node_applied(void *arg, const char *subject, uint64_t seq, bool deleted,
                         const void *data, size_t len, int64_t time_ms)
{
    struct agent *a = arg;
    (void)time_ms;
    const char *prefix = "$KV." AGENT_BUCKET_NODES ".";
    size_t plen = strlen(prefix);
    if (strncmp(subject, prefix, plen) != 0)
        return;
    const char *name = subject + plen;
    struct cl_node rec;
    const char *why;
    if (deleted || cl_node_decode(data, len, name, &rec, &why) != 0) {
        if (!deleted)
            log_warning("node record %s unreadable (%s): ignored", name, why);
        shm_cl_cursor_put(a->store, "KV_" AGENT_BUCKET_NODES, seq);
        return;
    }
    if (strcmp(name, a->cfg->node_name) == 0) {
        if (a->phase == AGENT_SERVING && rec.epoch == a->self.epoch &&
            rec.state == CL_NODE_DEAD) {
            char what[128];
            snprintf(what, sizeof what, "node %s declared epoch %" PRIu64 " dead",
                     rec.declared_by, rec.epoch);
            agent_fence(a, what);
        }
        struct peer self_view = { .rec = rec, .rev = seq, .heard_mono = clock_mono_ms() };
        snprintf(self_view.name, sizeof self_view.name, "%s", name);
        node_view_write(a, &self_view);
        shm_cl_cursor_put(a->store, "KV_" AGENT_BUCKET_NODES, seq);
        return;
    }
    struct peer *p = agent_peer(a, name, true);
    if (p != NULL) {
        bool new_epoch = !p->has_rec || p->rec.epoch != rec.epoch;
        bool died = rec.state == CL_NODE_DEAD && (!p->has_rec || p->rec.state != CL_NODE_DEAD);
        if (died)
            log_notice("node %s epoch %" PRIu64 " is dead (declared by %s)", name, rec.epoch,
                       rec.declared_by[0] ? rec.declared_by : "?");
        else if (new_epoch && rec.state == CL_NODE_ALIVE)
            log_info("node %s serves as epoch %" PRIu64, name, rec.epoch);
        p->rec = rec;
        p->rev = seq;
        p->has_rec = true;
        p->heard_mono = clock_mono_ms(); /* a record change is a sign of life too */
        p->declaring = false;
        node_view_write(a, p);
    }
    shm_cl_cursor_put(a->store, "KV_" AGENT_BUCKET_NODES, seq);
}

int agent_nodes_start(struct agent *a)
{
    if (engine_subscribe(a->engine, AGENT_HEARTBEAT_SUBJECT, heartbeat_heard, a, &a->hb_sub) !=
        ENGINE_OK)
        return -1;
    /* Node records are few: the feed always starts from the beginning of the bucket, so the
     * table of peers is whole after every start. */
    struct feed_options opt = { .engine = a->engine,
                                .stream = "KV_" AGENT_BUCKET_NODES,
                                .filter = "$KV." AGENT_BUCKET_NODES ".>",
                                .applied = 0,
                                .apply = node_applied,
                                .arg = a };
    return feed_start(&a->nodes_feed, &opt);
}

void agent_nodes_stop(struct agent *a)
{
    feed_stop(a->nodes_feed);
    a->nodes_feed = NULL;
}

/* ---- the detector ---- */

struct declare_ctx {
    struct agent *agent;
    char name[CONFIG_NODE_NAME_MAX + 1];
    uint64_t epoch;
};

static void declared(void *arg, const struct js_result *r)
{
    struct declare_ctx *ctx = arg;
    struct agent *a = ctx->agent;
    struct peer *p = agent_peer(a, ctx->name, false);
    if (r->outcome == JS_OK) {
        log_notice("declared node %s epoch %" PRIu64 " dead: silent for %lld ms", ctx->name,
                   ctx->epoch, (long long)a->cfg->node_timeout_ms);
        a->view.declared++;
    } else if (p != NULL)
        p->declaring = false; /* it wrote first (alive after all), or the engine is away */
    free(ctx);
}

static void declare_read(void *arg, const struct js_result *r)
{
    struct declare_ctx *ctx = arg;
    struct agent *a = ctx->agent;
    struct peer *p = agent_peer(a, ctx->name, false);
    struct cl_node rec;
    const char *why;
    if (r->outcome != JS_OK || r->deleted ||
        cl_node_decode(r->value, r->len, ctx->name, &rec, &why) != 0 ||
        rec.state != CL_NODE_ALIVE || rec.epoch != ctx->epoch) {
        if (p != NULL)
            p->declaring = false;
        free(ctx);
        return;
    }
    rec.state = CL_NODE_DEAD;
    snprintf(rec.declared_by, sizeof rec.declared_by, "%s", a->cfg->node_name);
    rec.declared_ms = clock_wall_ms();
    char json[CL_NODE_RECORD_MAX];
    long len = cl_node_encode(&rec, json, sizeof json);
    /* Compare-and-set on the revision just read: if the node refreshed its record in between,
     * it is alive and the declaration is refused. */
    if (len < 0 || js_kv_update(a->engine, AGENT_BUCKET_NODES, ctx->name, json, (size_t)len,
                                r->seq, declared, ctx) != 0) {
        if (p != NULL)
            p->declaring = false;
        free(ctx);
    }
}

static void declare(struct agent *a, struct peer *p)
{
    struct declare_ctx *ctx = malloc(sizeof *ctx);
    if (ctx == NULL)
        return;
    ctx->agent = a;
    ctx->epoch = p->rec.epoch;
    snprintf(ctx->name, sizeof ctx->name, "%s", p->name);
    p->declaring = true;
    if (js_kv_get_leader(a->engine, AGENT_BUCKET_NODES, p->name, declare_read, ctx) != 0) {
        p->declaring = false;
        free(ctx);
    }
}

static bool suspect(const struct agent *a, const struct peer *p, int64_t now)
{
    return p->has_rec && p->rec.state == CL_NODE_ALIVE &&
           now - p->heard_mono > a->cfg->node_timeout_ms;
}

/* The cleaner of a dead node: the lowest-named node that is alive and not suspect, other than
 * the dead one. Every node computes the same from what it hears. */
static bool cleaner_is_me(const struct agent *a, const struct peer *dead, int64_t now)
{
    for (size_t i = 0; i < a->peer_count; i++) {
        const struct peer *p = &a->peers[i];
        if (p != dead && p->has_rec && p->rec.state == CL_NODE_ALIVE && !suspect(a, p, now) &&
            strcmp(p->name, a->cfg->node_name) < 0)
            return false;
    }
    return true;
}

void agent_detect(struct agent *a, int64_t now)
{
    bool bus_fresh = a->self_heard_mono != 0 && now - a->self_heard_mono < AGENT_BUS_FRESH_MS;
    if (!bus_fresh)
        a->bus_ok_since_mono = 0;
    else if (a->bus_ok_since_mono == 0)
        a->bus_ok_since_mono = now;
    /* Unheard by ourselves for node_timeout: the others are about to declare us dead, or did. */
    if (a->phase == AGENT_SERVING && now - a->self_heard_mono > a->cfg->node_timeout_ms)
        agent_fence(a, "its own heartbeats did not come back through the engine for node_timeout");
    bool bus_healthy =
        a->phase == AGENT_SERVING && a->bus_ok_since_mono != 0 &&
        now - a->bus_ok_since_mono >= a->cfg->node_timeout_ms;
    for (size_t i = 0; i < a->peer_count; i++) {
        struct peer *p = &a->peers[i];
        if (!bus_healthy || p->declaring || !suspect(a, p, now))
            continue;
        if (cleaner_is_me(a, p, now) ||
            now - p->heard_mono > a->cfg->node_timeout_ms + AGENT_BACKUP_DECLARE_MS)
            declare(a, p);
    }
    for (size_t i = 0; i < a->peer_count; i++)
        node_view_write(a, &a->peers[i]);
}
