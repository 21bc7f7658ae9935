/* device: the Device Presence Channel (/presence) — one WebSocket per device (SPEC.md §2): its
 * table for the session machinery, what a message is, and what the channel does when the
 * connection opens, drains, closes or gets mail. */
#include "device_session.h"

#include "../backend/backend.h"
#include "../conn_mail.h"

#include "../../common/clock.h"
#include "../../common/histogram.h"

#include <stdlib.h>

struct device_session *device_find(struct worker *w, uint64_t conn_id)
{
    struct ws_session *s = session_find(w, conn_id);
    return s != NULL && s->channel == &device_channel ? SESSION_OF(s, struct device_session) : NULL;
}

static int device_open(struct worker *w, struct ws_session *ws)
{
    struct device_session *s = SESSION_OF(ws, struct device_session);
    if (!w->backend->serving(w))
        return -1; /* errno 61, close 1001: this node cannot vouch for the state it would serve */
    s->tokens = (float)w->cfg->status_burst;
    s->refill_ms = clock_mono_ms();
    return 0;
}

static void device_message(struct worker *w, struct ws_session *ws, const char *text, size_t len)
{
    struct device_session *s = SESSION_OF(ws, struct device_session);
    struct dev_msg msg;
    const char *error;
    w->info.ws_messages_total++;
    int number = dev_msg_parse(text, len, &msg, &error);
    if (number != 0) {
        session_error(w, ws, number, error, 0);
        return;
    }
    if (msg.kind == DEV_MSG_PING)
        session_send(ws, "{}", 2);
    else if (msg.kind == DEV_MSG_COMMAND)
        device_command_handle(w, s, &msg);
    else {
        ws->reply_stamp = histogram_stamp(); /* metered from here to its reply written */
        device_status_handle(w, s, &msg);
    }
    dev_msg_free(&msg);
}

static void device_close(struct worker *w, struct ws_session *ws)
{
    struct device_session *s = SESSION_OF(ws, struct device_session);
    device_auth_release(w, s);
    device_auth_abandon(s);
    free(s->email);
    free(s->device);
    s->email = s->device = NULL;
}

/* A backlog of pending notifications goes in pages, each once nothing is unsent, so that the
 * store's queue holds nothing the session is sending. */
static bool device_drain(struct worker *w, struct ws_session *ws)
{
    struct device_session *s = SESSION_OF(ws, struct device_session);
    return s->backlog && session_unsent(ws) == 0 && device_notify_refill(w, s);
}

static void device_replied(struct worker *w, uint32_t stamp)
{
    histogram_since_stamp(&w->info.meter.status_update, stamp);
}

static void device_mail(struct worker *w, struct ws_session *ws, const struct conn_mail *mail)
{
    struct device_session *s = SESSION_OF(ws, struct device_session);
    switch (mail->kind) {
    case CONN_MAIL_SUPERSEDED:
        /* The newer connection holds the record now: this one must not release it. */
        s->owner = false;
        session_error(w, ws, 52, "superseded by a newer connection", 4001);
        break;
    case CONN_MAIL_KICKED:
        if (ws->close_code == 0)
            session_error(w, ws, 61, "closed by the operator, reconnect later",
                          LWS_CLOSE_STATUS_GOINGAWAY);
        break;
    case CONN_MAIL_DELIVER:
        device_notify_deliver(w, s, mail);
        break;
    default:
        break; /* another channel's */
    }
}

/* The worker is exiting: a verification under way is dropped while identity still exists. */
static void device_stop(struct worker *w, struct ws_session *ws)
{
    (void)w;
    device_auth_abandon(SESSION_OF(ws, struct device_session));
}

const struct channel device_channel = {
    .name = "device",
    .meter = METER_DEVICE,
    .session_size = sizeof(struct device_session),
    .on_open = device_open,
    .on_message = device_message,
    .on_close = device_close,
    .on_drain = device_drain,
    .on_written = device_notify_written,
    .on_replied = device_replied,
    .on_mail = device_mail,
    .on_stop = device_stop,
};
