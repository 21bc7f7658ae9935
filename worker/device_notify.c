/* device_notify: live notifications to a device — everything pending right after it binds, in
 * one message, and each new one as another process mails it (SPEC.md §2). */
#include "device_session.h"

#include "../common/clock.h"
#include "../common/log.h"

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

static void batch_add(void *arg, const struct shm_notif_key *key, const char *json, size_t len)
{
    struct notify_batch *b = arg;
    if (b->failed)
        return;
    bool ok = text_add(b, b->key_count ? "," : NOTIFICATIONS_HEAD,
                       b->key_count ? 1 : sizeof NOTIFICATIONS_HEAD - 1) &&
              text_add(b, json, len) && key_add(b, key);
    b->failed = !ok;
}

/* Closes the JSON and gives text and keys to a message of s; frees what is left. */
static struct out_msg *batch_queue(struct worker *w, struct ws_session *s, struct notify_batch *b,
                                   bool held)
{
    struct out_msg *m = NULL;
    if (!b->failed && b->key_count > 0 && text_add(b, NOTIFICATIONS_TAIL, 2)) {
        if (held) {
            m = session_send_held(s, b->text, b->len, b->keys, b->key_count);
        } else {
            m = session_send_acked(s, b->text, b->len, b->keys, b->key_count);
        }
        if (m != NULL) /* held: what was pending at bind; otherwise sent as it came */
            m->delivery = held ? METER_PENDING : METER_LIVE;
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

void device_notify_written(struct worker *w, const struct out_msg *m)
{
    for (size_t i = 0; i < m->ack_count; i++) {
        /* Not found: another device of the user took it first, or it expired meanwhile. */
        if (shm_notif_delete(w->store, &m->acks[i]) == SHM_OK)
            w->info.meter.notifications_delivered++;
        meter_delivered(&w->info.meter, (enum meter_delivery)m->delivery,
                        shm_notif_key_queued_ms(&m->acks[i]));
    }
}

void device_notify_send(struct worker *w, struct ws_session *s, struct notify_batch *b)
{
    batch_queue(w, s, b, false);
    session_write_now(s);
}

struct out_msg *device_notify_hold(struct worker *w, struct ws_session *s, struct notify_batch *b)
{
    return batch_queue(w, s, b, true);
}

void device_notify_collect(struct worker *w, const char *email, struct notify_batch *b)
{
    memset(b, 0, sizeof *b);
    if (shm_notif_pending(w->store, email, clock_wall_ms(), batch_add, b) < 0)
        w->info.store_failures_total++;
}

void device_deliver(struct worker *w, const void *payload, size_t len)
{
    uint64_t conn_id;
    struct shm_notif_key key;
    const char *json;
    size_t json_len;
    if (shm_notif_delivery_decode(payload, len, &conn_id, &key, &json, &json_len) != 0)
        return;
    struct ws_session *s = u64map_get(&w->sessions_by_id, conn_id);
    /* Gone, or closing: the notification stays queued for the device's next connection. */
    if (s == NULL || s->email == NULL || s->close_code != 0)
        return;
    size_t email_len = strlen(s->email);
    if (key.len <= email_len || memcmp(key.bytes, s->email, email_len + 1) != 0)
        return;
    struct notify_batch b = { 0 };
    batch_add(&b, &key, json, json_len);
    device_notify_send(w, s, &b);
}
