/* push_sub: the Web Push subscription of each (e-mail, device) — where to wake the device when
 * it is not connected (SPEC.md §7). */
#include "push_sub.h"

#include "conn.h"
#include "device_key.h"
#include "outbox.h"
#include "store_internal.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

/* e-mail \0 device -> be64 created (ms), p256dh (65), auth (16), endpoint (no NUL). */
#define SUB_FIXED (8 + PUSH_P256_LEN + PUSH_AUTH_LEN)
#define SUB_KEY_MAX (SHM_EMAIL_MAX + 1 + SHM_DEVICE_MAX)

static int sub_decode(const MDB_val *value, struct push_subscription *out, int64_t *created)
{
    size_t endpoint_len = value->mv_size - SUB_FIXED;
    if (value->mv_size <= SUB_FIXED || endpoint_len > PUSH_ENDPOINT_MAX)
        return SHM_ERROR;
    const unsigned char *v = value->mv_data;
    if (created != NULL)
        *created = (int64_t)store_get_be64(v);
    memcpy(out->p256dh, v + 8, PUSH_P256_LEN);
    memcpy(out->auth, v + 8 + PUSH_P256_LEN, PUSH_AUTH_LEN);
    memcpy(out->endpoint, v + SUB_FIXED, endpoint_len);
    out->endpoint[endpoint_len] = '\0';
    return SHM_OK;
}

/* ---- the cluster's copy (SHM_BUCKET_PUSH) ---- */

static void shared_key(const MDB_val *store_key, char out[SHM_PUSH_KEY_MAX + 1])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(store_key->mv_data, store_key->mv_size, digest);
    out[0] = 's';
    out[1] = '.';
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 + 2 * i, 3, "%02x", digest[i]);
}

/* Leaves the change in the outbox (a cluster node's writers only). */
static int shared_add(struct shm_store *store, uint8_t op, const char *email, const char *device,
                      const MDB_val *store_key, const void *tail, size_t tail_len)
{
    if (!store->outbox_on)
        return SHM_OK;
    unsigned char record[3 + SUB_KEY_MAX + SUB_FIXED + PUSH_ENDPOINT_MAX];
    size_t email_len = strlen(email), device_len = strlen(device), at = 0;
    if (3 + email_len + device_len + tail_len > sizeof record)
        return SHM_ERROR;
    record[at++] = op;
    at += store_put_str8(record + at, email, email_len);
    at += store_put_str8(record + at, device, device_len);
    memcpy(record + at, tail, tail_len);
    char key[SHM_PUSH_KEY_MAX + 1];
    shared_key(store_key, key);
    return shm_outbox_add(store, SHM_OUTBOX_PUT, SHM_BUCKET_PUSH, key, record, at + tail_len,
                          NULL);
}

/* The user's subscriptions other than device's: how many, and the key of the oldest. */
struct others {
    size_t count;
    int64_t oldest_ms;
    unsigned char oldest[SUB_KEY_MAX];
    size_t oldest_len;
};

static int others_count(struct shm_store *store, MDB_txn *txn, const MDB_val *mine,
                        size_t prefix_len, struct others *o)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(txn, store->push_subs, &cursor);
    if (rc != 0)
        return store_batch_fail(store, rc, "push subscriptions");
    MDB_val key = { prefix_len, mine->mv_data }, value;
    memset(o, 0, sizeof *o);
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
         rc == 0 && key.mv_size >= prefix_len && memcmp(key.mv_data, mine->mv_data, prefix_len) == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        if (key.mv_size == mine->mv_size && memcmp(key.mv_data, mine->mv_data, key.mv_size) == 0)
            continue;
        int64_t created = value.mv_size >= 8 ? (int64_t)store_get_be64(value.mv_data) : 0;
        if (o->count++ == 0 || created < o->oldest_ms) {
            o->oldest_ms = created;
            o->oldest_len = key.mv_size <= sizeof o->oldest ? key.mv_size : 0;
            memcpy(o->oldest, key.mv_data, o->oldest_len);
        }
    }
    mdb_cursor_close(cursor);
    return rc == 0 || rc == MDB_NOTFOUND ? SHM_OK : store_batch_fail(store, rc, "push subscriptions");
}

