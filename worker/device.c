/* device: the Device Presence Channel (/presence) — one WebSocket per device (SPEC.md §2). */
#include "worker_internal.h"

#include "device_msg.h"
#include "identity.h"

#include "../common/log.h"
#include "../shm/conn.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out_msg {
    struct out_msg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes, then the text */
};

#define ASSERTION_TAG_LEN 16 /* of SHA-256: recognises the assertion a session was bound with */

/* The status update waiting for its assertion's verification; allocated only meanwhile. */
struct pending_update {
    struct identity_req *req; /* NULL once answered, or when answered at once */
    uint8_t status;
    unsigned char tag[ASSERTION_TAG_LEN];
    char device[SHM_DEVICE_MAX + 1];
    char email[SHM_EMAIL_MAX + 1];
};

struct ws_session {
    struct ws_session *next, *prev;
    struct lws *wsi;
    uint64_t conn_id;
    char *email;  /* the verified identity this connection is bound to; NULL before */
    char *device; /* bound with it */
    unsigned char tag[ASSERTION_TAG_LEN];
    struct pending_update *pending; /* reading is paused meanwhile, so replies keep their order */
    struct out_msg *out_head, *out_tail;
    char *rx; /* a message arriving in fragments; NULL between messages */
    size_t rx_len;
    bool rx_too_big;
    uint16_t close_code; /* close with this once the queue is written */
    uint32_t errors;
};

size_t device_session_size(void)
{
    return sizeof(struct ws_session);
}

static void session_send(struct ws_session *s, const char *text, size_t len)
{
    struct out_msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (m == NULL) {
        /* Without memory for a reply the connection cannot keep its one-reply promise. */
        s->close_code = LWS_CLOSE_STATUS_UNEXPECTED_CONDITION;
        lws_callback_on_writable(s->wsi);
        return;
    }
    m->next = NULL;
    m->len = len;
    memcpy(m->buf + LWS_PRE, text, len);
    if (s->out_tail != NULL)
        s->out_tail->next = m;
    else
        s->out_head = m;
    s->out_tail = m;
    lws_callback_on_writable(s->wsi);
}

static void session_close_after_send(struct ws_session *s, uint16_t code)
{
    if (s->close_code == 0)
        s->close_code = code;
    lws_callback_on_writable(s->wsi);
}

/* Sends {"result":"KO","errno":N,"error":"..."}; closes with close_code when non-zero. */
static void session_error(struct worker *w, struct ws_session *s, int number, const char *text,
                          uint16_t close_code)
{
    char reply[256];
    int n = snprintf(reply, sizeof reply, "{\"result\":\"KO\",\"errno\":%d,\"error\":\"%s\"}",
                     number, text);
    session_send(s, reply, (size_t)n);
    if (close_code != 0)
        session_close_after_send(s, close_code);
    else if (++s->errors > (uint64_t)w->cfg->abuse_limit)
        session_close_after_send(s, LWS_CLOSE_STATUS_POLICY_VIOLATION);
}

static void pending_end(struct ws_session *s)
{
    if (s->pending != NULL && s->pending->req != NULL)
        identity_cancel(s->pending->req);
    free(s->pending);
    s->pending = NULL;
}

static void assertion_tag(const char *assertion, unsigned char *tag)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)assertion, strlen(assertion), digest);
    memcpy(tag, digest, ASSERTION_TAG_LEN);
}

/* A status update of a bound connection: same e-mail, same device. */
static void status_apply(struct worker *w, struct ws_session *s, const char *email,
                         const char *device)
{
    if (strcmp(email, s->email) != 0)
        session_error(w, s, 31, "email does not match the identity of the connection",
                      LWS_CLOSE_STATUS_POLICY_VIOLATION);
    else if (strcmp(device, s->device) != 0)
        session_error(w, s, 11, "invalid field: device (a connection keeps its device)", 0);
    else
        session_send(s, "{\"result\":\"OK\"}", 15);
}

