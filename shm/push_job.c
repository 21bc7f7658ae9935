/* push_job: the Web Push messages to send, kept in the store by due time (see push_job.h). */
#include "push_job.h"

#include "push_sub.h"
#include "store_internal.h"

#include "../common/grow.h"

#include <stdlib.h>
#include <string.h>

/* be64 expiry, be32 owner, u8 attempts, u8 flags, u8 e-mail length, e-mail, u8 device length,
 * device, the JSON. */
#define JOB_FIXED (8 + 4 + 1 + 1)
#define JOB_VALUE_MAX (JOB_FIXED + 1 + SHM_EMAIL_MAX + 1 + SHM_DEVICE_MAX + SHM_NOTIF_JSON_MAX)

#define COUNTER_SENT "push_sent"
#define COUNTER_FAILED "push_failed"
#define COUNTER_RETRIED "push_retried"
#define COUNTER_GONE "push_subscriptions_gone"
#define COUNTER_QUEUED "push_queued"

static size_t job_encode(const struct shm_push_job *job, unsigned char *out)
{
    size_t email_len = strlen(job->email), device_len = strlen(job->device);
    store_put_be64(out, (uint64_t)job->expires_ms);
    store_put_be32(out + 8, (uint32_t)job->owner);
    out[12] = job->attempts;
    out[13] = job->flags;
    size_t at = JOB_FIXED;
    at += store_put_str8(out + at, job->email, email_len);
    at += store_put_str8(out + at, job->device, device_len);
    memcpy(out + at, job->json, job->json_len);
    return at + job->json_len;
}

static int job_decode(const MDB_val *key, const MDB_val *value, struct shm_push_job *out)
{
    const unsigned char *v = value->mv_data;
    size_t len = value->mv_size, at = JOB_FIXED;
    if (key->mv_size != SHM_PUSH_KEY_LEN || len < JOB_FIXED + 2)
        return SHM_ERROR;
    memcpy(out->key, key->mv_data, SHM_PUSH_KEY_LEN);
    out->due_ms = (int64_t)store_get_be64(out->key);
    out->expires_ms = (int64_t)store_get_be64(v);
    out->owner = (int32_t)store_get_be32(v + 8);
    out->attempts = v[12];
    out->flags = v[13];
    size_t email_len = v[at++];
    if (email_len == 0 || email_len > SHM_EMAIL_MAX || at + email_len + 1 > len)
        return SHM_ERROR;
    memcpy(out->email, v + at, email_len);
    out->email[email_len] = '\0';
    at += email_len;
    size_t device_len = v[at++];
    if (device_len > SHM_DEVICE_MAX || at + device_len > len ||
        len - at - device_len > SHM_NOTIF_JSON_MAX)
        return SHM_ERROR;
    memcpy(out->device, v + at, device_len);
    out->device[device_len] = '\0';
    at += device_len;
    out->json_len = len - at;
    memcpy(out->json, v + at, out->json_len);
    return SHM_OK;
}

/* Writes the job under a new key (due_ms, a new store sequence number). */
static int job_insert(struct shm_store *store, MDB_txn *txn, struct shm_push_job *job)
{
    unsigned char value[JOB_VALUE_MAX];
    uint64_t seq;
    int rc = store_seq_next(store, txn, &seq);
    if (rc != SHM_OK)
        return rc;
    store_put_be64(job->key, (uint64_t)job->due_ms);
    store_put_be64(job->key + 8, seq);
    MDB_val k = { SHM_PUSH_KEY_LEN, job->key }, v = { job_encode(job, value), value };
    rc = mdb_put(txn, store->push_jobs, &k, &v, MDB_NOOVERWRITE);
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "push job");
}

/* The subscribed devices of a user, gathered before anything is written. */
struct targets {
    char (*devices)[SHM_DEVICE_MAX + 1];
    size_t count, cap;
    bool failed;
};

static void target_add(void *arg, const char *device, const struct push_subscription *sub)
{
    struct targets *t = arg;
    (void)sub;
    if (grow_for((void **)&t->devices, &t->cap, t->count, sizeof *t->devices, 4) != 0) {
        t->failed = true;
        return;
    }
    memcpy(t->devices[t->count++], device, strlen(device) + 1);
}

int shm_push_queue(struct shm_store *store, const char *email, const char *json, size_t len,
                   int64_t now_ms, int64_t expires_ms, size_t *queued)
{
    *queued = 0;
    size_t email_len = strlen(email);
    if (email_len == 0 || email_len > SHM_EMAIL_MAX || len > SHM_NOTIF_JSON_MAX)
        return SHM_ERROR;
    struct targets t = { 0 };
    if (shm_push_subs(store, email, target_add, &t) < 0 || t.failed) {
        free(t.devices);
        return SHM_ERROR;
    }
    MDB_txn *txn = t.count > 0 ? store_batch_txn(store) : NULL;
    int rc = t.count > 0 && txn == NULL ? SHM_ERROR : SHM_OK;
    struct shm_push_job job;
    for (size_t i = 0; rc == SHM_OK && i < t.count; i++) {
        struct shm_conn_owner owner;
        int found = shm_conn_get(store, email, t.devices[i], &owner);
        if (found == SHM_OK)
            continue; /* connected: the notification reaches it on its WebSocket */
        if (found != SHM_NOT_FOUND) {
            rc = found;
            break;
        }
        memset(&job, 0, offsetof(struct shm_push_job, json));
        job.due_ms = now_ms;
        job.expires_ms = expires_ms;
        memcpy(job.email, email, email_len + 1);
        memcpy(job.device, t.devices[i], strlen(t.devices[i]) + 1);
        memcpy(job.json, json, len);
        job.json_len = len;
        if ((rc = job_insert(store, txn, &job)) == SHM_OK)
            (*queued)++;
    }
    free(t.devices);
    if (rc == SHM_OK && *queued > 0)
        rc = store_counter_add(store, txn, COUNTER_QUEUED, *queued);
    return rc;
}

