/* device_notify: live notifications to a device — everything pending right after it binds, in
 * one message when it fits in a page (half of max_output_buffer) and in pages sent one after
 * the other as the device takes them otherwise, and each new one as another process mails it
 * (SPEC.md §2). */
#include "device_session.h"

#include "../backend/backend.h"
#include "../conn_mail.h"

#include "../../common/clock.h"
#include "../../common/log.h"

#include <stdlib.h>
#include <string.h>

#define NOTIFICATIONS_HEAD "{\"notifications\":["
#define NOTIFICATIONS_TAIL "]}"

static bool text_add(struct notify_batch *b, const char *text, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *grown = realloc(b->text, cap);
        if (grown == NULL)
            return false;
        b->text = grown;
        b->cap = cap;
    }
    memcpy(b->text + b->len, text, len);
    b->len += len;
    return true;
}

static bool key_add(struct notify_batch *b, const struct shm_notif_key *key)
{
    if (b->key_count == b->key_cap) {
        size_t cap = b->key_cap ? b->key_cap * 2 : 4;
        struct shm_notif_key *grown = realloc(b->keys, cap * sizeof *grown);
        if (grown == NULL)
            return false;
        b->keys = grown;
        b->key_cap = cap;
    }
    b->keys[b->key_count++] = *key;
    return true;
}

void device_notify_add(void *arg, const struct shm_notif_key *key, const char *json, size_t len)
{
    struct notify_batch *b = arg;
    if (b->failed)
        return;
    bool ok = text_add(b, b->key_count ? "," : NOTIFICATIONS_HEAD,
                       b->key_count ? 1 : sizeof NOTIFICATIONS_HEAD - 1) &&
              text_add(b, json, len) && key_add(b, key);
    b->failed = !ok;
}

/* Closes the JSON and gives text and keys to a message of s, of delivery (METER_LIVE: sent as
 * they came; METER_PENDING: waiting in the queue); frees what is left. */
static struct out_msg *batch_queue(struct worker *w, struct device_session *s,
                                   struct notify_batch *b, bool held, enum meter_delivery delivery)
{
    struct out_msg *m = NULL;
    if (!b->failed && b->key_count > 0 && text_add(b, NOTIFICATIONS_TAIL, 2)) {
        if (held) {
            m = session_send_held(&s->ws, b->text, b->len, b->keys, b->key_count);
        } else {
            m = session_send_acked(&s->ws, b->text, b->len, b->keys, b->key_count);
        }
        if (m != NULL)
            m->delivery = (uint8_t)delivery;
        b->keys = NULL;
    } else if (b->failed) {
        log_warning("out of memory: pending notifications stay queued");
        w->info.store_failures_total++;
    }
    free(b->text);
    free(b->keys);
    memset(b, 0, sizeof *b);
    return held ? m : NULL;
}

void device_notify_written(struct worker *w, struct ws_session *s, const struct shm_notif_key *acks,
                           size_t ack_count, uint8_t delivery)
{
    (void)s;
    for (size_t i = 0; i < ack_count; i++) {
        w->backend->delivered(w, &acks[i]);
        meter_delivered(&w->info.meter, (enum meter_delivery)delivery,
                        shm_notif_key_queued_ms(&acks[i]));
    }
}

void device_notify_discard(struct notify_batch *b)
{
    free(b->text);
    free(b->keys);
    memset(b, 0, sizeof *b);
}

void device_notify_send(struct worker *w, struct device_session *s, struct notify_batch *b)
{
    batch_queue(w, s, b, false, METER_LIVE);
    session_write_now(&s->ws);
}

struct out_msg *device_notify_hold(struct worker *w, struct device_session *s,
                                   struct notify_batch *b)
{
    return batch_queue(w, s, b, true, METER_PENDING);
}

bool device_notify_refill(struct worker *w, struct device_session *s)
{
    if (s->email == NULL || session_unsent(&s->ws) > 0) {
        s->backlog = false;
        return false;
    }
    struct notify_batch b = { 0 };
    if (w->backend->pending_page(w, s->email, session_page_budget(&s->ws), device_notify_add, &b,
                                 &b.more) != 0)
        b.more = false;
    /* Nothing left: what is sent from now on is mailed, and checked against the store. */
    s->backlog = b.more || b.failed;
    bool queued = b.key_count > 0 && !b.failed;
    batch_queue(w, s, &b, false, METER_PENDING);
    return queued;
}

void device_notify_deliver(struct worker *w, struct device_session *s, const struct conn_mail *mail)
{
    const struct shm_notif_key *key = mail->key;
    /* Not bound, or closing: the notification stays queued for the device's next connection. */
    if (s->email == NULL || s->ws.close_code != 0)
        return;
    size_t email_len = strlen(s->email);
    if (key->len <= email_len || memcmp(key->bytes, s->email, email_len + 1) != 0)
        return;
    /* After pages, the mail may be for one a page took (written: gone from the store; or being
     * sent). Before them, the binding's batch decided: mailed ones were not pending then. */
    if (s->paged && (!w->backend->pending_has(w, key) || session_out_has_ack(&s->ws, key)))
        return;
    struct notify_batch b = { 0 };
    device_notify_add(&b, key, mail->json, mail->json_len);
    device_notify_send(w, s, &b);
}
