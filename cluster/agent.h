/* agent: the node's cluster process — forked and supervised by the master like a worker, with
 * no listening socket: it registers the node's incarnation (epoch), heartbeats, keeps the
 * node's replica of the engine's records, declares dead nodes, cleans after dead incarnations,
 * watches its changefeeds, and fences the node when it cannot vouch for it (cluster/README.md). */
#ifndef PRESENCED_CLUSTER_AGENT_H
#define PRESENCED_CLUSTER_AGENT_H

#include "../common/config.h"

#include <sys/types.h>

/* Exit status of an agent whose configuration cannot join the cluster (another
 * cluster_shards than the cluster was made with): the master stops instead of restarting it. */
#define AGENT_EXIT_CONFIG 78

struct agent_start {
    const struct config *cfg;
    int ready_fd; /* one byte once the epoch is registered; then closed (-1: none) */
};

/* The signals an agent acts on; the master forks with them blocked. */
#define AGENT_SIGNALS SIGTERM, SIGINT, SIGQUIT, SIGUSR1

int agent_run(const struct agent_start *start);

#endif
