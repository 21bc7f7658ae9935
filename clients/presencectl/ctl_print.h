/* ctl_print: presencectl's human-readable renderings of the admin endpoint's JSON answers. */
#ifndef PRESENCECTL_PRINT_H
#define PRESENCECTL_PRINT_H

#include <stdio.h>

struct json_object;

/* GET /status: the master, each worker, the totals and the store. */
void ctl_print_status(FILE *out, struct json_object *status);
/* GET /users/<email>: aggregate presence, devices, pending notifications, grants. */
void ctl_print_user(FILE *out, struct json_object *user);
/* GET /apps: one line per app. */
void ctl_print_apps(FILE *out, struct json_object *apps);
/* One app, as GET /apps/<appid> and the app commands answer; its API key when shown. */
void ctl_print_app(FILE *out, struct json_object *app);

/* Helpers on answers: a member's string ("" when absent), integer (0), boolean (0). */
const char *ctl_str(struct json_object *o, const char *key);
long long ctl_int(struct json_object *o, const char *key);
int ctl_bool(struct json_object *o, const char *key);

#endif
