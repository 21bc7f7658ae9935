/* grant: which apps a user allowed, under which PUID — random per (user, app), kept on
 * re-grant, new after a revoke (SPEC.md §4). */
#include "grant.h"

#include "app.h"
#include "outbox.h"
#include "store_internal.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Three views of one grant, written and deleted together:
 *   grants     e-mail \0 appid -> PUID, be64 granted
 *   puids      PUID -> appid \0 e-mail
 *   app_grants appid \0 PUID -> e-mail */
#define GRANT_VALUE_LEN (SHM_PUID_LEN + 8)

static size_t pair_key(const char *first, const char *second, size_t second_len, char *buf)
{
    size_t first_len = strlen(first);
    memcpy(buf, first, first_len + 1);
    memcpy(buf + first_len + 1, second, second_len);
    return first_len + 1 + second_len;
}

static bool ids_valid(const char *email, const char *appid)
{
    size_t len = strlen(email);
    return len > 0 && len <= SHM_EMAIL_MAX && strlen(appid) == SHM_APPID_LEN;
}

/* In a cluster, the grant or revoke for the agent to make in the engine too. */
static int grant_outbox(struct shm_store *store, uint8_t op, const char *email, const char *appid,
                        const char *puid, int64_t granted_ms)
{
    if (!store->outbox_on)
        return SHM_OK;
    struct shm_outbox_grant g = { .granted_ms = granted_ms };
    snprintf(g.puid, sizeof g.puid, "%s", puid);
    snprintf(g.email, sizeof g.email, "%s", email);
    snprintf(g.appid, sizeof g.appid, "%s", appid);
    unsigned char value[SHM_PUID_LEN + 9 + SHM_EMAIL_MAX + SHM_APPID_LEN];
    char key[SHM_GRANT_KEY_MAX + 1];
    long len = shm_outbox_grant_encode(&g, value, sizeof value);
    if (len < 0)
        return SHM_ERROR;
    shm_grant_engine_key(email, appid, key);
    return shm_outbox_add(store, op, SHM_BUCKET_GRANTS, key, value, (size_t)len, NULL);
}

void shm_grant_engine_key(const char *email, const char *appid, char out[SHM_GRANT_KEY_MAX + 1])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char pair[SHM_EMAIL_MAX + 1 + SHM_APPID_LEN];
    size_t elen = strnlen(email, SHM_EMAIL_MAX), alen = strnlen(appid, SHM_APPID_LEN);
    memcpy(pair, email, elen);
    pair[elen] = '\0'; /* e-mail \0 appid */
    memcpy(pair + elen + 1, appid, alen);
    SHA256((const unsigned char *)pair, elen + 1 + alen, digest);
    out[0] = 'g';
    out[1] = '.';
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 + 2 * i, 3, "%02x", digest[i]);
}

int shm_grant_get(struct shm_store *store, const char *email, const char *appid, char *puid)
{
    if (!ids_valid(email, appid))
        return SHM_NOT_FOUND;
    char buf[SHM_EMAIL_MAX + 1 + SHM_APPID_LEN];
    MDB_val key = { pair_key(email, appid, SHM_APPID_LEN, buf), buf }, value;
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_get(txn, store->grants, &key, &value);
    int result = store_result(rc);
    if (rc == 0 && value.mv_size == GRANT_VALUE_LEN) {
        memcpy(puid, value.mv_data, SHM_PUID_LEN);
        puid[SHM_PUID_LEN] = '\0';
    } else if (rc == 0) {
        result = SHM_ERROR;
    }
    store_read_end(store, txn);
    return result;
}

