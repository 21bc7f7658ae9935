/* store_internal: what the record modules of shm/ share about the environment; not for callers. */
#ifndef PRESENCED_SHM_STORE_INTERNAL_H
#define PRESENCED_SHM_STORE_INTERNAL_H

#include "store.h"

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define STORE_MAX_DBS 32

struct shm_commit_waiter {
    shm_commit_cb cb;
    void *arg;
};

struct shm_store {
    MDB_env *env;
    MDB_dbi meta;            /* "schema" -> uint32 version */
    MDB_dbi conns;           /* email \0 device -> struct conn_value */
    MDB_dbi conns_by_worker; /* be32 pid, be64 conn id -> email \0 device */
    MDB_dbi workers;         /* be32 pid -> struct shm_worker_info */
    MDB_dbi mail;            /* be32 target pid, be64 store seq, be32 sender pid -> type, payload */
    MDB_dbi assertions;      /* sha256 of an assertion -> expiry, trust id, e-mail, audience */
    MDB_dbi presence;        /* e-mail -> be64 expiry, published and live status and since, counts */
    MDB_dbi presence_grace;  /* e-mail \0 device -> be64 due, u8 status, be64 left (a hold) */
    MDB_dbi presence_due;    /* be64 due, e-mail \0 device -> "" (the holds by time) */
    MDB_dbi push_subs;       /* e-mail \0 device -> be64 created, p256dh, auth, endpoint */
    MDB_dbi push_jobs;       /* be64 due, be64 seq -> expiry, owner, attempts, flags, who, JSON */
    MDB_dbi web_sessions;    /* sha256 of a cookie token -> be64 expiry, CSRF token, e-mail */
    MDB_dbi apps;            /* appid -> the app as JSON */
    MDB_dbi apps_by_owner;   /* owner e-mail \0 appid -> "" */
    MDB_dbi grants;          /* e-mail \0 appid -> PUID, be64 granted */
    MDB_dbi puids;           /* PUID -> appid \0 e-mail */
    MDB_dbi app_grants;      /* appid \0 PUID -> e-mail */
    MDB_dbi app_conns;       /* appid, be32 pid, be64 conn id -> "" (AppService connections) */
    MDB_dbi app_changes;     /* appid, PUID -> u8 status, be64 ms (the latest change) */
    MDB_dbi app_away;        /* appid -> be64 ms since the app has no connection open */
    MDB_dbi notifs;          /* e-mail \0 be64 ms, be64 store seq -> be64 expiry, JSON */
    MDB_dbi cl_self;         /* "self" -> this node's incarnation as its agent sees it */
    MDB_dbi cl_nodes;        /* node name -> be64 rev, be64 heard ms, the engine's JSON */
    MDB_dbi cl_cursors;      /* stream name -> be64 last applied sequence */
    MDB_dbi cl_users;        /* user key (32 hex) -> be64 rev, user record */
    MDB_dbi cl_incarnations; /* node \0 be64 epoch be32 pid user key -> "" */
    MDB_dbi cl_outbox;       /* be64 store seq -> be32 reply pid, u8 op, bucket, key, value */
    MDB_dbi cl_app_away;     /* appid \0 node -> be64 epoch, be64 away since ms (0: open) */
    MDB_txn *batch;          /* the open write transaction of this loop iteration, or NULL */
    MDB_txn *reader;         /* a read transaction kept reset between reads (store_read_begin) */
    bool reader_busy;        /* reader is in use: a nested read begins one of its own */
    MDB_cursor *cursors[STORE_MAX_DBS + 2]; /* of the batch, by dbi (store_batch_cursor) */
    int batch_error;         /* first error of the batch: it will roll back */
    struct shm_commit_waiter *waiters;
    size_t waiter_count, waiter_cap;
    struct shm_commit_waiter *spare; /* the other list, kept for the next batch */
    size_t spare_cap;
    uint64_t max_map_size;
    bool prefault;          /* shm_store_prefault was called, and the kernel did not refuse */
    unsigned char *map_at;  /* where data.mdb is mapped in this process (NULL: not looked up) */
    uint64_t map_at_size;   /* the map's size when map_at was looked up (LMDB remaps on a change) */
    uint64_t prefaulted;    /* bytes of the file from map_at already in the page table */
    uint64_t seq_next;      /* the batch's next store sequence number (store_seq_next) */
    bool seq_loaded;        /* seq_next was read from meta in this batch */
    bool seq_dirty;         /* seq_next moved: written back to meta at commit */
    struct shm_store_stats counters;
    int64_t refused_ms; /* wall ms when a batch was last refused for lack of room, or 0 */
    int refused_rc;     /* and the LMDB error */
    int failed_rc;      /* the LMDB error of the last batch that failed */
    bool outbox_on;           /* shared records' writes go to cl_outbox too (shm/outbox.h) */
    int32_t outbox_reply_pid; /* who hears their outcome (0: nobody) */
    uint64_t outbox_new_first, outbox_new_last; /* added since shm_outbox_take_new */
    size_t outbox_new_count;
};

