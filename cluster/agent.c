/* agent: the node's cluster process — forked and supervised by the master like a worker, with
 * no listening socket: it registers the node's incarnation (epoch), heartbeats, keeps the
 * node's replica of the engine's records, declares dead nodes, cleans after dead incarnations,
 * watches its changefeeds, and fences the node when it cannot vouch for it. This file: the
 * process, the engine's assets, the node's record (epoch, refresh, dead workers) and fencing. */
#include "agent_internal.h"

#include "js.h"
#include "record.h"

#include "../common/clock.h"
#include "../common/log.h"
#include "../shm/mail.h"

#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LAYOUT_SCHEMA 1
#define RETRY_MS 1000

static const int agent_signums[] = { AGENT_SIGNALS };

static void register_epoch(struct agent *a);
static void assets_make(struct agent *a);

static void register_retry(uv_timer_t *timer)
{
    register_epoch(timer->data);
}

static void assets_retry(uv_timer_t *timer)
{
    assets_make(timer->data);
}

/* ---- what the master and workers see (shm/replica.h) ---- */

void agent_view_publish(struct agent *a)
{
    struct shm_cl_self *v = &a->view;
    v->epoch = a->self.epoch;
    v->state = a->phase == AGENT_SERVING  ? SHM_CL_SERVING
               : a->phase == AGENT_FENCED ? SHM_CL_FENCED
                                          : SHM_CL_STARTING;
    if (v->state == SHM_CL_STARTING && a->inherited_epoch != 0) {
        /* An agent restarted under the same master: the workers go on serving under the epoch
         * they have while this agent hears the node (heard_ms) and registers it again — the
         * same epoch when the engine still has it alive, else a new one, which fences them. */
        v->state = SHM_CL_SERVING;
        v->epoch = a->inherited_epoch;
    }
    v->connected = engine_connected(a->engine);
    v->updated_ms = clock_wall_ms();
    v->agent_pid = (int32_t)getpid();
    snprintf(v->server, sizeof v->server, "%s", engine_server(a->engine));
    shm_cl_self_put(a->store, v);
}

static void ready_report(struct agent *a)
{
    if (a->ready_fd < 0)
        return;
    char byte = 'R';
    if (write(a->ready_fd, &byte, 1) != 1)
        log_warning("cannot tell the master the agent is ready: %s", strerror(errno));
    close(a->ready_fd);
    a->ready_fd = -1;
}

/* ---- fencing ---- */

/* The node can no longer vouch for what it holds: it stops serving the cluster's state (the
 * workers, reading SHM_CL_FENCED, close their devices with 61/1001 and answer /__heartbeat__
 * 503) until the bus works again, then takes a new epoch, so that nothing it wrote before
 * counts (every reader ignores other epochs' entries). */
void agent_fence(struct agent *a, const char *why)
{
    if (a->phase == AGENT_FENCED || a->stopping)
        return;
    log_warning("fenced: %s; this node serves nothing of the cluster until it takes a new epoch",
                why);
    a->phase = AGENT_FENCED;
    a->inherited_epoch = 0;
    a->view.fences++;
    agent_view_publish(a);
}

/* ---- the node's record ---- */

static void self_written(void *arg, const struct js_result *r);

static void self_reread(void *arg, const struct js_result *r)
{
    struct agent *a = arg;
    a->writing_self = false;
    if (r->outcome != JS_OK || r->deleted) {
        if (r->outcome == JS_OK || r->outcome == JS_NOT_FOUND)
            agent_fence(a, "this node's record is gone from the engine");
        return;
    }
    struct cl_node rec;
    const char *why;
    if (cl_node_decode(r->value, r->len, a->cfg->node_name, &rec, &why) != 0) {
        agent_fence(a, "this node's record cannot be read");
        return;
    }
    if (rec.epoch != a->self.epoch || rec.state != CL_NODE_ALIVE) {
        char what[160];
        snprintf(what, sizeof what, "epoch %" PRIu64 " was declared dead%s%s", a->self.epoch,
                 rec.declared_by[0] ? " by " : "", rec.declared_by);
        agent_fence(a, what);
        return;
    }
    a->self_rev = r->seq; /* only ever another write of ours: go on from it */
    a->self_dirty = true;
}

