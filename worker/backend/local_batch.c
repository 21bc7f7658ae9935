/* local_batch: the local backend's writes of a loop turn that wait for the store's commit — the
 * status updates, AppService notifications, deletions of delivered notifications and of the
 * mail read this turn, stored all together just before it, and every answer that says OK only
 * once the batch holding its write is committed (claims, status updates, notifications).
 *
 * Why put the writes off: LMDB has one write lock for the node, and a worker held it from its
 * first write of a loop turn to the commit at the turn's end, through everything else the turn
 * did (reading sockets, parsing, writing replies), while every other worker that wanted to
 * write waited. Checked at once and stored at the end, an update keeps its place among the
 * replies (the channel holds its reply from the start) and the lock is held only while writing.
 * The arrays keep their size from one turn to the next: no allocation per update. */
#include "local.h"

#include "../../common/grow.h"
#include "../../shm/mail.h"
#include "../../shm/notif.h"
#include "../../shm/store.h"

#include <stdlib.h>
#include <string.h>

enum local_op_kind { OP_STATUS, OP_NOTIFY, OP_DELIVERED };

struct local_update {
    struct backend_done done; /* not for OP_DELIVERED */
    size_t email, device;     /* offsets in the batch's text: the e-mail; the device (status),
                                 the JSON (notify), the notification's key (delivered) */
    size_t len;               /* of the JSON or the key */
    int64_t expires_ms;       /* notify */
    uint64_t conn_id;
    uint8_t status;
    uint8_t kind;
};

/* At most this many writes between two commits: the node's write lock is held for one chunk
 * at a time, and the other processes take their turn between them. */
#define LOCAL_BATCH_CHUNK 128

/* The batch holding the waiters' writes is committed (or rolled back). Answering them writes to
 * the sockets, which may start the next batch, never add waiters to this one; those of the next
 * batch go in the other array meanwhile. */
static void waiters_committed(void *arg, int result)
{
    struct worker *w = arg;
    struct local_batch *b = &w->local_batch;
    /* The doorbells of the mail this batch holds go first: the other workers deliver while
     * this one writes its replies (a send each; tens of them after a busy turn), rather than
     * after them (after_commit then finds none left to ring). */
    if (result == SHM_OK)
        mailbox_after_commit(w);
    struct backend_done *list = b->waiters;
    size_t count = b->waiter_count, cap = b->waiter_cap;
    b->waiters = b->releasing;
    b->waiter_cap = b->releasing_cap;
    b->waiter_count = 0;
    b->releasing = NULL;
    b->releasing_cap = 0;
    b->waiting = false;
    for (size_t i = 0; i < count; i++)
        list[i].fn(list[i].arg, &list[i], result == SHM_OK ? 0 : 60);
    b->releasing = list;
    b->releasing_cap = cap;
}

int local_wait_commit(struct worker *w, const struct backend_done *done)
{
    struct local_batch *b = &w->local_batch;
    if (grow_for((void **)&b->waiters, &b->waiter_cap, b->waiter_count, sizeof *b->waiters, 64) !=
        0)
        return -1;
    if (!b->waiting) {
        if (shm_batch_on_commit(w->store, waiters_committed, w) != SHM_OK)
            return -1;
        b->waiting = true;
    }
    b->waiters[b->waiter_count++] = *done;
    return 0;
}

/* Copies len bytes of s, and a NUL, into the batch's text; its offset, or (size_t)-1 when out
 * of memory. */
static size_t text_keep_n(struct local_batch *b, const void *s, size_t n)
{
    size_t len = n + 1, at = b->text_len;
    if (at + len > b->text_cap) {
        size_t cap = b->text_cap ? b->text_cap : 1024;
        while (cap < at + len)
            cap *= 2;
        char *grown = realloc(b->text, cap);
        if (grown == NULL)
            return (size_t)-1;
        b->text = grown;
        b->text_cap = cap;
    }
    memcpy(b->text + at, s, n);
    b->text[at + n] = '\0';
    b->text_len += len;
    return at;
}

static size_t text_keep(struct local_batch *b, const char *s)
{
    return text_keep_n(b, s, strlen(s));
}

/* Room for one more write of the turn; NULL when out of memory. */
static struct local_update *op_add(struct local_batch *b)
{
    if (grow_for((void **)&b->updates, &b->update_cap, b->update_count, sizeof *b->updates, 64) !=
        0)
        return NULL;
    return &b->updates[b->update_count];
}

int local_set_status(struct worker *w, const char *email, const char *device, uint64_t conn_id,
                     uint8_t status, const struct backend_done *done)
{
    struct local_batch *b = &w->local_batch;
    struct local_update *u = op_add(b);
    size_t at = b->text_len, e = u == NULL ? (size_t)-1 : text_keep(b, email),
           d = e == (size_t)-1 ? e : text_keep(b, device);
    if (d == (size_t)-1) {
        b->text_len = at;
        return 60;
    }
    *u = (struct local_update){ .done = *done, .email = e, .device = d, .conn_id = conn_id,
                                .status = status, .kind = OP_STATUS };
    b->update_count++;
    return BACKEND_LATER;
}