int shm_push_sub_put(struct shm_store *store, const char *email, const char *device,
                     const struct push_subscription *sub, int64_t now_ms, size_t max_per_user)
{
    unsigned char key_buf[SUB_KEY_MAX], value_buf[SUB_FIXED + PUSH_ENDPOINT_MAX];
    MDB_val key;
    size_t endpoint_len = strlen(sub->endpoint);
    if (shm_device_key(email, device, key_buf, &key) != SHM_OK || endpoint_len == 0 ||
        endpoint_len > PUSH_ENDPOINT_MAX || max_per_user == 0)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    struct others others;
    int rc = others_count(store, txn, &key, strlen(email) + 1, &others);
    if (rc != SHM_OK)
        return rc;
    if (others.count >= max_per_user && others.oldest_len > 0) {
        MDB_val oldest = { others.oldest_len, others.oldest };
        if ((rc = mdb_del(txn, store->push_subs, &oldest, NULL)) != 0)
            return store_batch_fail(store, rc, "push subscription");
    }
    store_put_be64(value_buf, (uint64_t)now_ms);
    memcpy(value_buf + 8, sub->p256dh, PUSH_P256_LEN);
    memcpy(value_buf + 8 + PUSH_P256_LEN, sub->auth, PUSH_AUTH_LEN);
    memcpy(value_buf + SUB_FIXED, sub->endpoint, endpoint_len);
    MDB_val value = { SUB_FIXED + endpoint_len, value_buf };
    rc = mdb_put(txn, store->push_subs, &key, &value, 0);
    if (rc != 0)
        return store_batch_fail(store, rc, "push subscription");
    return shared_add(store, SHM_PUSH_SHARED_PUT, email, device, &key, value_buf, value.mv_size);
}

static int sub_delete(struct shm_store *store, const char *email, const char *device,
                      const char *endpoint)
{
    unsigned char key_buf[SUB_KEY_MAX];
    MDB_val key, value;
    if (shm_device_key(email, device, key_buf, &key) != SHM_OK)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = mdb_get(txn, store->push_subs, &key, &value);
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    if (rc != 0)
        return store_batch_fail(store, rc, "push subscription");
    struct push_subscription stored;
    if (endpoint != NULL &&
        (sub_decode(&value, &stored, NULL) != SHM_OK || strcmp(stored.endpoint, endpoint) != 0))
        return SHM_NOT_FOUND;
    rc = mdb_del(txn, store->push_subs, &key, NULL);
    if (rc != 0)
        return store_batch_fail(store, rc, "push subscription");
    return endpoint == NULL
               ? shared_add(store, SHM_PUSH_SHARED_DELETE, email, device, &key, NULL, 0)
               : shared_add(store, SHM_PUSH_SHARED_DELETE_ENDPOINT, email, device, &key, endpoint,
                            strlen(endpoint));
}

int shm_push_sub_delete(struct shm_store *store, const char *email, const char *device)
{
    return sub_delete(store, email, device, NULL);
}

int shm_push_sub_delete_endpoint(struct shm_store *store, const char *email, const char *device,
                                 const char *endpoint)
{
    return sub_delete(store, email, device, endpoint);
}

/* Reads a u8-length string of the record at *at into out (NUL-terminated, at most max). */
static int record_string(const unsigned char *r, size_t len, size_t *at, char *out, size_t max)
{
    if (*at >= len || r[*at] > max || *at + 1 + r[*at] > len)
        return SHM_ERROR;
    size_t n = r[*at];
    memcpy(out, r + *at + 1, n);
    out[n] = '\0';
    *at += 1 + n;
    return strlen(out) == n ? SHM_OK : SHM_ERROR;
}

