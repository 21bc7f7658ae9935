/* workers: the master's table of worker processes — fork, readiness, death, back-off, replace. */
#include "master.h"

#include "child.h"

#include "../common/clock.h"
#include "../common/grow.h"
#include "../common/log.h"
#include "../worker/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A worker that dies sooner than this after its start counts as a quick death. */
#define QUICK_DEATH_MS 5000
#define BACKOFF_BASE_MS 100
#define BACKOFF_MAX_MS 30000

static struct worker_proc *proc_find(struct master *m, pid_t pid)
{
    for (size_t i = 0; i < m->proc_count; i++)
        if (m->procs[i].pid == pid)
            return &m->procs[i];
    return NULL;
}

static void proc_forget(struct master *m, struct worker_proc *p)
{
    if (p->ready_event != NULL)
        event_free(p->ready_event);
    if (p->ready_fd >= 0)
        close(p->ready_fd);
    *p = m->procs[--m->proc_count];
}

static struct worker_proc *proc_add(struct master *m)
{
    if (grow_for((void **)&m->procs, &m->proc_cap, m->proc_count, sizeof *m->procs, 8) != 0)
        return NULL;
    struct worker_proc *p = &m->procs[m->proc_count++];
    memset(p, 0, sizeof *p);
    p->ready_fd = -1;
    return p;
}

static void on_ready(evutil_socket_t fd, short events, void *arg)
{
    struct master *m = arg;
    (void)events;
    for (size_t i = 0; i < m->proc_count; i++) {
        struct worker_proc *p = &m->procs[i];
        if (p->ready_fd != fd)
            continue;
        char byte;
        if (read(fd, &byte, 1) == 1 && p->state == PROC_STARTING)
            p->state = PROC_READY;
        event_free(p->ready_event);
        p->ready_event = NULL;
        close(p->ready_fd);
        p->ready_fd = -1;
        workers_check_replaced(m);
        return;
    }
}

/* The master's handlers go; the signals the worker acts on stay blocked until it has its own
 * (worker.h): a HUP of a reload storm that reaches a worker still starting must drain it, not
 * kill it with what it may already have accepted. */
static const int worker_signums[] = { WORKER_SIGNALS };

static void child_run(struct master *m, int slot, int ready_fd, pid_t master_pid)
{
    master_child_begin(master_pid, worker_signums,
                       sizeof worker_signums / sizeof worker_signums[0], 0);
    /* The child keeps its listening socket, its readiness pipe and the log: nothing of the
     * master's event loop, admin socket or other slots. */
    const int keep[] = { m->listen_fds[slot], ready_fd, log_fd() };
    master_child_fds_keep(keep, sizeof keep / sizeof keep[0]);
    struct worker_start start = {
        .cfg = &m->cfg,
        .slot = slot,
        .generation = m->generation,
        .listen_fd = m->listen_fds[slot],
        .ready_fd = ready_fd,
    };
    exit(worker_run(&start));
}

int workers_spawn(struct master *m, int slot)
{
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        log_error("cannot start worker %d: pipe: %s", slot, strerror(errno));
        return -1;
    }
    struct worker_proc *p = proc_add(m);
    if (p == NULL) {
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return -1;
    }
    pid_t master_pid = getpid();
    pid_t pid = master_child_fork();
    if (pid < 0) {
        log_error("cannot start worker %d: fork: %s", slot, strerror(errno));
        m->proc_count--;
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(pipe_fds[0]);
        child_run(m, slot, pipe_fds[1], master_pid);
    }
    close(pipe_fds[1]);
    *p = (struct worker_proc){ .pid = pid,
                               .slot = slot,
                               .generation = m->generation,
                               .state = PROC_STARTING,
                               .started_ms = clock_mono_ms(),
                               .started_wall_ms = clock_wall_ms(),
                               .ready_fd = pipe_fds[0] };
    p->ready_event = event_new(m->base, pipe_fds[0], EV_READ, on_ready, m);
    if (p->ready_event == NULL || event_add(p->ready_event, NULL) != 0)
        log_warning("worker %d: cannot watch its readiness", slot);
    log_info("worker %d started (pid %ld, generation %u)", slot, (long)pid, m->generation);
    return 0;
}

int workers_spawn_generation(struct master *m)
{
    int started = 0;
    for (int slot = 0; slot < m->slot_count; slot++)
        if (workers_spawn(m, slot) == 0)
            started++;
    return started > 0 ? 0 : -1;
}

static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "ended with wait status %d", status);
}

