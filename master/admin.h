/* admin: the master's HTTP endpoint on admin_listen — /status (JSON), /metrics (Prometheus),
 * /drain, and the routes of admin_users.c and admin_apps.c. Loopback only by default. */
#ifndef PRESENCED_ADMIN_H
#define PRESENCED_ADMIN_H

#include "../common/config.h"

struct master;
struct admin;

/* Binds admin_listen ("off" disables it). */
int admin_open(struct admin **out, struct master *m);
/* Rebinds when a reload changed admin_listen; the old socket stays if the new one fails. */
int admin_reconfigure(struct admin *admin, const struct config *old, const struct config *next);
void admin_free(struct admin *admin);

#endif