/* Writes our record (a refresh, or the dead workers' list) by compare-and-set: refused means
 * someone else wrote it — a declaration of our death. */
void agent_self_write(struct agent *a)
{
    if (a->phase != AGENT_SERVING || a->stopping)
        return;
    if (a->writing_self) {
        a->self_dirty = true;
        return;
    }
    char json[CL_NODE_RECORD_MAX];
    a->self.beat++;
    long len = cl_node_encode(&a->self, json, sizeof json);
    if (len < 0)
        return;
    a->self_dirty = false;
    a->writing_self = true;
    a->last_refresh_mono = clock_mono_ms();
    if (js_kv_update(a->engine, AGENT_BUCKET_NODES, a->cfg->node_name, json, (size_t)len,
                     a->self_rev, self_written, a) != 0)
        a->writing_self = false;
}

static void self_written(void *arg, const struct js_result *r)
{
    struct agent *a = arg;
    if (r->outcome == JS_CONFLICT) {
        js_kv_get_leader(a->engine, AGENT_BUCKET_NODES, a->cfg->node_name, self_reread, a);
        return;
    }
    a->writing_self = false;
    if (r->outcome != JS_OK)
        return; /* the next refresh tries again */
    a->self_rev = r->seq;
    if (a->nodes_feed != NULL)
        feed_expect(a->nodes_feed, r->seq, clock_mono_ms()); /* the watchdog's probe */
    if (a->self_dirty)
        agent_self_write(a);
}

static void refresh_due(uv_timer_t *timer)
{
    struct agent *a = timer->data;
    agent_self_write(a);
}

/* ---- registration: a new epoch ---- */

static void registered(void *arg, const struct js_result *r)
{
    struct agent *a = arg;
    if (a->stopping)
        return;
    if (r->outcome == JS_CONFLICT) {
        register_epoch(a); /* another start of ours, or a declaration in between: again */
        return;
    }
    if (r->outcome != JS_OK) {
        log_warning("cannot register this node's epoch (%s); retrying",
                    r->outcome == JS_UNAVAILABLE ? "engine unavailable" : r->err.description);
        uv_timer_start(&a->refresh, register_retry, RETRY_MS, 0);
        return;
    }
    a->self_rev = r->seq;
    a->phase = AGENT_SERVING;
    a->inherited_epoch = 0;
    /* The write went through the engine: as good a sign of the bus as a heartbeat. */
    a->self_heard_mono = clock_mono_ms();
    a->view.heard_ms = clock_wall_ms();
    log_notice("node %s serves as epoch %" PRIu64, a->cfg->node_name, a->self.epoch);
    agent_view_publish(a);
    uv_timer_start(&a->refresh, refresh_due, AGENT_REFRESH_MS, AGENT_REFRESH_MS);
    agent_clean(a);
    /* The workers the byte starts read this view first thing: it must be in the store. */
    if (shm_batch_commit(a->store) != SHM_OK)
        log_warning("the agent's store batch failed");
    ready_report(a);
}

/* The epoch after the one in the engine — or the same one, when this is only the agent
 * restarting under the same master and the engine still has that epoch alive (the workers'
 * connections then stay valid). */
