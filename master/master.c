/* master: the supervising process — signals, worker processes, reloads, the admin endpoint. */
#include "master.h"

#include "admin.h"
#include "listeners.h"

#include "../common/clock.h"
#include "../common/dev_issuer.h"
#include "../common/log.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TICK_MS 100
/* After drain_timeout a reloaded worker says goodbye to its devices and gets this long to part. */
#define RELOAD_GOODBYE_MS 2000
#define STOP_GRACE_MS 5000

static void stop_deadline(evutil_socket_t fd, short events, void *arg)
{
    struct master *m = arg;
    (void)fd;
    (void)events;
    if (workers_alive(m) > 0) {
        log_warning("%zu worker(s) still running at the deadline: killing them", workers_alive(m));
        workers_signal(m, SIGKILL, false);
    }
    master_agent_stop(m, SIGKILL);
    event_base_loopexit(m->base, NULL);
}

static void deadline_set(struct master *m, int64_t ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(m->deadline, &tv);
}

static void listeners_drop(struct master *m)
{
    listeners_close(m->listen_fds, m->slot_count);
    listeners_close(m->old_listen_fds, m->old_slot_count);
}

/* QUIT: workers tell balancers for drain_grace (503 on /__lbheartbeat__), then say goodbye
 * (errno 61, close 1001); the master exits by drain_grace + drain_timeout. */
void master_quit(struct master *m)
{
    if (m->state != MASTER_RUNNING)
        return;
    m->state = MASTER_QUITTING;
    log_notice("graceful stop: draining %zu worker(s), at most %lld ms", workers_alive(m),
               (long long)(m->cfg.drain_grace_ms + m->cfg.drain_timeout_ms));
    workers_signal(m, SIGQUIT, false);
    listeners_drop(m);
    deadline_set(m, m->cfg.drain_grace_ms + m->cfg.drain_timeout_ms);
    master_workers_changed(m);
}

void master_stop(struct master *m)
{
    if (m->state == MASTER_STOPPING)
        return;
    m->state = MASTER_STOPPING;
    log_notice("stopping now");
    workers_signal(m, SIGTERM, false);
    listeners_drop(m);
    evtimer_del(m->deadline);
    deadline_set(m, STOP_GRACE_MS);
    master_workers_changed(m);
}

void master_workers_changed(struct master *m)
{
    if (m->state == MASTER_RUNNING || workers_alive(m) > 0)
        return;
    /* The agent leaves last: it vouches for the node while its workers drain. */
    if (m->agent.pid != 0) {
        master_agent_stop(m, SIGTERM);
        return;
    }
    event_base_loopexit(m->base, NULL);
}

