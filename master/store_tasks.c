/* store_tasks: the master's short visits to the store — startup reset, flushes, dead workers. */
#include "master.h"

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/wake.h"
#include "../shm/app_away_shared.h"
#include "../shm/app_channel.h"
#include "../shm/assertion_cache.h"
#include "../shm/conn.h"
#include "../shm/mail.h"
#include "../shm/notif.h"
#include "../shm/web_session.h"
#include "../shm/outbox.h"
#include "../shm/presence.h"
#include "../shm/push_job.h"
#include "../shm/replica.h"
#include "../shm/store.h"
#include "../shm/worker_info.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define READER_CHECK_INTERVAL_MS 5000
/* Expired verified assertions, notifications and web sessions are dropped by a sweep that
 * examines SWEEP_SCAN records of each kind this often, going on next time where it stopped:
 * every worker waits while the master holds the store's write lock, so a visit is one short
 * transaction per kind however large the store is, never a walk of every record. */
#define SWEEP_INTERVAL_MS 1000
#define SWEEP_SCAN 1000

/* The master opens the environment per task and closes it before returning, so no MDB_env ever
 * crosses a fork(). An open costs a few system calls; tasks run about once a second. */
struct shm_store *master_store_visit(struct master *m)
{
    char err[512];
    struct shm_store *store;
    struct shm_store_options opt = {
        .dir = m->cfg.data_dir,
        .map_size = m->cfg.map_size,
        .max_map_size = m->cfg.max_map_size,
        .flush_each_commit = m->cfg.sync_interval_ms == 0,
    };
    if (shm_store_open(&store, &opt, err, sizeof err) != 0) {
        log_error("%s", err);
        return NULL;
    }
    if (m->cfg.cluster != NULL) /* the agent makes the admin's app writes in the engine */
        shm_outbox_enable(store, 0);
    return store;
}

static struct shm_presence_policy presence_policy(const struct master *m)
{
    return (struct shm_presence_policy){ m->cfg.offline_grace_ms, m->cfg.last_seen_ttl_ms };
}

/* Rings the workers mailed in a batch the master committed. */
static void rings_ring(struct master *m, const struct shm_rings *rings)
{
    struct wake_bells bells;
    if (rings->count > 0 && wake_init(&bells, m->cfg.data_dir) == 0)
        for (size_t i = 0; i < rings->count; i++)
            wake_ring(&bells, rings->pids[i]);
}

/* One master per store: a second one would clear the first one's connections. */
static int data_dir_lock(struct master *m)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/master.lock", m->cfg.data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_error("%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        log_error("%s: another presenced master uses this data_dir", path);
        close(fd);
        return -1;
    }
    m->lock_fd = fd;
    return 0;
}

int master_store_prepare(struct master *m)
{
    struct shm_store *store = master_store_visit(m);
    if (store == NULL)
        return -1;
    int rc = data_dir_lock(m);
    struct shm_presence_policy policy = presence_policy(m);
    /* The previous run's devices and AppService connections are gone: the devices count as
     * departed now (held for the grace, so a short restart shows no one offline) and the apps
     * as away, to hear what changed when they are back. */
    if (rc == 0 && (shm_presence_restart(store, &policy, clock_wall_ms()) != SHM_OK ||
                    shm_app_conns_restart(store, clock_wall_ms()) != SHM_OK ||
                    shm_batch_commit(store) != SHM_OK)) {
        log_error("%s: cannot hold the presence of the previous run's devices", m->cfg.data_dir);
        rc = -1;
    }
    if (rc == 0 && shm_store_reset_volatile(store) != SHM_OK) {
        log_error("%s: cannot clear the records of a previous run", m->cfg.data_dir);
        rc = -1;
    }
    shm_store_close(store);
    return rc;
}

/* A dead worker's last AppService connection of an app, on a cluster node: the node's share in
 * pd_appaway says "away since now", which the worker cannot say any more (other nodes would
 * take the app for open here, and replay nothing to its next connection); the agent, which
 * takes the outbox to the engine, is rung with the batch's other bells. */
struct app_gone {
    const struct master *m;
    struct shm_store *store;
    struct shm_cl_self self;
    int64_t now_ms;
    bool shared;
};

static void app_gone_share(void *arg, const char *appid)
{
    struct app_gone *g = arg;
    if (shm_app_away_share(g->store, appid, g->m->cfg.node_name, g->self.epoch, g->now_ms) ==
        SHM_OK)
        g->shared = true;
    else
        log_warning("cannot share that an app's connections on this node are gone");
}

