/* fetch: HTTP(S) requests of a worker through libcurl's multi interface on the worker's libuv
 * loop, so that no request ever blocks it. */
#ifndef PRESENCED_FETCH_H
#define PRESENCED_FETCH_H

#include "../common/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct fetch_request {
    const char *url;
    const char *body; /* NULL: GET; else POSTed as content_type */
    const char *content_type;
    const void *bytes; /* instead of body: body_len bytes POSTed (0 is an empty POST) */
    size_t bytes_len;
    const char *const *headers; /* NULL, or more request headers ("Name: value"), NULL-ended */
    const char *authorization; /* NULL, or the Authorization header's value */
    int64_t timeout_ms; /* the whole request, connection included */
    size_t max_bytes;   /* a longer answer fails the request */
    bool https_only;
    bool public_only; /* refuse loopback, private and link-local addresses */
};

struct fetch_result {
    bool transport_ok; /* false: no HTTP answer (refused, timeout, TLS, too large) */
    bool too_large;    /* the answer went past max_bytes */
    long status;
    const char *body; /* NUL-terminated, len bytes; valid during the callback */
    size_t len;
    const char *content_type; /* the answer's Content-Type, NULL when none; as body */
    const char *error;        /* why transport_ok is false */
    bool not_public;          /* the host's only addresses were private, loopback... */
    int64_t retry_after_s;    /* the answer's Retry-After (seconds or a date), -1 when none */
};

typedef void (*fetch_done_cb)(void *arg, const struct fetch_result *result);

struct fetcher;
struct fetch;

/* One per worker, after fork: libcurl is initialised here, never in the master. */
int fetcher_init(struct fetcher **out, uv_loop_t *loop, const struct config *cfg);
/* Cancels what is in flight (no callback) and closes the libuv handles; the loop then runs
 * until they are closed, and fetcher_free releases the rest. */
void fetcher_stop(struct fetcher *f);
void fetcher_free(struct fetcher *f);

/* Starts a request; cb runs once on the loop, never from inside fetch_start. NULL when the
 * request cannot start (out of memory). */
struct fetch *fetch_start(struct fetcher *f, const struct fetch_request *req, fetch_done_cb cb,
                          void *arg);
/* Abandons a request: its callback will not run. */
void fetch_cancel(struct fetch *x);

#endif
