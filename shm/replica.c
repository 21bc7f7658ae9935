/* replica: what this node's agent last read from the cluster's engine — its own incarnation,
 * the nodes, the user records and their index by incarnation, and how far each changefeed got.
 * One record type per database, all integers big-endian (shm/README.md). */
#include "replica.h"

#include "store_internal.h"

#include <stdio.h>
#include <string.h>

#define SELF_KEY "self"
#define SELF_FIXED (8 + 1 + 1 + 8 + 8 + 4 + 8 + 8)

static int put(struct shm_store *store, MDB_dbi dbi, const void *k, size_t klen, const void *v,
               size_t vlen, const char *what)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    MDB_val key = { klen, (void *)k }, value = { vlen, (void *)v };
    int rc = mdb_put(txn, dbi, &key, &value, 0);
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, what);
}

static int del(struct shm_store *store, MDB_dbi dbi, const void *k, size_t klen, const char *what)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    MDB_val key = { klen, (void *)k };
    int rc = mdb_del(txn, dbi, &key, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? SHM_OK : store_batch_fail(store, rc, what);
}

static int get(struct shm_store *store, MDB_dbi dbi, const void *k, size_t klen, MDB_val *out)
{
    MDB_txn *txn;
    int rc = store_read_begin(store, &txn);
    if (rc != SHM_OK)
        return rc;
    MDB_val key = { klen, (void *)k };
    rc = store_result(mdb_get(txn, dbi, &key, out));
    store_read_end(store, txn);
    return rc;
}

int shm_cl_self_put(struct shm_store *store, const struct shm_cl_self *self)
{
    unsigned char v[SELF_FIXED + SHM_CL_SERVER_MAX];
    store_put_be64(v, self->epoch);
    v[8] = self->state;
    v[9] = self->connected;
    store_put_be64(v + 10, (uint64_t)self->heard_ms);
    store_put_be64(v + 18, (uint64_t)self->updated_ms);
    store_put_be32(v + 26, (uint32_t)self->agent_pid);
    store_put_be64(v + 30, self->fences);
    store_put_be64(v + 38, self->declared);
    size_t n = strnlen(self->server, SHM_CL_SERVER_MAX - 1);
    memcpy(v + SELF_FIXED, self->server, n);
    return put(store, store->cl_self, SELF_KEY, strlen(SELF_KEY), v, SELF_FIXED + n,
               "writing the cluster state");
}

int shm_cl_self_get(struct shm_store *store, struct shm_cl_self *out)
{
    MDB_val v;
    int rc = get(store, store->cl_self, SELF_KEY, strlen(SELF_KEY), &v);
    if (rc != SHM_OK)
        return rc;
    if (v.mv_size < SELF_FIXED || v.mv_size >= SELF_FIXED + SHM_CL_SERVER_MAX)
        return SHM_ERROR;
    const unsigned char *p = v.mv_data;
    memset(out, 0, sizeof *out);
    out->epoch = store_get_be64(p);
    out->state = p[8];
    out->connected = p[9];
    out->heard_ms = (int64_t)store_get_be64(p + 10);
    out->updated_ms = (int64_t)store_get_be64(p + 18);
    out->agent_pid = (int32_t)store_get_be32(p + 26);
    out->fences = store_get_be64(p + 30);
    out->declared = store_get_be64(p + 38);
    memcpy(out->server, p + SELF_FIXED, v.mv_size - SELF_FIXED);
    return SHM_OK;
}

int shm_cl_node_put(struct shm_store *store, const char *name, uint64_t rev, int64_t heard_ms,
                    const void *json, size_t len)
{
    unsigned char v[16 + 4096];
    if (len > sizeof v - 16)
        return SHM_ERROR;
    store_put_be64(v, rev);
    store_put_be64(v + 8, (uint64_t)heard_ms);
    memcpy(v + 16, json, len);
    return put(store, store->cl_nodes, name, strlen(name), v, 16 + len, "writing a node");
}

int shm_cl_nodes(struct shm_store *store, shm_cl_node_cb cb, void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = store_read_begin(store, &txn);
    if (rc != SHM_OK)
        return rc;
    if (mdb_cursor_open(txn, store->cl_nodes, &cur) != 0) {
        store_read_end(store, txn);
        return SHM_ERROR;
    }
    MDB_val k, v;
    int count = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char name[SHM_CL_NAME_MAX + 1];
        if (k.mv_size > SHM_CL_NAME_MAX || v.mv_size < 16)
            continue;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        const unsigned char *p = v.mv_data;
        cb(arg, name, store_get_be64(p), (int64_t)store_get_be64(p + 8), (const char *)p + 16,
           v.mv_size - 16);
        count++;
    }
    mdb_cursor_close(cur);
    store_read_end(store, txn);
    return count;
}

