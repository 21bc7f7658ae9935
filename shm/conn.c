/* conn: which worker connection owns each (e-mail, device) — one owner across all workers. */
#include "conn.h"

#include "device_key.h"
#include "store_internal.h"

#include <stdbool.h>
#include <string.h>

/* Value of the conns database: fixed layout, big-endian, so any process reads it alike. */
#define CONN_VALUE_SIZE (4 + 8 + 1 + 8)
#define OWNER_KEY_SIZE (4 + 8)

static void owner_encode(const struct shm_conn_owner *owner, unsigned char *out)
{
    store_put_be32(out, (uint32_t)owner->worker_pid);
    store_put_be64(out + 4, owner->conn_id);
    out[12] = owner->status;
    store_put_be64(out + 13, (uint64_t)owner->since_ms);
}

static int owner_decode(const MDB_val *value, struct shm_conn_owner *out)
{
    if (value->mv_size != CONN_VALUE_SIZE)
        return SHM_ERROR;
    const unsigned char *in = value->mv_data;
    out->worker_pid = (int32_t)store_get_be32(in);
    out->conn_id = store_get_be64(in + 4);
    out->status = in[12];
    out->since_ms = (int64_t)store_get_be64(in + 13);
    return SHM_OK;
}

static void owner_key(int32_t pid, uint64_t conn_id, unsigned char *buf, MDB_val *key)
{
    store_put_be32(buf, (uint32_t)pid);
    store_put_be64(buf + 4, conn_id);
    key->mv_size = OWNER_KEY_SIZE;
    key->mv_data = buf;
}

