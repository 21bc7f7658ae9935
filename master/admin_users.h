/* admin_users: the operator's view of one user on the admin endpoint — GET /users/<email>,
 * POST /users/<email>/notifications and POST /users/<email>/kick (SPEC.md §6). */
#ifndef PRESENCED_ADMIN_USERS_H
#define PRESENCED_ADMIN_USERS_H

#include <event2/http.h>

struct master;

/* Answers a request whose path starts with /users/. */
void admin_users_route(struct master *m, struct evhttp_request *req, const char *path);

/* admin_cluster_users.c: on a node of a cluster, the user's devices on every node (from the
 * replica) into the JSON array out, each with its node and whether it is alive. Returns how
 * many are alive, or -1. */
struct shm_store;
struct json_object;
int admin_cluster_devices(struct shm_store *store, const char *email, struct json_object *out);

#endif
