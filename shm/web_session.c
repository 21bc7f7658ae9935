/* web_session: signed-in users of the web pages, by a hash of their cookie (SPEC.md §4). */
#include "web_session.h"

#include "outbox.h"
#include "store_internal.h"

#include <stdio.h>

#include <string.h>

/* Value: be64 expiry, the CSRF token, the e-mail (the rest). */
#define HEAD_LEN (8 + SHM_CSRF_LEN)

int shm_web_session_put(struct shm_store *store, const unsigned char *hash,
                        const struct shm_web_session *session)
{
    size_t email_len = strnlen(session->email, SHM_EMAIL_MAX + 1);
    if (email_len == 0 || email_len > SHM_EMAIL_MAX || strlen(session->csrf) != SHM_CSRF_LEN)
        return SHM_ERROR;
    unsigned char buf[HEAD_LEN + SHM_EMAIL_MAX];
    store_put_be64(buf, (uint64_t)session->expires_ms);
    memcpy(buf + 8, session->csrf, SHM_CSRF_LEN);
    memcpy(buf + HEAD_LEN, session->email, email_len);
    MDB_val key = { SHM_WEB_HASH_LEN, (void *)hash }, value = { HEAD_LEN + email_len, buf };
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = mdb_put(txn, store->web_sessions, &key, &value, 0);
    if (rc != 0)
        return store_batch_fail(store, rc, "web session");
    if (!store->outbox_on)
        return SHM_OK;
    char hex[2 * SHM_WEB_HASH_LEN + 1];
    shm_web_session_key(hash, hex);
    return shm_outbox_add(store, SHM_OUTBOX_PUT, SHM_BUCKET_SESSIONS, hex, buf, value.mv_size,
                          NULL);
}

void shm_web_session_key(const unsigned char *hash, char out[2 * SHM_WEB_HASH_LEN + 1])
{
    for (int i = 0; i < SHM_WEB_HASH_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", hash[i]);
}

int shm_web_session_decode(const void *data, size_t len, struct shm_web_session *out)
{
    size_t email_len = len - HEAD_LEN;
    if (len <= HEAD_LEN || email_len > SHM_EMAIL_MAX)
        return SHM_ERROR;
    const unsigned char *v = data;
    out->expires_ms = (int64_t)store_get_be64(v);
    memcpy(out->csrf, v + 8, SHM_CSRF_LEN);
    out->csrf[SHM_CSRF_LEN] = '\0';
    memcpy(out->email, v + HEAD_LEN, email_len);
    out->email[email_len] = '\0';
    return strlen(out->email) == email_len && strlen(out->csrf) == SHM_CSRF_LEN ? SHM_OK
                                                                               : SHM_ERROR;
}

int shm_web_session_get(struct shm_store *store, const unsigned char *hash, int64_t now_ms,
                        struct shm_web_session *out)
{
    MDB_val key = { SHM_WEB_HASH_LEN, (void *)hash }, value;
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_get(txn, store->web_sessions, &key, &value);
    int result = store_result(rc);
    if (rc == 0)
        result = shm_web_session_decode(value.mv_data, value.mv_size, out);
    store_read_end(store, txn);
    if (result == SHM_OK && out->expires_ms <= now_ms)
        return SHM_NOT_FOUND;
    return result;
}

int shm_web_session_delete(struct shm_store *store, const unsigned char *hash)
{
    MDB_val key = { SHM_WEB_HASH_LEN, (void *)hash };
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = mdb_del(txn, store->web_sessions, &key, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_batch_fail(store, rc, "web session");
    if (store->outbox_on) {
        char hex[2 * SHM_WEB_HASH_LEN + 1];
        shm_web_session_key(hash, hex);
        int out = shm_outbox_add(store, SHM_OUTBOX_DELETE, SHM_BUCKET_SESSIONS, hex, NULL, 0, NULL);
        if (out != SHM_OK)
            return out;
    }
    return rc == MDB_NOTFOUND ? SHM_NOT_FOUND : SHM_OK;
}

int shm_web_session_expire(struct shm_store *store, int64_t now_ms, size_t max,
                           struct shm_sweep *sweep, size_t *removed)
{
    return store_expired_sweep(store, store->web_sessions, now_ms, max, sweep, removed,
                               "web session");
}
