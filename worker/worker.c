/* worker: one pre-forked process serving HTTP and WebSocket on its slot's listening socket. */
#include "worker.h"

#include "worker_internal.h"

#include "backend/backend.h"
#include "session/session.h"

#include "fetch.h"
#include "identity/identity.h"

#include "../common/clock.h"
#include "../common/log.h"
#include "../shm/app_channel.h"
#include "../shm/conn.h"
#include "../shm/mail.h"
#include "../shm/outbox.h"
#include "../shm/presence.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKER_STATS_INTERVAL_MS 1000
#define WORKER_GOODBYE_MS 1000
/* Connection ids a worker reserves at start (shm_store_seq_reserve): 2^40 is 127 days of 100,000
 * connections a second, and 2^24 worker starts before the store's 64-bit sequence runs out. */
#define WORKER_CONN_IDS (1ull << 40)

/* The figures /status and /metrics read, gathered into w->info. */
static void stats_gather(struct worker *w)
{
    if (w->identity != NULL) {
        const struct identity_stats *id = identity_stats(w->identity);
        w->info.assertion_cache_hits_total = id->cache_hits;
        w->info.assertions_verified_total = id->verified;
        w->info.assertions_refused_total = id->refused;
        w->info.verifier_unavailable_total = id->unavailable;
    }
    w->info.draining = w->draining;
    if (w->backend != NULL && w->backend->gather != NULL)
        w->backend->gather(w, &w->info.meter);
}

/* Whether w->info differs from what the store holds (its time aside). */
static bool stats_changed(struct worker *w)
{
    stats_gather(w);
    w->info.updated_ms = w->published.updated_ms;
    return !w->published_once || memcmp(&w->info, &w->published, sizeof w->info) != 0;
}

static void stats_publish(struct worker *w)
{
    /* Unchanged figures are not written again: an idle worker does no store work at all. */
    if (!stats_changed(w))
        return;
    w->info.updated_ms = clock_wall_ms();
    if (shm_worker_info_put(w->store, &w->info) != SHM_OK) {
        w->info.store_failures_total++;
        return;
    }
    memcpy(&w->published, &w->info, sizeof w->info);
    w->published_once = true;
}

/* Connections accepted since the last trim past which one is worth it. */
#define TRIM_AFTER_ACCEPTS 256

static bool memory_trim_pending(const struct worker *w)
{
    return w->info.accepted_total - w->trim_accepted >= TRIM_AFTER_ACCEPTS;
}

/* A burst of handshakes leaves freed memory behind (a TLS handshake's buffers are about 40 KB
 * each while it lasts), kept by malloc among the connections' live allocations: once a burst
 * is over (a second without a new connection), it goes back to the kernel. Nothing happens
 * while nothing is accepted, so an idle worker still does nothing. */
static void memory_trim(struct worker *w)
{
    uint64_t accepted = w->info.accepted_total;
    bool burst_over = accepted == w->trim_seen;
    w->trim_seen = accepted;
    if (!burst_over || !memory_trim_pending(w))
        return;
    w->trim_accepted = accepted;
    malloc_trim(0);
}

/* The statistics timer is one-shot: armed at the end of a loop turn that changed a figure (or
 * left a trim to make), it publishes within WORKER_STATS_INTERVAL_MS, and an idle worker has
 * no timer at all — a million idle devices on 56 workers cost no wake-up between pings. */
static void stats_tick(uv_timer_t *timer);

static void stats_arm(struct worker *w)
{
    if (uv_is_active((uv_handle_t *)&w->stats_timer) || w->stopping)
        return;
    if (!stats_changed(w) && !memory_trim_pending(w))
        return;
    if (uv_timer_start(&w->stats_timer, stats_tick, WORKER_STATS_INTERVAL_MS, 0) != 0)
        w->info.store_failures_total++;
}

static void stats_tick(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    stats_publish(w);
    memory_trim(w);
    /* The trim waits for a tick without new connections: one more tick while one is due. */
    if (memory_trim_pending(w) &&
        uv_timer_start(&w->stats_timer, stats_tick, WORKER_STATS_INTERVAL_MS, 0) != 0)
        w->info.store_failures_total++;
}