static void identity_error(struct worker *w, struct ws_session *s, const struct identity_result *r)
{
    char text[160];
    if (r->error == 34 && strncmp(r->why, "invalid assertion", 17) != 0 &&
        strncmp(r->why, "untrusted issuer", 16) != 0)
        snprintf(text, sizeof text, "invalid assertion: %s", r->why);
    else
        snprintf(text, sizeof text, "%s", r->why);
    session_error(w, s, r->error, text, 0);
}

static bool session_bind(struct ws_session *s, const struct pending_update *p)
{
    s->email = strdup(p->email);
    s->device = strdup(p->device);
    if (s->email != NULL && s->device != NULL)
        return true;
    free(s->email);
    free(s->device);
    s->email = s->device = NULL;
    return false;
}

static void verification_done(struct worker *w, struct ws_session *s,
                              const struct identity_result *r)
{
    const struct pending_update *p = s->pending;
    if (r->error != 0) {
        identity_error(w, s, r);
    } else if (strcmp(r->email, p->email) != 0 || (s->email && strcmp(s->email, r->email) != 0)) {
        session_error(w, s, 31, "email does not match the identity of the assertion",
                      LWS_CLOSE_STATUS_POLICY_VIOLATION);
    } else if (s->email != NULL) {
        memcpy(s->tag, p->tag, sizeof s->tag);
        status_apply(w, s, p->email, p->device);
    } else if (session_bind(s, p)) {
        /* The first verified update binds the connection to (e-mail, device). */
        memcpy(s->tag, p->tag, sizeof s->tag);
        session_send(s, "{\"result\":\"OK\"}", 15);
    } else {
        session_error(w, s, 60, "internal error", 0);
    }
    pending_end(s);
}

static void verification_answered(void *arg, const struct identity_result *r)
{
    struct ws_session *s = arg;
    s->pending->req = NULL;
    verification_done(worker_of(s->wsi), s, r);
    lws_rx_flow_control(s->wsi, 1);
}

static void verification_start(struct worker *w, struct ws_session *s, const struct dev_msg *msg,
                               const unsigned char *tag)
{
    struct pending_update *p = calloc(1, sizeof *p);
    if (p == NULL) {
        session_error(w, s, 60, "internal error", 0);
        return;
    }
    /* dev_msg_parse bounded both lengths. */
    snprintf(p->email, sizeof p->email, "%s", msg->email);
    snprintf(p->device, sizeof p->device, "%s", msg->device);
    p->status = msg->status;
    memcpy(p->tag, tag, sizeof p->tag);
    s->pending = p;
    struct identity_result result;
    int rc = identity_verify(w->identity, msg->assertion, strlen(msg->assertion), &result,
                             verification_answered, s, &p->req);
    if (rc == 0)
        verification_done(w, s, &result);
    else
        lws_rx_flow_control(s->wsi, 0);
}

static void status_handle(struct worker *w, struct ws_session *s, const struct dev_msg *msg)
{
    unsigned char tag[ASSERTION_TAG_LEN];
    if (msg->assertion == NULL) {
        if (s->email == NULL)
            session_error(w, s, 30, "authentication required", 0);
        else
            status_apply(w, s, msg->email, msg->device);
        return;
    }
    assertion_tag(msg->assertion, tag);
    if (s->email != NULL && memcmp(tag, s->tag, sizeof tag) == 0)
        status_apply(w, s, msg->email, msg->device); /* the same assertion: not verified again */
    else
        verification_start(w, s, msg, tag);
}

static void message_handle(struct worker *w, struct ws_session *s, const char *text, size_t len)
{
    struct dev_msg msg;
    const char *error;
    w->info.ws_messages_total++;
    int number = dev_msg_parse(text, len, &msg, &error);
    if (number != 0) {
        session_error(w, s, number, error, 0);
        return;
    }
    if (msg.kind == DEV_MSG_PING)
        session_send(s, "{}", 2);
    else
        status_handle(w, s, &msg);
    dev_msg_free(&msg);
}