int shm_conn_claim(struct shm_store *store, const char *email, const char *device,
                   const struct shm_conn_owner *owner, struct shm_conn_owner *previous,
                   int *had_previous)
{
    unsigned char key_buf[SHM_EMAIL_MAX + SHM_DEVICE_MAX + 2], value_buf[CONN_VALUE_SIZE];
    unsigned char old_owner_buf[OWNER_KEY_SIZE], new_owner_buf[OWNER_KEY_SIZE];
    MDB_val key, value, old_owner_key, new_owner_key;
    if (shm_device_key(email, device, key_buf, &key) != SHM_OK)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    *had_previous = 0;
    int rc = mdb_get(txn, store->conns, &key, &value);
    if (rc == 0 && owner_decode(&value, previous) == SHM_OK) {
        *had_previous = 1;
        owner_key(previous->worker_pid, previous->conn_id, old_owner_buf, &old_owner_key);
        rc = mdb_del(txn, store->conns_by_worker, &old_owner_key, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return store_batch_fail(store, rc, "conn claim");
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        return store_batch_fail(store, rc, "conn claim");
    }
    owner_encode(owner, value_buf);
    value.mv_size = sizeof value_buf;
    value.mv_data = value_buf;
    if ((rc = mdb_put(txn, store->conns, &key, &value, 0)) != 0)
        return store_batch_fail(store, rc, "conn claim");
    owner_key(owner->worker_pid, owner->conn_id, new_owner_buf, &new_owner_key);
    if ((rc = mdb_put(txn, store->conns_by_worker, &new_owner_key, &key, 0)) != 0)
        return store_batch_fail(store, rc, "conn claim");
    return SHM_OK;
}

/* Reads the record of (email, device) in the batch and checks that (pid, conn_id) owns it. */
static int owned_get(struct shm_store *store, MDB_txn *txn, MDB_val *key, int32_t pid,
                     uint64_t conn_id, struct shm_conn_owner *owner)
{
    MDB_val value;
    int rc = mdb_get(txn, store->conns, key, &value);
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    if (rc != 0)
        return store_batch_fail(store, rc, "conn read");
    if (owner_decode(&value, owner) != SHM_OK)
        return SHM_ERROR;
    if (owner->worker_pid != pid || owner->conn_id != conn_id)
        return SHM_NOT_FOUND;
    return SHM_OK;
}

/* The record of (email, device) in the batch, when (pid, conn_id) still owns it. */
static int owned_find(struct shm_store *store, const char *email, const char *device, int32_t pid,
                      uint64_t conn_id, unsigned char *key_buf, MDB_val *key, MDB_txn **txn,
                      struct shm_conn_owner *owner)
{
    if (shm_device_key(email, device, key_buf, key) != SHM_OK)
        return SHM_ERROR;
    *txn = store_batch_txn(store);
    if (*txn == NULL)
        return SHM_ERROR;
    return owned_get(store, *txn, key, pid, conn_id, owner);
}

int shm_conn_set_status(struct shm_store *store, const char *email, const char *device, int32_t pid,
                        uint64_t conn_id, uint8_t status, uint8_t *was)
{
    unsigned char key_buf[SHM_EMAIL_MAX + SHM_DEVICE_MAX + 2], value_buf[CONN_VALUE_SIZE];
    MDB_val key, value;
    struct shm_conn_owner owner;
    if (shm_device_key(email, device, key_buf, &key) != SHM_OK)
        return SHM_ERROR;
    /* The batch's cursor: LMDB looks on the page it stands on before searching from the root,
     * and the record is rewritten where it stands. */
    MDB_cursor *cursor = store_batch_cursor(store, store->conns);
    if (cursor == NULL)
        return SHM_ERROR;
    int rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    if (rc != 0)
        return store_batch_fail(store, rc, "conn status");
    if (owner_decode(&value, &owner) != SHM_OK)
        return SHM_ERROR;
    if (owner.worker_pid != pid || owner.conn_id != conn_id)
        return SHM_NOT_FOUND; /* superseded */
    if (was != NULL)
        *was = owner.status;
    if (owner.status == status)
        return SHM_OK; /* the same status again writes nothing */
    owner.status = status;
    owner_encode(&owner, value_buf);
    value.mv_size = sizeof value_buf;
    value.mv_data = value_buf;
    if ((rc = mdb_cursor_put(cursor, &key, &value, MDB_CURRENT)) != 0)
        return store_batch_fail(store, rc, "conn status");
    return SHM_OK;
}

int shm_conn_release(struct shm_store *store, const char *email, const char *device, int32_t pid,
                     uint64_t conn_id)
{
    unsigned char key_buf[SHM_EMAIL_MAX + SHM_DEVICE_MAX + 2], owner_buf[OWNER_KEY_SIZE];
    MDB_val key, okey;
    MDB_txn *txn;
    struct shm_conn_owner owner;
    int rc = owned_find(store, email, device, pid, conn_id, key_buf, &key, &txn, &owner);
    if (rc != SHM_OK)
        return rc;
    owner_key(pid, conn_id, owner_buf, &okey);
    if ((rc = mdb_del(txn, store->conns, &key, NULL)) != 0 ||
        ((rc = mdb_del(txn, store->conns_by_worker, &okey, NULL)) != 0 && rc != MDB_NOTFOUND))
        return store_batch_fail(store, rc, "conn release");
    return SHM_OK;
}

/* Deletes the conns record named by an owner-index entry, if that owner still holds it:
 * *dropped says whether it did, *owner what the record held. */
static int owned_record_drop(struct shm_store *store, MDB_txn *txn, MDB_val *conn_key_val,
                             int32_t pid, uint64_t conn_id, struct shm_conn_owner *owner,
                             bool *dropped)
{
    *dropped = false;
    int rc = owned_get(store, txn, conn_key_val, pid, conn_id, owner);
    if (rc == SHM_NOT_FOUND)
        return SHM_OK;
    if (rc != SHM_OK)
        return rc;
    if ((rc = mdb_del(txn, store->conns, conn_key_val, NULL)) != 0)
        return store_batch_fail(store, rc, "worker release");
    *dropped = true;
    return SHM_OK;
}

/* The e-mail and device of a key "email\0device", as C strings; false when malformed. */
static bool conn_key_split(const MDB_val *key, char *email, char *device)
{
    const char *bytes = key->mv_data, *nul = memchr(bytes, '\0', key->mv_size);
    if (nul == NULL)
        return false;
    size_t email_len = (size_t)(nul - bytes), device_len = key->mv_size - email_len - 1;
    if (email_len == 0 || email_len > SHM_EMAIL_MAX || device_len > SHM_DEVICE_MAX ||
        memchr(nul + 1, '\0', device_len) != NULL)
        return false;
    memcpy(email, bytes, email_len);
    email[email_len] = '\0';
    memcpy(device, nul + 1, device_len);
    device[device_len] = '\0';
    return true;
}

int shm_conn_release_worker(struct shm_store *store, int32_t pid, size_t *released,
                            shm_conn_released_cb cb, void *arg)
{
    *released = 0;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(txn, store->conns_by_worker, &cursor);
    if (rc != 0)
        return store_batch_fail(store, rc, "worker release");
    unsigned char prefix[OWNER_KEY_SIZE];
    MDB_val key, value;
    owner_key(pid, 0, prefix, &key);
    int result = SHM_OK;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        if (key.mv_size != OWNER_KEY_SIZE || store_get_be32(key.mv_data) != (uint32_t)pid)
            break;
        uint64_t conn_id = store_get_be64((unsigned char *)key.mv_data + 4);
        struct shm_conn_owner owner;
        bool dropped;
        char email[SHM_EMAIL_MAX + 1], device[SHM_DEVICE_MAX + 1];
        if ((result = owned_record_drop(store, txn, &value, pid, conn_id, &owner, &dropped)) !=
            SHM_OK)
            break;
        if (cb != NULL && dropped && conn_key_split(&value, email, device))
            cb(arg, email, device, &owner);
        if ((rc = mdb_cursor_del(cursor, 0)) != 0)
            break;
        (*released)++;
    }
    mdb_cursor_close(cursor);
    if (result == SHM_OK && rc != 0 && rc != MDB_NOTFOUND)
        result = store_batch_fail(store, rc, "worker release");
    return result;
}

