/* census: how much the node holds right now — pending notifications, open AppService
 * connections, connected users by status — for the gauges of /metrics. */
#ifndef PRESENCED_SHM_CENSUS_H
#define PRESENCED_SHM_CENSUS_H

#include "store.h"

#include <stdint.h>

struct shm_census {
    uint64_t notifications_pending;  /* queued, not yet written, expired or swept */
    uint64_t appservice_connections; /* authenticated, on every worker */
    uint64_t users[3];               /* with a device connected, by live status: offline
                                      * (appearing so), unavailable, online */
};

/* The record counts are LMDB's own (constant time); the users are counted by reading each
 * user's presence record (shm_presence_count_live). */
int shm_census_take(struct shm_store *store, struct shm_census *out);

#endif
