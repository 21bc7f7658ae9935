/* store: the LMDB environment every presenced process opens after fork — schema, batching, sync. */
#ifndef PRESENCED_SHM_STORE_H
#define PRESENCED_SHM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_SCHEMA_VERSION 1u

/* Return codes of the shm_ API besides 0. */
enum shm_result {
    SHM_OK = 0,
    SHM_NOT_FOUND = 1,
    SHM_FULL = -2,  /* the map is at max_map_size (or the disk is full) */
    SHM_ERROR = -1, /* any other LMDB failure; logged where it happened */
};

struct shm_store;

/* Where a sweep of expired records stopped, so that the next one goes on from there: each
 * visit examines a bounded number of records and keeps the store's write lock briefly,
 * however large the store. Zeroed: from the first record. */
#define SHM_SWEEP_KEY_MAX 512
struct shm_sweep {
    unsigned char key[SHM_SWEEP_KEY_MAX]; /* the next record to examine */
    size_t key_len;                       /* 0: from the first record */
};

struct shm_store_options {
    const char *dir;
    int64_t map_size;
    int64_t max_map_size;
    bool flush_each_commit; /* false: the master flushes every sync_interval */
};

/* Opens (creating if needed) the environment in opt->dir and its named databases, checks the
 * schema version and clears stale reader slots. Never call across fork(). */
int shm_store_open(struct shm_store **out, const struct shm_store_options *opt, char *err,
                   size_t errlen);
void shm_store_close(struct shm_store *store);

/* From now on, every page of the store's file is mapped into this process's page table, now and
 * before each batch as the file grows (MADV_POPULATE_READ): for a process that keeps the store
 * open (a worker). LMDB writes each page a commit changes at a new page number, which every
 * other process then faults in when it first reads it: at a million devices, 10 minor faults a
 * commit while holding the node's write lock, which doubled the time it was held
 * (bench/README.md). Costs such a process a page table for the whole file (8 bytes a 4 KB
 * page); a kernel without MADV_POPULATE_READ (before 5.14) leaves it as it was. */
void shm_store_prefault(struct shm_store *store);

/* Writes of a loop iteration go into one transaction, committed here: one flush per batch.
 * Returns SHM_OK, or the error that made the whole batch roll back. */
typedef void (*shm_commit_cb)(void *arg, int result);
int shm_batch_commit(struct shm_store *store);
/* Calls cb(arg, result) once the current batch is committed or rolled back: replies that promise
 * durability wait for this. Returns SHM_ERROR when out of memory (cb is then not called). */
int shm_batch_on_commit(struct shm_store *store, shm_commit_cb cb, void *arg);
bool shm_batch_pending(const struct shm_store *store);

/* Forces the written pages to disk (the master calls this every sync_interval). */
int shm_store_sync(struct shm_store *store);
/* Frees reader slots of dead processes; returns how many were freed, or -1. */
int shm_store_reader_check(struct shm_store *store);
/* Drops every record that only lives as long as the processes (connections, workers, mail):
 * the master does this at start, before any worker exists. */
int shm_store_reset_volatile(struct shm_store *store);

struct shm_store_stats {
    uint64_t map_size;
    uint64_t used_bytes;
    unsigned readers_max;
    unsigned readers_used;
    uint64_t commits;
    uint64_t commit_failures;
    uint64_t map_growths;
};
int shm_store_stats(struct shm_store *store, struct shm_store_stats *out);

/* Reserves count consecutive numbers of the store's sequence (never handed out twice, by any
 * process, since the store was made) in the batch; *first is the first. A worker takes its
 * connection ids from such a block, so that (pid, connection id) keys of a worker that died
 * with its records still in the store are never those of a later worker with the same pid. */
int shm_store_seq_reserve(struct shm_store *store, uint64_t count, uint64_t *first);

/* What /__heartbeat__ says of the store. */
#define SHM_HEALTH_DISK_MIN (1024 * 1024) /* less free than this on data_dir's file system: full */
#define SHM_HEALTH_REFUSED_MS 5000        /* a batch refused for lack of room counts this long */
struct shm_store_health {
    int read;  /* SHM_OK: a read transaction begins and the schema is this presenced's */
    int write; /* SHM_OK: writes are taken (see shm_store_health) */
    char read_error[160], write_error[160];
};

/* Checks that the store reads and takes writes: commits the pending batch, then writes and
 * commits a small heartbeat record in a batch of its own (a full map or a stuck writer shows
 * here); writes also count as refused while the file system holding the store has less than
 * SHM_HEALTH_DISK_MIN free (LMDB could not extend its file), and for SHM_HEALTH_REFUSED_MS
 * after a batch of this process was refused for lack of room (map or disk full). The
 * *_error texts say why, for the operator. Returns SHM_OK when both checks pass. */
int shm_store_health(struct shm_store *store, int64_t now_ms, struct shm_store_health *out);

#endif