int shm_grant_put(struct shm_store *store, const char *email, const char *appid, const char *puid,
                  int64_t now_ms)
{
    if (!ids_valid(email, appid) || strlen(puid) != SHM_PUID_LEN)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    char gkey[SHM_EMAIL_MAX + 1 + SHM_APPID_LEN], pvalue[SHM_APPID_LEN + 1 + SHM_EMAIL_MAX];
    char akey[SHM_APPID_LEN + 1 + SHM_PUID_LEN];
    unsigned char gvalue[GRANT_VALUE_LEN];
    memcpy(gvalue, puid, SHM_PUID_LEN);
    store_put_be64(gvalue + SHM_PUID_LEN, (uint64_t)now_ms);
    MDB_val k1 = { pair_key(email, appid, SHM_APPID_LEN, gkey), gkey },
            v1 = { sizeof gvalue, gvalue };
    MDB_val k2 = { SHM_PUID_LEN, (void *)puid };
    MDB_val v2 = { pair_key(appid, email, strlen(email), pvalue), pvalue };
    MDB_val k3 = { pair_key(appid, puid, SHM_PUID_LEN, akey), akey };
    MDB_val v3 = { strlen(email), (void *)email };
    int rc = mdb_put(txn, store->grants, &k1, &v1, 0);
    if (rc == 0)
        rc = mdb_put(txn, store->puids, &k2, &v2, 0);
    if (rc == 0)
        rc = mdb_put(txn, store->app_grants, &k3, &v3, 0);
    if (rc != 0)
        return store_batch_fail(store, rc, "grant");
    return grant_outbox(store, SHM_OUTBOX_GRANT, email, appid, puid, now_ms);
}

static int views_delete(struct shm_store *store, MDB_txn *txn, const char *email, const char *appid,
                        const char *puid)
{
    char gkey[SHM_EMAIL_MAX + 1 + SHM_APPID_LEN], akey[SHM_APPID_LEN + 1 + SHM_PUID_LEN];
    MDB_val k1 = { pair_key(email, appid, SHM_APPID_LEN, gkey), gkey };
    MDB_val k2 = { SHM_PUID_LEN, (void *)puid };
    MDB_val k3 = { pair_key(appid, puid, SHM_PUID_LEN, akey), akey };
    int rc = mdb_del(txn, store->grants, &k1, NULL);
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = mdb_del(txn, store->puids, &k2, NULL);
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = mdb_del(txn, store->app_grants, &k3, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_batch_fail(store, rc, "revoke");
    return grant_outbox(store, SHM_OUTBOX_REVOKE, email, appid, puid, 0);
}

int shm_grant_revoke(struct shm_store *store, const char *email, const char *appid, char *puid)
{
    char found[SHM_PUID_LEN + 1];
    int rc = shm_grant_get(store, email, appid, found);
    if (rc != SHM_OK)
        return rc;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    if (puid != NULL)
        memcpy(puid, found, SHM_PUID_LEN + 1);
    return views_delete(store, txn, email, appid, found);
}

int shm_grant_by_puid(struct shm_store *store, const char *puid, char *appid, char *email)
{
    if (strlen(puid) != SHM_PUID_LEN)
        return SHM_NOT_FOUND;
    MDB_val key = { SHM_PUID_LEN, (void *)puid }, value;
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_get(txn, store->puids, &key, &value);
    int result = store_result(rc);
    size_t email_len = value.mv_size - SHM_APPID_LEN - 1;
    if (rc == 0 && (value.mv_size <= SHM_APPID_LEN + 1 || email_len > SHM_EMAIL_MAX)) {
        result = SHM_ERROR;
    } else if (rc == 0) {
        memcpy(appid, value.mv_data, SHM_APPID_LEN);
        appid[SHM_APPID_LEN] = '\0';
        memcpy(email, (char *)value.mv_data + SHM_APPID_LEN + 1, email_len);
        email[email_len] = '\0';
    }
    store_read_end(store, txn);
    return result;
}

struct user_walk {
    shm_grant_user_cb cb;
    void *arg;
};

static void user_grant(void *arg, const MDB_val *rest, const MDB_val *value)
{
    struct user_walk *walk = arg;
    char appid[SHM_APPID_LEN + 1], puid[SHM_PUID_LEN + 1];
    if (rest->mv_size != SHM_APPID_LEN || value->mv_size != GRANT_VALUE_LEN)
        return;
    memcpy(appid, rest->mv_data, SHM_APPID_LEN);
    appid[SHM_APPID_LEN] = '\0';
    memcpy(puid, value->mv_data, SHM_PUID_LEN);
    puid[SHM_PUID_LEN] = '\0';
    if (walk->cb != NULL)
        walk->cb(walk->arg, appid, puid);
}

int shm_grant_list_user(struct shm_store *store, const char *email, shm_grant_user_cb cb, void *arg)
{
    struct user_walk walk = { cb, arg };
    return store_prefix_walk(store, store->grants, email, user_grant, &walk);
}

struct app_walk {
    shm_grant_app_cb cb;
    void *arg;
};

static void app_grant(void *arg, const MDB_val *rest, const MDB_val *value)
{
    struct app_walk *walk = arg;
    char puid[SHM_PUID_LEN + 1], email[SHM_EMAIL_MAX + 1];
    if (rest->mv_size != SHM_PUID_LEN || value->mv_size > SHM_EMAIL_MAX)
        return;
    memcpy(puid, rest->mv_data, SHM_PUID_LEN);
    puid[SHM_PUID_LEN] = '\0';
    memcpy(email, value->mv_data, value->mv_size);
    email[value->mv_size] = '\0';
    if (walk->cb != NULL)
        walk->cb(walk->arg, puid, email);
}

int shm_grant_list_app(struct shm_store *store, const char *appid, shm_grant_app_cb cb, void *arg)
{
    struct app_walk walk = { cb, arg };
    return store_prefix_walk(store, store->app_grants, appid, app_grant, &walk);
}

int shm_grant_page_app(struct shm_store *store, const char *appid, char *after_puid, size_t max,
                       shm_grant_app_cb cb, void *arg, bool *done)
{
    *done = false;
    unsigned char start[SHM_APPID_LEN + 1 + SHM_PUID_LEN];
    size_t after_len = strlen(after_puid), prefix_len = SHM_APPID_LEN + 1;
    if (strlen(appid) != SHM_APPID_LEN || after_len > SHM_PUID_LEN)
        return SHM_ERROR;
    memcpy(start, appid, prefix_len); /* with its NUL */
    memcpy(start + prefix_len, after_puid, after_len);
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    if (mdb_cursor_open(txn, store->app_grants, &cursor) != 0) {
        store_read_end(store, txn);
        return SHM_ERROR;
    }
    MDB_val key = { prefix_len + after_len, start }, value;
    int count = 0, rc;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
         rc == 0 && key.mv_size == prefix_len + SHM_PUID_LEN &&
         memcmp(key.mv_data, start, prefix_len) == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        const char *puid = (const char *)key.mv_data + prefix_len;
        if (after_len == SHM_PUID_LEN && memcmp(puid, after_puid, SHM_PUID_LEN) == 0)
            continue; /* where the last page stopped */
        if ((size_t)count == max)
            break;
        memcpy(after_puid, puid, SHM_PUID_LEN);
        after_puid[SHM_PUID_LEN] = '\0';
        after_len = SHM_PUID_LEN;
        MDB_val rest = { SHM_PUID_LEN, (void *)puid };
        struct app_walk walk = { cb, arg };
        app_grant(&walk, &rest, &value);
        count++;
    }
    *done = rc != 0 || key.mv_size != prefix_len + SHM_PUID_LEN ||
            memcmp(key.mv_data, start, prefix_len) != 0;
    mdb_cursor_close(cursor);
    store_read_end(store, txn);
    return count;
}

