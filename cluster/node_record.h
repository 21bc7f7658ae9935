/* node_record: a node's record in the engine (bucket pd_nodes, key = node_name) — its current
 * epoch (incarnation), alive or declared dead, and the workers of that epoch that died — as
 * JSON an operator can read with any NATS client. */
#ifndef PRESENCED_CLUSTER_NODE_RECORD_H
#define PRESENCED_CLUSTER_NODE_RECORD_H

#include "../common/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CL_NODE_DEAD_PIDS_MAX 64
#define CL_NODE_RECORD_MAX 2048

enum cl_node_state { CL_NODE_ALIVE = 0, CL_NODE_DEAD = 1 };

struct cl_node {
    char name[CONFIG_NODE_NAME_MAX + 1];
    uint64_t epoch;
    enum cl_node_state state;
    int64_t started_ms; /* wall ms the epoch registered */
    uint64_t beat;      /* counts the epoch's refreshes: a sign of life through the engine */
    uint32_t dead_pids[CL_NODE_DEAD_PIDS_MAX]; /* workers of this epoch that died */
    size_t dead_pid_count;
    char declared_by[CONFIG_NODE_NAME_MAX + 1]; /* who declared it dead ("" while alive) */
    int64_t declared_ms;
};

/* JSON into out (CL_NODE_RECORD_MAX suffices): the length, or -1. */
long cl_node_encode(const struct cl_node *node, char *out, size_t cap);
/* Reads what cl_node_encode wrote (unknown members ignored); -1 with *why on anything else. */
int cl_node_decode(const void *data, size_t len, const char *name, struct cl_node *out,
                   const char **why);

/* Whether (epoch, pid) is live by this record: the epoch is the record's, alive, and the pid is
 * not among its dead workers (pid 0 asks about the incarnation only). */
bool cl_node_live(const struct cl_node *node, uint64_t epoch, uint32_t pid);
/* Adds pid to the dead workers (no-op when there); -1 when the list is full. */
int cl_node_pid_add(struct cl_node *node, uint32_t pid);
void cl_node_pid_remove(struct cl_node *node, uint32_t pid);

/* A heartbeat on the core subject pd.hb: "<node> <epoch> <seq>" (epoch 0: not registered). */
#define CL_HEARTBEAT_MAX (CONFIG_NODE_NAME_MAX + 2 * 21 + 2)
int cl_heartbeat_encode(const char *node, uint64_t epoch, uint64_t seq, char *out, size_t cap);
/* Reads one: 0, or -1 on anything else (name out of node_name's set, numbers not decimal). */
int cl_heartbeat_parse(const void *data, size_t len, char name[CONFIG_NODE_NAME_MAX + 1],
                       uint64_t *epoch, uint64_t *seq);

#endif