static void session_list_add(struct worker *w, struct ws_session *s)
{
    s->prev = NULL;
    s->next = w->sessions;
    if (w->sessions != NULL)
        w->sessions->prev = s;
    w->sessions = s;
}

static void session_list_remove(struct worker *w, struct ws_session *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (w->sessions == s)
        w->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

static void session_free(struct ws_session *s)
{
    pending_end(s);
    free(s->email);
    free(s->device);
    s->email = s->device = NULL;
    for (struct out_msg *m = s->out_head, *next; m != NULL; m = next) {
        next = m->next;
        free(m);
    }
    s->out_head = s->out_tail = NULL;
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
    char *grown = realloc(s->rx, s->rx_len + len + 1);
    if (grown == NULL) {
        s->rx_too_big = true;
        return;
    }
    s->rx = grown;
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
    else
        message_handle(w, s, text, len);
}

static void receive(struct worker *w, struct ws_session *s, const char *in, size_t len)
{
    if (s->close_code != 0)
        return;
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
    s->rx_len = 0;
    s->rx_too_big = false;
}

/* lws 4.1 on libuv drops the connection without the close frame lws_close_reason() prepared,
 * so the frame is written here (code, no reason text) before the connection is dropped. The
 * header keeps LWS_WRITE_CLOSE private; its value is the gap left at 4 in lws_write_protocol. */
#define WS_WRITE_CLOSE ((enum lws_write_protocol)4)

static int close_frame_send(struct ws_session *s)
{
    unsigned char frame[LWS_PRE + 2];
    frame[LWS_PRE] = (unsigned char)(s->close_code >> 8);
    frame[LWS_PRE + 1] = (unsigned char)(s->close_code & 0xff);
    lws_write(s->wsi, frame + LWS_PRE, 2, WS_WRITE_CLOSE);
    return -1;
}

/* Writes one queued message per writable event, then the close when one is due. */
static int writeable(struct ws_session *s)
{
    struct out_msg *m = s->out_head;
    if (m != NULL) {
        s->out_head = m->next;
        if (s->out_head == NULL)
            s->out_tail = NULL;
        int n = lws_write(s->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        free(m);
        if (n < 0)
            return -1;
        if (s->out_head != NULL || s->close_code != 0)
            lws_callback_on_writable(s->wsi);
        return 0;
    }
    if (s->close_code != 0)
        return close_frame_send(s);
    return 0;
}

int device_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct worker *w = worker_of(wsi);
    struct ws_session *s = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(s, 0, sizeof *s);
        s->wsi = wsi;
        s->conn_id = ++w->next_conn_id;
        session_list_add(w, s);
        w->info.websockets++;
        if (w->draining)
            session_error(w, s, 61, "service shutting down, reconnect later",
                          LWS_CLOSE_STATUS_GOINGAWAY);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        receive(w, s, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return writeable(s);
    case LWS_CALLBACK_CLOSED:
        session_list_remove(w, s);
        session_free(s);
        if (w->info.websockets > 0)
            w->info.websockets--;
        worker_drain_check(w);
        return 0;
    default:
        return 0;
    }
}

void device_verifications_cancel(struct worker *w)
{
    for (struct ws_session *s = w->sessions; s != NULL; s = s->next)
        pending_end(s);
}

void device_drain_all(struct worker *w)
{
    for (struct ws_session *s = w->sessions; s != NULL; s = s->next)
        session_error(w, s, 61, "service shutting down, reconnect later",
                      LWS_CLOSE_STATUS_GOINGAWAY);
}

void device_supersede(struct worker *w, uint64_t conn_id)
{
    for (struct ws_session *s = w->sessions; s != NULL; s = s->next)
        if (s->conn_id == conn_id) {
            session_error(w, s, 52, "superseded by a newer connection", 4001);
            return;
        }
}
