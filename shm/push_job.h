/* push_job: the Web Push messages to send — one per notification and subscribed device that was
 * not connected when it was queued (SPEC.md §7) — kept in the store by due time, so that a push
 * waiting for its retry outlives the worker that tried it.
 *
 * A worker takes the due jobs (shm_push_take): each is leased to it, rewritten with its lease's
 * end as due time, so no other process takes it meanwhile; the worker then finishes it or puts
 * it back for a retry. A job whose worker died is due again when its lease ends, for any worker
 * (the master rings one when a job is overdue). LMDB's one writer makes each take exclusive. */
#ifndef PRESENCED_SHM_PUSH_JOB_H
#define PRESENCED_SHM_PUSH_JOB_H

#include "conn.h"
#include "notif.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define SHM_PUSH_KEY_LEN 16   /* be64 due (ms), be64 store sequence */
#define SHM_PUSH_NO_PAYLOAD 1 /* flags: send without a body (the push service said 413) */

struct shm_push_job {
    unsigned char key[SHM_PUSH_KEY_LEN];
    int64_t due_ms;
    int64_t expires_ms; /* the notification's expiry: no push after it */
    int32_t owner;      /* the pid holding the lease, 0 when none */
    uint8_t attempts;   /* tries made so far */
    uint8_t flags;
    char email[SHM_EMAIL_MAX + 1];
    char device[SHM_DEVICE_MAX + 1];
    size_t json_len;
    char json[SHM_NOTIF_JSON_MAX]; /* the notification as a device receives it */
};

/* For each device of email that has a subscription and no connection now, queues a push of json
 * (one notification object) due now, until expires_ms. *queued counts them. In the batch. */
int shm_push_queue(struct shm_store *store, const char *email, const char *json, size_t len,
                   int64_t now_ms, int64_t expires_ms, size_t *queued);

/* Takes up to max jobs due by now_ms, leasing each to pid until now_ms + lease_ms, and calls cb
 * with each (its key the leased one). *next_due_ms gets the due time of the earliest job left
 * (0: none). Expired jobs met are dropped and counted as failed. In the batch. */
typedef void (*shm_push_job_cb)(void *arg, const struct shm_push_job *job);
int shm_push_take(struct shm_store *store, int32_t pid, int64_t now_ms, int64_t lease_ms,
                  size_t max, shm_push_job_cb cb, void *arg, int64_t *next_due_ms);

/* How a job ended: each counts in its store-wide total (shm_push_counters). */
enum shm_push_outcome {
    SHM_PUSH_SENT,    /* the push service took it */
    SHM_PUSH_FAILED,  /* refused, unreachable, not public, or still failing at its expiry */
    SHM_PUSH_GONE,    /* the push service says the subscription is gone: it is removed */
    SHM_PUSH_SKIPPED, /* nothing to send any more: the device connected, or unsubscribed */
};

/* Removes the job (under its current key) and counts the outcome; SHM_NOT_FOUND (and nothing
 * counted) when another process took it meanwhile. */
int shm_push_finish(struct shm_store *store, const struct shm_push_job *job,
                    enum shm_push_outcome outcome);

/* Puts the job back, due at due_ms, with one more attempt and flags; counted as a retry. */
int shm_push_retry(struct shm_store *store, const struct shm_push_job *job, int64_t due_ms,
                   uint8_t flags);

/* The due time of the earliest job (0: none), read without writing. */
int shm_push_next_due(struct shm_store *store, int64_t *due_ms);

struct shm_push_counters {
    uint64_t sent, failed, retried, gone, queued;
};
int shm_push_counters(struct shm_store *store, struct shm_push_counters *out);

#endif
