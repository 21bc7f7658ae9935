/* agent_proc: the master's side of a cluster node's agent (cluster/agent.h) — forked after the
 * store is ready and before the workers, restarted with a back-off when it dies, told of every
 * worker that dies, stopped after the last worker. Nothing of the engine runs in the master. */
#include "master.h"

#include "child.h"

#include "../cluster/agent.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "../common/wake.h"
#include "../shm/mail.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define QUICK_DEATH_MS 5000
#define BACKOFF_BASE_MS 100
#define BACKOFF_MAX_MS 30000

/* Only the log and the ready pipe stay open: no listening socket, no admin socket, no event loop
 * of ours. A reload replaces workers; the agent reads nothing it changes (HUP ignored). */
static void child_prepare(pid_t master_pid, int keep_fd)
{
    static const int agent_signums[] = { AGENT_SIGNALS };
    master_child_begin(master_pid, agent_signums, sizeof agent_signums / sizeof agent_signums[0],
                       SIGHUP);
    const int keep[] = { log_fd(), keep_fd };
    master_child_fds_keep(keep, sizeof keep / sizeof keep[0]);
}

bool master_agent_ready(const struct master *m)
{
    return m->cfg.cluster == NULL || m->agent.ready;
}

static void ready_close(struct master *m)
{
    if (m->agent.ready_event != NULL)
        event_free(m->agent.ready_event);
    m->agent.ready_event = NULL;
    if (m->agent.ready_fd >= 0)
        close(m->agent.ready_fd);
    m->agent.ready_fd = -1;
}

/* The agent's byte: the epoch is registered. The first one starts the workers; an agent
 * restarted later finds them running. End of file: that agent died first (its successor
 * gets a pipe of its own). */
static void ready_heard(evutil_socket_t fd, short events, void *arg)
{
    struct master *m = arg;
    (void)events;
    char byte;
    ssize_t n = read(fd, &byte, 1);
    if (n < 0 && errno == EINTR)
        return;
    ready_close(m);
    if (n != 1 || m->agent.ready || m->state != MASTER_RUNNING)
        return;
    m->agent.ready = true;
    log_info("the node serves in the cluster: starting the workers");
    if (workers_spawn_generation(m) != 0)
        log_error("cannot start the workers");
}

int master_agent_spawn(struct master *m)
{
    if (m->cfg.cluster == NULL)
        return 0;
    ready_close(m);
    int ready[2] = { -1, -1 };
    if (!m->agent.ready && pipe2(ready, O_CLOEXEC) != 0) {
        log_error("cannot make the agent's ready pipe: %s", strerror(errno));
        return -1;
    }
    pid_t master_pid = getpid();
    pid_t pid = master_child_fork();
    if (pid < 0) {
        log_error("cannot start the cluster agent: fork: %s", strerror(errno));
        if (ready[0] >= 0) {
            close(ready[0]);
            close(ready[1]);
        }
        return -1;
    }
    if (pid == 0) {
        child_prepare(master_pid, ready[1]);
        struct agent_start start = { .cfg = &m->cfg, .ready_fd = ready[1] };
        exit(agent_run(&start));
    }
    if (ready[0] >= 0) {
        close(ready[1]);
        m->agent.ready_fd = ready[0];
        m->agent.ready_event = event_new(m->base, ready[0], EV_READ | EV_PERSIST, ready_heard, m);
        if (m->agent.ready_event == NULL || event_add(m->agent.ready_event, NULL) != 0) {
            log_error("cannot watch the agent's ready pipe");
            ready_close(m);
            return -1;
        }
    }
    m->agent.pid = pid;
    m->agent.started_ms = clock_mono_ms();
    m->agent.stop_sent = false;
    log_info("cluster agent started (pid %ld, node %s)", (long)pid, m->cfg.node_name);
    return 0;
}

static void restart_due(evutil_socket_t fd, short events, void *arg)
{
    struct master *m = arg;
    (void)fd;
    (void)events;
    if (m->state == MASTER_RUNNING && m->agent.pid == 0 && master_agent_spawn(m) != 0)
        master_agent_died(m, 0); /* fork failed: the back-off again */
}

void master_agent_died(struct master *m, int status)
{
    int64_t lived = clock_mono_ms() - m->agent.started_ms;
    pid_t pid = m->agent.pid;
    m->agent.pid = 0;
    if (pid != 0 && WIFEXITED(status) && WEXITSTATUS(status) == AGENT_EXIT_CONFIG) {
        log_error("the cluster agent cannot join with this configuration (see above): stopping");
        m->exit_code = 1;
        master_stop(m);
        return;
    }
    if (m->state != MASTER_RUNNING) {
        master_workers_changed(m);
        return;
    }
    if (pid != 0)
        log_error("cluster agent (pid %ld) ended (wait status %d); restarting", (long)pid, status);
    m->agent.quick_deaths = lived < QUICK_DEATH_MS ? m->agent.quick_deaths + 1 : 0;
    int64_t delay = 0;
    if (m->agent.quick_deaths > 1) {
        unsigned shift = m->agent.quick_deaths - 2 > 9 ? 9 : m->agent.quick_deaths - 2;
        delay = (int64_t)BACKOFF_BASE_MS << shift;
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
    }
    if (m->agent.timer == NULL && (m->agent.timer = evtimer_new(m->base, restart_due, m)) == NULL)
        return;
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };
    evtimer_add(m->agent.timer, &tv);
}

/* A worker of this node died: the agent tells the cluster, whose readers then count none of its
 * devices, and cleans its entries. */
void master_agent_worker_dead(struct master *m, pid_t worker)
{
    if (m->agent.pid == 0)
        return;
    struct shm_store *store = master_store_visit(m);
    if (store == NULL)
        return;
    unsigned char payload[4] = { (unsigned char)(worker >> 24), (unsigned char)(worker >> 16),
                                 (unsigned char)(worker >> 8), (unsigned char)worker };
    int rc = shm_mail_post(store, m->agent.pid, SHM_MAIL_WORKER_DEAD, payload, sizeof payload);
    if (rc == SHM_OK)
        rc = shm_batch_commit(store);
    shm_store_close(store);
    struct wake_bells bells;
    if (rc == SHM_OK && wake_init(&bells, m->cfg.data_dir) == 0)
        wake_ring(&bells, m->agent.pid);
}

/* After the last worker: the node leaves the cluster. */
void master_agent_stop(struct master *m, int signum)
{
    if (m->agent.timer != NULL)
        evtimer_del(m->agent.timer);
    if (m->agent.pid == 0 || (m->agent.stop_sent && signum != SIGKILL))
        return;
    m->agent.stop_sent = true;
    kill(m->agent.pid, signum);
}

void master_agent_free(struct master *m)
{
    ready_close(m);
    if (m->agent.timer != NULL)
        event_free(m->agent.timer);
    m->agent.timer = NULL;
}
