/* appservice: the AppService Presence Channel (/myapps/<appid>, SPEC.md §5) — its table for the
 * session machinery. What the pages ask of AppService connections wherever they are (closing an
 * app's, telling a grant) is the backend's (backend/backend.h: app_close_all, app_event). */
#ifndef PRESENCED_APPSERVICE_H
#define PRESENCED_APPSERVICE_H

#include "../worker_internal.h"

#include <stdint.h>

struct channel;
extern const struct channel appservice_channel;

#endif
