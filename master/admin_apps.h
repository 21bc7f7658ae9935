/* admin_apps: the operator's apps on the admin endpoint — list, provision (validated and active,
 * the API key shown once), enable, disable, rotate the key, delete (/apps, /apps/<appid>). */
#ifndef PRESENCED_ADMIN_APPS_H
#define PRESENCED_ADMIN_APPS_H

#include <event2/http.h>

struct master;

/* Answers a request whose path is /apps or starts with /apps/. */
void admin_apps_route(struct master *m, struct evhttp_request *req, const char *path);

#endif
