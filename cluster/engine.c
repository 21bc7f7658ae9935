/* engine: one connection to the cluster's engine (NATS, cnats 3.4) driven by a libuv loop —
 * publishes, requests with a reply inbox and a deadline, subscriptions — where no call ever
 * waits for the engine.
 *
 * cnats is the maintained C client of NATS (Debian's libnats 3.4): it does the protocol,
 * reconnection over the server list and the buffering while disconnected. What it cannot do on
 * an event loop is wait: each of its calls that waits for a reply blocks the calling thread,
 * and the reply can only be read by that same thread — on a loop thread, a deadlock until the
 * timeout (measured, research/scale-out.md §3.1). So nothing here waits: a request is a publish
 * with a reply subject under this process's inbox, and every message — replies and
 * subscriptions alike — lands in cnats *sync* subscriptions that a uv_check handle drains with
 * natsSubscription_NextMsg(…, 0), which never blocks. The socket is read by cnats on this loop
 * (its libuv adapter, engine_uv.c), so nothing of ours runs on a cnats thread except the
 * connection-event handlers, which only set a flag and wake the loop (struct engine_bridge).
 * SendAsap is set: without it each publish waits ~1 ms for cnats's flusher. */
#include "engine.h"

#include "engine_uv.h"

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/u64map.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A check turn takes at most this many messages from one subscription; more wait for the next
 * turn (an idle handle keeps the loop from sleeping meanwhile). */
#define DRAIN_BATCH 512
#define CONNECT_TIMEOUT_MS 1000
#define RETRY_FIRST_MS 200
#define RETRY_MAX_MS 2000
#define INBOX_MAX 64
#define ENGINE_HANDLES 5 /* check, idle, deadlines, retry, async */

/* Connection events come on cnats threads, which may still run after engine_close: they reach
 * the loop only through this bridge, freed by whichever of the engine and the last connection
 * (its closed callback, cnats's last call) lets go last. */
struct engine_bridge {
    pthread_mutex_t lock;
    uv_async_t *async; /* NULL once the engine closed */
    atomic_uint pending; /* 1 << enum engine_event */
    atomic_uint slow_consumers;
    int refs;
};

struct request {
    uint64_t id;
    engine_reply_cb cb;
    void *arg;
    int64_t deadline_ms;         /* monotonic */
    int64_t sent_us;             /* histogram_now_us: the round trip's start */
    struct request *prev, *next; /* by deadline, earliest first */
};

struct engine_sub {
    natsSubscription *sub;
    engine_msg_cb cb;
    void *arg;
    struct engine_sub *prev, *next;
    bool dead; /* unsubscribed during a drain: freed after it */
};

struct engine {
    uv_loop_t *loop;
    natsOptions *opts;
    natsConnection *nc;
    char inbox[INBOX_MAX]; /* _INBOX.<nuid>: replies under .r.<id>, deliveries under .d.<n> */
    natsSubscription *replies;
    struct engine_sub *subs;
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t deadlines, retry;
    uv_async_t async;
    int handles_open;
    struct engine_bridge *bridge;
    struct u64map requests;
    struct request *first, *last;
    uint64_t next_id, next_inbox;
    int64_t retry_ms;
    bool connected, closing;
    char server[128];
    char *servers;
    engine_event_cb on_event;
    void *arg;
    struct engine_stats stats;
};

static void bridge_release(struct engine_bridge *b)
{
    pthread_mutex_lock(&b->lock);
    int left = --b->refs;
    pthread_mutex_unlock(&b->lock);
    if (left == 0) {
        pthread_mutex_destroy(&b->lock);
        free(b);
    }
}

static void bridge_hold(struct engine_bridge *b)
{
    pthread_mutex_lock(&b->lock);
    b->refs++;
    pthread_mutex_unlock(&b->lock);
}

