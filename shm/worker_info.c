/* worker_info: each worker's published counters, read by the master for /status and /metrics. */
#include "worker_info.h"

#include "store_internal.h"

#include <string.h>

/* Stored as a flat array of big-endian fields so the layout does not depend on the compiler. */
#define INFO_FIELDS 18

static void info_encode(const struct shm_worker_info *info, unsigned char *out)
{
    uint64_t fields[INFO_FIELDS] = {
        (uint32_t)info->pid,
        (uint32_t)info->slot,
        info->generation,
        info->draining,
        (uint64_t)info->started_ms,
        (uint64_t)info->updated_ms,
        info->connections,
        info->websockets,
        info->accepted_total,
        info->http_requests_total,
        info->ws_messages_total,
        info->accept_pauses_total,
        info->store_failures_total,
        info->assertion_cache_hits_total,
        info->assertions_verified_total,
        info->assertions_refused_total,
        info->verifier_unavailable_total,
        info->app_key_failures_total,
    };
    for (int i = 0; i < INFO_FIELDS; i++)
        store_put_be64(out + 8 * i, fields[i]);
}

static int info_decode(const MDB_val *value, struct shm_worker_info *out)
{
    if (value->mv_size != 8 * INFO_FIELDS)
        return SHM_ERROR;
    uint64_t f[INFO_FIELDS];
    for (int i = 0; i < INFO_FIELDS; i++)
        f[i] = store_get_be64((const unsigned char *)value->mv_data + 8 * i);
    *out = (struct shm_worker_info){
        .pid = (int32_t)f[0],
        .slot = (int32_t)f[1],
        .generation = (uint32_t)f[2],
        .draining = (uint32_t)f[3],
        .started_ms = (int64_t)f[4],
        .updated_ms = (int64_t)f[5],
        .connections = f[6],
        .websockets = f[7],
        .accepted_total = f[8],
        .http_requests_total = f[9],
        .ws_messages_total = f[10],
        .accept_pauses_total = f[11],
        .store_failures_total = f[12],
        .assertion_cache_hits_total = f[13],
        .assertions_verified_total = f[14],
        .assertions_refused_total = f[15],
        .verifier_unavailable_total = f[16],
        .app_key_failures_total = f[17],
    };
    return SHM_OK;
}

int shm_worker_info_put(struct shm_store *store, const struct shm_worker_info *info)
{
    unsigned char key_buf[4], value_buf[8 * INFO_FIELDS];
    store_put_be32(key_buf, (uint32_t)info->pid);
    info_encode(info, value_buf);
    MDB_val key = { sizeof key_buf, key_buf }, value = { sizeof value_buf, value_buf };
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = mdb_put(txn, store->workers, &key, &value, 0);
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "worker info");
}

int shm_worker_info_delete(struct shm_store *store, int32_t pid)
{
    unsigned char key_buf[4];
    store_put_be32(key_buf, (uint32_t)pid);
    MDB_val key = { sizeof key_buf, key_buf };
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = mdb_del(txn, store->workers, &key, NULL);
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "worker info");
}

int shm_worker_info_get(struct shm_store *store, int32_t pid, struct shm_worker_info *out)
{
    unsigned char key_buf[4];
    store_put_be32(key_buf, (uint32_t)pid);
    MDB_val key = { sizeof key_buf, key_buf }, value;
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_get(txn, store->workers, &key, &value);
    int result = rc == 0 ? info_decode(&value, out) : store_result(rc);
    store_read_end(store, txn);
    return result;
}
