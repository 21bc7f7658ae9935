/* session_out: what a WebSocket session sends — its queue of messages, the flow control that
 * bounds it (max_output_buffer), and the writes to lws (SPEC.md, before §1).
 *
 * What is unsent, and so counted against max_output_buffer, is the queue here (but for its held
 * messages, which wait for the server: held_added) and the message lws still holds part of:
 * lws copies what the socket did
 * not take into its own buffer (lws_write returns as if all went out), and nothing is handed to
 * lws while it holds some, so its buffer never holds more than the rest of one message; that
 * whole message counts until lws says its buffer is empty. The kernel's socket buffer is not
 * counted: it is outside the process (net.ipv4.tcp_wmem bounds it), and what the kernel took is
 * written as far as the server can know. A message counts as written, and its notifications
 * leave the store's queue, once no byte of it is left with lws.
 *
 * Bulk output (the notifications pending when a device binds, an AppService's snapshot and its
 * missed changes) is made in pages as the queue drains (session_refill), so that a reader as
 * fast as the network is never a slow consumer whatever the size of the bulk. */
#include "session.h"

#include "../../common/log.h"

#include <stdlib.h>
#include <string.h>

/* Below this, bulk output may add a page (each at most half of max_output_buffer). */
#define LOW_WATER(w) ((size_t)(w)->cfg->max_output_buffer / 2)

/* lws's reason bit for "not read while its held replies are many" (lws-misc.h leaves bits 1-5
 * to the user; bit 0 is lws_rx_flow_control's boolean, which a channel uses meanwhile). */
#define RXFLOW_HELD (1 << 1)

size_t session_unsent(const struct ws_session *s)
{
    return s->out_bytes + s->sent.len;
}

size_t session_page_budget(const struct ws_session *s)
{
    /* Room for a page and the framing around it, within half of max_output_buffer. */
    return LOW_WATER(worker_of(s->wsi)) - 256;
}

static void missed_at(struct ws_session *s, int64_t event_ms)
{
    if (event_ms > 0 && (s->missed_ms == 0 || event_ms < s->missed_ms))
        s->missed_ms = event_ms;
}

/* Free small messages kept beyond this many go back to malloc. */
#define OUT_POOL_MAX 1024

/* Room for cap bytes of text: replies and errors (at most SESSION_SMALL_CAP) from the worker's
 * pool, so that a request and its reply allocate nothing. */
static struct out_msg *out_msg_alloc(struct worker *w, size_t cap)
{
    struct out_pool *pool = &w->out_pool;
    if (cap > SESSION_SMALL_CAP)
        return malloc(sizeof(struct out_msg) + LWS_PRE + cap);
    if (list_empty(&pool->free))
        return malloc(sizeof(struct out_msg) + LWS_PRE + SESSION_SMALL_CAP);
    struct list_link *link = pool->free.next;
    list_remove(link);
    pool->count--;
    return LIST_ENTRY(link, struct out_msg, link);
}

static void out_msg_free(struct worker *w, struct out_msg *m)
{
    struct out_pool *pool = &w->out_pool;
    free(m->acks);
    if (m->small && pool->count < OUT_POOL_MAX) {
        list_push_front(&pool->free, &m->link);
        pool->count++;
        return;
    }
    free(m);
}

void session_pool_free(struct worker *w)
{
    struct out_pool *pool = &w->out_pool;
    struct list_link *pos, *tmp;
    LIST_EACH_SAFE(pos, tmp, &pool->free) {
        list_remove(pos);
        free(LIST_ENTRY(pos, struct out_msg, link));
    }
    pool->count = 0;
}

/* What a message counts for in out_bytes: a held one keeps room for its text. */
static size_t out_msg_size(const struct out_msg *m)
{
    return m->held ? m->cap : m->len;
}

static struct out_msg *out_of(struct list_link *link)
{
    return LIST_ENTRY(link, struct out_msg, link);
}

/* The message at the head of the queue, or NULL. */
static struct out_msg *out_first(const struct ws_session *s)
{
    struct list_link *first = list_first(&s->out);
    return first != NULL ? out_of(first) : NULL;
}

/* Whether the queue has a message to write now: one at its head that is not held. */
static bool out_ready(const struct ws_session *s)
{
    const struct out_msg *m = out_first(s);
    return m != NULL && !m->held;
}

static void out_unlink(struct ws_session *s, struct out_msg *m)
{
    list_remove(&m->link);
    s->out_bytes -= out_msg_size(m);
    if (m->held)
        s->held_bytes -= m->cap;
}

