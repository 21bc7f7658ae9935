/* push_sub: the Web Push subscription of each (e-mail, device) — where to wake the device when
 * it is not connected (SPEC.md §7). */
#include "push_sub.h"

#include "conn.h"
#include "store_internal.h"

#include <string.h>

/* e-mail \0 device -> be64 created (ms), p256dh (65), auth (16), endpoint (no NUL). */
#define SUB_FIXED (8 + PUSH_P256_LEN + PUSH_AUTH_LEN)
#define SUB_KEY_MAX (SHM_EMAIL_MAX + 1 + SHM_DEVICE_MAX)

static int sub_key(const char *email, const char *device, unsigned char *buf, MDB_val *key)
{
    size_t email_len = strlen(email), device_len = strlen(device);
    if (email_len == 0 || email_len > SHM_EMAIL_MAX || device_len > SHM_DEVICE_MAX)
        return SHM_ERROR;
    memcpy(buf, email, email_len + 1);
    memcpy(buf + email_len + 1, device, device_len);
    key->mv_size = email_len + 1 + device_len;
    key->mv_data = buf;
    return SHM_OK;
}

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
    if (sub_key(email, device, key_buf, &key) != SHM_OK || endpoint_len == 0 ||
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
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "push subscription");
}

static int sub_delete(struct shm_store *store, const char *email, const char *device,
                      const char *endpoint)
{
    unsigned char key_buf[SUB_KEY_MAX];
    MDB_val key, value;
    if (sub_key(email, device, key_buf, &key) != SHM_OK)
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
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "push subscription");
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

int shm_push_sub_get(struct shm_store *store, const char *email, const char *device,
                     struct push_subscription *out)
{
    unsigned char key_buf[SUB_KEY_MAX];
    MDB_val key, value;
    MDB_txn *txn;
    if (sub_key(email, device, key_buf, &key) != SHM_OK ||
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