static void restart_due(evutil_socket_t fd, short events, void *arg);
static void restart_schedule(struct master *m, int slot, int64_t lived_ms);

struct restart_arg {
    struct master *m;
    int slot;
};

static void restart_schedule(struct master *m, int slot, int64_t lived_ms)
{
    struct slot_restart *r = &m->restarts[slot];
    r->quick_deaths = lived_ms < QUICK_DEATH_MS ? r->quick_deaths + 1 : 0;
    int64_t delay = 0;
    if (r->quick_deaths > 1) {
        unsigned shift = r->quick_deaths - 2 > 9 ? 9 : r->quick_deaths - 2;
        delay = (int64_t)BACKOFF_BASE_MS << shift;
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
    }
    if (delay == 0) {
        m->restarts_total++;
        if (workers_spawn(m, slot) != 0)
            restart_schedule(m, slot, 0); /* fork failed: retry after a back-off */
        return;
    }
    log_notice("worker %d died %u times in a row soon after starting; restarting in %lld ms", slot,
               r->quick_deaths, (long long)delay);
    if (r->timer == NULL) {
        struct restart_arg *arg = malloc(sizeof *arg);
        if (arg == NULL)
            return;
        *arg = (struct restart_arg){ m, slot };
        r->timer = evtimer_new(m->base, restart_due, arg);
        if (r->timer == NULL) {
            free(arg);
            return;
        }
    }
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
    evtimer_add(r->timer, &tv);
}

static void restart_due(evutil_socket_t fd, short events, void *arg)
{
    struct restart_arg *ra = arg;
    (void)fd;
    (void)events;
    if (ra->m->state == MASTER_RUNNING && ra->slot < ra->m->slot_count) {
        ra->m->restarts_total++;
        if (workers_spawn(ra->m, ra->slot) != 0)
            restart_schedule(ra->m, ra->slot, 0);
    }
}

static void proc_died(struct master *m, struct worker_proc *p, int status)
{
    char how[128];
    describe_exit(status, how, sizeof how);
    bool expected =
        m->state != MASTER_RUNNING || p->state == PROC_DRAINING || p->generation != m->generation;
    bool crashed = WIFSIGNALED(status) && (WCOREDUMP(status) || WTERMSIG(status) != SIGTERM);
    if (expected && !crashed && !(WIFEXITED(status) && WEXITSTATUS(status) != 0))
        log_info("worker %d (pid %ld) %s", p->slot, (long)p->pid, how);
    else
        log_error("worker %d (pid %ld, generation %u) %s", p->slot, (long)p->pid, p->generation,
                  how);
    pid_t pid = p->pid;
    int slot = p->slot;
    int64_t lived = clock_mono_ms() - p->started_ms;
    proc_forget(m, p);
    master_store_release_worker(m, pid);
    master_agent_worker_dead(m, pid);
    if (!expected)
        restart_schedule(m, slot, lived);
}

void workers_reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct worker_proc *p = proc_find(m, pid);
        if (p != NULL)
            proc_died(m, p, status);
        else if (pid == m->agent.pid)
            master_agent_died(m, status);
    }
    workers_check_replaced(m);
    master_workers_changed(m);
}

void workers_signal(struct master *m, int signum, bool old_generations_only)
{
    for (size_t i = 0; i < m->proc_count; i++) {
        struct worker_proc *p = &m->procs[i];
        if (old_generations_only && p->generation == m->generation)
            continue;
        if ((signum == SIGHUP || signum == SIGQUIT) && p->state != PROC_DRAINING) {
            p->state = PROC_DRAINING;
            p->drain_started_ms = clock_mono_ms();
        }
        kill(p->pid, signum);
    }
}

size_t workers_alive(const struct master *m)
{
    return m->proc_count;
}

/* A reload completes once every new worker accepts: only then do the old ones drain. */
void workers_check_replaced(struct master *m)
{
    if (!m->replacing)
        return;
    size_t waiting = 0;
    for (size_t i = 0; i < m->proc_count; i++)
        if (m->procs[i].generation == m->generation && m->procs[i].state == PROC_STARTING)
            waiting++;
    if (waiting > 0)
        return;
    m->replacing = false;
    log_info("generation %u accepts; previous workers drain", m->generation);
    master_listeners_retire(m);
    workers_signal(m, SIGHUP, true);
    master_workers_changed(m);
}

void workers_free(struct master *m)
{
    while (m->proc_count > 0)
        proc_forget(m, &m->procs[0]);
    free(m->procs);
    m->procs = NULL;
    m->proc_cap = 0;
}
