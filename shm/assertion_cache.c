/* assertion_cache: verified assertions shared by every worker, so a repeated one costs neither
 * crypto nor network (SPEC.md §3). */
#include "assertion_cache.h"

#include "store_internal.h"

#include <string.h>

/* Value: be64 expires, be64 trust id, u8 e-mail length, e-mail, audience (the rest). */
#define HEAD_LEN 17

static int record_decode(const MDB_val *value, struct shm_assertion *out)
{
    const unsigned char *v = value->mv_data;
    if (value->mv_size < HEAD_LEN)
        return SHM_ERROR;
    size_t email_len = v[16], aud_len = value->mv_size - HEAD_LEN - email_len;
    if (HEAD_LEN + email_len > value->mv_size || email_len > SHM_ASSERTION_EMAIL_MAX ||
        aud_len > SHM_ASSERTION_AUD_MAX)
        return SHM_ERROR;
    out->expires_ms = (int64_t)store_get_be64(v);
    out->trust_id = store_get_be64(v + 8);
    memcpy(out->email, v + HEAD_LEN, email_len);
    out->email[email_len] = '\0';
    memcpy(out->aud, v + HEAD_LEN + email_len, aud_len);
    out->aud[aud_len] = '\0';
    return SHM_OK;
}

int shm_assertion_get(struct shm_store *store, const unsigned char *hash, int64_t now_ms,
                      struct shm_assertion *out)
{
    MDB_val key = { SHM_ASSERTION_HASH_LEN, (void *)hash }, value;
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_get(txn, store->assertions, &key, &value);
    int result = rc == 0 ? record_decode(&value, out) : store_result(rc);
    store_read_end(store, txn);
    if (result == SHM_OK && out->expires_ms <= now_ms)
        return SHM_NOT_FOUND;
    return result;
}

int shm_assertion_put(struct shm_store *store, const unsigned char *hash,
                      const struct shm_assertion *rec)
{
    size_t email_len = strnlen(rec->email, SHM_ASSERTION_EMAIL_MAX + 1);
    size_t aud_len = strnlen(rec->aud, SHM_ASSERTION_AUD_MAX + 1);
    if (email_len > SHM_ASSERTION_EMAIL_MAX || aud_len > SHM_ASSERTION_AUD_MAX)
        return SHM_ERROR;
    unsigned char buf[HEAD_LEN + SHM_ASSERTION_EMAIL_MAX + SHM_ASSERTION_AUD_MAX];
    store_put_be64(buf, (uint64_t)rec->expires_ms);
    store_put_be64(buf + 8, rec->trust_id);
    buf[16] = (unsigned char)email_len;
    memcpy(buf + HEAD_LEN, rec->email, email_len);
    memcpy(buf + HEAD_LEN + email_len, rec->aud, aud_len);
    MDB_val key = { SHM_ASSERTION_HASH_LEN, (void *)hash };
    MDB_val value = { HEAD_LEN + email_len + aud_len, buf };
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = mdb_put(txn, store->assertions, &key, &value, 0);
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "assertion cache");
}

int shm_assertion_expire(struct shm_store *store, int64_t now_ms, size_t max,
                         struct shm_sweep *sweep, size_t *removed)
{
    return store_expired_sweep(store, store->assertions, now_ms, max, sweep, removed,
                               "assertion cache");
}
