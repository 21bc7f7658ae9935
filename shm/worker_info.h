/* worker_info: each worker's published counters, read by the master for /status and /metrics. */
#ifndef PRESENCED_SHM_WORKER_INFO_H
#define PRESENCED_SHM_WORKER_INFO_H

#include "store.h"

#include "../common/meter.h"

#include <stdint.h>

struct shm_worker_info {
    int32_t pid;
    int32_t slot;
    uint32_t generation;
    uint32_t draining;
    int64_t started_ms;
    int64_t updated_ms;
    uint64_t connections; /* open sockets: HTTP and WebSocket */
    uint64_t websockets;
    uint64_t accepted_total;
    uint64_t http_requests_total;
    uint64_t ws_messages_total;
    uint64_t accept_pauses_total; /* times accepting paused at the file limit */
    uint64_t store_failures_total;
    uint64_t assertion_cache_hits_total; /* assertions accepted from the shared cache */
    uint64_t assertions_verified_total;  /* checked locally or remotely and accepted */
    uint64_t assertions_refused_total;   /* errno 32, 33, 34 */
    uint64_t verifier_unavailable_total; /* errno 35 */
    uint64_t app_key_failures_total;     /* bad API keys: AppService auth (errno 42), polling */
    struct meter meter;                  /* the node-wide metrics, this worker's part */
};

int shm_worker_info_put(struct shm_store *store, const struct shm_worker_info *info);
int shm_worker_info_delete(struct shm_store *store, int32_t pid);
int shm_worker_info_get(struct shm_store *store, int32_t pid, struct shm_worker_info *out);
/* Deletes pid's record after adding its meter to the retired workers' one, so that the node's
 * totals do not go down when a worker exits or is replaced. In the batch. */
int shm_worker_info_retire(struct shm_store *store, int32_t pid);
/* In one read: the records of pids (zeroed when one has none) and the meters of every worker
 * that has exited since the store's volatile records were reset (zero when none has), so that
 * a worker retiring meanwhile is counted once. */
int shm_worker_info_snapshot(struct shm_store *store, const int32_t *pids, size_t count,
                             struct shm_worker_info *infos, struct meter *retired);

#endif