static int slots_wanted(const struct config *cfg)
{
    if (cfg->workers > 0)
        return cfg->workers;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

/* Grows the back-off table from `from` slots to `to`; it never shrinks while timers may run. */
static int restarts_resize(struct master *m, int from, int to)
{
    if (to <= from)
        return 0;
    struct slot_restart *grown = realloc(m->restarts, (size_t)to * sizeof *grown);
    if (grown == NULL)
        return -1;
    for (int i = from; i < to; i++)
        grown[i] = (struct slot_restart){ 0, NULL };
    m->restarts = grown;
    m->restart_slots = to;
    return 0;
}

static void listeners_steer_to(int fd, int count)
{
    if (listeners_steer(fd, count) != 0)
        log_warning("cannot steer new connections to the current sockets (%s): a reload that "
                    "lowers workers may reset connections queued on the sockets it retires",
                    strerror(errno));
}

/* Opens the sockets of a configuration. */
static int listeners_for(const struct config *cfg, struct listen_addr *addr, int **fds, int *count)
{
    const char *reason;
    if (addr_parse(cfg->listen, addr, &reason) != 0) {
        log_error("listen %s: %s", cfg->listen, reason);
        return -1;
    }
    int wanted = slots_wanted(cfg);
    int *opened = malloc((size_t)wanted * sizeof *opened);
    if (opened == NULL)
        return -1;
    char err[256];
    if (listeners_open(addr, 0, wanted, opened, err, sizeof err) != 0) {
        log_error("%s", err);
        free(opened);
        return -1;
    }
    listeners_steer_to(opened[0], wanted);
    *fds = opened;
    *count = wanted;
    return 0;
}

static int config_compatible(const struct master *m, const struct config *next)
{
    if (strcmp(next->data_dir, m->cfg.data_dir) != 0) {
        log_error("reload: data_dir cannot change while running (restart presenced for that)");
        return -1;
    }
    return 0;
}

/* Sockets the next generation does not take: the master keeps them until it accepts (their old
 * workers serve them meanwhile), then lets them go (master_listeners_retire). */
static int retired_add(struct master *m, const int *fds, int count)
{
    if (count == 0)
        return 0;
    int *grown = realloc(m->old_listen_fds, (size_t)(m->old_slot_count + count) * sizeof *grown);
    if (grown == NULL)
        return -1;
    memcpy(grown + m->old_slot_count, fds, (size_t)count * sizeof *fds);
    m->old_listen_fds = grown;
    m->old_slot_count += count;
    return 0;
}

/* The same address keeps each slot's socket (and what its queue holds) for the slot's next
 * worker: more workers add sockets, fewer retire the last ones, steered away from at once. A
 * new address opens a new set and retires the whole old one. */
static int reload_listeners(struct master *m, const struct config *next)
{
    bool same_address = strcmp(next->listen, m->cfg.listen) == 0;
    int wanted = slots_wanted(next);
    if (same_address && wanted == m->slot_count)
        return 0;
    struct listen_addr addr = m->addr;
    const char *reason;
    if (!same_address && addr_parse(next->listen, &addr, &reason) != 0) {
        log_error("listen %s: %s", next->listen, reason);
        return -1;
    }
    int kept = same_address ? (wanted < m->slot_count ? wanted : m->slot_count) : 0;
    int *fds = malloc((size_t)wanted * sizeof *fds);
    char err[256];
    if (fds == NULL || restarts_resize(m, m->restart_slots, wanted) != 0) {
        free(fds);
        return -1;
    }
    memcpy(fds, m->listen_fds, (size_t)kept * sizeof *fds);
    if (listeners_open(&addr, kept, wanted, fds, err, sizeof err) != 0) {
        log_error("%s", err);
        free(fds);
        return -1;
    }
    if (retired_add(m, m->listen_fds + kept, m->slot_count - kept) != 0) {
        listeners_close(fds + kept, wanted - kept);
        free(fds);
        return -1;
    }
    listeners_steer_to(fds[0], wanted);
    free(m->listen_fds);
    m->listen_fds = fds;
    m->slot_count = wanted;
    m->addr = addr;
    return 0;
}

void master_listeners_retire(struct master *m)
{
    /* Steered away from already, these sockets' queues hold only what their old workers are
     * about to take; each socket closes when its worker lets go of it too. */
    listeners_close(m->old_listen_fds, m->old_slot_count);
    free(m->old_listen_fds);
    m->old_listen_fds = NULL;
    m->old_slot_count = 0;
}

static void reload(struct master *m)
{
    if (m->state != MASTER_RUNNING)
        return;
    char err[1024] = "";
    struct config next;
    if (config_defaults(&next) != 0)
        return;
    if (config_load(&next, m->config_path, err, sizeof err) != 0 ||
        config_paths_absolute(&next, m->start_dir) != 0 || config_compatible(m, &next) != 0 ||
        reload_listeners(m, &next) != 0) {
        log_error("reload failed, the running configuration stays%s%s", err[0] ? ": " : "", err);
        m->reload_failures_total++;
        config_free(&next);
        return;
    }
    log_set_format(next.log_format);
    if (log_open(next.log_file && !m->foreground ? next.log_file : NULL, next.log_level) != 0)
        log_error("%s: cannot open the log file: %s", next.log_file, strerror(errno));
    if (admin_reconfigure(m->admin, &m->cfg, &next) != 0)
        log_error("reload: the admin endpoint keeps listening on %s", m->cfg.admin_listen);
    config_free(&m->cfg);
    m->cfg = next;
    m->reloads_total++;
    m->generation++;
    m->replacing = true;
    log_notice("configuration reloaded from %s; starting generation %u", m->config_path,
               m->generation);
    if (master_agent_ready(m))
        workers_spawn_generation(m);
    workers_check_replaced(m);
}

static void on_signal(evutil_socket_t signum, short events, void *arg)
{
    struct master *m = arg;
    (void)events;
    switch (signum) {
    case SIGCHLD:
        workers_reap(m);
        break;
    case SIGTERM:
    case SIGINT:
        master_stop(m);
        break;
    case SIGQUIT:
        master_quit(m);
        break;
    case SIGHUP:
        reload(m);
        break;
    case SIGUSR1:
        if (log_reopen() != 0)
            log_error("cannot reopen the log file: %s", strerror(errno));
        workers_signal(m, SIGUSR1, false);
        break;
    default:
        break;
    }
}

/* Reloaded workers past drain_timeout and their goodbye get killed, like nginx's
 * worker_shutdown_timeout. */
static void drained_workers_kill(struct master *m)
{
    int64_t limit = m->cfg.drain_timeout_ms + RELOAD_GOODBYE_MS, now = clock_mono_ms();
    for (size_t i = 0; i < m->proc_count; i++) {
        struct worker_proc *p = &m->procs[i];
        if (p->state == PROC_DRAINING && p->drain_started_ms > 0 &&
            now - p->drain_started_ms > limit) {
            log_warning("worker %d (pid %ld) still draining after %lld ms: killing it", p->slot,
                        (long)p->pid, (long long)limit);
            kill(p->pid, SIGKILL);
            p->drain_started_ms = 0;
        }
    }
}

static void on_tick(evutil_socket_t fd, short events, void *arg)
{
    struct master *m = arg;
    (void)fd;
    (void)events;
    master_store_maintain(m);
    if (m->state == MASTER_RUNNING)
        drained_workers_kill(m);
}

static int events_setup(struct master *m)
{
    static const int signums[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
    m->base = event_base_new();
    if (m->base == NULL)
        return -1;
    for (size_t i = 0; i < sizeof signums / sizeof signums[0]; i++) {
        m->signal_events[i] = evsignal_new(m->base, signums[i], on_signal, m);
        if (m->signal_events[i] == NULL || evsignal_add(m->signal_events[i], NULL) != 0)
            return -1;
    }
    struct timeval tick = { 0, TICK_MS * 1000 };
    m->tick = event_new(m->base, -1, EV_PERSIST, on_tick, m);
    m->deadline = evtimer_new(m->base, stop_deadline, m);
    if (m->tick == NULL || m->deadline == NULL || event_add(m->tick, &tick) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void master_teardown(struct master *m)
{
    listeners_drop(m);
    free(m->listen_fds);
    free(m->old_listen_fds);
    admin_free(m->admin);
    workers_free(m);
    master_agent_free(m);
    for (int i = 0; m->restarts != NULL && i < m->restart_slots; i++)
        if (m->restarts[i].timer != NULL) {
            free(event_get_callback_arg(m->restarts[i].timer));
            event_free(m->restarts[i].timer);
        }
    free(m->restarts);
    for (size_t i = 0; i < sizeof m->signal_events / sizeof m->signal_events[0]; i++)
        if (m->signal_events[i] != NULL)
            event_free(m->signal_events[i]);
    if (m->tick != NULL)
        event_free(m->tick);
    if (m->deadline != NULL)
        event_free(m->deadline);
    if (m->base != NULL)
        event_base_free(m->base);
    if (m->lock_fd > 0)
        close(m->lock_fd);
}

/* Tells a waiting launcher (presenced without -f) that the daemon serves. */
static void started_report(struct master *m)
{
    if (m->started_fd < 0)
        return;
    char byte = 'S';
    if (write(m->started_fd, &byte, 1) != 1)
        log_warning("cannot tell the launcher that presenced started: %s", strerror(errno));
    close(m->started_fd);
    m->started_fd = -1;
}

/* The development issuer's key is made at the first start, so that `presenced token` and the
 * workers find it; every start with it on says loudly what it means. */
static int dev_issuer_prepare(struct master *m)
{
    char err[512];
    struct evp_pkey_st *key = dev_issuer_key(m->cfg.data_dir, err, sizeof err);
    if (key == NULL) {
        log_error("dev_issuer: %s", err);
        return -1;
    }
    EVP_PKEY_free(key);
    log_warning("dev_issuer is on: anyone who can run `presenced -c %s token EMAIL` signs in as "
                "any e-mail; turn it off in production (presenced(8))",
                m->config_path ? m->config_path : "FILE");
    return 0;
}

int master_run(struct master *m)
{
    int rc = 1;
    m->lock_fd = -1;
    m->agent.ready_fd = -1;
    m->started_wall_ms = clock_wall_ms();
    m->last_sync_ms = m->last_reader_check_ms = m->last_sweep_ms = clock_mono_ms();
    log_set_role("master");
    if (events_setup(m) != 0) {
        log_error("cannot set up the event loop");
        goto out;
    }
    if (master_store_prepare(m) != 0)
        goto out;
    if (m->cfg.dev_issuer && dev_issuer_prepare(m) != 0)
        goto out;
    if (listeners_for(&m->cfg, &m->addr, &m->listen_fds, &m->slot_count) != 0 ||
        restarts_resize(m, 0, m->slot_count) != 0)
        goto out;
    if (admin_open(&m->admin, m) != 0)
        goto out;
    char where[80];
    addr_format(&m->addr, where, sizeof where);
    log_notice("presenced listening on %s with %d worker(s); admin on %s; store in %s", where,
               m->slot_count, m->cfg.admin_listen, m->cfg.data_dir);
    /* In a cluster, the workers start once the agent registered the node's epoch (its ready
     * pipe, agent_proc.c): none accepts a device it could not claim. */
    if (master_agent_spawn(m) != 0 || (master_agent_ready(m) && workers_spawn_generation(m) != 0))
        goto out;
    started_report(m);
    event_base_dispatch(m->base);
    rc = m->exit_code;
    log_notice("stopped");
out:
    if (rc != 0 && workers_alive(m) > 0)
        workers_signal(m, SIGKILL, false);
    if (rc != 0)
        master_agent_stop(m, SIGKILL);
    master_teardown(m);
    return rc;
}
