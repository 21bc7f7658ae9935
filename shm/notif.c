/* notif: each user's queue of pending live notifications — kept across restarts, bounded,
 * expiring (SPEC.md §2). */
#include "notif.h"

#include "mail.h"
#include "store_internal.h"

#include "../common/grow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPIRES_LEN 8
/* Keys taken already before a free one is found (only records of an older layout can be). */
#define KEY_TRIES 8
#define COUNTER_DROPPED "notifications_dropped"
#define COUNTER_EXPIRED "notifications_expired"

static size_t prefix_make(const char *email, unsigned char *buf)
{
    size_t len = strlen(email);
    memcpy(buf, email, len + 1);
    return len + 1;
}

static bool key_in_queue(const MDB_val *key, const unsigned char *prefix, size_t prefix_len)
{
    return key->mv_size == prefix_len + 16 && memcmp(key->mv_data, prefix, prefix_len) == 0;
}

static bool value_expired(const MDB_val *value, int64_t now_ms)
{
    return value->mv_size < EXPIRES_LEN || (int64_t)store_get_be64(value->mv_data) <= now_ms;
}

/* How much of a queue's walk cb is given: the first budget bytes of JSON (at least one
 * notification); *more says whether live ones were left. */
struct walk_budget {
    size_t bytes;
    bool *more;
};

static const struct walk_budget WHOLE = { SIZE_MAX, NULL };

/* Walks email's queue oldest first: expired entries are deleted (counted in *expired), then the
 * first `drop` live ones (counted as dropped); cb gets the rest, *live counts all live ones
 * (those cb got when the budget stops the walk). */
static int queue_walk(struct shm_store *store, MDB_txn *txn, const char *email, int64_t now_ms,
                      size_t drop, shm_notif_cb cb, void *arg, struct walk_budget budget,
                      size_t *live, size_t *expired)
{
    size_t given = 0;
    if (budget.more != NULL)
        *budget.more = false;
    unsigned char prefix[SHM_NOTIF_KEY_MAX];
    size_t prefix_len = prefix_make(email, prefix), dropped = 0;
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(txn, store->notifs, &cursor);
    if (rc != 0)
        return store_batch_fail(store, rc, "notification queue");
    MDB_val key = { prefix_len, prefix }, value;
    *live = *expired = 0;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
         rc == 0 && key_in_queue(&key, prefix, prefix_len);
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        bool expired_now = value_expired(&value, now_ms);
        if (expired_now || dropped < drop) {
            if ((rc = mdb_cursor_del(cursor, 0)) != 0)
                break;
            if (expired_now)
                (*expired)++;
            else
                dropped++;
            continue;
        }
        size_t json_len = value.mv_size - EXPIRES_LEN;
        if (*live > 0 && (given >= budget.bytes || json_len > budget.bytes - given)) {
            *budget.more = true; /* a WHOLE budget never gets here */
            break;
        }
        given += json_len;
        (*live)++;
        if (cb != NULL) {
            struct shm_notif_key k = { .len = key.mv_size };
            memcpy(k.bytes, key.mv_data, key.mv_size);
            cb(arg, &k, (const char *)value.mv_data + EXPIRES_LEN, value.mv_size - EXPIRES_LEN);
        }
    }
    mdb_cursor_close(cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_batch_fail(store, rc, "notification queue");
    if (*expired > 0 && (rc = store_counter_add(store, txn, COUNTER_EXPIRED, *expired)) != SHM_OK)
        return rc;
    if (dropped > 0)
        return store_counter_add(store, txn, COUNTER_DROPPED, dropped);
    return SHM_OK;
}

int shm_notif_add(struct shm_store *store, const char *email, const char *json, size_t len,
                  int64_t now_ms, int64_t expires_ms, size_t max_pending, struct shm_notif_key *key,
                  size_t *dropped)
{
    *dropped = 0;
    size_t email_len = strlen(email);
    if (email_len == 0 || email_len > SHM_EMAIL_MAX || len > SHM_NOTIF_JSON_MAX || max_pending == 0)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    size_t live, expired;
    int rc = queue_walk(store, txn, email, now_ms, 0, NULL, NULL, WHOLE, &live, &expired);
    if (rc == SHM_OK && live >= max_pending) {
        /* Room for the new one: the oldest go. */
        *dropped = live - max_pending + 1;
        rc = queue_walk(store, txn, email, now_ms, *dropped, NULL, NULL, WHOLE, &live, &expired);
    }
    if (rc != SHM_OK)
        return rc;
    unsigned char buf[EXPIRES_LEN + SHM_NOTIF_JSON_MAX];
    store_put_be64(buf, (uint64_t)expires_ms);
    memcpy(buf + EXPIRES_LEN, json, len);
    key->len = prefix_make(email, key->bytes) + 16;
    store_put_be64(key->bytes + email_len + 1, (uint64_t)now_ms);
    /* The store's sequence is never handed out twice, whichever process or visit asks, so the
     * key is new; MDB_NOOVERWRITE still guards a queued notification (a record written by an
     * older presenced). On MDB_KEYEXIST LMDB points v at the record it found: v is set again
     * before each try, so the one retried is always this notification. */
    for (int tries = 0; tries < KEY_TRIES; tries++) {
        uint64_t seq;
        if ((rc = store_seq_next(store, txn, &seq)) != SHM_OK)
            return rc;
        store_put_be64(key->bytes + email_len + 9, seq);
        MDB_val k = { key->len, key->bytes }, v = { EXPIRES_LEN + len, buf };
        rc = mdb_put(txn, store->notifs, &k, &v, MDB_NOOVERWRITE);
        if (rc != MDB_KEYEXIST)
            return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "notification add");
    }
    return store_batch_fail(store, rc, "notification add");
}

