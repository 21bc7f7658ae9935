/* worker_info: each worker's published counters, read by the master for /status and /metrics. */
#include "worker_info.h"

#include "store_internal.h"

#include <string.h>

/* Stored as a flat array of big-endian fields so the layout does not depend on the compiler:
 * the scalar fields, then the meter's counts. */
#define INFO_FIELDS 18
#define INFO_WORDS (INFO_FIELDS + METER_WORDS)
/* The retired workers' meters, under a pid no process has. */
#define RETIRED_PID 0

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
    uint64_t meter[METER_WORDS];
    memcpy(meter, &info->meter, sizeof meter);
    for (size_t i = 0; i < METER_WORDS; i++)
        store_put_be64(out + 8 * (INFO_FIELDS + i), meter[i]);
}

static int info_decode(const MDB_val *value, struct shm_worker_info *out)
{
    if (value->mv_size != 8 * INFO_WORDS)
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
    uint64_t meter[METER_WORDS];
    for (size_t i = 0; i < METER_WORDS; i++)
        meter[i] = store_get_be64((const unsigned char *)value->mv_data + 8 * (INFO_FIELDS + i));
    memcpy(&out->meter, meter, sizeof meter);
    return SHM_OK;
}

int shm_worker_info_put(struct shm_store *store, const struct shm_worker_info *info)
{
    unsigned char key_buf[4], value_buf[8 * INFO_WORDS];
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

static int info_read(struct shm_store *store, MDB_txn *txn, int32_t pid,
                     struct shm_worker_info *out)
{
    unsigned char key_buf[4];
    store_put_be32(key_buf, (uint32_t)pid);
    MDB_val key = { sizeof key_buf, key_buf }, value;
    int rc = mdb_get(txn, store->workers, &key, &value);
    return rc == 0 ? info_decode(&value, out) : store_result(rc);
}

int shm_worker_info_get(struct shm_store *store, int32_t pid, struct shm_worker_info *out)
{
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int result = info_read(store, txn, pid, out);
    store_read_end(store, txn);
    return result;
}

int shm_worker_info_retire(struct shm_store *store, int32_t pid)
{
    struct shm_worker_info info, retired = { .pid = RETIRED_PID };
    int rc = shm_worker_info_get(store, pid, &info);
    if (rc != SHM_OK)
        return rc;
    rc = shm_worker_info_get(store, RETIRED_PID, &retired);
    if (rc != SHM_OK && rc != SHM_NOT_FOUND)
        return rc;
    meter_add(&retired.meter, &info.meter);
    if ((rc = shm_worker_info_put(store, &retired)) != SHM_OK)
        return rc;
    return shm_worker_info_delete(store, pid);
}

int shm_worker_info_snapshot(struct shm_store *store, const int32_t *pids, size_t count,
                             struct shm_worker_info *infos, struct meter *retired)
{
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    for (size_t i = 0; i < count; i++)
        if (info_read(store, txn, pids[i], &infos[i]) != SHM_OK)
            memset(&infos[i], 0, sizeof infos[i]);
    struct shm_worker_info record;
    int rc = info_read(store, txn, RETIRED_PID, &record);
    store_read_end(store, txn);
    memset(retired, 0, sizeof *retired);
    if (rc == SHM_OK)
        *retired = record.meter;
    return rc == SHM_NOT_FOUND ? SHM_OK : rc;
}
