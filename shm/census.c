/* census: how much the node holds right now — pending notifications, open AppService
 * connections, connected users by status — for the gauges of /metrics. */
#include "census.h"

#include "presence.h"
#include "store_internal.h"

#include <string.h>

static int entries(MDB_txn *txn, MDB_dbi dbi, uint64_t *out)
{
    MDB_stat stat;
    int rc = mdb_stat(txn, dbi, &stat);
    *out = rc == 0 ? stat.ms_entries : 0;
    return rc;
}

int shm_census_take(struct shm_store *store, struct shm_census *out)
{
    memset(out, 0, sizeof *out);
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = entries(txn, store->notifs, &out->notifications_pending);
    if (rc == 0)
        rc = entries(txn, store->app_conns, &out->appservice_connections);
    store_read_end(store, txn);
    if (rc != 0)
        return store_result(rc);
    return shm_presence_count_live(store, out->users);
}
