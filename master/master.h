/* master: the supervising process — signals, worker processes, reloads, the admin endpoint. */
#ifndef PRESENCED_MASTER_H
#define PRESENCED_MASTER_H

#include "../common/addr.h"
#include "../common/config.h"
#include "../common/meter.h"
#include "../shm/store.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum proc_state { PROC_STARTING, PROC_READY, PROC_DRAINING };
enum master_state { MASTER_RUNNING, MASTER_QUITTING, MASTER_STOPPING };

struct worker_proc {
    pid_t pid;
    int slot;
    unsigned generation;
    enum proc_state state;
    int64_t started_ms; /* monotonic */
    int64_t started_wall_ms;
    int64_t drain_started_ms; /* monotonic; 0 while not draining */
    int ready_fd;             /* read end of the readiness pipe, -1 once read */
    struct event *ready_event;
};

struct slot_restart {
    unsigned quick_deaths; /* consecutive deaths soon after start: sets the back-off */
    struct event *timer;
};

/* The cluster agent (cluster/agent.h), when cluster is set. */
struct agent_proc {
    pid_t pid; /* 0 while none runs */
    int64_t started_ms;
    unsigned quick_deaths;
    bool stop_sent;
    struct event *timer;
    int ready_fd; /* the agent's ready pipe, read end; -1 when none */
    struct event *ready_event;
    bool ready; /* an agent registered the node's epoch: workers may run */
};

struct master {
    struct config cfg;
    const char *config_path;
    char start_dir[4096]; /* relative paths of the config, on reload too, are taken from here */
    bool foreground;
    int started_fd; /* daemon mode: the launcher waits for one byte here, -1 otherwise */
    struct event_base *base;
    struct event *signal_events[7];
    struct event *tick;
    struct event *deadline;
    struct admin *admin;
    enum master_state state;
    int64_t started_wall_ms;

    struct listen_addr addr;
    int *listen_fds; /* one per slot of the current generation */
    int slot_count;
    /* Sockets a reload retired (listen address changed, or fewer workers), kept until the new
     * generation accepts. */
    int *old_listen_fds;
    int old_slot_count;
    unsigned generation;
    bool replacing; /* a reload waits for its new workers to be ready */
    int64_t replace_started_ms;

    struct worker_proc *procs;
    size_t proc_count, proc_cap;
    struct slot_restart *restarts;
    int restart_slots;

    int64_t last_sync_ms, last_reader_check_ms, last_sweep_ms;
    /* Where the sweeps of expired assertions, notifications, web sessions and last seen stopped. */
    struct shm_sweep sweep_assertions, sweep_notifications, sweep_sessions, sweep_last_seen;
    uint64_t restarts_total, reloads_total, reload_failures_total;
    struct agent_proc agent;
    int exit_code;         /* of master_run once the loop ends (1: stopped for a fatal error) */
    struct meter meter;    /* the master's part of the node-wide metrics (operator notifications) */
    size_t push_wake_next; /* the worker slot master_push_wake tries first */
    int lock_fd;
};

/* Runs the master until it stops; returns the process exit code. */
int master_run(struct master *m);
/* Stops gracefully, as QUIT does (the admin endpoint's /drain too). */
void master_quit(struct master *m);

/* workers.c */
int workers_spawn_generation(struct master *m);
int workers_spawn(struct master *m, int slot);
void workers_reap(struct master *m);
void workers_signal(struct master *m, int signum, bool old_generations_only);
size_t workers_alive(const struct master *m);
void workers_check_replaced(struct master *m);
void workers_free(struct master *m);

/* agent_proc.c */
int master_agent_spawn(struct master *m);
void master_agent_died(struct master *m, int status);
void master_agent_worker_dead(struct master *m, pid_t worker);
void master_agent_stop(struct master *m, int signum);
void master_agent_free(struct master *m);
/* Whether workers may be started: always without cluster; once the first agent is ready with. */
bool master_agent_ready(const struct master *m);

/* cluster_status.c: the "cluster" member of /status (nothing without cluster). */
struct evbuffer;
void cluster_status_json(struct master *m, struct evbuffer *out);

/* master.c: stops now, as TERM does. */
void master_stop(struct master *m);
/* master.c: called by workers.c when the last worker is gone or a reload completes. */
void master_workers_changed(struct master *m);
/* master.c: a reload's new generation accepts; the master lets go of the sockets it retired,
 * before the old workers are told to drain. */
void master_listeners_retire(struct master *m);

/* store_tasks.c: the master opens the store only for a task and closes it before any fork. */
struct shm_store;
/* Opens the store for one task; the caller closes it before returning to the event loop. */
struct shm_store *master_store_visit(struct master *m);
int master_store_prepare(struct master *m);
void master_store_release_worker(struct master *m, pid_t pid);
void master_store_maintain(struct master *m);
/* Mails one ready worker, in the store's batch, that Web Push jobs are due (the master sends
 * none itself): returns its pid to ring after the commit, or 0 when no worker is ready. */
int32_t master_push_wake(struct master *m, struct shm_store *store);

#endif
