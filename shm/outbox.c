/* outbox: a cluster node's writes of shared records waiting for its agent to make them in the
 * engine, and the fetches of records this node's replica misses (shm/outbox.h). */
#include "outbox.h"

#include "store_internal.h"

#include <stdio.h>
#include <string.h>

#define HEAD_LEN (4 + 1) /* be32 reply pid, u8 op; then u8 len + bucket, u8 len + key, value */

void shm_outbox_enable(struct shm_store *store, int32_t reply_pid)
{
    store->outbox_on = true;
    store->outbox_reply_pid = reply_pid;
}

bool shm_outbox_enabled(const struct shm_store *store)
{
    return store->outbox_on;
}

int shm_outbox_add(struct shm_store *store, uint8_t op, const char *bucket, const char *key,
                   const void *value, size_t len, uint64_t *seq_out)
{
    size_t blen = strlen(bucket), klen = strlen(key);
    if (blen == 0 || blen > SHM_OUTBOX_BUCKET_MAX || klen == 0 || klen > SHM_OUTBOX_KEY_MAX ||
        len > SHM_OUTBOX_VALUE_MAX)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    uint64_t seq;
    int rc = store_seq_next(store, txn, &seq);
    if (rc != SHM_OK)
        return rc;
    unsigned char k[8], v[HEAD_LEN + 2 + SHM_OUTBOX_BUCKET_MAX + SHM_OUTBOX_KEY_MAX +
                          SHM_OUTBOX_VALUE_MAX];
    store_put_be64(k, seq);
    store_put_be32(v, (uint32_t)store->outbox_reply_pid);
    v[4] = op;
    size_t at = HEAD_LEN;
    at += store_put_str8(v + at, bucket, blen);
    at += store_put_str8(v + at, key, klen);
    if (len > 0)
        memcpy(v + at, value, len);
    MDB_val key_val = { sizeof k, k }, value_val = { at + len, v };
    rc = mdb_put(txn, store->cl_outbox, &key_val, &value_val, MDB_NOOVERWRITE);
    if (rc != 0)
        return store_batch_fail(store, rc, "outbox");
    if (store->outbox_new_count++ == 0)
        store->outbox_new_first = seq;
    store->outbox_new_last = seq;
    if (seq_out != NULL)
        *seq_out = seq;
    return SHM_OK;
}

size_t shm_outbox_take_new(struct shm_store *store, uint64_t *first, uint64_t *last)
{
    size_t count = store->outbox_new_count;
    *first = store->outbox_new_first;
    *last = store->outbox_new_last;
    store->outbox_new_count = 0;
    return count;
}

static int entry_decode(const MDB_val *k, const MDB_val *v, struct shm_outbox_entry *out)
{
    const unsigned char *p = v->mv_data;
    size_t n = v->mv_size, at = HEAD_LEN;
    if (k->mv_size != 8 || n < HEAD_LEN + 2)
        return -1;
    memset(out, 0, sizeof *out);
    out->seq = store_get_be64(k->mv_data);
    out->reply_pid = (int32_t)store_get_be32(p);
    out->op = p[4];
    size_t blen = p[at++];
    if (blen == 0 || blen > SHM_OUTBOX_BUCKET_MAX || at + blen + 1 > n)
        return -1;
    memcpy(out->bucket, p + at, blen);
    at += blen;
    size_t klen = p[at++];
    if (klen == 0 || klen > SHM_OUTBOX_KEY_MAX || at + klen > n)
        return -1;
    memcpy(out->key, p + at, klen);
    at += klen;
    out->value = p + at;
    out->len = n - at;
    return 0;
}

int shm_outbox_walk(struct shm_store *store, size_t max, shm_outbox_cb cb, void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = store_read_begin(store, &txn);
    if (rc != SHM_OK)
        return rc;
    if (mdb_cursor_open(txn, store->cl_outbox, &cur) != 0) {
        store_read_end(store, txn);
        return SHM_ERROR;
    }
    MDB_val k, v;
    int count = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && (size_t)count < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct shm_outbox_entry e;
        if (entry_decode(&k, &v, &e) != 0)
            continue;
        cb(arg, &e);
        count++;
    }
    mdb_cursor_close(cur);
    store_read_end(store, txn);
    return count;
}

int shm_outbox_remove(struct shm_store *store, uint64_t seq)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    unsigned char k[8];
    store_put_be64(k, seq);
    MDB_val key = { sizeof k, k };
    int rc = mdb_del(txn, store->cl_outbox, &key, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? SHM_OK : store_batch_fail(store, rc, "outbox");
}