int shm_conn_walk_all(struct shm_store *store, shm_conn_released_cb cb, void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    if (mdb_cursor_open(txn, store->conns, &cursor) != 0) {
        store_read_end(store, txn);
        return SHM_ERROR;
    }
    MDB_val key, value;
    int count = 0, rc;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        struct shm_conn_owner owner;
        char email[SHM_EMAIL_MAX + 1], device[SHM_DEVICE_MAX + 1];
        if (owner_decode(&value, &owner) != SHM_OK || !conn_key_split(&key, email, device))
            continue;
        cb(arg, email, device, &owner);
        count++;
    }
    mdb_cursor_close(cursor);
    store_read_end(store, txn);
    return rc == MDB_NOTFOUND ? count : SHM_ERROR;
}

int shm_conn_get(struct shm_store *store, const char *email, const char *device,
                 struct shm_conn_owner *out)
{
    unsigned char key_buf[SHM_EMAIL_MAX + SHM_DEVICE_MAX + 2];
    MDB_val key, value;
    MDB_txn *txn;
    if (shm_device_key(email, device, key_buf, &key) != SHM_OK)
        return SHM_ERROR;
    int rc = store_read_begin(store, &txn);
    if (rc != SHM_OK)
        return rc;
    rc = mdb_get(txn, store->conns, &key, &value);
    int result = rc == 0 ? owner_decode(&value, out) : store_result(rc);
    store_read_end(store, txn);
    return result;
}

int shm_conn_devices(struct shm_store *store, const char *email, shm_device_cb cb, void *arg)
{
    unsigned char key_buf[SHM_EMAIL_MAX + SHM_DEVICE_MAX + 2];
    char device[SHM_DEVICE_MAX + 1];
    MDB_val key, value;
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (shm_device_key(email, "", key_buf, &key) != SHM_OK)
        return SHM_ERROR;
    size_t prefix_len = key.mv_size;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    if (mdb_cursor_open(txn, store->conns, &cursor) != 0) {
        store_read_end(store, txn);
        return SHM_ERROR;
    }
    int count = 0;
    for (int rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        struct shm_conn_owner owner;
        if (key.mv_size < prefix_len || memcmp(key.mv_data, key_buf, prefix_len) != 0)
            break;
        size_t device_len = key.mv_size - prefix_len;
        if (device_len > SHM_DEVICE_MAX || owner_decode(&value, &owner) != SHM_OK)
            continue;
        memcpy(device, (char *)key.mv_data + prefix_len, device_len);
        device[device_len] = '\0';
        if (cb != NULL)
            cb(arg, device, &owner);
        count++;
    }
    mdb_cursor_close(cursor);
    store_read_end(store, txn);
    return count;
}

static void presence_max(void *arg, const char *device, const struct shm_conn_owner *owner)
{
    uint8_t *status = arg;
    (void)device;
    if (owner->status > *status)
        *status = owner->status;
}

int shm_conn_presence(struct shm_store *store, const char *email, uint8_t *status)
{
    *status = SHM_STATUS_OFFLINE;
    return shm_conn_devices(store, email, presence_max, status) < 0 ? SHM_ERROR : SHM_OK;
}
