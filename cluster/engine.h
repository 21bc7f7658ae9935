/* engine: one connection to the cluster's engine (NATS, cnats 3.4) driven by a libuv loop —
 * publishes, requests with a reply inbox and a deadline, subscriptions — where no call ever
 * waits for the engine (cluster/README.md "The engine client"). */
#ifndef PRESENCED_CLUSTER_ENGINE_H
#define PRESENCED_CLUSTER_ENGINE_H

#include "../common/histogram.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct engine;
struct engine_sub;

/* A message as a callback sees it; valid during the callback only. */
struct engine_msg {
    const char *subject;
    const char *reply; /* NULL when none */
    const char *data;
    size_t len;
    void *nats; /* the natsMsg, for engine_msg_header */
};

enum engine_status {
    ENGINE_OK = 0,
    ENGINE_TIMEOUT = 1,       /* no answer by the deadline */
    ENGINE_NO_RESPONDERS = 2, /* nobody listens on the subject (503: JetStream not there) */
    ENGINE_CLOSED = 3,        /* the connection was closed while the request waited */
    ENGINE_FAILED = -1,       /* could not be sent (engine_last_error says why) */
};

enum engine_event {
    ENGINE_EVENT_CONNECTED,    /* the first connection, after engine_open or its retries */
    ENGINE_EVENT_DISCONNECTED, /* lost; cnats reconnects by itself, requests time out meanwhile */
    ENGINE_EVENT_RECONNECTED,
};

typedef void (*engine_reply_cb)(void *arg, int status, const struct engine_msg *msg);
typedef void (*engine_msg_cb)(void *arg, const struct engine_msg *msg);
typedef void (*engine_event_cb)(void *arg, enum engine_event event);

struct engine_options {
    uv_loop_t *loop;     /* the loop of the calling thread: every callback runs on it */
    const char *servers; /* "nats://h:p[,nats://h:p…]" (the cluster key) */
    const char *name;    /* the connection's name in the engine's monitoring */
    const char *inbox;   /* prefix of reply subjects: _INBOX.<inbox>.…; unique per process */
    engine_event_cb on_event;
    void *arg;
};

struct engine_header {
    const char *key, *value;
};

/* Starts connecting (an attempt at once, then every few hundred ms until one succeeds; each
 * attempt may hold the loop up to 1 s when a server accepts but does not answer). Must run
 * after fork: cnats starts threads. Returns 0, or -1 with err set. */
int engine_open(struct engine **out, const struct engine_options *opt, char *err, size_t errlen);
/* Closes the connection; pending requests get ENGINE_CLOSED. The loop then runs the handles'
 * close callbacks. */
void engine_close(struct engine *e);

bool engine_connected(const struct engine *e);
/* The server connected to ("" when none). */
const char *engine_server(struct engine *e);

/* Sends a message (reply may be NULL). ENGINE_OK or ENGINE_FAILED. Never waits: cnats queues
 * what it cannot write yet, also while reconnecting. */
int engine_publish(struct engine *e, const char *subject, const char *reply,
                   const struct engine_header *headers, size_t header_count, const void *data,
                   size_t len);

/* Sends a request; cb runs once with the answer, ENGINE_TIMEOUT after timeout_ms,
 * ENGINE_NO_RESPONDERS or ENGINE_CLOSED — never from inside this call. *id (may be NULL)
 * names it for engine_request_cancel. ENGINE_OK, or ENGINE_FAILED (cb will not run). */
int engine_request(struct engine *e, const char *subject, const struct engine_header *headers,
                   size_t header_count, const void *data, size_t len, int64_t timeout_ms,
                   engine_reply_cb cb, void *arg, uint64_t *id);
/* Forgets a pending request: its callback will not run. */
void engine_request_cancel(struct engine *e, uint64_t id);
size_t engine_requests_pending(const struct engine *e);

/* Subscribes; cb runs on the loop for each message. */
int engine_subscribe(struct engine *e, const char *subject, engine_msg_cb cb, void *arg,
                     struct engine_sub **out);
void engine_unsubscribe(struct engine *e, struct engine_sub *sub);

/* A header of a received message: 1 with *value set, 0 when absent. */
int engine_msg_header(const struct engine_msg *msg, const char *key, const char **value);
/* The status of a status message (100 heartbeat or flow control, 404, 408, 503 …), 0 otherwise. */
int engine_msg_status(const struct engine_msg *msg);

/* A subject no one else receives on, for a consumer's deliveries: _INBOX.<inbox>.d<n>. */
void engine_inbox_subject(struct engine *e, char *out, size_t cap);

struct engine_stats {
    uint64_t published, requests, timeouts, no_responders, disconnects, reconnects,
        slow_consumer_errors;
    struct histogram round_trip; /* a request sent to its reply read (timeouts not counted) */
};
void engine_stats(const struct engine *e, struct engine_stats *out);

#endif