/* Held replies wait for the server (a commit, the engine's answer), not for the peer: a client
 * that pipelines requests is not a slow consumer for them. Their room is bounded all the same:
 * past half of max_output_buffer the connection is not read (its requests wait in the socket,
 * then in the peer: TCP's flow control) until enough of them are answered. */
static void held_added(struct worker *w, struct ws_session *s, size_t cap)
{
    s->held_bytes += cap;
    if (!s->rx_held && s->held_bytes >= LOW_WATER(w)) {
        s->rx_held = true;
        lws_rx_flow_control(s->wsi, LWS_RXFLOW_REASON_APPLIES_DISABLE | RXFLOW_HELD);
    }
}

/* Read again once half of them are answered (not at each reply, around the mark). lws reads
 * what it had kept of the connection's input at its next turn, which the cancel brings. */
static void held_gone(struct ws_session *s)
{
    struct worker *w = worker_of(s->wsi);
    if (s->rx_held && s->held_bytes < LOW_WATER(w) / 2) {
        s->rx_held = false;
        lws_rx_flow_control(s->wsi, LWS_RXFLOW_REASON_APPLIES_ENABLE | RXFLOW_HELD);
        lws_cancel_service(w->lws);
    }
}

/* More than max_output_buffer would be waiting: the peer does not read (or not fast enough).
 * What is queued goes, unsent: its notifications stay in the store's queue for the next
 * connection, an AppService's missed changes are replayed to it (session_missed_since). The
 * close frame follows what lws holds, once the peer takes it; a peer that takes nothing is
 * dropped by the keep-alive (session.c), since nothing is heard from it meanwhile. Held
 * messages stay until their commit, then go too (session_release). */
static void slow_consumer(struct worker *w, struct ws_session *s)
{
    s->slow = true;
    w->info.meter.slow_consumers[s->channel->meter]++;
    log_info("a %s connection closed as a slow consumer: more than %lld bytes unsent",
             s->channel->name, (long long)w->cfg->max_output_buffer);
    struct list_link *pos, *tmp;
    LIST_EACH_SAFE(pos, tmp, &s->out) {
        struct out_msg *m = out_of(pos);
        if (m->held)
            continue;
        missed_at(s, m->event_ms);
        out_unlink(s, m);
        out_msg_free(worker_of(s->wsi), m);
    }
    if (s->close_code == 0)
        s->close_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
    lws_callback_on_writable(s->wsi);
}

/* Whether queueing cap more bytes makes a slow consumer: more than max_output_buffer waiting
 * for the peer, or held (where the connection cannot be left unread: over HTTP/2, lws does not
 * stop reading a stream). */
static bool over_buffer(struct worker *w, const struct ws_session *s, size_t cap, bool held)
{
    size_t waiting = held ? s->held_bytes : session_unsent(s) - s->held_bytes;
    return waiting + cap > (size_t)w->cfg->max_output_buffer;
}

static struct out_msg *out_append(struct ws_session *s, const char *text, size_t len, size_t cap,
                                  struct shm_notif_key *acks, size_t ack_count, int64_t event_ms,
                                  bool held)
{
    struct worker *w = worker_of(s->wsi);
    if (!s->slow && over_buffer(w, s, cap, held))
        slow_consumer(w, s);
    if (s->slow) {
        free(acks); /* not written: they stay queued in the store */
        missed_at(s, event_ms);
        return NULL;
    }
    struct out_msg *m = out_msg_alloc(w, cap);
    if (m == NULL) {
        /* Without memory for a reply the connection cannot keep its one-reply promise. */
        free(acks);
        missed_at(s, event_ms);
        s->close_code = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
        lws_callback_on_writable(s->wsi);
        return NULL;
    }
    *m = (struct out_msg){ .small = cap <= SESSION_SMALL_CAP,
                           .acks = acks,
                           .ack_count = ack_count,
                           .event_ms = event_ms,
                           .held = held,
                           .len = len,
                           .cap = cap };
    if (acks == NULL) { /* the first reply after a status update is read is its reply */
        m->reply_stamp = s->reply_stamp;
        s->reply_stamp = 0;
    }
    if (text != NULL)
        memcpy(m->buf + LWS_PRE, text, len);
    list_push_back(&s->out, &m->link);
    s->out_bytes += cap;
    if (held)
        held_added(w, s, cap);
    return m;
}

struct out_msg *session_send_acked(struct ws_session *s, const char *text, size_t len,
                                   struct shm_notif_key *acks, size_t ack_count)
{
    struct out_msg *m = out_append(s, text, len, len, acks, ack_count, 0, false);
    if (m != NULL)
        lws_callback_on_writable(s->wsi);
    return m;
}

void session_send(struct ws_session *s, const char *text, size_t len)
{
    session_send_acked(s, text, len, NULL, 0);
}