/* The grants of one app, gathered before they are deleted. */
struct grant_list {
    char (*puids)[SHM_PUID_LEN + 1];
    char (*emails)[SHM_EMAIL_MAX + 1];
    size_t count, cap;
    bool failed;
};

static void grant_collect(void *arg, const char *puid, const char *email)
{
    struct grant_list *list = arg;
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        void *p = realloc(list->puids, cap * sizeof *list->puids);
        void *e = p ? realloc(list->emails, cap * sizeof *list->emails) : NULL;
        if (p != NULL)
            list->puids = p;
        if (e == NULL) {
            list->failed = true;
            return;
        }
        list->emails = e;
        list->cap = cap;
    }
    memcpy(list->puids[list->count], puid, SHM_PUID_LEN + 1);
    snprintf(list->emails[list->count], SHM_EMAIL_MAX + 1, "%s", email);
    list->count++;
}

int shm_grant_revoke_app(struct shm_store *store, const char *appid)
{
    struct grant_list list = { 0 };
    int rc = shm_grant_list_app(store, appid, grant_collect, &list) < 0 || list.failed ? SHM_ERROR
                                                                                       : SHM_OK;
    MDB_txn *txn = rc == SHM_OK ? store_batch_txn(store) : NULL;
    if (rc == SHM_OK && txn == NULL)
        rc = SHM_ERROR;
    for (size_t i = 0; rc == SHM_OK && i < list.count; i++)
        rc = views_delete(store, txn, list.emails[i], appid, list.puids[i]);
    free(list.puids);
    free(list.emails);
    return rc;
}