int shm_push_take(struct shm_store *store, int32_t pid, int64_t now_ms, int64_t lease_ms,
                  size_t max, shm_push_job_cb cb, void *arg, int64_t *next_due_ms)
{
    *next_due_ms = 0;
    int64_t first;
    int rc = shm_push_next_due(store, &first);
    if (rc != SHM_OK || first == 0 || first > now_ms || max == 0) {
        *next_due_ms = first;
        return rc; /* nothing due: no write transaction */
    }
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    struct shm_push_job job;
    size_t taken = 0, expired = 0;
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open(txn, store->push_jobs, &cursor)) != 0)
        return store_batch_fail(store, rc, "push jobs");
    MDB_val key, value;
    int result = SHM_OK;
    /* A leased job goes back under a later key: the cursor meets it again only past now_ms. */
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0 && taken < max;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)) {
        if (key.mv_size != SHM_PUSH_KEY_LEN ||
            (int64_t)store_get_be64(key.mv_data) > now_ms)
            break;
        bool usable = job_decode(&key, &value, &job) == SHM_OK;
        if ((rc = mdb_cursor_del(cursor, 0)) != 0)
            break;
        if (!usable)
            continue;
        if (job.expires_ms <= now_ms) {
            expired++;
            continue;
        }
        job.owner = pid;
        job.due_ms = now_ms + lease_ms;
        if ((result = job_insert(store, txn, &job)) != SHM_OK)
            break;
        cb(arg, &job);
        taken++;
    }
    mdb_cursor_close(cursor);
    if (result == SHM_OK && rc != 0 && rc != MDB_NOTFOUND)
        result = store_batch_fail(store, rc, "push jobs");
    if (result == SHM_OK && expired > 0)
        result = store_counter_add(store, txn, COUNTER_FAILED, expired);
    if (result == SHM_OK)
        result = shm_push_next_due(store, next_due_ms);
    return result;
}

static int job_delete(struct shm_store *store, MDB_txn *txn, const struct shm_push_job *job)
{
    MDB_val k = { SHM_PUSH_KEY_LEN, (void *)job->key };
    int rc = mdb_del(txn, store->push_jobs, &k, NULL);
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "push job");
}

int shm_push_finish(struct shm_store *store, const struct shm_push_job *job,
                    enum shm_push_outcome outcome)
{
    static const char *const counters[] = { COUNTER_SENT, COUNTER_FAILED, COUNTER_GONE, NULL };
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = job_delete(store, txn, job);
    if (rc == SHM_OK && counters[outcome] != NULL)
        rc = store_counter_add(store, txn, counters[outcome], 1);
    return rc;
}

int shm_push_retry(struct shm_store *store, const struct shm_push_job *job, int64_t due_ms,
                   uint8_t flags)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = job_delete(store, txn, job);
    if (rc != SHM_OK)
        return rc;
    struct shm_push_job again = *job;
    again.due_ms = due_ms;
    again.owner = 0;
    again.attempts = job->attempts < 255 ? (uint8_t)(job->attempts + 1) : 255;
    again.flags = flags;
    if ((rc = job_insert(store, txn, &again)) != SHM_OK)
        return rc;
    return store_counter_add(store, txn, COUNTER_RETRIED, 1);
}

int shm_push_next_due(struct shm_store *store, int64_t *due_ms)
{
    MDB_txn *txn;
    MDB_cursor *cursor;
    *due_ms = 0;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_cursor_open(txn, store->push_jobs, &cursor);
    if (rc == 0) {
        MDB_val key, value;
        rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
        if (rc == 0 && key.mv_size == SHM_PUSH_KEY_LEN)
            *due_ms = (int64_t)store_get_be64(key.mv_data);
        mdb_cursor_close(cursor);
    }
    store_read_end(store, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? SHM_OK : SHM_ERROR;
}

int shm_push_counters(struct shm_store *store, struct shm_push_counters *out)
{
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    out->sent = store_counter_read(store, txn, COUNTER_SENT);
    out->failed = store_counter_read(store, txn, COUNTER_FAILED);
    out->retried = store_counter_read(store, txn, COUNTER_RETRIED);
    out->gone = store_counter_read(store, txn, COUNTER_GONE);
    out->queued = store_counter_read(store, txn, COUNTER_QUEUED);
    store_read_end(store, txn);
    return SHM_OK;
}