int local_notify_later(struct worker *w, const char *email, const char *json, size_t len,
                       int64_t expires_ms, const struct backend_done *done)
{
    struct local_batch *b = &w->local_batch;
    struct local_update *u = op_add(b);
    size_t at = b->text_len, e = u == NULL ? (size_t)-1 : text_keep(b, email),
           j = e == (size_t)-1 ? e : text_keep_n(b, json, len);
    if (j == (size_t)-1) {
        b->text_len = at;
        return 60;
    }
    *u = (struct local_update){ .done = *done, .email = e, .device = j, .len = len,
                                .expires_ms = expires_ms, .kind = OP_NOTIFY };
    b->update_count++;
    return BACKEND_LATER;
}

void local_delivered_later(struct worker *w, const struct shm_notif_key *key)
{
    struct local_batch *b = &w->local_batch;
    struct local_update *u = op_add(b);
    size_t at = b->text_len, k = u == NULL ? (size_t)-1 : text_keep_n(b, key->bytes, key->len);
    if (k == (size_t)-1) {
        /* Out of memory: deleted now, in the batch, as before the writes were put off. */
        b->text_len = at;
        if (shm_notif_delete(w->store, key) == SHM_OK)
            w->info.meter.notifications_delivered++;
        return;
    }
    *u = (struct local_update){ .device = k, .len = key->len, .kind = OP_DELIVERED };
    b->update_count++;
}

bool local_delivered_pending(const struct worker *w, const struct shm_notif_key *key)
{
    const struct local_batch *b = &w->local_batch;
    for (size_t i = 0; i < b->update_count; i++) {
        const struct local_update *u = &b->updates[i];
        if (u->kind == OP_DELIVERED && u->len == key->len &&
            memcmp(b->text + u->device, key->bytes, key->len) == 0)
            return true;
    }
    return false;
}

void local_mail_forget_later(struct worker *w, uint64_t upto)
{
    if (upto > w->local_batch.mail_upto)
        w->local_batch.mail_upto = upto;
}

/* One status update, in the batch: stored (answered after the commit), or answered now with why
 * not. */
static void update_apply(struct worker *w, struct local_update *u)
{
    const char *text = w->local_batch.text;
    int rc = presence_device_status(w, text + u->email, text + u->device, u->conn_id, u->status);
    if (rc == SHM_NOT_FOUND)
        u->done.fn(u->done.arg, &u->done, 52); /* a newer connection took the device */
    else if (rc != SHM_OK || local_wait_commit(w, &u->done) != 0)
        u->done.fn(u->done.arg, &u->done, 60);
}

static void notify_apply(struct worker *w, struct local_update *u)
{
    const char *text = w->local_batch.text;
    if (local_notify_now(w, text + u->email, text + u->device, u->len, u->expires_ms) != 0 ||
        local_wait_commit(w, &u->done) != 0)
        u->done.fn(u->done.arg, &u->done, 60);
}

static void delivered_apply(struct worker *w, const struct local_update *u)
{
    struct shm_notif_key key;
    if (u->len > sizeof key.bytes)
        return;
    key.len = u->len;
    memcpy(key.bytes, w->local_batch.text + u->device, u->len);
    /* Not found: another device of the user took it first, or it expired meanwhile. */
    if (shm_notif_delete(w->store, &key) == SHM_OK)
        w->info.meter.notifications_delivered++;
}

void local_delivered_flush(struct worker *w)
{
    struct local_batch *b = &w->local_batch;
    size_t kept = 0;
    for (size_t i = 0; i < b->update_count; i++) {
        if (b->updates[i].kind == OP_DELIVERED)
            delivered_apply(w, &b->updates[i]);
        else
            b->updates[kept++] = b->updates[i];
    }
    b->update_count = kept;
}

static void op_apply(struct worker *w, size_t i)
{
    struct local_update u = w->local_batch.updates[i]; /* a copy: the array may grow meanwhile */
    if (u.kind == OP_STATUS)
        update_apply(w, &u);
    else if (u.kind == OP_NOTIFY)
        notify_apply(w, &u);
    else
        delivered_apply(w, &u);
}

void local_batch_apply(struct worker *w)
{
    struct local_batch *b = &w->local_batch;
    if (b->mail_upto != 0) {
        if (shm_mail_forget(w->store, w->info.pid, b->mail_upto) != SHM_OK)
            w->info.store_failures_total++;
        b->mail_upto = 0;
    }
    /* In the order they came. A chunk's commit answers its writes, and what those answers
     * write to the sockets may add deliveries to the list: they are applied in this turn too. */
    for (size_t i = 0; i < b->update_count; i++) {
        op_apply(w, i);
        if ((i + 1) % LOCAL_BATCH_CHUNK == 0 && i + 1 < b->update_count) {
            if (shm_batch_commit(w->store) != SHM_OK)
                w->info.store_failures_total++;
            w->backend->after_commit(w);
        }
    }
    b->update_count = 0;
    b->text_len = 0;
}

void local_batch_free(struct worker *w)
{
    struct local_batch *b = &w->local_batch;
    free(b->updates);
    free(b->text);
    free(b->waiters);
    free(b->releasing);
    memset(b, 0, sizeof *b);
}