static void epoch_read(void *arg, const struct js_result *r)
{
    struct agent *a = arg;
    if (a->stopping)
        return;
    if (r->outcome != JS_OK && r->outcome != JS_NOT_FOUND) {
        uv_timer_start(&a->refresh, register_retry, RETRY_MS, 0);
        return;
    }
    struct cl_node rec;
    memset(&rec, 0, sizeof rec);
    const char *why;
    bool have = r->outcome == JS_OK && !r->deleted &&
                cl_node_decode(r->value, r->len, a->cfg->node_name, &rec, &why) == 0;
    uint64_t expected = r->outcome == JS_OK ? r->seq : 0;
    struct shm_cl_self before;
    bool continuing = have && rec.state == CL_NODE_ALIVE && a->phase == AGENT_REGISTER &&
                      shm_cl_self_get(a->store, &before) == SHM_OK && before.epoch == rec.epoch &&
                      before.state == SHM_CL_SERVING && a->view.fences == 0;
    uint64_t epoch = continuing ? rec.epoch : (have ? rec.epoch : 0) + 1;
    a->previous_epoch = have && !continuing ? rec.epoch : 0;
    memset(&a->self, 0, sizeof a->self);
    snprintf(a->self.name, sizeof a->self.name, "%s", a->cfg->node_name);
    a->self.epoch = epoch;
    a->self.state = CL_NODE_ALIVE;
    a->self.started_ms = continuing ? rec.started_ms : clock_wall_ms();
    a->self.beat = continuing ? rec.beat : 0;
    if (continuing) {
        memcpy(a->self.dead_pids, rec.dead_pids, sizeof rec.dead_pids);
        a->self.dead_pid_count = rec.dead_pid_count;
    }
    char json[CL_NODE_RECORD_MAX];
    long len = cl_node_encode(&a->self, json, sizeof json);
    if (len < 0 || js_kv_update(a->engine, AGENT_BUCKET_NODES, a->cfg->node_name, json, (size_t)len,
                                expected, registered, a) != 0)
        uv_timer_start(&a->refresh, register_retry, RETRY_MS, 0);
}

static void register_epoch(struct agent *a)
{
    if (a->stopping || !engine_connected(a->engine))
        return;
    if (a->phase != AGENT_REGISTER && a->phase != AGENT_FENCED)
        return;
    uv_timer_stop(&a->refresh);
    if (js_kv_get_leader(a->engine, AGENT_BUCKET_NODES, a->cfg->node_name, epoch_read, a) != 0)
        uv_timer_start(&a->refresh, register_retry, RETRY_MS, 0);
}

/* ---- the engine's assets ---- */

static void start_feeds(struct agent *a)
{
    if (agent_nodes_start(a) != 0 || agent_users_start(a) != 0 || agent_shared_start(a) != 0) {
        log_error("cannot start the changefeeds");
        a->exit_code = 1;
        uv_stop(&a->loop);
        return;
    }
    a->phase = AGENT_REGISTER;
    register_epoch(a);
}

static void layout_checked(void *arg, const struct js_result *r);

static void layout_read(void *arg, const struct js_result *r)
{
    struct agent *a = arg;
    if (r->outcome != JS_OK || r->deleted) {
        uv_timer_start(&a->refresh, assets_retry, RETRY_MS, 0);
        return;
    }
    unsigned shards = 0, schema = 0;
    char text[128];
    snprintf(text, sizeof text, "%.*s", (int)(r->len < 127 ? r->len : 127), (const char *)r->value);
    if (sscanf(text, "{\"shards\":%u,\"schema\":%u}", &shards, &schema) != 2) {
        log_error("the cluster's layout record (%s.layout) cannot be read: %s", AGENT_BUCKET_META,
                  text);
        a->exit_code = AGENT_EXIT_CONFIG;
        uv_stop(&a->loop);
        return;
    }
    if (shards != a->shards || schema != LAYOUT_SCHEMA) {
        log_error("this cluster was made with cluster_shards %u (layout schema %u); this node "
                  "has cluster_shards %u: set the same on every node",
                  shards, schema, a->shards);
        a->exit_code = AGENT_EXIT_CONFIG;
        uv_stop(&a->loop);
        return;
    }
    start_feeds(a);
}

/* The first node writes the layout; every later one must agree with it. */
static void layout_checked(void *arg, const struct js_result *r)
{
    struct agent *a = arg;
    if (r->outcome == JS_OK) {
        log_notice("made the cluster's layout: %u user shards", a->shards);
        start_feeds(a);
    } else if (r->outcome == JS_CONFLICT)
        js_kv_get_leader(a->engine, AGENT_BUCKET_META, "layout", layout_read, a);
    else
        uv_timer_start(&a->refresh, assets_retry, RETRY_MS, 0);
}