int shm_notif_pending(struct shm_store *store, const char *email, int64_t now_ms, shm_notif_cb cb,
                      void *arg)
{
    size_t email_len = strlen(email);
    if (email_len == 0 || email_len > SHM_EMAIL_MAX)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    size_t live, expired;
    int rc = queue_walk(store, txn, email, now_ms, 0, cb, arg, WHOLE, &live, &expired);
    return rc == SHM_OK ? (int)live : rc;
}

int64_t shm_notif_key_queued_ms(const struct shm_notif_key *key)
{
    /* e-mail \0, be64 ms, be64 sequence */
    if (key->len < 17)
        return 0;
    return (int64_t)store_get_be64(key->bytes + key->len - 16);
}

int shm_notif_page(struct shm_store *store, const char *email, int64_t now_ms, size_t max_bytes,
                   shm_notif_cb cb, void *arg, bool *more)
{
    *more = false;
    size_t email_len = strlen(email);
    if (email_len == 0 || email_len > SHM_EMAIL_MAX)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    size_t live, expired;
    struct walk_budget budget = { max_bytes, more };
    int rc = queue_walk(store, txn, email, now_ms, 0, cb, arg, budget, &live, &expired);
    return rc == SHM_OK ? (int)live : rc;
}

bool shm_notif_exists(struct shm_store *store, const struct shm_notif_key *key)
{
    /* A read: no write lock (the batch's own writes are seen when one is open). */
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return false;
    MDB_val k = { key->len, (void *)key->bytes }, v;
    bool found = mdb_get(txn, store->notifs, &k, &v) == 0;
    store_read_end(store, txn);
    return found;
}

int shm_notif_delete(struct shm_store *store, const struct shm_notif_key *key)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    MDB_val k = { key->len, (void *)key->bytes };
    int rc = mdb_del(txn, store->notifs, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "notification delete");
}

int shm_notif_expire(struct shm_store *store, int64_t now_ms, size_t max, struct shm_sweep *sweep,
                     size_t *removed)
{
    int rc = store_expired_sweep(store, store->notifs, now_ms, max, sweep, removed,
                                 "notification expiry");
    if (rc == SHM_OK && *removed > 0)
        rc = store_counter_add(store, store_batch_txn(store), COUNTER_EXPIRED, *removed);
    return rc;
}

int shm_notif_counters(struct shm_store *store, uint64_t *dropped, uint64_t *expired)
{
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    *dropped = store_counter_read(store, txn, COUNTER_DROPPED);
    *expired = store_counter_read(store, txn, COUNTER_EXPIRED);
    store_read_end(store, txn);
    return SHM_OK;
}

struct owners {
    struct shm_conn_owner *list;
    size_t count, cap;
    bool failed;
};

static void owner_collect(void *arg, const char *device, const struct shm_conn_owner *owner)
{
    struct owners *o = arg;
    (void)device;
    if (grow_for((void **)&o->list, &o->cap, o->count, sizeof *o->list, 4) != 0) {
        o->failed = true;
        return;
    }
    o->list[o->count++] = *owner;
}

static int delivery_post(struct shm_store *store, const struct shm_conn_owner *owner,
                         const struct shm_notif_key *key, const char *json, size_t len)
{
    unsigned char payload[8 + 2 + SHM_NOTIF_KEY_MAX + SHM_NOTIF_JSON_MAX];
    store_put_be64(payload, owner->conn_id);
    payload[8] = (unsigned char)(key->len >> 8);
    payload[9] = (unsigned char)(key->len & 0xff);
    memcpy(payload + 10, key->bytes, key->len);
    memcpy(payload + 10 + key->len, json, len);
    return shm_mail_post(store, owner->worker_pid, SHM_MAIL_DELIVER, payload, 10 + key->len + len);
}

static void ring_add(int32_t pid, int32_t *rings, size_t cap, size_t *count)
{
    for (size_t i = 0; i < *count; i++)
        if (rings[i] == pid)
            return;
    if (*count < cap)
        rings[(*count)++] = pid;
}

int shm_notif_send(struct shm_store *store, const char *email, const char *json, size_t len,
                   int64_t now_ms, int64_t expires_ms, size_t max_pending, int32_t *rings,
                   size_t rings_cap, size_t *ring_count, size_t *dropped)
{
    struct shm_notif_key key;
    *ring_count = 0;
    int rc = shm_notif_add(store, email, json, len, now_ms, expires_ms, max_pending, &key, dropped);
    if (rc != SHM_OK)
        return rc;
    struct owners owners = { 0 };
    if (shm_conn_devices(store, email, owner_collect, &owners) < 0 || owners.failed)
        rc = SHM_ERROR;
    for (size_t i = 0; rc == SHM_OK && i < owners.count; i++) {
        rc = delivery_post(store, &owners.list[i], &key, json, len);
        ring_add(owners.list[i].worker_pid, rings, rings_cap, ring_count);
    }
    free(owners.list);
    return rc;
}

int shm_notif_delivery_decode(const void *payload, size_t len, uint64_t *conn_id,
                              struct shm_notif_key *key, const char **json, size_t *json_len)
{
    const unsigned char *p = payload;
    if (len < 10)
        return -1;
    size_t key_len = (size_t)p[8] << 8 | p[9];
    if (key_len > SHM_NOTIF_KEY_MAX || 10 + key_len > len ||
        len - 10 - key_len > SHM_NOTIF_JSON_MAX)
        return -1;
    *conn_id = store_get_be64(p);
    key->len = key_len;
    memcpy(key->bytes, p + 10, key_len);
    *json = (const char *)p + 10 + key_len;
    *json_len = len - 10 - key_len;
    return 0;
}