void session_send_event(struct ws_session *s, const char *text, size_t len, int64_t changed_ms)
{
    if (out_append(s, text, len, len, NULL, 0, changed_ms > 0 ? changed_ms : 1, false) != NULL)
        lws_callback_on_writable(s->wsi);
}

struct out_msg *session_hold(struct ws_session *s, size_t cap)
{
    return out_append(s, NULL, 0, cap, NULL, 0, 0, true);
}

struct out_msg *session_send_held(struct ws_session *s, const char *text, size_t len,
                                  struct shm_notif_key *acks, size_t ack_count)
{
    return out_append(s, text, len, len, acks, ack_count, 0, true);
}

void session_drop(struct ws_session *s, struct out_msg *m)
{
    if (!list_linked(&m->link))
        return;
    out_unlink(s, m);
    out_msg_free(worker_of(s->wsi), m);
    held_gone(s);
    lws_callback_on_writable(s->wsi);
}

void session_release(struct ws_session *s, struct out_msg *m, const char *text, size_t len)
{
    if (s->slow) {
        session_drop(s, m); /* its notifications stay in the store */
        return;
    }
    s->out_bytes -= m->cap;
    s->held_bytes -= m->cap;
    if (text != NULL) {
        m->len = len < m->cap ? len : m->cap;
        memcpy(m->buf + LWS_PRE, text, m->len);
    }
    m->held = false;
    s->out_bytes += m->len;
    held_gone(s);
    session_write_now(s);
}

void session_close_after_send(struct ws_session *s, uint16_t code)
{
    if (s->close_code == 0)
        s->close_code = code;
    lws_callback_on_writable(s->wsi);
}

/* lws's buffer emptied: the last message given to it is written. */
static void sent_check(struct worker *w, struct ws_session *s)
{
    if (s->sent.len == 0 || lws_partial_buffered(s->wsi))
        return;
    if (s->sent.ack_count > 0 && s->channel->on_written != NULL)
        s->channel->on_written(w, s, s->sent.acks, s->sent.ack_count, s->sent.delivery);
    free(s->sent.acks);
    s->sent = (struct out_sent){ 0 };
}

/* lws 4.1 on libuv drops the connection without the close frame lws_close_reason() prepared,
 * so the frame is written here (code, no reason text). The header keeps LWS_WRITE_CLOSE
 * private; its value is the gap left at 4 in lws_write_protocol. */
#define WS_WRITE_CLOSE ((enum lws_write_protocol)4)
/* How long the peer has to answer the close (RFC 6455 §7.1.1) before the connection goes. */
#define CLOSE_ACK_SECONDS 5

/* Codes that fail the connection (RFC 6455 §7.1.7): what the peer sends next cannot be read
 * as frames (a frame cut short, an unmasked one), or need not be. */
static bool close_fails(uint16_t code)
{
    return code == LWS_CLOSE_STATUS_PROTOCOL_ERR || code == LWS_CLOSE_STATUS_INVALID_PAYLOAD ||
           code == LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
}

/* The close frame. A failed connection is dropped at once, and so is every connection of a
 * worker saying goodbye (its drain has a deadline); otherwise the connection waits for the
 * peer's close (session_callback), reading and dropping what still comes: closed with input
 * unread, the socket would answer the peer with a reset, and a reset discards what the peer
 * had not read yet — the close frame among it. */
static int close_frame_send(struct worker *w, struct ws_session *s)
{
    unsigned char frame[LWS_PRE + 2];
    frame[LWS_PRE] = (unsigned char)(s->close_code >> 8);
    frame[LWS_PRE + 1] = (unsigned char)(s->close_code & 0xff);
    if (lws_write(s->wsi, frame + LWS_PRE, 2, WS_WRITE_CLOSE) < 0 ||
        close_fails(s->close_code) || w->saying_goodbye)
        return -1;
    s->close_sent = true;
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_ACK, CLOSE_ACK_SECONDS);
    return 0;
}

/* lws reports a pong only when its ping carried a payload. */
static int ping_write(struct ws_session *s)
{
    unsigned char frame[LWS_PRE + 1];
    frame[LWS_PRE] = 'p';
    s->ping_due = false;
    return lws_write(s->wsi, frame + LWS_PRE, 1, LWS_WRITE_PING) < 0 ? -1 : 0;
}

/* Writes the message at the head of the queue; its notifications leave the store's queue once
 * lws holds nothing of it. */