static void asset_made(void *arg, const struct js_result *r)
{
    struct agent *a = arg;
    if (r->outcome != JS_OK) {
        if (!a->assets_failed)
            log_warning("engine: cannot make a bucket or stream (%s %d); retrying",
                        r->outcome == JS_UNAVAILABLE ? "unavailable" : r->err.description,
                        r->err.err_code);
        a->assets_failed = true;
    }
    if (--a->assets_pending > 0)
        return;
    if (a->assets_failed) {
        uv_timer_start(&a->refresh, assets_retry, RETRY_MS, 0);
        return;
    }
    char layout[64];
    int n =
        snprintf(layout, sizeof layout, "{\"shards\":%u,\"schema\":%d}", a->shards, LAYOUT_SCHEMA);
    if (js_kv_update(a->engine, AGENT_BUCKET_META, "layout", layout, (size_t)n, 0, layout_checked,
                     a) != 0)
        uv_timer_start(&a->refresh, assets_retry, RETRY_MS, 0);
}

/* Every bucket and stream, made or brought to this configuration (idempotent: each node does
 * it at every start). */
static void assets_make(struct agent *a)
{
    if (a->stopping || !engine_connected(a->engine) || a->phase != AGENT_ASSETS)
        return;
    const struct config *cfg = a->cfg;
    int replicas = (int)cfg->cluster_replicas;
    a->assets_failed = false;
    a->assets_pending = 1; /* held until every request is out */
    char bucket[32];
    const char *fixed[] = { AGENT_BUCKET_META, AGENT_BUCKET_NODES };
    for (size_t i = 0; i < 2; i++) {
        a->assets_pending++;
        if (js_bucket_ensure(a->engine, fixed[i], replicas, 0, asset_made, a) != 0) {
            a->assets_pending--;
            a->assets_failed = true;
        }
    }
    const char *shared[8];
    int64_t max_age[8];
    size_t shared_count = 0;
    agent_shared_buckets(a, shared, max_age, &shared_count);
    for (size_t i = 0; i < shared_count; i++) {
        a->assets_pending++;
        if (js_bucket_ensure(a->engine, shared[i], replicas, max_age[i], asset_made, a) != 0) {
            a->assets_pending--;
            a->assets_failed = true;
        }
    }
    for (unsigned s = 0; s < a->shards; s++) {
        agent_bucket_name(s, bucket, sizeof bucket);
        a->assets_pending++;
        if (js_bucket_ensure(a->engine, bucket, replicas, 0, asset_made, a) != 0) {
            a->assets_pending--;
            a->assets_failed = true;
        }
    }
    /* The notification queues (stage B uses them): one subject per user, the cap and the
     * longest TTL enforced by the engine, a full queue refusing the publish (10077). */
    struct js_stream_spec queue = { .name = AGENT_STREAM_QUEUE,
                                    .subjects = "pd.q.>",
                                    .replicas = replicas,
                                    .max_msgs_per_subject = cfg->max_pending_notifications,
                                    .max_age_ms = cfg->notification_ttl_ms,
                                    .discard_new = true,
                                    .discard_new_per_subject = true };
    a->assets_pending++;
    if (js_stream_ensure(a->engine, &queue, asset_made, a) != 0) {
        a->assets_pending--;
        a->assets_failed = true;
    }
    struct js_result held = { .outcome = JS_OK };
    asset_made(a, &held);
}

/* ---- engine events ---- */

static void on_engine(void *arg, enum engine_event event)
{
    struct agent *a = arg;
    switch (event) {
    case ENGINE_EVENT_CONNECTED:
        if (a->phase == AGENT_CONNECTING) {
            a->phase = AGENT_ASSETS;
            assets_make(a);
        }
        break;
    case ENGINE_EVENT_RECONNECTED:
        for (unsigned s = 0; a->user_feeds != NULL && s < a->shards; s++)
            if (a->user_feeds[s] != NULL)
                feed_reconnected(a->user_feeds[s]);
        if (a->nodes_feed != NULL)
            feed_reconnected(a->nodes_feed);
        agent_shared_reconnected(a);
        break;
    case ENGINE_EVENT_DISCONNECTED:
        break;
    }
    agent_view_publish(a);
}

