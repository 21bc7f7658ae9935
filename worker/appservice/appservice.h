/* appservice: the AppService Presence Channel (/myapps/<appid>, SPEC.md §5) — its table for the
 * session machinery, and what the pages and presence publication ask of AppService connections
 * wherever they are. */
#ifndef PRESENCED_APPSERVICE_H
#define PRESENCED_APPSERVICE_H

#include "../worker_internal.h"

#include <stdint.h>

struct channel;
extern const struct channel appservice_channel;

/* Closes, wherever they are, the open AppService connections of appid: the app was deactivated
 * (41), deleted (40) or given a new API key (42); close 1008. */
void appservice_close_app(struct worker *w, const char *appid, int number);
/* Tells the apps a user granted that the user's presence changed (mail + rings): status since
 * since_ms (wall ms; 0 when not known); only_appid (or NULL) limits it to one app. */
void appservice_publish(struct worker *w, const char *email, uint8_t status, int64_t since_ms,
                        const char *only_appid);

#endif