static void bridge_raise(struct engine_bridge *b, enum engine_event event)
{
    atomic_fetch_or(&b->pending, 1u << event);
    pthread_mutex_lock(&b->lock);
    if (b->async != NULL)
        uv_async_send(b->async);
    pthread_mutex_unlock(&b->lock);
}

/* These four run on cnats threads. */
static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    bridge_raise(closure, ENGINE_EVENT_DISCONNECTED);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    bridge_raise(closure, ENGINE_EVENT_RECONNECTED);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    bridge_release(closure);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    struct engine_bridge *b = closure;
    if (err == NATS_SLOW_CONSUMER)
        atomic_fetch_add(&b->slow_consumers, 1);
}

/* ---- requests ---- */

static void deadlines_due(uv_timer_t *timer);

static void deadlines_rearm(struct engine *e)
{
    if (e->closing)
        return;
    if (e->first == NULL) {
        uv_timer_stop(&e->deadlines);
        return;
    }
    int64_t wait = e->first->deadline_ms - clock_mono_ms();
    uv_timer_start(&e->deadlines, deadlines_due, wait > 0 ? (uint64_t)wait : 0, 0);
}

static void request_unlink(struct engine *e, struct request *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        e->first = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        e->last = r->prev;
    u64map_del(&e->requests, r->id);
}

/* Most requests share a timeout, so the new one usually goes last: O(1). */
static void request_link(struct engine *e, struct request *r)
{
    struct request *after = e->last;
    while (after != NULL && after->deadline_ms > r->deadline_ms)
        after = after->prev;
    r->prev = after;
    r->next = after ? after->next : e->first;
    if (r->next != NULL)
        r->next->prev = r;
    else
        e->last = r;
    if (after != NULL)
        after->next = r;
    else
        e->first = r;
}

static void request_finish(struct engine *e, struct request *r, int status,
                           const struct engine_msg *msg)
{
    bool was_first = r == e->first;
    request_unlink(e, r);
    if (was_first)
        deadlines_rearm(e);
    r->cb(r->arg, status, msg);
    free(r);
}

static void deadlines_due(uv_timer_t *timer)
{
    struct engine *e = timer->data;
    int64_t now = clock_mono_ms();
    while (!e->closing && e->first != NULL && e->first->deadline_ms <= now) {
        e->stats.timeouts++;
        request_finish(e, e->first, ENGINE_TIMEOUT, NULL);
    }
    deadlines_rearm(e);
}

static natsStatus msg_make(natsMsg **out, const char *subject, const char *reply,
                           const struct engine_header *headers, size_t header_count,
                           const void *data, size_t len)
{
    natsStatus s = natsMsg_Create(out, subject, reply, data, (int)len);
    for (size_t i = 0; s == NATS_OK && i < header_count; i++)
        s = natsMsgHeader_Set(*out, headers[i].key, headers[i].value);
    if (s != NATS_OK && *out != NULL) {
        natsMsg_Destroy(*out);
        *out = NULL;
    }
    return s;
}

int engine_publish(struct engine *e, const char *subject, const char *reply,
                   const struct engine_header *headers, size_t header_count, const void *data,
                   size_t len)
{
    if (e->nc == NULL || e->closing)
        return ENGINE_FAILED;
    natsMsg *m = NULL;
    natsStatus s = msg_make(&m, subject, reply, headers, header_count, data, len);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(e->nc, m);
    natsMsg_Destroy(m);
    if (s != NATS_OK) {
        log_debug("engine: publish to %s: %s", subject, natsStatus_GetText(s));
        return ENGINE_FAILED;
    }
    e->stats.published++;
    return ENGINE_OK;
}