/* ---- the process ---- */

static void tick(uv_timer_t *timer)
{
    struct agent *a = timer->data;
    int64_t now = clock_mono_ms();
    agent_detect(a, now);
    agent_users_tick(a, now);
    agent_shared_tick(a, now);
    agent_presence_tick(a, now);
    if (a->nodes_feed != NULL)
        feed_tick(a->nodes_feed, now);
    if (a->phase == AGENT_FENCED && a->bus_ok_since_mono != 0 &&
        now - a->self_heard_mono < AGENT_BUS_FRESH_MS && !a->writing_self)
        register_epoch(a); /* the bus works again: a new epoch */
    agent_view_publish(a);
}

static void heartbeat_due(uv_timer_t *timer)
{
    agent_heartbeat_send(timer->data);
}

void agent_ring_later(struct agent *a, int32_t pid)
{
    for (size_t i = 0; i < a->ring_count; i++)
        if (a->rings[i] == pid)
            return;
    if (a->ring_count == sizeof a->rings / sizeof a->rings[0]) {
        shm_batch_commit(a->store); /* a full list: commit and ring now */
        for (size_t i = 0; i < a->ring_count; i++)
            wake_ring(&a->bells, a->rings[i]);
        a->ring_count = 0;
    }
    a->rings[a->ring_count++] = pid;
}

static void commit_before_sleep(uv_prepare_t *prepare)
{
    struct agent *a = prepare->data;
    if (shm_batch_pending(a->store) && shm_batch_commit(a->store) != SHM_OK)
        log_warning("the agent's store batch failed");
    for (size_t i = 0; i < a->ring_count; i++)
        wake_ring(&a->bells, a->rings[i]);
    a->ring_count = 0;
}

static void mail_act(void *arg, int32_t sender, uint8_t type, const void *payload, size_t len)
{
    struct agent *a = arg;
    (void)sender;
    if (type == SHM_MAIL_WORKER_DEAD && len == 4) {
        const unsigned char *p = payload;
        uint32_t pid = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (cl_node_pid_add(&a->self, pid) == 0) {
            log_info("worker %" PRIu32 " of epoch %" PRIu64 " is dead: telling the cluster", pid,
                     a->self.epoch);
            agent_self_write(a);
        }
    }
}

static void bell_rung(uv_poll_t *poll, int status, int events)
{
    struct agent *a = poll->data;
    (void)events;
    if (status < 0)
        return;
    wake_drain(&a->bells);
    shm_mail_take(a->store, (int32_t)getpid(), mail_act, a);
    agent_shared_take(a);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct agent *a = handle->data;
    if (signum == SIGUSR1) {
        if (log_reopen() != 0)
            log_error("cannot reopen the log file: %s", strerror(errno));
        return;
    }
    if (!a->stopping)
        log_info("stopping (%s)", strsignal(signum));
    a->stopping = true;
    uv_stop(&a->loop);
}

