/* session: a WebSocket's life — the lws callback, reading (fragments, the frame tap's verdicts,
 * max_message_size, binary and UTF-8 checks), pings, errors, goodbye — for every channel, which
 * it reaches only through the session's struct channel (session.h). */
#include "session.h"

#include "keepalive.h"

#include "../../common/u64map.h"
#include "../../common/utf8.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void session_error_counted(struct worker *w, struct ws_session *s, uint16_t close_code)
{
    if (close_code != 0)
        session_close_after_send(s, close_code);
    else if (++s->errors > (uint64_t)w->cfg->abuse_limit)
        session_close_after_send(s, LWS_CLOSE_STATUS_POLICY_VIOLATION);
}

int session_retry_after_61(void)
{
    return SESSION_RETRY_61_MIN_S + (int)(random() % SESSION_RETRY_61_SPREAD_S);
}

/* errno 61 says when to come back (retry_after, seconds): given by the caller (the cluster's
 * claim), else jittered, so that devices sent off together do not come back together. */
static size_t error_reply_after(char *reply, size_t size, int number, const char *text,
                                int retry_after_s)
{
    if (number == 61 && retry_after_s <= 0)
        retry_after_s = session_retry_after_61();
    int n = number == 61 ? snprintf(reply, size,
                                    "{\"result\":\"KO\",\"errno\":%d,\"error\":\"%s\","
                                    "\"retry_after\":%d}",
                                    number, text, retry_after_s)
                         : snprintf(reply, size, "{\"result\":\"KO\",\"errno\":%d,\"error\":\"%s\"}",
                                    number, text);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static size_t error_reply(char *reply, size_t size, int number, const char *text)
{
    return error_reply_after(reply, size, number, text, 0);
}

void session_error(struct worker *w, struct ws_session *s, int number, const char *text,
                   uint16_t close_code)
{
    char reply[256];
    size_t n = error_reply(reply, sizeof reply, number, text);
    meter_error_reply(&w->info.meter, s->channel->meter, number);
    session_send(s, reply, n);
    session_error_counted(w, s, close_code);
}

void session_release_error(struct worker *w, struct ws_session *s, struct out_msg *m, int number,
                           const char *text, uint16_t close_code)
{
    char reply[SESSION_SMALL_CAP + 1];
    size_t n = error_reply(reply, sizeof reply, number, text);
    meter_error_reply(&w->info.meter, s->channel->meter, number);
    session_release(s, m, reply, n);
    session_error_counted(w, s, close_code);
}

void session_release_unavailable(struct worker *w, struct ws_session *s, struct out_msg *m,
                                 const char *text, int retry_after_s)
{
    char reply[SESSION_SMALL_CAP + 1];
    size_t n = error_reply_after(reply, sizeof reply, 61, text, retry_after_s);
    meter_error_reply(&w->info.meter, s->channel->meter, 61);
    session_release(s, m, reply, n);
    session_error_counted(w, s, LWS_CLOSE_STATUS_GOINGAWAY);
}

void session_slow_down(struct worker *w, struct ws_session *s, int retry_after_s)
{
    char reply[128];
    int n = snprintf(reply, sizeof reply,
                     "{\"result\":\"KO\",\"errno\":50,\"error\":\"slow down\","
                     "\"retry_after\":%d}",
                     retry_after_s);
    meter_error_reply(&w->info.meter, s->channel->meter, 50);
    session_send(s, reply, (size_t)n);
    session_error_counted(w, s, 0);
}

static void session_free(struct ws_session *s)
{
    session_out_free(s);
    free(s->rx);
    s->rx = NULL;
}

static bool message_final(struct lws *wsi)
{
    return lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
}

/* Collects a message that arrives in pieces into s->rx, up to max_message_size. */
static void fragment_add(struct worker *w, struct ws_session *s, const char *in, size_t len)
{
    if (!s->rx_too_big && s->rx_len + len > (size_t)w->cfg->max_message_size)
        s->rx_too_big = true;
    if (s->rx_too_big)
        return;
    if (s->rx_len + len + 1 > s->rx_cap) {
        /* lws hands a frame over in rx_buffer_size pieces: room for the rest of the frame at
         * once, since it is known. */
        size_t want = s->rx_len + len + lws_remaining_packet_payload(s->wsi) + 1;
        if (want > (size_t)w->cfg->max_message_size + 1)
            want = (size_t)w->cfg->max_message_size + 1; /* still >= rx_len + len + 1 */
        char *grown = realloc(s->rx, want);
        if (grown == NULL) {
            s->rx_too_big = true;
            return;
        }
        s->rx = grown;
        s->rx_cap = want;
    }
    memcpy(s->rx + s->rx_len, in, len);
    s->rx_len += len;
}

static void message_complete(struct worker *w, struct ws_session *s, const char *text, size_t len,
                             bool too_big)
{
    if (too_big || len > (size_t)w->cfg->max_message_size)
        session_error(w, s, 14, "message too large", LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
    else if (lws_frame_is_binary(s->wsi))
        session_error(w, s, 10, "binary frames are not accepted", 0);
    else if (!utf8_valid(text, len)) /* RFC 6455 §8.1: the connection fails */
        session_error(w, s, 10, "text is not valid UTF-8", LWS_CLOSE_STATUS_INVALID_PAYLOAD);
    else
        s->channel->on_message(w, s, text, len);
}

static struct ws_session *session_of_tap(struct ws_tap_link *link)
{
    return (struct ws_session *)((char *)link - offsetof(struct ws_session, tap));
}

/* The tap saw a header that lws will not report (ws_tap.h): acted on at lws's next callback for
 * the connection, which the tap's caller (lws, reading) is about to make or asks for here. */
static void frame_violation(struct ws_tap_link *link, enum ws_frame_verdict verdict)
{
    struct ws_session *s = session_of_tap(link);
    s->frame_verdict = (uint8_t)verdict;
    lws_callback_on_writable(s->wsi);
}

void session_frames_init(struct worker *w)
{
    ws_tap_start((uint64_t)w->cfg->max_message_size, frame_violation);
}

/* errno 14 and close 1009; what was reassembled of the message goes. */
static void message_too_large(struct worker *w, struct ws_session *s)
{
    free(s->rx);
    s->rx = NULL;
    s->rx_len = s->rx_cap = 0;
    session_error(w, s, 14, "message too large", LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
}

/* Closes for the violation the tap saw: a message announced over max_message_size gets errno
 * 14 and 1009 from its header alone, an unmasked frame (RFC 6455 §5.1) 1002. */
static void frame_verdict_act(struct worker *w, struct ws_session *s)
{
    enum ws_frame_verdict verdict = s->frame_verdict;
    s->frame_verdict = WS_FRAME_OK;
    if (s->close_code != 0)
        return;
    if (verdict == WS_FRAME_TOO_BIG)
        message_too_large(w, s);
    else
        session_close_after_send(s, LWS_CLOSE_STATUS_PROTOCOL_ERR);
}

static void receive(struct worker *w, struct ws_session *s, const char *in, size_t len)
{
    if (s->frame_verdict != WS_FRAME_OK)
        frame_verdict_act(w, s);
    /* A frame lws parsed from bytes read with the handshake, before the tap was attached:
     * the client did not wait for the server's answer (RFC 6455 §4.1), a protocol error. */
    if (s->tap.key != 0 && !s->tap.scan.seen)
        session_close_after_send(s, LWS_CLOSE_STATUS_PROTOCOL_ERR);
    if (s->close_code != 0)
        return;
    /* What lws says is still to come of this frame counts at once (the tap's verdict comes
     * earlier, from the header; this holds where there is no tap, as over HTTP/2). */
    if ((uint64_t)s->rx_len + len + lws_remaining_packet_payload(s->wsi) >
        (uint64_t)w->cfg->max_message_size) {
        message_too_large(w, s);
        return;
    }
    bool final = message_final(s->wsi);
    if (final && s->rx == NULL && !s->rx_too_big) {
        /* The usual case, a message in one piece: no copy. */
        message_complete(w, s, in, len, false);
        return;
    }
    fragment_add(w, s, in, len);
    if (!final)
        return;
    message_complete(w, s, s->rx, s->rx_len, s->rx_too_big);
    free(s->rx);
    s->rx = NULL;
    s->rx_len = s->rx_cap = 0;
    s->rx_too_big = false;
}

static struct ws_session *session_of_link(struct keepalive_link *link)
{
    return (struct ws_session *)((char *)link - offsetof(struct ws_session, alive));
}

static void keepalive_ping(struct keepalive_link *link, void *arg)
{
    (void)arg;
    struct ws_session *s = session_of_link(link);
    s->ping_due = true;
    session_write_now(s);
}

/* A dead peer: no close handshake, it would not be answered either. lws runs its timers after
 * I/O, so the cancel wakes it in case nothing else is happening. */
static void keepalive_drop(struct keepalive_link *link, void *arg)
{
    struct worker *w = arg;
    lws_set_timeout(session_of_link(link)->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    lws_cancel_service(w->lws);
}

int session_keepalive_init(struct worker *w)
{
    return keepalive_init(&w->keepalive, &w->loop, w->cfg->ping_interval_ms,
                          w->cfg->ping_timeout_ms, keepalive_ping, keepalive_drop, w);
}

/* Acts on what the tap saw, then writes a due ping, what is queued, or the close. */
static int writeable(struct worker *w, struct ws_session *s)
{
    if (s->frame_verdict != WS_FRAME_OK)
        frame_verdict_act(w, s);
    return session_writeable(w, s);
}

int session_established(struct worker *w, struct ws_session *s, struct lws *wsi,
                        const struct channel *channel)
{
    memset(s, 0, channel->session_size);
    s->kind = CONN_WEBSOCKET;
    s->channel = channel;
    s->wsi = wsi;
    s->conn_id = ++w->next_conn_id;
    list_init(&s->out);
    list_push_front(&w->sessions, &s->link);
    ws_tap_attach(wsi, &s->tap); /* not watched when it cannot be: lws's checks remain */
    keepalive_heard(&w->keepalive, &s->alive);
    if (u64map_put(&w->sessions_by_id, s->conn_id, s) != 0 || channel->on_open(w, s) != 0) {
        session_error(w, s, 61, "overloaded, reconnect later", LWS_CLOSE_STATUS_GOINGAWAY);
        return 0;
    }
    w->info.websockets++;
    /* A handshake a replaced worker had accepted is served like the WebSockets it holds;
     * only once it says goodbye do new ones get the goodbye too. */
    if (w->saying_goodbye)
        session_error(w, s, 61, "service shutting down, reconnect later",
                      LWS_CLOSE_STATUS_GOINGAWAY);
    return 0;
}

int session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    struct worker *w = worker_of(wsi);
    struct ws_session *s = user;
    switch (reason) {
    case LWS_CALLBACK_RECEIVE:
        /* A connection being closed is not kept by what it sends: one that takes nothing
         * (a slow consumer) is dropped by the keep-alive like a dead peer. */
        if (s->close_code == 0)
            keepalive_heard(&w->keepalive, &s->alive);
        receive(w, s, in, len);
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (s->close_code == 0)
            keepalive_heard(&w->keepalive, &s->alive);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return writeable(w, s);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* The answer to our close: the handshake is over. Otherwise lws answers it. */
        return s->close_sent ? -1 : 0;
    case LWS_CALLBACK_CLOSED:
        ws_tap_detach(&s->tap);
        /* A handshake refused is closed too, never having had a channel. */
        if (s->channel != NULL)
            s->channel->on_close(w, s);
        u64map_del(&w->sessions_by_id, s->conn_id);
        keepalive_forget(&s->alive);
        list_remove(&s->link);
        session_free(s);
        if (w->info.websockets > 0)
            w->info.websockets--;
        /* Draining ends with the last connection (acceptor_connection_closed, when lws destroys
         * it, after this). */
        return 0;
    default:
        return 0;
    }
}

struct ws_session *session_find(struct worker *w, uint64_t conn_id)
{
    return u64map_get(&w->sessions_by_id, conn_id);
}

void session_mail(struct worker *w, uint64_t conn_id, const struct conn_mail *mail)
{
    struct ws_session *s = session_find(w, conn_id);
    if (s != NULL && s->channel->on_mail != NULL)
        s->channel->on_mail(w, s, mail);
}

void session_stop_all(struct worker *w)
{
    struct list_link *pos;
    LIST_EACH(pos, &w->sessions) {
        struct ws_session *s = LIST_ENTRY(pos, struct ws_session, link);
        if (s->channel->on_stop != NULL)
            s->channel->on_stop(w, s);
    }
}

void session_goodbye_all(struct worker *w)
{
    struct list_link *pos;
    LIST_EACH(pos, &w->sessions) {
        struct ws_session *s = LIST_ENTRY(pos, struct ws_session, link);
        if (s->close_sent) {
            /* Waiting for a peer's close: the worker is going, it waits no more. */
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        session_error(w, s, 61, "service shutting down, reconnect later",
                      LWS_CLOSE_STATUS_GOINGAWAY);
    }
    lws_cancel_service(w->lws);
}