int engine_request(struct engine *e, const char *subject, const struct engine_header *headers,
                   size_t header_count, const void *data, size_t len, int64_t timeout_ms,
                   engine_reply_cb cb, void *arg, uint64_t *id)
{
    if (e->nc == NULL || e->closing)
        return ENGINE_FAILED;
    struct request *r = calloc(1, sizeof *r);
    if (r == NULL)
        return ENGINE_FAILED;
    *r = (struct request){ .id = ++e->next_id, .cb = cb, .arg = arg,
                           .deadline_ms = clock_mono_ms() + timeout_ms,
                           .sent_us = histogram_now_us() };
    char reply[INBOX_MAX + 32];
    snprintf(reply, sizeof reply, "%s.r.%llu", e->inbox, (unsigned long long)r->id);
    if (u64map_put(&e->requests, r->id, r) != 0 ||
        engine_publish(e, subject, reply, headers, header_count, data, len) != ENGINE_OK) {
        u64map_del(&e->requests, r->id);
        free(r);
        return ENGINE_FAILED;
    }
    bool first = e->first == NULL || r->deadline_ms < e->first->deadline_ms;
    request_link(e, r);
    if (first)
        deadlines_rearm(e);
    e->stats.requests++;
    if (id != NULL)
        *id = r->id;
    return ENGINE_OK;
}

void engine_request_cancel(struct engine *e, uint64_t id)
{
    struct request *r = u64map_get(&e->requests, id);
    if (r == NULL)
        return;
    bool was_first = r == e->first;
    request_unlink(e, r);
    free(r);
    if (was_first)
        deadlines_rearm(e);
}

size_t engine_requests_pending(const struct engine *e)
{
    return e->requests.count;
}

/* ---- messages ---- */

static void msg_view(natsMsg *m, struct engine_msg *out)
{
    out->subject = natsMsg_GetSubject(m);
    out->reply = natsMsg_GetReply(m);
    out->data = natsMsg_GetData(m);
    out->len = (size_t)natsMsg_GetDataLength(m);
    out->nats = m;
}

int engine_msg_header(const struct engine_msg *msg, const char *key, const char **value)
{
    return natsMsgHeader_Get(msg->nats, key, value) == NATS_OK && *value != NULL ? 1 : 0;
}

int engine_msg_status(const struct engine_msg *msg)
{
    const char *status;
    if (engine_msg_header(msg, "Status", &status) != 1)
        return 0;
    int n = atoi(status);
    return n >= 100 && n <= 999 ? n : 0;
}

/* A reply: <inbox>.r.<id>. */
static void reply_take(void *arg, natsMsg *m)
{
    struct engine *e = arg;
    struct engine_msg view;
    msg_view(m, &view);
    size_t prefix = strlen(e->inbox);
    if (strncmp(view.subject, e->inbox, prefix) != 0 || strncmp(view.subject + prefix, ".r.", 3))
        return;
    char *end;
    uint64_t id = strtoull(view.subject + prefix + 3, &end, 10);
    struct request *r = id != 0 && *end == '\0' ? u64map_get(&e->requests, id) : NULL;
    if (r == NULL)
        return; /* late (timed out or cancelled), or a second answer */
    histogram_since(&e->stats.round_trip, r->sent_us);
    if (engine_msg_status(&view) == 503 && view.len == 0) {
        e->stats.no_responders++;
        request_finish(e, r, ENGINE_NO_RESPONDERS, &view);
        return;
    }
    request_finish(e, r, ENGINE_OK, &view);
}

static void sub_take(void *arg, natsMsg *m)
{
    struct engine_sub *s = arg;
    if (s->dead)
        return;
    struct engine_msg view;
    msg_view(m, &view);
    s->cb(s->arg, &view);
}

/* Takes up to DRAIN_BATCH messages from sub: natsSubscription_NextMsg with timeout 0 never
 * waits. True when more may be waiting. */
static bool drain_one(struct engine *e, natsSubscription *sub, void (*take)(void *, natsMsg *),
                      void *arg)
{
    for (int i = 0; i < DRAIN_BATCH && !e->closing; i++) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 0) != NATS_OK || m == NULL)
            return false;
        take(arg, m);
        natsMsg_Destroy(m);
    }
    return !e->closing;
}