void master_store_release_worker(struct master *m, pid_t pid)
{
    struct shm_store *store = master_store_visit(m);
    if (store == NULL)
        return;
    size_t released = 0;
    struct shm_rings rings = { .count = 0 };
    struct shm_presence_policy policy = presence_policy(m);
    shm_presence_release_worker(store, pid, &policy, clock_wall_ms(), &released,
                                shm_app_presence_changed, &rings);
    struct app_gone gone = { .m = m, .store = store, .now_ms = clock_wall_ms() };
    bool shares = m->cfg.cluster != NULL && shm_cl_self_get(store, &gone.self) == SHM_OK;
    shm_app_conn_release_worker(store, pid, gone.now_ms, shares ? app_gone_share : NULL, &gone);
    if (gone.shared && gone.self.agent_pid > 0 && rings.count < SHM_RINGS_MAX)
        rings.pids[rings.count++] = gone.self.agent_pid;
    shm_worker_info_retire(store, pid); /* what it published still counts in the totals */
    shm_mail_drop(store, pid);
    if (shm_batch_commit(store) == SHM_OK) {
        if (released > 0)
            log_info("released %zu connection(s) held by pid %ld", released, (long)pid);
        rings_ring(m, &rings);
    }
    shm_store_reader_check(store);
    shm_store_close(store);
}

/* Ends the offline_grace holds that are due and no worker ended: their worker died or exited,
 * or they are the previous run's. */
static void holds_end(struct master *m, struct shm_store *store, int64_t wall)
{
    struct shm_rings rings = { .count = 0 };
    struct shm_presence_policy policy = presence_policy(m);
    int64_t next;
    if (shm_presence_expire(store, &policy, wall, SWEEP_SCAN, shm_app_presence_changed, &rings,
                            &next) == SHM_OK &&
        shm_batch_commit(store) == SHM_OK)
        rings_ring(m, &rings);
}

int32_t master_push_wake(struct master *m, struct shm_store *store)
{
    /* One worker is enough: it takes every due job it has room for and looks again as its
     * requests finish. Which one rotates, so a busy worker is not always the one. */
    size_t count = m->proc_count;
    for (size_t i = 0; i < count; i++) {
        const struct worker_proc *p = &m->procs[(m->push_wake_next + i) % count];
        if (p->state != PROC_READY)
            continue;
        m->push_wake_next = (m->push_wake_next + i + 1) % count;
        return shm_mail_post(store, p->pid, SHM_MAIL_PUSH, "", 0) == SHM_OK ? p->pid : 0;
    }
    return 0;
}

/* Web Push jobs overdue by a second that no worker took (their worker died, or no worker was
 * ready when they were queued): a ready worker is told. */
static void pushes_overdue(struct master *m, struct shm_store *store, int64_t wall)
{
    int64_t due;
    if (m->cfg.vapid_key == NULL || shm_push_next_due(store, &due) != SHM_OK || due == 0 ||
        due > wall - 1000)
        return; /* without vapid_key the workers send nothing: the jobs wait for one */
    struct shm_rings rings = { .count = 0 };
    int32_t pid = master_push_wake(m, store);
    if (pid != 0 && shm_batch_commit(store) == SHM_OK) {
        rings.pids[rings.count++] = pid;
        rings_ring(m, &rings);
    }
}

/* One bounded step of each sweep, each in its own transaction. */
static void sweep_expired(struct master *m, struct shm_store *store)
{
    int64_t wall = clock_wall_ms();
    size_t assertions = 0, notifications = 0, sessions = 0, last_seen = 0;
    holds_end(m, store, wall);
    pushes_overdue(m, store, wall);
    if (shm_assertion_expire(store, wall, SWEEP_SCAN, &m->sweep_assertions, &assertions) !=
            SHM_OK ||
        shm_batch_commit(store) != SHM_OK)
        assertions = 0;
    if (shm_notif_expire(store, wall, SWEEP_SCAN, &m->sweep_notifications, &notifications) !=
            SHM_OK ||
        shm_batch_commit(store) != SHM_OK)
        notifications = 0;
    if (shm_web_session_expire(store, wall, SWEEP_SCAN, &m->sweep_sessions, &sessions) !=
            SHM_OK ||
        shm_batch_commit(store) != SHM_OK)
        sessions = 0;
    if (shm_presence_last_seen_expire(store, wall, SWEEP_SCAN, &m->sweep_last_seen, &last_seen) !=
            SHM_OK ||
        shm_batch_commit(store) != SHM_OK)
        last_seen = 0;
    if (assertions + notifications + sessions + last_seen > 0)
        log_debug("store: dropped %zu expired assertion(s), %zu notification(s), %zu web "
                  "session(s), %zu last seen",
                  assertions, notifications, sessions, last_seen);
}

void master_store_maintain(struct master *m)
{
    int64_t now = clock_mono_ms();
    bool sync_due = m->cfg.sync_interval_ms > 0 && now - m->last_sync_ms >= m->cfg.sync_interval_ms;
    bool check_due = now - m->last_reader_check_ms >= READER_CHECK_INTERVAL_MS;
    bool sweep_due = now - m->last_sweep_ms >= SWEEP_INTERVAL_MS;
    if (!sync_due && !check_due && !sweep_due)
        return;
    struct shm_store *store = master_store_visit(m);
    if (store == NULL)
        return;
    if (sweep_due) {
        sweep_expired(m, store);
        m->last_sweep_ms = now;
    }
    if (sync_due) {
        shm_store_sync(store);
        m->last_sync_ms = now;
    }
    if (check_due) {
        int dead = shm_store_reader_check(store);
        if (dead > 0)
            log_notice("store: freed %d reader slot(s) of dead processes", dead);
        m->last_reader_check_ms = now;
    }
    shm_store_close(store);
}
