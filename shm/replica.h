/* replica: what this node's agent last read from the cluster's engine — its own incarnation,
 * the nodes, the user records and their index by incarnation, and how far each changefeed got
 * (cluster/README.md). Written by the agent only; read by the master (/status) and workers. */
#ifndef PRESENCED_SHM_REPLICA_H
#define PRESENCED_SHM_REPLICA_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define SHM_CL_NAME_MAX 32
#define SHM_CL_SERVER_MAX 128
#define SHM_CL_USER_KEY_LEN 32

enum shm_cl_state {
    SHM_CL_STARTING = 0, /* no epoch registered yet */
    SHM_CL_SERVING = 1,  /* epoch registered, the node hears itself through the engine */
    SHM_CL_FENCED = 2,   /* cut off (or declared dead): serve nothing of the cluster's */
};

/* This node as its agent sees it (volatile: a new master is a new incarnation). */
struct shm_cl_self {
    uint64_t epoch;
    uint8_t state;      /* enum shm_cl_state */
    uint8_t connected;  /* to an engine server */
    int64_t heard_ms;   /* wall ms the agent last heard its own heartbeat through the engine */
    int64_t updated_ms; /* wall ms of this record */
    int32_t agent_pid;
    uint64_t fences;    /* times this node fenced itself since the master started */
    uint64_t declared;  /* deaths of other nodes this node declared */
    char server[SHM_CL_SERVER_MAX];
};
int shm_cl_self_put(struct shm_store *store, const struct shm_cl_self *self);
int shm_cl_self_get(struct shm_store *store, struct shm_cl_self *out);

/* A node's record as the engine holds it (JSON, cluster/node_record.c), its revision, and when
 * this node last heard it (heartbeat or record change). */
int shm_cl_node_put(struct shm_store *store, const char *name, uint64_t rev, int64_t heard_ms,
                    const void *json, size_t len);
typedef void (*shm_cl_node_cb)(void *arg, const char *name, uint64_t rev, int64_t heard_ms,
                               const char *json, size_t len);
int shm_cl_nodes(struct shm_store *store, shm_cl_node_cb cb, void *arg);

/* How far the changefeed of a stream got (its last applied sequence); 0 when never. */
int shm_cl_cursor_put(struct shm_store *store, const char *stream, uint64_t seq);
int shm_cl_cursor_get(struct shm_store *store, const char *stream, uint64_t *seq);

/* A user record by user key at revision rev (value NULL: the user has none). */
int shm_cl_user_put(struct shm_store *store, const char *user_key, uint64_t rev,
                    const void *value, size_t len);
/* SHM_NOT_FOUND when none; *value points into the store until the next write (copy it). */
int shm_cl_user_get(struct shm_store *store, const char *user_key, uint64_t *rev,
                    const void **value, size_t *len);

/* The index of user records by the incarnations (node, epoch, pid) their entries name. */
int shm_cl_incarnation_add(struct shm_store *store, const char *node, uint64_t epoch,
                           uint32_t pid, const char *user_key);
int shm_cl_incarnation_del(struct shm_store *store, const char *node, uint64_t epoch,
                           uint32_t pid, const char *user_key);
/* Calls cb for up to max user keys indexed under (node, epoch), every pid (or only pid when
 * not 0). Returns how many, or < 0. */
typedef void (*shm_cl_user_key_cb)(void *arg, uint32_t pid, const char *user_key);
int shm_cl_incarnation_walk(struct shm_store *store, const char *node, uint64_t epoch,
                            uint32_t pid, size_t max, shm_cl_user_key_cb cb, void *arg);

#endif