static void sub_free(struct engine *e, struct engine_sub *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        e->subs = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    natsSubscription_Destroy(s->sub);
    free(s);
}

static void idle_turn(uv_idle_t *idle)
{
    (void)idle;
}

static void drain_all(uv_check_t *check)
{
    struct engine *e = check->data;
    bool more = false;
    if (e->replies != NULL)
        more |= drain_one(e, e->replies, reply_take, e);
    for (struct engine_sub *s = e->subs; s != NULL && !e->closing; s = s->next)
        if (!s->dead)
            more |= drain_one(e, s->sub, sub_take, s);
    if (e->closing)
        return;
    for (struct engine_sub *s = e->subs, *next; s != NULL; s = next) {
        next = s->next;
        if (s->dead)
            sub_free(e, s);
    }
    /* An active idle handle makes the next poll return at once, so what is left is taken in
     * the next turn without starving the loop's other handles. */
    if (more)
        uv_idle_start(&e->idle, idle_turn);
    else
        uv_idle_stop(&e->idle);
}

int engine_subscribe(struct engine *e, const char *subject, engine_msg_cb cb, void *arg,
                     struct engine_sub **out)
{
    if (e->nc == NULL || e->closing)
        return ENGINE_FAILED;
    struct engine_sub *s = calloc(1, sizeof *s);
    if (s == NULL)
        return ENGINE_FAILED;
    s->cb = cb;
    s->arg = arg;
    natsStatus st = natsConnection_SubscribeSync(&s->sub, e->nc, subject);
    if (st == NATS_OK)
        st = natsSubscription_SetPendingLimits(s->sub, -1, -1);
    if (st != NATS_OK) {
        log_warning("engine: cannot subscribe to %s: %s", subject, natsStatus_GetText(st));
        natsSubscription_Destroy(s->sub);
        free(s);
        return ENGINE_FAILED;
    }
    s->next = e->subs;
    if (e->subs != NULL)
        e->subs->prev = s;
    e->subs = s;
    *out = s;
    return ENGINE_OK;
}

void engine_unsubscribe(struct engine *e, struct engine_sub *sub)
{
    if (sub == NULL)
        return;
    natsSubscription_Unsubscribe(sub->sub);
    sub->dead = true; /* freed by the next check turn: a drain may be running it now */
    (void)e;
}

void engine_inbox_subject(struct engine *e, char *out, size_t cap)
{
    snprintf(out, cap, "%s.d.%llu", e->inbox, (unsigned long long)++e->next_inbox);
}

/* ---- connection ---- */

static void events_take(uv_async_t *async)
{
    struct engine *e = async->data;
    if (e->closing)
        return;
    unsigned pending = atomic_exchange(&e->bridge->pending, 0);
    e->stats.slow_consumer_errors = atomic_load(&e->bridge->slow_consumers);
    if (e->closing || e->nc == NULL)
        return;
    if (pending & (1u << ENGINE_EVENT_DISCONNECTED)) {
        e->connected = false;
        e->stats.disconnects++;
        e->server[0] = '\0';
        log_warning("engine: disconnected; reconnecting");
        if (e->on_event)
            e->on_event(e->arg, ENGINE_EVENT_DISCONNECTED);
    }
    if ((pending & (1u << ENGINE_EVENT_RECONNECTED)) &&
        natsConnection_Status(e->nc) == NATS_CONN_STATUS_CONNECTED) {
        e->connected = true;
        e->stats.reconnects++;
        natsConnection_GetConnectedUrl(e->nc, e->server, sizeof e->server);
        log_notice("engine: reconnected to %s", e->server);
        if (e->on_event)
            e->on_event(e->arg, ENGINE_EVENT_RECONNECTED);
    }
}

