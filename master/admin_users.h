/* admin_users: the operator's view of one user on the admin endpoint — GET /users/<email>,
 * POST /users/<email>/notifications and POST /users/<email>/kick (SPEC.md §6). */
#ifndef PRESENCED_ADMIN_USERS_H
#define PRESENCED_ADMIN_USERS_H

#include <event2/http.h>

struct master;

/* Answers a request whose path starts with /users/. */
void admin_users_route(struct master *m, struct evhttp_request *req, const char *path);

#endif