int shm_push_shared_decode(const void *record, size_t len, struct shm_push_shared *out)
{
    const unsigned char *r = record;
    size_t at = 1;
    memset(out, 0, sizeof *out);
    if (len < 3 || record_string(r, len, &at, out->email, SHM_EMAIL_MAX) != SHM_OK ||
        out->email[0] == '\0' || record_string(r, len, &at, out->device, SHM_DEVICE_MAX) != SHM_OK)
        return SHM_ERROR;
    out->op = r[0];
    size_t rest = len - at;
    if (out->op == SHM_PUSH_SHARED_PUT) {
        MDB_val value = { rest, (void *)(r + at) };
        if (sub_decode(&value, &out->sub, &out->created_ms) != SHM_OK ||
            !push_endpoint_valid(out->sub.endpoint, strlen(out->sub.endpoint)))
            return SHM_ERROR;
        return SHM_OK;
    }
    if (out->op == SHM_PUSH_SHARED_DELETE)
        return rest == 0 ? SHM_OK : SHM_ERROR;
    if (out->op != SHM_PUSH_SHARED_DELETE_ENDPOINT || rest == 0 || rest > PUSH_ENDPOINT_MAX)
        return SHM_ERROR;
    memcpy(out->sub.endpoint, r + at, rest);
    out->sub.endpoint[rest] = '\0';
    return strlen(out->sub.endpoint) == rest ? SHM_OK : SHM_ERROR;
}

int shm_push_sub_apply(struct shm_store *store, const void *record, size_t len,
                       size_t max_per_user)
{
    struct shm_push_shared in;
    if (shm_push_shared_decode(record, len, &in) != SHM_OK)
        return SHM_ERROR;
    bool outbox = store->outbox_on;
    store->outbox_on = false; /* what comes from the engine goes back to no outbox */
    int rc = in.op == SHM_PUSH_SHARED_PUT
                 ? shm_push_sub_put(store, in.email, in.device, &in.sub, in.created_ms,
                                    max_per_user)
             : in.op == SHM_PUSH_SHARED_DELETE
                 ? shm_push_sub_delete(store, in.email, in.device)
                 : shm_push_sub_delete_endpoint(store, in.email, in.device, in.sub.endpoint);
    store->outbox_on = outbox;
    return rc == SHM_NOT_FOUND ? SHM_OK : rc;
}

int shm_push_sub_get(struct shm_store *store, const char *email, const char *device,
                     struct push_subscription *out)
{
    unsigned char key_buf[SUB_KEY_MAX];
    MDB_val key, value;
    MDB_txn *txn;
    if (shm_device_key(email, device, key_buf, &key) != SHM_OK ||
        store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_get(txn, store->push_subs, &key, &value);
    int result = rc == 0 ? sub_decode(&value, out, NULL) : store_result(rc);
    store_read_end(store, txn);
    return result;
}

struct subs_walk {
    shm_push_sub_cb cb;
    void *arg;
};

static void sub_visit(void *arg, const MDB_val *rest, const MDB_val *value)
{
    struct subs_walk *walk = arg;
    struct push_subscription sub;
    char device[SHM_DEVICE_MAX + 1];
    if (rest->mv_size > SHM_DEVICE_MAX || sub_decode(value, &sub, NULL) != SHM_OK)
        return;
    memcpy(device, rest->mv_data, rest->mv_size);
    device[rest->mv_size] = '\0';
    if (walk->cb != NULL)
        walk->cb(walk->arg, device, &sub);
}

int shm_push_subs(struct shm_store *store, const char *email, shm_push_sub_cb cb, void *arg)
{
    struct subs_walk walk = { cb, arg };
    size_t len = strlen(email);
    if (len == 0 || len > SHM_EMAIL_MAX)
        return SHM_ERROR;
    return store_prefix_walk(store, store->push_subs, email, sub_visit, &walk);
}

int shm_push_sub_count(struct shm_store *store, uint64_t *count)
{
    MDB_txn *txn;
    MDB_stat stat;
    *count = 0;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_stat(txn, store->push_subs, &stat);
    store_read_end(store, txn);
    if (rc != 0)
        return SHM_ERROR;
    *count = stat.ms_entries;
    return SHM_OK;
}