/* The server list, split at commas (natsOptions_SetURL of cnats 3.4 takes one URL). */
static natsStatus servers_set(natsOptions *o, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    const char *urls[32];
    int count = 0;
    if (copy == NULL)
        return NATS_NO_MEMORY;
    for (char *url = strtok_r(copy, ",", &save); url != NULL && count < 32;
         url = strtok_r(NULL, ",", &save))
        urls[count++] = url;
    natsStatus s = count > 0 ? natsOptions_SetServers(o, urls, count) : NATS_INVALID_ARG;
    free(copy);
    return s;
}

static int options_make(struct engine *e, const struct engine_options *opt)
{
    natsOptions *o = NULL;
    if (natsOptions_Create(&o) != NATS_OK)
        return -1;
    e->opts = o;
    struct engine_bridge *b = e->bridge;
    if (servers_set(o, opt->servers) != NATS_OK ||
        natsOptions_SetName(o, opt->name) != NATS_OK ||
        natsOptions_SetSendAsap(o, true) != NATS_OK ||
        natsOptions_SetTimeout(o, CONNECT_TIMEOUT_MS) != NATS_OK ||
        natsOptions_SetMaxReconnect(o, -1) != NATS_OK ||
        natsOptions_SetReconnectWait(o, 250) != NATS_OK ||
        natsOptions_SetReconnectJitter(o, 250, 1000) != NATS_OK ||
        /* A server that stops answering is left after about 2 s (research §4.6). */
        natsOptions_SetPingInterval(o, 1000) != NATS_OK ||
        natsOptions_SetMaxPingsOut(o, 2) != NATS_OK ||
        natsOptions_SetReconnectBufSize(o, 32 * 1024 * 1024) != NATS_OK ||
        natsOptions_SetDisconnectedCB(o, on_disconnected, b) != NATS_OK ||
        natsOptions_SetReconnectedCB(o, on_reconnected, b) != NATS_OK ||
        natsOptions_SetClosedCB(o, on_closed, b) != NATS_OK ||
        natsOptions_SetErrorHandler(o, on_error, b) != NATS_OK ||
        engine_uv_options(o, e->loop) != NATS_OK)
        return -1;
    return 0;
}

static void connect_retry(uv_timer_t *timer);

static void connect_failed(struct engine *e, natsStatus s)
{
    if (e->retry_ms == 0)
        log_warning("engine: cannot connect to %s (%s); retrying", e->servers,
                    natsStatus_GetText(s));
    e->retry_ms = e->retry_ms == 0 ? RETRY_FIRST_MS : e->retry_ms * 2;
    if (e->retry_ms > RETRY_MAX_MS)
        e->retry_ms = RETRY_MAX_MS;
    uv_timer_start(&e->retry, connect_retry, (uint64_t)e->retry_ms, 0);
}

/* One attempt, on the loop: the libuv adapter must first attach from the loop's thread, so
 * cnats's own retry-on-failed-connect (which attaches from its thread) cannot be used. A
 * handshake on loopback takes a millisecond; CONNECT_TIMEOUT_MS bounds a server that accepts
 * and says nothing. Once connected, cnats reconnects by itself, for ever. */
static void connect_try(struct engine *e)
{
    natsConnection *nc = NULL;
    bridge_hold(e->bridge); /* the connection's reference, given back by its closed callback */
    natsStatus s = natsConnection_Connect(&nc, e->opts);
    if (s != NATS_OK) {
        bridge_release(e->bridge); /* a connection that never connected calls nothing */
        connect_failed(e, s);
        return;
    }
    char subject[INBOX_MAX + 8];
    snprintf(subject, sizeof subject, "%s.r.*", e->inbox);
    s = natsConnection_SubscribeSync(&e->replies, nc, subject);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(e->replies, -1, -1);
    if (s != NATS_OK) {
        natsSubscription_Destroy(e->replies);
        e->replies = NULL;
        natsConnection_Destroy(nc);
        connect_failed(e, s);
        return;
    }
    e->nc = nc;
    e->connected = true;
    e->retry_ms = 0;
    natsConnection_GetConnectedUrl(nc, e->server, sizeof e->server);
    log_info("engine: connected to %s", e->server);
    if (e->on_event)
        e->on_event(e->arg, ENGINE_EVENT_CONNECTED);
}