/* The shm_result of an LMDB return code. */
int store_result(int rc);
/* The batch transaction, begun on first use. NULL when it cannot begin (logged). */
MDB_txn *store_batch_txn(struct shm_store *store);
/* A cursor on dbi in the batch, opened at its first use and kept until the batch ends (LMDB
 * closes it then): the walks of a status update would otherwise allocate one each time. Never
 * closed by the caller, and only for a use that calls nothing that could take the same cursor
 * meanwhile. NULL when it cannot be opened (the batch then rolls back). */
MDB_cursor *store_batch_cursor(struct shm_store *store, MDB_dbi dbi);
/* Records a failed write: the batch will roll back at commit. Returns the shm_result for rc. */
int store_batch_fail(struct shm_store *store, int rc, const char *what);
/* A read transaction (the batch when one is open, so a process reads its own writes). */
int store_read_begin(struct shm_store *store, MDB_txn **txn);
void store_read_end(struct shm_store *store, MDB_txn *txn);

/* Examines, in the batch, up to max records of dbi from where sweep stopped (wrapping to the
 * first after the last) and deletes those whose value starts with a be64 expiry (wall ms) not
 * after now_ms; *removed counts them. what names the records in logs. */
int store_expired_sweep(struct shm_store *store, MDB_dbi dbi, int64_t now_ms, size_t max,
                        struct shm_sweep *sweep, size_t *removed, const char *what);

/* Calls cb with each record of dbi whose key starts with prefix and a NUL: the rest of the key
 * and the value. Returns the count, or < 0. */
typedef void (*store_prefix_cb)(void *arg, const MDB_val *rest, const MDB_val *value);
int store_prefix_walk(struct shm_store *store, MDB_dbi dbi, const char *prefix, store_prefix_cb cb,
                      void *arg);

/* A number never handed out before, by any process, in any visit, since the store was made: the
 * key part of records that many writers add (mail, notifications). The counter lives in meta,
 * read at the batch's first use and written back at its commit; the batch holds LMDB's only
 * write lock meanwhile, so no other process can take the same number, and a batch that rolls
 * back gives its numbers back with the records that used them. SHM_OK or the batch's error. */
int store_seq_next(struct shm_store *store, MDB_txn *txn, uint64_t *out);

/* A u64 counter in meta, added to in the batch (the store-wide totals /metrics reports), and read
 * (0 when absent) in txn. */
int store_counter_add(struct shm_store *store, MDB_txn *txn, const char *name, uint64_t n);
uint64_t store_counter_read(struct shm_store *store, MDB_txn *txn, const char *name);

/* Big-endian fields, so that any process reads a record alike and keys sort by number: inline,
 * one load or store and a byte swap each (a status update runs them dozens of times). */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define STORE_BE32(x) __builtin_bswap32(x)
#define STORE_BE64(x) __builtin_bswap64(x)
#else
#define STORE_BE32(x) (x)
#define STORE_BE64(x) (x)
#endif

static inline void store_put_be32(unsigned char *out, uint32_t value)
{
    value = STORE_BE32(value);
    memcpy(out, &value, sizeof value);
}

static inline void store_put_be64(unsigned char *out, uint64_t value)
{
    value = STORE_BE64(value);
    memcpy(out, &value, sizeof value);
}

/* A string of at most 255 bytes as one length byte and its bytes (the caller has checked the
 * length); returns how many bytes it wrote. */
static inline size_t store_put_str8(unsigned char *out, const char *text, size_t len)
{
    out[0] = (unsigned char)len;
    memcpy(out + 1, text, len);
    return 1 + len;
}

static inline uint32_t store_get_be32(const unsigned char *in)
{
    uint32_t value;
    memcpy(&value, in, sizeof value);
    return STORE_BE32(value);
}

static inline uint64_t store_get_be64(const unsigned char *in)
{
    uint64_t value;
    memcpy(&value, in, sizeof value);
    return STORE_BE64(value);
}

#endif