static void commit_before_sleep(uv_prepare_t *prepare)
{
    struct worker *w = prepare->data;
    /* The turn's status updates are stored now, in one short hold of the store's write lock.
     * What the commit releases is written at once, and written notifications leave the queue:
     * a second, smaller batch. The loop must not sleep holding the write lock. */
    protocol_channels_before_commit(w);
    /* What a commit's answers write may put off more writes (a held page written, its
     * notifications to delete): they go in a further round, before the loop sleeps. */
    for (int round = 0; round < 4; round++) {
        w->backend->before_commit(w);
        if (!shm_batch_pending(w->store))
            break;
        if (shm_batch_commit(w->store) != SHM_OK)
            w->info.store_failures_total++;
        w->backend->after_commit(w);
    }
    stats_arm(w);
}

static void loop_stop(struct worker *w)
{
    w->stopping = true;
    uv_stop(&w->loop);
}

/* Drained when the last connection it accepted has gone: an HTTP request or a handshake under
 * way is answered first (SPEC 6), and an idle keep-alive connection is closed by
 * http_drain_idle. */
static void worker_drain_check(struct worker *w)
{
    if (w->draining && w->info.connections == 0 && !w->stopping) {
        log_info("drained: no connection left");
        loop_stop(w);
    }
}

static void goodbye_say(struct worker *w)
{
    w->saying_goodbye = true;
    session_goodbye_all(w);
}

static void drain_deadline(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    log_notice("drain_timeout reached with %llu connection(s) open (%llu WebSocket(s)); "
               "closing them",
               (unsigned long long)w->info.connections, (unsigned long long)w->info.websockets);
    loop_stop(w);
}

/* A reloaded worker has served its devices for drain_timeout: now it says goodbye and gives
 * them a moment to close before the deadline above ends it. */
static void goodbye_due(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    log_info("drain_timeout reached: closing %llu WebSocket(s) with 1001",
             (unsigned long long)w->info.websockets);
    goodbye_say(w);
    uv_timer_start(&w->drain_timer, drain_deadline, WORKER_GOODBYE_MS, 0);
}

/* goodbye_now (QUIT, shutting down, after drain_grace): errno 61 and close 1001 at once, exit
 * by drain_timeout. Otherwise (HUP, replaced by a reload): keep serving the open WebSockets for
 * drain_timeout while the new workers take every new connection, then say goodbye. Either way
 * no new connection is accepted. */
static void drain_start(struct worker *w, bool goodbye_now)
{
    if (w->draining)
        return;
    w->draining = true;
    w->quitting = w->quitting || goodbye_now;
    /* What the slot's queue already holds for this worker is taken and answered first. */
    acceptor_retire(w);
    http_drain_idle(w);
    stats_publish(w);
    if (goodbye_now) {
        log_info("draining: closing %llu WebSocket(s) with 1001",
                 (unsigned long long)w->info.websockets);
        goodbye_say(w);
        /* A little less than the master's own deadline, so the worker exits by itself. */
        int64_t timeout = w->cfg->drain_timeout_ms > 200 ? w->cfg->drain_timeout_ms - 100 : 0;
        uv_timer_start(&w->drain_timer, drain_deadline, (uint64_t)timeout, 0);
    } else {
        log_info("replaced: serving %llu connection(s) (%llu WebSocket(s)) for up to %lld ms, "
                 "accepting no more",
                 (unsigned long long)w->info.connections, (unsigned long long)w->info.websockets,
                 (long long)w->cfg->drain_timeout_ms);
        uv_timer_start(&w->drain_timer, goodbye_due, (uint64_t)w->cfg->drain_timeout_ms, 0);
    }
    worker_drain_check(w);
}

static void grace_over(uv_timer_t *timer)
{
    drain_start(timer->data, true);
}

/* QUIT: /__lbheartbeat__ answers 503 from now on; everything else is served as usual for
 * drain_grace (balancers polling it stop sending meanwhile), then the drain begins. */
static void quit_start(struct worker *w)
{
    if (w->quitting || w->draining)
        return;
    w->quitting = true;
    if (w->cfg->drain_grace_ms <= 0) {
        drain_start(w, true);
        return;
    }
    log_info("quitting: serving for %lld ms while /__lbheartbeat__ answers 503",
             (long long)w->cfg->drain_grace_ms);
    uv_timer_start(&w->drain_timer, grace_over, (uint64_t)w->cfg->drain_grace_ms, 0);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct worker *w = handle->data;
    switch (signum) {
    case SIGQUIT:
        quit_start(w);
        break;
    case SIGHUP:
        drain_start(w, false);
        break;
    case SIGTERM:
    case SIGINT:
        if (!w->stopping)
            log_info("stopping now (%s)", strsignal(signum));
        loop_stop(w);
        break;
    case SIGUSR1:
        if (log_reopen() != 0)
            log_error("cannot reopen the log file: %s", strerror(errno));
        break;
    default:
        break;
    }
}

