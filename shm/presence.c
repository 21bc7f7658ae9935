/* presence: each user's aggregate status (the highest of their devices'), kept so that a change
 * can be told from a repeat and read without scanning devices. */
#include "presence.h"

#include "conn.h"
#include "store_internal.h"

#include "../common/grow.h"

#include <stdlib.h>
#include <string.h>

#define PRESENCE_VALUE_SIZE (1 + 8)

static int presence_read(struct shm_store *store, MDB_txn *txn, MDB_val *key,
                         struct shm_presence *out)
{
    MDB_val value;
    memset(out, 0, sizeof *out);
    int rc = mdb_get(txn, store->presence, key, &value);
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    if (rc != 0)
        return store_result(rc);
    if (value.mv_size != PRESENCE_VALUE_SIZE)
        return SHM_ERROR;
    const unsigned char *v = value.mv_data;
    out->status = v[0];
    out->since_ms = (int64_t)store_get_be64(v + 1);
    return SHM_OK;
}

static void devices_fold(void *arg, const char *device, const struct shm_conn_owner *owner)
{
    struct shm_presence *p = arg;
    (void)device;
    if (owner->status > p->status)
        p->status = owner->status;
    p->devices++;
}

static int presence_write(struct shm_store *store, MDB_txn *txn, MDB_val *key,
                          const struct shm_presence *p)
{
    int rc;
    if (p->devices == 0) {
        rc = mdb_del(txn, store->presence, key, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    } else {
        unsigned char buf[PRESENCE_VALUE_SIZE];
        buf[0] = p->status;
        store_put_be64(buf + 1, (uint64_t)p->since_ms);
        MDB_val value = { sizeof buf, buf };
        rc = mdb_put(txn, store->presence, key, &value, 0);
    }
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "presence");
}

int shm_presence_refresh(struct shm_store *store, const char *email, int64_t now_ms,
                         struct shm_presence *before, struct shm_presence *after)
{
    struct shm_presence old, now = { 0 };
    MDB_val key = { strlen(email), (void *)email };
    if (key.mv_size == 0 || key.mv_size > SHM_EMAIL_MAX)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = presence_read(store, txn, &key, &old);
    if (rc != SHM_OK && rc != SHM_NOT_FOUND)
        return rc;
    bool had_record = rc == SHM_OK;
    if (shm_conn_devices(store, email, devices_fold, &now) < 0)
        return SHM_ERROR;
    bool changed = now.status != old.status || (now.devices > 0) != had_record;
    now.since_ms = changed ? now_ms : old.since_ms;
    if (changed && (rc = presence_write(store, txn, &key, &now)) != SHM_OK)
        return rc;
    if (before != NULL)
        *before = old;
    if (after != NULL)
        *after = now;
    return SHM_OK;
}

int shm_presence_get(struct shm_store *store, const char *email, struct shm_presence *out)
{
    MDB_val key = { strlen(email), (void *)email };
    MDB_txn *txn;
    memset(out, 0, sizeof *out);
    if (key.mv_size == 0 || key.mv_size > SHM_EMAIL_MAX)
        return SHM_ERROR;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = presence_read(store, txn, &key, out);
    store_read_end(store, txn);
    return rc;
}

/* The distinct e-mails of a worker's released connections. */
struct email_set {
    char **emails;
    size_t count, cap;
    bool failed;
};

static void email_collect(void *arg, const char *email)
{
    struct email_set *set = arg;
    for (size_t i = 0; i < set->count; i++)
        if (strcmp(set->emails[i], email) == 0)
            return;
    char *copy = strdup(email);
    if (copy == NULL ||
        grow_for((void **)&set->emails, &set->cap, set->count, sizeof *set->emails, 16) != 0) {
        free(copy);
        set->failed = true;
        return;
    }
    set->emails[set->count++] = copy;
}

int shm_presence_release_worker(struct shm_store *store, int32_t pid, int64_t now_ms,
                                size_t *released, shm_presence_cb cb, void *arg)
{
    struct email_set set = { 0 };
    int rc = shm_conn_release_worker(store, pid, released, email_collect, &set);
    for (size_t i = 0; i < set.count; i++) {
        struct shm_presence before, after;
        if (rc == SHM_OK &&
            (rc = shm_presence_refresh(store, set.emails[i], now_ms, &before, &after)) == SHM_OK &&
            cb != NULL && before.status != after.status)
            cb(arg, set.emails[i], &before, &after, store);
        free(set.emails[i]);
    }
    free(set.emails);
    return rc == SHM_OK && set.failed ? SHM_ERROR : rc;
}