static int out_head_write(struct worker *w, struct ws_session *s)
{
    struct out_msg *m = out_first(s);
    out_unlink(s, m);
    int n = lws_write(s->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    if (n < 0) {
        missed_at(s, m->event_ms);
        out_msg_free(w, m);
        return -1; /* lws closes the connection; the notifications stay queued */
    }
    if (m->reply_stamp != 0 && s->channel->on_replied != NULL)
        s->channel->on_replied(w, m->reply_stamp);
    s->sent = (struct out_sent){ .acks = m->acks,
                                 .event_ms = m->event_ms,
                                 .len = (uint32_t)m->len,
                                 .ack_count = (uint32_t)m->ack_count,
                                 .delivery = m->delivery };
    m->acks = NULL;
    out_msg_free(w, m);
    sent_check(w, s);
    return 0;
}

/* Something is left for a WRITEABLE callback: a message that is not held, a ping, a close. */
static bool writeable_wanted(const struct ws_session *s)
{
    return out_ready(s) || s->ping_due || (s->close_code != 0 && !s->close_sent);
}

/* More of the bulk output, while the queue is low: whether anything was queued. */
static bool session_refill(struct worker *w, struct ws_session *s)
{
    if (s->close_code != 0 || s->slow || session_unsent(s) >= LOW_WATER(w))
        return false;
    return s->channel->on_drain != NULL && s->channel->on_drain(w, s);
}

void session_write_now(struct ws_session *s)
{
    struct worker *w = worker_of(s->wsi);
    sent_check(w, s);
    if (s->ping_due && s->close_code == 0 && !lws_partial_buffered(s->wsi) && ping_write(s) != 0)
        return; /* lws closes the connection */
    /* A write the socket did not take whole is buffered by lws: the rest waits for it. */
    do {
        while (out_ready(s) && !s->ping_due && s->close_code == 0 && !lws_partial_buffered(s->wsi))
            if (out_head_write(w, s) != 0)
                return;
    } while (!lws_partial_buffered(s->wsi) && session_refill(w, s));
    if (writeable_wanted(s))
        lws_callback_on_writable(s->wsi);
}

/* As much as the socket takes: one message per callback would let a client that sends
 * requests faster than one a turn see its answers pile up here. */
int session_writeable(struct worker *w, struct ws_session *s)
{
    sent_check(w, s);
    if (s->close_sent)
        return 0;
    if (s->ping_due && s->close_code == 0 && ping_write(s) != 0)
        return -1;
    do {
        while (out_ready(s) && !lws_partial_buffered(s->wsi))
            if (out_head_write(w, s) != 0)
                return -1;
    } while (list_empty(&s->out) && !lws_partial_buffered(s->wsi) && session_refill(w, s));
    if (!list_empty(&s->out) && !out_ready(s))
        return 0; /* released after the commit, which comes before the loop sleeps */
    if (list_empty(&s->out) && s->close_code != 0 && !lws_partial_buffered(s->wsi))
        return close_frame_send(w, s);
    if (writeable_wanted(s))
        lws_callback_on_writable(s->wsi);
    return 0;
}

bool session_out_has_ack(const struct ws_session *s, const struct shm_notif_key *key)
{
    for (size_t i = 0; i < s->sent.ack_count; i++)
        if (s->sent.acks[i].len == key->len &&
            memcmp(s->sent.acks[i].bytes, key->bytes, key->len) == 0)
            return true;
    const struct list_link *pos;
    LIST_EACH(pos, &s->out) {
        const struct out_msg *m = LIST_ENTRY(pos, struct out_msg, link);
        for (size_t i = 0; i < m->ack_count; i++)
            if (m->acks[i].len == key->len && memcmp(m->acks[i].bytes, key->bytes, key->len) == 0)
                return true;
    }
    return false;
}

int64_t session_missed_since(const struct ws_session *s)
{
    int64_t since = s->missed_ms;
    if (s->sent.len > 0 && s->sent.event_ms > 0 && (since == 0 || s->sent.event_ms < since))
        since = s->sent.event_ms;
    const struct list_link *pos;
    LIST_EACH(pos, &s->out) {
        const struct out_msg *m = LIST_ENTRY(pos, struct out_msg, link);
        if (m->event_ms > 0 && (since == 0 || m->event_ms < since))
            since = m->event_ms;
    }
    return since;
}

void session_out_free(struct ws_session *s)
{
    if (s->out.next == NULL)
        return; /* never established: lws closes a refused handshake too */
    struct list_link *pos, *tmp;
    LIST_EACH_SAFE(pos, tmp, &s->out) {
        list_remove(pos);
        out_msg_free(worker_of(s->wsi), out_of(pos));
    }
    s->out_bytes = s->held_bytes = 0;
    free(s->sent.acks); /* lws did not write all of it: its notifications stay queued */
    s->sent = (struct out_sent){ 0 };
}
