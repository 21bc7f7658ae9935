/* meter: what a process counts for the node-wide metrics of /metrics — latency histograms and
 * counters with bounded labels (channels, errnos, routes; never an e-mail, a PUID or an appid). */
#include "meter.h"

#include "clock.h"

#include <assert.h>
#include <string.h>

static_assert(sizeof(struct meter) % sizeof(uint64_t) == 0, "a meter is an array of counts");

const int meter_errnos[METER_ERRNOS] = { 10, 11, 12, 13, 14, 30, 31, 32, 33, 34,
                                         35, 40, 41, 42, 43, 50, 51, 52, 60, 61 };

static int errno_index(int number)
{
    for (int i = 0; i < METER_ERRNOS; i++)
        if (meter_errnos[i] == number)
            return i;
    return -1;
}

void meter_error_reply(struct meter *m, enum meter_channel channel, int number)
{
    int i = errno_index(number);
    /* Every errno sent is in the table; one that is not would be a bug, counted as 60. */
    m->error_replies[channel][i >= 0 ? i : errno_index(60)]++;
}

static int prefixed(const char *path, const char *prefix)
{
    return strncmp(path, prefix, strlen(prefix)) == 0;
}

/* /myapps/<appid>/status, the polling of SPEC.md §4. */
static int is_poll(const char *path)
{
    if (!prefixed(path, "/myapps/"))
        return 0;
    const char *slash = strchr(path + 8, '/');
    return slash != NULL && slash > path + 8 && strcmp(slash, "/status") == 0;
}

enum meter_route meter_route_of(const char *path)
{
    if (strcmp(path, "/") == 0)
        return METER_ROUTE_HOME;
    if (prefixed(path, "/__"))
        return strcmp(path, "/__heartbeat__") == 0 || strcmp(path, "/__lbheartbeat__") == 0 ||
                       strcmp(path, "/__version__") == 0
                   ? METER_ROUTE_HEALTH
                   : METER_ROUTE_OTHER;
    if (strcmp(path, "/login") == 0 || prefixed(path, "/login/") || strcmp(path, "/logout") == 0)
        return METER_ROUTE_SIGN_IN;
    if (strcmp(path, "/account") == 0 || strcmp(path, "/getApps") == 0 ||
        prefixed(path, "/revoke/"))
        return METER_ROUTE_ACCOUNT;
    if (prefixed(path, "/grant/"))
        return METER_ROUTE_GRANT;
    if (is_poll(path))
        return METER_ROUTE_POLL;
    if (strcmp(path, "/myapps") == 0 || prefixed(path, "/myapps/"))
        return METER_ROUTE_MYAPPS;
    if (strcmp(path, "/vapid") == 0)
        return METER_ROUTE_VAPID;
    return METER_ROUTE_OTHER;
}

void meter_http_done(struct meter *m, enum meter_route route, unsigned status, int64_t since_us)
{
    if (route >= METER_ROUTES)
        return;
    histogram_since(&m->http[route], since_us);
    if (status >= 200 && status < 600)
        m->http_responses[route][status / 100 - 2]++;
}

void meter_verified(struct meter *m, int token, int error, int cached, int64_t since_us)
{
    enum meter_outcome outcome = error == 0    ? (cached ? METER_CACHED : METER_VERIFIED)
                                 : error == 35 ? METER_UNAVAILABLE
                                               : METER_REFUSED;
    histogram_since(&m->verification[token ? METER_TOKEN : METER_ASSERTION][outcome], since_us);
}

void meter_delivered(struct meter *m, enum meter_delivery path, int64_t queued_wall_ms)
{
    /* The queue keeps the time a notification was queued in whole milliseconds (the sender may
     * be another process: a wall clock, not the monotonic one). */
    int64_t elapsed_ms = clock_wall_ms() - queued_wall_ms;
    histogram_observe(&m->delivery[path], elapsed_ms > 0 ? (uint64_t)elapsed_ms * 1000 : 0);
}

void meter_add(struct meter *into, const struct meter *from)
{
    uint64_t a[METER_WORDS], b[METER_WORDS];
    memcpy(a, into, sizeof a);
    memcpy(b, from, sizeof b);
    for (size_t i = 0; i < METER_WORDS; i++)
        a[i] += b[i];
    memcpy(into, a, sizeof a);
}

const char *meter_channel_name(enum meter_channel channel)
{
    return channel == METER_DEVICE ? "device" : "appservice";
}

const char *meter_credential_name(enum meter_credential credential)
{
    return credential == METER_TOKEN ? "token" : "assertion";
}

const char *meter_outcome_name(enum meter_outcome outcome)
{
    static const char *const names[METER_OUTCOMES] = { "cached", "verified", "refused",
                                                       "unavailable" };
    return names[outcome];
}

const char *meter_delivery_name(enum meter_delivery path)
{
    return path == METER_LIVE ? "live" : "pending";
}

const char *meter_source_name(enum meter_source source)
{
    return source == METER_FROM_APP ? "app" : "operator";
}

const char *meter_route_name(enum meter_route route)
{
    static const char *const names[METER_ROUTES] = { "home",    "health", "sign_in",
                                                     "account", "grant",  "myapps",
                                                     "poll",    "vapid",  "other" };
    return names[route];
}
