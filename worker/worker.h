/* worker: one pre-forked process serving HTTP and WebSocket on its slot's listening socket. */
#ifndef PRESENCED_WORKER_H
#define PRESENCED_WORKER_H

#include "../common/config.h"

#include <signal.h>

struct worker_start {
    const struct config *cfg;
    int slot;
    unsigned generation;
    int listen_fd; /* the slot's SO_REUSEPORT socket, shared with the master */
    int ready_fd;  /* one byte is written here once the worker accepts; then closed */
};

/* The signals a worker acts on (QUIT, HUP, USR1 and the stop signals); the master forks with
 * them blocked, and the worker unblocks them once its handlers are in place, so a reload
 * that reaches a worker still starting drains it instead of killing it. */
#define WORKER_SIGNALS SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGHUP

/* Runs the worker until it is told to stop; returns the process exit code. */
int worker_run(const struct worker_start *start);

#endif
