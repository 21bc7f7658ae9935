/* app_away_shared: each node's AppService connections of an app — open, or none since when — as
 * the cluster shares them (cl_app_away: appid \0 node -> be64 epoch, be64 away since ms). */
#include "app_away_shared.h"

#include "app.h"
#include "outbox.h"
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

#define NODE_MAX 32

int shm_app_away_share(struct shm_store *store, const char *appid, const char *node,
                       uint64_t epoch, int64_t away_since_ms)
{
    if (!store->outbox_on)
        return SHM_OK;
    char key[SHM_APPID_LEN + 1 + NODE_MAX + 1];
    unsigned char value[SHM_APP_AWAY_VALUE_LEN];
    if (strlen(appid) != SHM_APPID_LEN || strlen(node) == 0 || strlen(node) > NODE_MAX)
        return SHM_ERROR;
    snprintf(key, sizeof key, "%s.%s", appid, node);
    store_put_be64(value, epoch);
    store_put_be64(value + 8, (uint64_t)away_since_ms);
    return shm_outbox_add(store, SHM_OUTBOX_PUT, SHM_BUCKET_APP_AWAY, key, value, sizeof value,
                          NULL);
}

int shm_app_away_apply(struct shm_store *store, const char *key, const void *value, size_t len)
{
    size_t key_len = strlen(key);
    if (len != SHM_APP_AWAY_VALUE_LEN || key_len < SHM_APPID_LEN + 2 ||
        key_len > SHM_APPID_LEN + 1 + NODE_MAX || key[SHM_APPID_LEN] != '.')
        return SHM_ERROR;
    unsigned char k[SHM_APPID_LEN + 1 + NODE_MAX];
    memcpy(k, key, key_len);
    k[SHM_APPID_LEN] = '\0'; /* appid \0 node */
    MDB_val mk = { key_len, k }, mv = { len, (void *)value };
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = mdb_put(txn, store->cl_app_away, &mk, &mv, 0);
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "app away");
}

struct away_walk {
    shm_app_away_cb cb;
    void *arg;
};

static void away_visit(void *arg, const MDB_val *rest, const MDB_val *value)
{
    struct away_walk *walk = arg;
    char node[NODE_MAX + 1];
    if (rest->mv_size == 0 || rest->mv_size > NODE_MAX || value->mv_size != SHM_APP_AWAY_VALUE_LEN)
        return;
    memcpy(node, rest->mv_data, rest->mv_size);
    node[rest->mv_size] = '\0';
    const unsigned char *v = value->mv_data;
    walk->cb(walk->arg, node, store_get_be64(v), (int64_t)store_get_be64(v + 8));
}

int shm_app_away_nodes(struct shm_store *store, const char *appid, shm_app_away_cb cb, void *arg)
{
    struct away_walk walk = { cb, arg };
    if (strlen(appid) != SHM_APPID_LEN)
        return SHM_ERROR;
    return store_prefix_walk(store, store->cl_app_away, appid, away_visit, &walk);
}