static void connect_retry(uv_timer_t *timer)
{
    struct engine *e = timer->data;
    if (!e->closing && e->nc == NULL)
        connect_try(e);
}

static void connect_first(uv_timer_t *timer)
{
    connect_retry(timer);
}

int engine_open(struct engine **out, const struct engine_options *opt, char *err, size_t errlen)
{
    struct engine *e = calloc(1, sizeof *e);
    struct engine_bridge *b = calloc(1, sizeof *b);
    natsInbox *inbox = NULL;
    if (e == NULL || b == NULL || pthread_mutex_init(&b->lock, NULL) != 0) {
        free(e);
        free(b);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    b->refs = 1;
    e->bridge = b;
    e->loop = opt->loop;
    e->on_event = opt->on_event;
    e->arg = opt->arg;
    e->servers = strdup(opt->servers);
    engine_uv_thread_init(opt->loop);
    if (e->servers == NULL || natsInbox_Create(&inbox) != NATS_OK ||
        options_make(e, opt) != 0) {
        snprintf(err, errlen, "cannot set up the engine client (cnats)");
        natsInbox_Destroy(inbox);
        natsOptions_Destroy(e->opts);
        free(e->servers);
        bridge_release(b);
        free(e);
        return -1;
    }
    snprintf(e->inbox, sizeof e->inbox, "%s", inbox);
    natsInbox_Destroy(inbox);
    uv_check_init(opt->loop, &e->check);
    uv_idle_init(opt->loop, &e->idle);
    uv_timer_init(opt->loop, &e->deadlines);
    uv_timer_init(opt->loop, &e->retry);
    uv_async_init(opt->loop, &e->async, events_take);
    e->check.data = e->idle.data = e->deadlines.data = e->retry.data = e->async.data = e;
    e->handles_open = ENGINE_HANDLES;
    b->async = &e->async;
    uv_check_start(&e->check, drain_all);
    /* The first attempt runs from the loop, never inside the caller. */
    uv_timer_start(&e->retry, connect_first, 0, 0);
    *out = e;
    return 0;
}

static void handle_closed(uv_handle_t *handle)
{
    struct engine *e = handle->data;
    if (--e->handles_open == 0) {
        u64map_free(&e->requests);
        free(e->servers);
        free(e);
    }
}

void engine_close(struct engine *e)
{
    if (e == NULL || e->closing)
        return;
    e->closing = true;
    pthread_mutex_lock(&e->bridge->lock);
    e->bridge->async = NULL;
    pthread_mutex_unlock(&e->bridge->lock);
    while (e->subs != NULL)
        sub_free(e, e->subs);
    natsSubscription_Destroy(e->replies);
    e->replies = NULL;
    if (e->nc != NULL) {
        natsConnection_Close(e->nc);
        natsConnection_Destroy(e->nc);
        e->nc = NULL;
    }
    natsOptions_Destroy(e->opts);
    e->opts = NULL;
    while (e->first != NULL) {
        struct request *r = e->first;
        request_unlink(e, r);
        r->cb(r->arg, ENGINE_CLOSED, NULL);
        free(r);
    }
    bridge_release(e->bridge);
    e->bridge = NULL;
    uv_close((uv_handle_t *)&e->check, handle_closed);
    uv_close((uv_handle_t *)&e->idle, handle_closed);
    uv_close((uv_handle_t *)&e->deadlines, handle_closed);
    uv_close((uv_handle_t *)&e->retry, handle_closed);
    uv_close((uv_handle_t *)&e->async, handle_closed);
}

bool engine_connected(const struct engine *e)
{
    return e->connected;
}

const char *engine_server(struct engine *e)
{
    return e->connected ? e->server : "";
}

void engine_stats(const struct engine *e, struct engine_stats *out)
{
    *out = e->stats;
}
