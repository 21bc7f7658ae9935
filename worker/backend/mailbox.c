/* mailbox: a worker's end of cross-process wake-ups on its node — its doorbell and its mail in
 * the store; what is for one of its connections is decoded and goes to backend_inbound. */
#include "local.h"

#include "../conn_mail.h"

#include "../../common/grow.h"
#include "../../common/log.h"
#include "../../shm/app_channel.h"
#include "../../shm/mail.h"
#include "../../shm/notif.h"

#include <stdlib.h>
#include <string.h>

/* A notification for a connection of this worker (SHM_MAIL_DELIVER). */
static void deliver(struct worker *w, const void *payload, size_t len)
{
    uint64_t conn_id;
    struct shm_notif_key key;
    struct conn_mail mail = { .kind = CONN_MAIL_DELIVER, .key = &key };
    if (shm_notif_delivery_decode(payload, len, &conn_id, &key, &mail.json, &mail.json_len) == 0)
        backend_inbound(w, conn_id, &mail);
}

/* A presence event for an AppService connection of this worker (SHM_MAIL_APP_EVENT). */
static void app_event(struct worker *w, const void *payload, size_t len)
{
    uint64_t conn_id;
    char puid[SHM_PUID_LEN + 1];
    struct conn_mail mail = { .kind = CONN_MAIL_APP_EVENT, .puid = puid };
    if (shm_app_event_decode(payload, len, &conn_id, puid, &mail.status, &mail.since_ms,
                             &mail.changed_ms) == 0)
        backend_inbound(w, conn_id, &mail);
}

static void mail_act(void *arg, int32_t sender, uint8_t type, const void *payload, size_t len)
{
    struct worker *w = arg;
    switch (type) {
    case SHM_MAIL_CLOSE_CONN:
        if (len == 8)
            backend_inbound(w, shm_mail_conn_id(payload),
                            &(struct conn_mail){ .kind = CONN_MAIL_SUPERSEDED });
        break;
    case SHM_MAIL_KICK_CONN:
        if (len == 8)
            backend_inbound(w, shm_mail_conn_id(payload),
                            &(struct conn_mail){ .kind = CONN_MAIL_KICKED });
        break;
    case SHM_MAIL_APP_CLOSE:
        if (len == 9)
            backend_inbound(w, shm_mail_conn_id(payload),
                            &(struct conn_mail){ .kind = CONN_MAIL_APP_CLOSED,
                                                 .number = ((const unsigned char *)payload)[8] });
        break;
    case SHM_MAIL_DELIVER:
        deliver(w, payload, len);
        break;
    case SHM_MAIL_APP_EVENT:
        app_event(w, payload, len);
        break;
    case SHM_MAIL_PUSH:
        push_sender_kick(w);
        break;
    case SHM_MAIL_CL_DONE:
        web_shared_done(w, payload, len);
        break;
    case SHM_MAIL_PING:
        mailbox_post(w, sender, SHM_MAIL_PONG, payload, len);
        break;
    default:
        log_debug("mail of type %u from %d ignored", type, sender);
        break;
    }
}

static void bell_rung(uv_poll_t *poll, int status, int events)
{
    struct worker *w = poll->data;
    (void)events;
    if (status < 0)
        return;
    wake_drain(&w->bells);
    /* Read without the write lock; deleted with the turn's other writes (local_batch.c). */
    if (shm_mail_read(w->store, w->info.pid, &w->inbox) < 0) {
        w->info.store_failures_total++;
        return;
    }
    if (w->inbox.count == 0)
        return;
    local_mail_forget_later(w, w->inbox.last_seq);
    shm_mail_each(&w->inbox, mail_act, w);
}

int mailbox_start(struct worker *w)
{
    if (wake_init(&w->bells, w->cfg->data_dir) != 0 || wake_listen(&w->bells, w->info.pid) < 0) {
        log_error("cannot open this worker's doorbell");
        return -1;
    }
    if (uv_poll_init(&w->loop, &w->bell_poll, w->bells.fd) != 0) {
        wake_close(&w->bells);
        return -1;
    }
    w->bell_poll.data = w;
    return uv_poll_start(&w->bell_poll, UV_READABLE, bell_rung) == 0 ? 0 : -1;
}

void mailbox_stop(struct worker *w)
{
    if (w->bells.fd < 0)
        return;
    uv_poll_stop(&w->bell_poll);
    uv_close((uv_handle_t *)&w->bell_poll, NULL);
    wake_close(&w->bells);
    shm_mail_inbox_free(&w->inbox);
}

int mailbox_ring_later(struct worker *w, pid_t target)
{
    for (size_t i = 0; i < w->ring_count; i++)
        if (w->rings[i] == target)
            return 0;
    if (grow_for((void **)&w->rings, &w->ring_cap, w->ring_count, sizeof *w->rings, 8) != 0)
        return -1;
    w->rings[w->ring_count++] = target;
    return 0;
}

int mailbox_post(struct worker *w, pid_t target, uint8_t type, const void *payload, size_t len)
{
    if (shm_mail_post(w->store, target, type, payload, len) != SHM_OK)
        return -1;
    return mailbox_ring_later(w, target);
}

void mailbox_after_commit(struct worker *w)
{
    /* Rung only now: the mail must be visible before the target looks. */
    for (size_t i = 0; i < w->ring_count; i++)
        wake_ring(&w->bells, w->rings[i]);
    w->ring_count = 0;
}