struct pending_find {
    const char *bucket, *key;
    bool found;
};

static void pending_visit(void *arg, const struct shm_outbox_entry *e)
{
    struct pending_find *f = arg;
    if (e->op != SHM_OUTBOX_FETCH && strcmp(e->bucket, f->bucket) == 0 &&
        strcmp(e->key, f->key) == 0)
        f->found = true;
}

bool shm_outbox_pending(struct shm_store *store, const char *bucket, const char *key)
{
    /* The outbox holds what the engine has not acknowledged yet: a handful of entries. */
    struct pending_find f = { bucket, key, false };
    shm_outbox_walk(store, 4096, pending_visit, &f);
    return f.found;
}

/* PUID (36), be64 granted, u8 len + e-mail, appid (36). */
long shm_outbox_grant_encode(const struct shm_outbox_grant *g, unsigned char *out, size_t cap)
{
    size_t elen = strlen(g->email);
    size_t n = SHM_PUID_LEN + 8 + 1 + elen + SHM_APPID_LEN;
    if (strlen(g->puid) != SHM_PUID_LEN || strlen(g->appid) != SHM_APPID_LEN || elen == 0 ||
        elen > SHM_EMAIL_MAX || n > cap)
        return -1;
    memcpy(out, g->puid, SHM_PUID_LEN);
    store_put_be64(out + SHM_PUID_LEN, (uint64_t)g->granted_ms);
    out[SHM_PUID_LEN + 8] = (unsigned char)elen;
    memcpy(out + SHM_PUID_LEN + 9, g->email, elen);
    memcpy(out + SHM_PUID_LEN + 9 + elen, g->appid, SHM_APPID_LEN);
    return (long)n;
}

int shm_outbox_grant_decode(const void *data, size_t len, struct shm_outbox_grant *out)
{
    const unsigned char *p = data;
    if (len < SHM_PUID_LEN + 9 + 1 + SHM_APPID_LEN)
        return -1;
    size_t elen = p[SHM_PUID_LEN + 8]; /* a byte: up to 255, one more than an e-mail may have */
    if (elen == 0 || elen > SHM_EMAIL_MAX || len != SHM_PUID_LEN + 9 + elen + SHM_APPID_LEN)
        return -1;
    /* Text fields hold no NUL (they are C strings everywhere after this). */
    if (memchr(p, '\0', SHM_PUID_LEN) != NULL || memchr(p + SHM_PUID_LEN + 9, '\0', elen) ||
        memchr(p + SHM_PUID_LEN + 9 + elen, '\0', SHM_APPID_LEN) != NULL)
        return -1;
    memset(out, 0, sizeof *out);
    memcpy(out->puid, p, SHM_PUID_LEN);
    out->granted_ms = (int64_t)store_get_be64(p + SHM_PUID_LEN);
    memcpy(out->email, p + SHM_PUID_LEN + 9, elen);
    memcpy(out->appid, p + SHM_PUID_LEN + 9 + elen, SHM_APPID_LEN);
    return 0;
}

/* u8 length + e-mail, be64 expiry, the JSON. */
long shm_outbox_notify_encode(const char *email, int64_t expires_ms, const char *json, size_t len,
                              unsigned char *out, size_t cap)
{
    size_t elen = strlen(email);
    if (elen == 0 || elen > SHM_EMAIL_MAX || len == 0 || 1 + elen + 8 + len > cap)
        return -1;
    out[0] = (unsigned char)elen;
    memcpy(out + 1, email, elen);
    store_put_be64(out + 1 + elen, (uint64_t)expires_ms);
    memcpy(out + 1 + elen + 8, json, len);
    return (long)(1 + elen + 8 + len);
}

int shm_outbox_notify_decode(const void *data, size_t len, char *email, int64_t *expires_ms,
                             const char **json, size_t *json_len)
{
    const unsigned char *p = data;
    if (len < 1)
        return -1;
    size_t elen = p[0]; /* up to 255: email holds SHM_EMAIL_MAX and its NUL */
    if (elen == 0 || elen > SHM_EMAIL_MAX || len <= 1 + elen + 8 ||
        memchr(p + 1, '\0', elen) != NULL)
        return -1;
    memcpy(email, p + 1, elen);
    email[elen] = '\0';
    *expires_ms = (int64_t)store_get_be64(p + 1 + elen);
    *json = (const char *)p + 1 + elen + 8;
    *json_len = len - 1 - elen - 8;
    return 0;
}