static const int worker_signums[] = { WORKER_SIGNALS };

static void worker_sigset(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof worker_signums / sizeof worker_signums[0]; i++)
        sigaddset(set, worker_signums[i]);
}

/* Every handle of ours is initialised up front, so teardown can close each one exactly once
 * whatever point setup reached. */
static int handles_init(struct worker *w)
{
    for (size_t i = 0; i < sizeof worker_signums / sizeof worker_signums[0]; i++) {
        if (uv_signal_init(&w->loop, &w->signals[i]) != 0)
            return -1;
        w->signals[i].data = w;
    }
    if (uv_prepare_init(&w->loop, &w->commit_prepare) != 0 ||
        uv_timer_init(&w->loop, &w->stats_timer) != 0 ||
        uv_timer_init(&w->loop, &w->drain_timer) != 0 ||
        session_keepalive_init(w) != 0 || protocol_channels_start(w) != 0)
        return -1;
    w->commit_prepare.data = w->stats_timer.data = w->drain_timer.data = w;
    w->handles_ready = true;
    return 0;
}

static void handles_close(struct worker *w)
{
    if (!w->handles_ready)
        return;
    /* Exiting already: a signal arriving now (the HUP of each later reload reaches every worker
     * still draining, Ctrl-C reaches master and workers, then the master's SIGTERM follows) must
     * not kill the process half-way through its teardown or its exit (the leak check at exit of
     * a sanitized build takes a while). Closing a uv_signal_t puts SIG_DFL back, so the signals
     * are ignored after the close, and held back meanwhile (a worker has one thread then). */
    sigset_t set, saved;
    worker_sigset(&set);
    sigprocmask(SIG_BLOCK, &set, &saved);
    for (size_t i = 0; i < sizeof worker_signums / sizeof worker_signums[0]; i++)
        uv_close((uv_handle_t *)&w->signals[i], NULL);
    for (size_t i = 0; i < sizeof worker_signums / sizeof worker_signums[0]; i++)
        signal(worker_signums[i], SIG_IGN);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    uv_close((uv_handle_t *)&w->commit_prepare, NULL);
    uv_close((uv_handle_t *)&w->stats_timer, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    protocol_channels_stop(w);
    keepalive_close(&w->keepalive);
    w->handles_ready = false;
}

/* The master forks with the drain and log signals blocked (see worker.h): one that came
 * during setup is delivered now, to the handlers, instead of ending the process. */
static int signals_unblock(void)
{
    sigset_t set;
    worker_sigset(&set);
    return sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static int handles_start(struct worker *w)
{
    for (size_t i = 0; i < sizeof worker_signums / sizeof worker_signums[0]; i++)
        if (uv_signal_start(&w->signals[i], on_signal, worker_signums[i]) != 0)
            return -1;
    if (signals_unblock() != 0)
        return -1;
    return uv_prepare_start(&w->commit_prepare, commit_before_sleep) != 0 ? -1 : 0;
}

static int store_attach(struct worker *w)
{
    char err[512];
    struct shm_store_options opt = {
        .dir = w->cfg->data_dir,
        .map_size = w->cfg->map_size,
        .max_map_size = w->cfg->max_map_size,
        .flush_each_commit = w->cfg->sync_interval_ms == 0,
    };
    if (shm_store_open(&w->store, &opt, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    shm_store_prefault(w->store); /* its commits then take no minor faults (shm/store.h) */
    if (w->cfg->cluster != NULL) /* apps, grants, sessions: through the agent to the engine */
        shm_outbox_enable(w->store, (int32_t)getpid());
    uint64_t first;
    if (shm_store_seq_reserve(w->store, WORKER_CONN_IDS, &first) != SHM_OK) {
        log_error("cannot reserve this worker's connection ids in the store");
        return -1;
    }
    w->next_conn_id = first - 1; /* the first connection takes first */
    return 0;
}

static int identity_attach(struct worker *w)
{
    char err[512];
    if (fetcher_init(&w->fetcher, &w->loop, w->cfg) != 0) {
        log_error("cannot set up libcurl");
        return -1;
    }
    if (identity_init(&w->identity, w->fetcher, w->store, w->cfg, err, sizeof err) != 0) {
        log_error("identity: %s", err);
        return -1;
    }
    return push_sender_init(w);
}

static void ready_signal(int ready_fd)
{
    if (ready_fd < 0)
        return;
    char byte = 'R';
    if (write(ready_fd, &byte, 1) != 1)
        log_warning("cannot tell the master this worker is ready: %s", strerror(errno));
    close(ready_fd);
}

static int worker_setup(struct worker *w, const struct worker_start *start)
{
    w->info = (struct shm_worker_info){
        .pid = getpid(),
        .slot = start->slot,
        .generation = start->generation,
        .started_ms = clock_wall_ms(),
    };
    if (handles_init(w) != 0 || store_attach(w) != 0 || handles_start(w) != 0 ||
        identity_attach(w) != 0)
        return -1;
    if (lws_setup(w) != 0)
        return -1;
    w->backend = backend_pick(w);
    if (w->backend->open(w) != 0) {
        log_error("cannot start the %s backend", w->backend->name);
        return -1;
    }
    session_frames_init(w);
    stats_publish(w);
    if (shm_batch_commit(w->store) != SHM_OK)
        return -1;
    return acceptor_start(w, start->listen_fd, worker_drain_check);
}

static void handle_report(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        log_warning("a libuv handle of type %s is still open at exit",
                    uv_handle_type_name(uv_handle_get_type(handle)));
}

/* Releases what this worker holds (the backend's close; the master does it too if we crash),
 * and its place in the store. */
static void store_detach(struct worker *w)
{
    if (w->store == NULL)
        return;
    if (w->backend != NULL)
        w->backend->close(w);
    stats_publish(w); /* the last counts, then into the retired workers' totals */
    shm_worker_info_retire(w->store, w->info.pid);
    shm_mail_drop(w->store, w->info.pid);
    shm_batch_commit(w->store);
    shm_store_close(w->store);
    w->store = NULL;
}

static void worker_teardown(struct worker *w)
{
    acceptor_stop(w);
    if (w->backend != NULL)
        w->backend->stop(w);
    handles_close(w);
    session_stop_all(w);
    push_sender_stop(w);
    /* Closing the connections cancels what their requests wait for (a sign-in's verification,
     * an issuer's keys, a fetch): identity and the fetcher must still be there. */
    lws_teardown(w);
    web_shared_stop(w);
    identity_stop(w->identity);
    fetcher_stop(w->fetcher);
    /* lws closes its own handles and finishes destroying its context from their callbacks,
     * so the loop runs until they are all gone. */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    lws_teardown_finish(w);
    ws_tap_stop();
    uv_walk(&w->loop, handle_report, NULL);
    if (uv_loop_close(&w->loop) != 0)
        log_warning("event loop closed with handles still open");
    identity_free(w->identity);
    w->identity = NULL;
    fetcher_free(w->fetcher);
    w->fetcher = NULL;
    store_detach(w);
    push_sender_free(w);
    free(w->rings);
    u64map_free(&w->sessions_by_id);
    protocol_channels_free(w);
    session_pool_free(w);
}

int worker_run(const struct worker_start *start)
{
    struct worker w = { .cfg = start->cfg, .slot = start->slot, .generation = start->generation };
    w.acceptor.fd = -1;
    w.bells.fd = -1;
    list_init(&w.sessions);
    list_init(&w.apps);
    list_init(&w.app_buckets);
    list_init(&w.out_pool.free);
    char role[32];
    snprintf(role, sizeof role, "worker %d", start->slot);
    log_set_role(role);
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&w.loop) != 0) {
        log_error("cannot create the event loop");
        return 1;
    }
    int rc = worker_setup(&w, start);
    if (rc == 0) {
        ready_signal(start->ready_fd);
        log_info("accepting (generation %u)", start->generation);
        uv_run(&w.loop, UV_RUN_DEFAULT);
    } else {
        log_error("worker setup failed; exiting");
        if (start->ready_fd >= 0)
            close(start->ready_fd);
    }
    worker_teardown(&w);
    log_info("exiting");
    return rc == 0 ? 0 : 1;
}