static int signals_start(struct agent *a)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof agent_signums / sizeof agent_signums[0]; i++) {
        if (uv_signal_init(&a->loop, &a->signals[i]) != 0 ||
            uv_signal_start(&a->signals[i], on_signal, agent_signums[i]) != 0)
            return -1;
        a->signals[i].data = a;
        sigaddset(&set, agent_signums[i]);
    }
    return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static int store_attach(struct agent *a)
{
    char err[512];
    struct shm_store_options opt = { .dir = a->cfg->data_dir,
                                     .map_size = a->cfg->map_size,
                                     .max_map_size = a->cfg->max_map_size,
                                     .flush_each_commit = a->cfg->sync_interval_ms == 0 };
    if (shm_store_open(&a->store, &opt, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    if (wake_init(&a->bells, a->cfg->data_dir) != 0 || wake_listen(&a->bells, getpid()) < 0 ||
        uv_poll_init(&a->loop, &a->bell_poll, a->bells.fd) != 0) {
        log_error("cannot open the agent's doorbell");
        return -1;
    }
    a->bell_open = true;
    a->bell_poll.data = a;
    return uv_poll_start(&a->bell_poll, UV_READABLE, bell_rung) == 0 ? 0 : -1;
}

static int agent_setup(struct agent *a)
{
    if (signals_start(a) != 0 || store_attach(a) != 0)
        return -1;
    struct shm_cl_self before;
    if (shm_cl_self_get(a->store, &before) == SHM_OK && before.state == SHM_CL_SERVING &&
        before.epoch != 0) {
        a->inherited_epoch = before.epoch; /* cl_self is volatile: only an agent's restart */
        a->view.heard_ms = before.heard_ms;
    }
    uv_timer_init(&a->loop, &a->tick);
    uv_timer_init(&a->loop, &a->heartbeat);
    uv_timer_init(&a->loop, &a->refresh);
    uv_prepare_init(&a->loop, &a->commit);
    a->tick.data = a->heartbeat.data = a->refresh.data = a->commit.data = a;
    uv_prepare_start(&a->commit, commit_before_sleep);
    char err[256], name[64];
    snprintf(name, sizeof name, "presenced %s agent", a->cfg->node_name);
    struct engine_options opt = {
        .loop = &a->loop, .servers = a->cfg->cluster, .name = name, .on_event = on_engine, .arg = a
    };
    if (engine_open(&a->engine, &opt, err, sizeof err) != 0) {
        log_error("engine: %s", err);
        return -1;
    }
    agent_view_publish(a);
    uv_timer_start(&a->tick, tick, AGENT_TICK_MS, AGENT_TICK_MS);
    uv_timer_start(&a->heartbeat, heartbeat_due, AGENT_HEARTBEAT_MS, AGENT_HEARTBEAT_MS);
    return 0;
}

static void teardown(struct agent *a)
{
    agent_shared_stop(a);
    agent_presence_stop(a);
    agent_users_stop(a);
    agent_nodes_stop(a);
    if (a->engine != NULL)
        engine_close(a->engine);
    for (size_t i = 0; i < sizeof agent_signums / sizeof agent_signums[0]; i++)
        if (uv_is_active((uv_handle_t *)&a->signals[i]) || a->signals[i].data != NULL)
            uv_close((uv_handle_t *)&a->signals[i], NULL);
    if (a->tick.data != NULL) {
        uv_close((uv_handle_t *)&a->tick, NULL);
        uv_close((uv_handle_t *)&a->heartbeat, NULL);
        uv_close((uv_handle_t *)&a->refresh, NULL);
        uv_close((uv_handle_t *)&a->commit, NULL);
    }
    if (a->bell_open) {
        uv_close((uv_handle_t *)&a->bell_poll, NULL);
        wake_close(&a->bells);
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    if (a->store != NULL) {
        shm_batch_commit(a->store);
        shm_store_close(a->store);
    }
    free(a->peers);
    agent_shared_free(a);
    /* cnats's threads and global state, so the process ends with nothing of it left. */
    nats_CloseAndWait(2000);
}

int agent_run(const struct agent_start *start)
{
    struct agent a;
    memset(&a, 0, sizeof a);
    a.cfg = start->cfg;
    a.ready_fd = start->ready_fd;
    a.shards = (unsigned)start->cfg->cluster_shards;
    list_init(&a.holds);
    a.bells.fd = -1;
    log_set_role("agent");
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&a.loop) != 0) {
        log_error("cannot create the event loop");
        return 1;
    }
    int rc = agent_setup(&a);
    if (rc == 0) {
        log_info("node %s: joining the cluster on %s", a.cfg->node_name, a.cfg->cluster);
        uv_run(&a.loop, UV_RUN_DEFAULT);
    } else
        log_error("agent setup failed; exiting");
    if (a.ready_fd >= 0)
        close(a.ready_fd);
    teardown(&a);
    log_info("exiting");
    return rc != 0 ? 1 : a.exit_code;
}