int shm_cl_cursor_put(struct shm_store *store, const char *stream, uint64_t seq)
{
    unsigned char v[8];
    store_put_be64(v, seq);
    return put(store, store->cl_cursors, stream, strlen(stream), v, 8, "writing a cursor");
}

int shm_cl_cursor_get(struct shm_store *store, const char *stream, uint64_t *seq)
{
    MDB_val v;
    *seq = 0;
    int rc = get(store, store->cl_cursors, stream, strlen(stream), &v);
    if (rc == SHM_OK && v.mv_size == 8)
        *seq = store_get_be64(v.mv_data);
    return rc == SHM_NOT_FOUND ? SHM_OK : rc;
}

int shm_cl_user_put(struct shm_store *store, const char *user_key, uint64_t rev,
                    const void *value, size_t len)
{
    if (value == NULL)
        return del(store, store->cl_users, user_key, SHM_CL_USER_KEY_LEN, "removing a user record");
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    MDB_val key = { SHM_CL_USER_KEY_LEN, (void *)user_key }, v = { 8 + len, NULL };
    int rc = mdb_put(txn, store->cl_users, &key, &v, MDB_RESERVE);
    if (rc != 0)
        return store_batch_fail(store, rc, "writing a user record");
    store_put_be64(v.mv_data, rev);
    memcpy((unsigned char *)v.mv_data + 8, value, len);
    return SHM_OK;
}

int shm_cl_user_get(struct shm_store *store, const char *user_key, uint64_t *rev,
                    const void **value, size_t *len)
{
    MDB_val v;
    int rc = get(store, store->cl_users, user_key, SHM_CL_USER_KEY_LEN, &v);
    if (rc != SHM_OK)
        return rc;
    if (v.mv_size < 8)
        return SHM_ERROR;
    *rev = store_get_be64(v.mv_data);
    *value = (const unsigned char *)v.mv_data + 8;
    *len = v.mv_size - 8;
    return SHM_OK;
}

/* node \0 be64 epoch be32 pid user_key */
static size_t incarnation_key(unsigned char *out, const char *node, uint64_t epoch, uint32_t pid,
                              const char *user_key)
{
    size_t n = strnlen(node, SHM_CL_NAME_MAX);
    memcpy(out, node, n);
    out[n] = '\0';
    store_put_be64(out + n + 1, epoch);
    store_put_be32(out + n + 9, pid);
    if (user_key != NULL)
        memcpy(out + n + 13, user_key, SHM_CL_USER_KEY_LEN);
    return n + 13 + (user_key != NULL ? SHM_CL_USER_KEY_LEN : 0);
}

int shm_cl_incarnation_add(struct shm_store *store, const char *node, uint64_t epoch,
                           uint32_t pid, const char *user_key)
{
    unsigned char k[SHM_CL_NAME_MAX + 13 + SHM_CL_USER_KEY_LEN];
    size_t n = incarnation_key(k, node, epoch, pid, user_key);
    return put(store, store->cl_incarnations, k, n, "", 0, "indexing a user record");
}

int shm_cl_incarnation_del(struct shm_store *store, const char *node, uint64_t epoch,
                           uint32_t pid, const char *user_key)
{
    unsigned char k[SHM_CL_NAME_MAX + 13 + SHM_CL_USER_KEY_LEN];
    size_t n = incarnation_key(k, node, epoch, pid, user_key);
    return del(store, store->cl_incarnations, k, n, "unindexing a user record");
}

int shm_cl_incarnation_walk(struct shm_store *store, const char *node, uint64_t epoch,
                            uint32_t pid, size_t max, shm_cl_user_key_cb cb, void *arg)
{
    unsigned char prefix[SHM_CL_NAME_MAX + 13];
    size_t plen = incarnation_key(prefix, node, epoch, pid, NULL) - (pid == 0 ? 4 : 0);
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = store_read_begin(store, &txn);
    if (rc != SHM_OK)
        return rc;
    if (mdb_cursor_open(txn, store->cl_incarnations, &cur) != 0) {
        store_read_end(store, txn);
        return SHM_ERROR;
    }
    MDB_val k = { plen, prefix }, v;
    int count = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && (size_t)count < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t name_len = strnlen(node, SHM_CL_NAME_MAX);
        if (k.mv_size != name_len + 13 + SHM_CL_USER_KEY_LEN || memcmp(k.mv_data, prefix, plen))
            break;
        char uk[SHM_CL_USER_KEY_LEN + 1];
        const unsigned char *p = k.mv_data;
        memcpy(uk, p + name_len + 13, SHM_CL_USER_KEY_LEN);
        uk[SHM_CL_USER_KEY_LEN] = '\0';
        cb(arg, store_get_be32(p + name_len + 9), uk);
        count++;
    }
    mdb_cursor_close(cur);
    store_read_end(store, txn);
    return count;
}
