/* store: the LMDB environment every presenced process opens after fork — schema, batching, sync. */
#include "store_internal.h"

#include "../common/clock.h"
#include "../common/grow.h"
#include "../common/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define STORE_MAX_READERS 1022
/* Grow the map before a batch when it is fuller than this share: a batch then never meets
 * MDB_MAP_FULL unless max_map_size is reached. */
#define STORE_GROW_PERCENT 75

int store_result(int rc)
{
    if (rc == 0)
        return SHM_OK;
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    if (rc == MDB_MAP_FULL || rc == ENOSPC)
        return SHM_FULL;
    return SHM_ERROR;
}

static int dbis_open(struct shm_store *store, MDB_txn *txn)
{
    static const char *const names[] = {
        "meta",     "conns",      "conns_by_worker", "workers",     "mail",          "assertions",
        "presence", "notifs",     "web_sessions",    "apps",        "apps_by_owner", "grants",
        "puids",    "app_grants", "app_conns",       "app_changes", "app_away",
        "presence_grace", "presence_due", "cl_self", "cl_nodes", "cl_cursors", "cl_users",
        "cl_incarnations", "push_subs", "push_jobs", "cl_outbox", "cl_app_away"
    };
    MDB_dbi *slots[] = { &store->meta,        &store->conns,         &store->conns_by_worker,
                         &store->workers,     &store->mail,          &store->assertions,
                         &store->presence,    &store->notifs,        &store->web_sessions,
                         &store->apps,        &store->apps_by_owner, &store->grants,
                         &store->puids,       &store->app_grants,    &store->app_conns,
                         &store->app_changes, &store->app_away,      &store->presence_grace,
                         &store->presence_due,  &store->cl_self,       &store->cl_nodes,
                         &store->cl_cursors,    &store->cl_users,      &store->cl_incarnations,
                         &store->push_subs,     &store->push_jobs,     &store->cl_outbox,
                         &store->cl_app_away };
    _Static_assert(sizeof names / sizeof names[0] == sizeof slots / sizeof slots[0],
                   "one slot per database name");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int rc = mdb_dbi_open(txn, names[i], MDB_CREATE, slots[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Writes the schema version into a new store, refuses a store of another version. */
static int schema_check(struct shm_store *store, MDB_txn *txn, char *err, size_t errlen)
{
    MDB_val key = { 6, "schema" }, value;
    unsigned char ours[4];
    store_put_be32(ours, SHM_SCHEMA_VERSION);
    int rc = mdb_get(txn, store->meta, &key, &value);
    if (rc == MDB_NOTFOUND) {
        value.mv_size = sizeof ours;
        value.mv_data = ours;
        return mdb_put(txn, store->meta, &key, &value, 0);
    }
    if (rc != 0)
        return rc;
    uint32_t theirs = value.mv_size == 4 ? store_get_be32(value.mv_data) : 0;
    if (theirs != SHM_SCHEMA_VERSION) {
        snprintf(err, errlen, "store has schema version %u; this presenced uses version %u", theirs,
                 SHM_SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

static int env_create(struct shm_store *store, const struct shm_store_options *opt)
{
    int rc = mdb_env_create(&store->env);
    if (rc != 0)
        return rc;
    if ((rc = mdb_env_set_maxdbs(store->env, STORE_MAX_DBS)) != 0 ||
        (rc = mdb_env_set_maxreaders(store->env, STORE_MAX_READERS)) != 0 ||
        (rc = mdb_env_set_mapsize(store->env, (size_t)opt->map_size)) != 0)
        return rc;
    /* NOTLS: a read transaction is not tied to a thread (libuv, curl callbacks).
     * NOMETASYNC/NOSYNC: see DURABILITY in presenced(8). */
    unsigned flags = MDB_NOTLS | MDB_NOMETASYNC | (opt->flush_each_commit ? 0 : MDB_NOSYNC);
    return mdb_env_open(store->env, opt->dir, flags, 0640);
}

static int store_init(struct shm_store *store, const struct shm_store_options *opt, char *err,
                      size_t errlen)
{
    int rc = env_create(store, opt);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot open the store: %s", opt->dir, mdb_strerror(rc));
        return -1;
    }
    int dead;
    mdb_reader_check(store->env, &dead);
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)) == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(store->env, 0);
        rc = mdb_txn_begin(store->env, NULL, 0, &txn);
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot begin a transaction: %s", opt->dir, mdb_strerror(rc));
        return -1;
    }
    if ((rc = dbis_open(store, txn)) != 0 || (rc = schema_check(store, txn, err, errlen)) != 0) {
        if (rc > 0 || rc < -1)
            snprintf(err, errlen, "%s: cannot open the databases: %s", opt->dir, mdb_strerror(rc));
        mdb_txn_abort(txn);
        return -1;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        snprintf(err, errlen, "%s: cannot write the schema: %s", opt->dir, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

int shm_store_open(struct shm_store **out, const struct shm_store_options *opt, char *err,
                   size_t errlen)
{
    if (mkdir(opt->dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create the store directory: %s", opt->dir,
                 strerror(errno));
        return -1;
    }
    struct shm_store *store = calloc(1, sizeof *store);
    if (store == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    store->max_map_size = (uint64_t)opt->max_map_size;
    if (store_init(store, opt, err, errlen) != 0) {
        if (store->env != NULL)
            mdb_env_close(store->env);
        free(store);
        return -1;
    }
    *out = store;
    return 0;
}

void shm_store_close(struct shm_store *store)
{
    if (store == NULL)
        return;
    if (store->batch != NULL)
        shm_batch_commit(store);
    if (store->reader != NULL)
        mdb_txn_abort(store->reader);
    mdb_env_close(store->env);
    free(store->waiters);
    free(store->spare);
    free(store);
}

/* Where LMDB mapped data.mdb in this process, from the kernel's list of this process's
 * mappings (LMDB does not say: mdb_env_info's me_mapaddr is set only with MDB_FIXEDMAP). */
static unsigned char *map_find(struct shm_store *store)
{
    const char *dir;
    char file[PATH_MAX], real[PATH_MAX];
    if (mdb_env_get_path(store->env, &dir) != 0 ||
        snprintf(file, sizeof file, "%s/data.mdb", dir) >= (int)sizeof file ||
        realpath(file, real) == NULL)
        return NULL;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (maps == NULL)
        return NULL;
    char *line = NULL;
    size_t cap = 0, real_len = strlen(real);
    unsigned char *found = NULL;
    ssize_t len;
    while (found == NULL && (len = getline(&line, &cap, maps)) > 0) {
        unsigned long lo, offset;
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        /* "lo-hi perms offset dev inode path": the file's mapping from its first byte. */
        if ((size_t)len > real_len && line[(size_t)len - real_len - 1] == ' ' &&
            strcmp(line + (size_t)len - real_len, real) == 0 &&
            sscanf(line, "%lx-%*x %*s %lx", &lo, &offset) == 2 && offset == 0)
            found = (unsigned char *)lo;
    }
    free(line);
    fclose(maps);
    return found;
}

/* Puts the pages of the file that came since the last call into this process's page table
 * (shm_store_prefault), before a batch begins: outside the write lock. */
static void store_prefault(struct shm_store *store, uint64_t used, uint64_t map_size)
{
    if (!store->prefault)
        return;
    if (store->map_at == NULL || store->map_at_size != map_size) {
        store->map_at = map_find(store);
        store->map_at_size = map_size;
        store->prefaulted = 0;
        if (store->map_at == NULL) {
            log_warning("store: the store's map is not in /proc/self/maps; not prefaulted");
            store->prefault = false;
            return;
        }
    }
    if (used <= store->prefaulted)
        return;
    uint64_t from = store->prefaulted & ~(uint64_t)4095;
    if (madvise(store->map_at + from, (size_t)(used - from), MADV_POPULATE_READ) != 0) {
        /* EINVAL: a kernel before 5.14. Otherwise the next batch tries again. */
        if (errno == EINVAL) {
            log_notice("store: the kernel cannot prefault the store's map (%s)", strerror(errno));
            store->prefault = false;
        }
        return;
    }
    store->prefaulted = used;
}

/* Doubles the map (up to max_map_size) when the next batch could fill it, and prefaults what the
 * file gained. Only called with no transaction of ours open, as mdb_env_set_mapsize requires. */
static void store_room_ensure(struct shm_store *store)
{
    MDB_envinfo info;
    MDB_stat stat;
    if (mdb_env_info(store->env, &info) != 0 || mdb_env_stat(store->env, &stat) != 0)
        return;
    uint64_t used = (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize;
    uint64_t size = info.me_mapsize;
    if (used * 100 < size * STORE_GROW_PERCENT || size >= store->max_map_size) {
        store_prefault(store, used, size);
        return;
    }
    uint64_t grown = size * 2 > store->max_map_size ? store->max_map_size : size * 2;
    int rc = mdb_env_set_mapsize(store->env, (size_t)grown);
    if (rc != 0) {
        log_error("store: cannot grow the map to %llu bytes: %s", (unsigned long long)grown,
                  mdb_strerror(rc));
        return;
    }
    store->counters.map_growths++;
    log_notice("store: map grown from %llu to %llu bytes", (unsigned long long)size,
               (unsigned long long)grown);
    store_prefault(store, used, grown); /* remapped: all again */
}

void shm_store_prefault(struct shm_store *store)
{
    store->prefault = true;
    if (store->batch == NULL)
        store_room_ensure(store); /* the file as it is, before the first batch waits for it */
}

MDB_txn *store_batch_txn(struct shm_store *store)
{
    if (store->batch != NULL)
        return store->batch;
    store_room_ensure(store);
    int rc = mdb_txn_begin(store->env, NULL, 0, &store->batch);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map: adopt its size. */
        mdb_env_set_mapsize(store->env, 0);
        rc = mdb_txn_begin(store->env, NULL, 0, &store->batch);
    }
    if (rc != 0) {
        log_error("store: cannot begin a write transaction: %s", mdb_strerror(rc));
        store->batch = NULL;
        return NULL;
    }
    store->batch_error = 0;
    store->seq_loaded = store->seq_dirty = false;
    return store->batch;
}

MDB_cursor *store_batch_cursor(struct shm_store *store, MDB_dbi dbi)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL || dbi >= sizeof store->cursors / sizeof store->cursors[0])
        return NULL;
    if (store->cursors[dbi] == NULL) {
        int rc = mdb_cursor_open(txn, dbi, &store->cursors[dbi]);
        if (rc != 0) {
            store->cursors[dbi] = NULL;
            store_batch_fail(store, rc, "cursor");
            return NULL;
        }
    }
    return store->cursors[dbi];
}

#define SEQ_KEY "seq"

int store_seq_next(struct shm_store *store, MDB_txn *txn, uint64_t *out)
{
    if (!store->seq_loaded) {
        MDB_val key = { sizeof SEQ_KEY - 1, SEQ_KEY }, value;
        int rc = mdb_get(txn, store->meta, &key, &value);
        if (rc == 0 && value.mv_size == 8)
            store->seq_next = store_get_be64(value.mv_data);
        else if (rc == 0 || rc == MDB_NOTFOUND)
            store->seq_next = 1;
        else
            return store_batch_fail(store, rc, "store sequence");
        store->seq_loaded = true;
    }
    *out = store->seq_next++;
    store->seq_dirty = true;
    return SHM_OK;
}

int shm_store_seq_reserve(struct shm_store *store, uint64_t count, uint64_t *first)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL || count == 0)
        return SHM_ERROR;
    int rc = store_seq_next(store, txn, first);
    if (rc == SHM_OK)
        store->seq_next += count - 1;
    return rc;
}

/* Writes the batch's sequence counter back before it commits. */
static int seq_save(struct shm_store *store)
{
    if (!store->seq_dirty)
        return 0;
    unsigned char buf[8];
    store_put_be64(buf, store->seq_next);
    MDB_val key = { sizeof SEQ_KEY - 1, SEQ_KEY }, value = { sizeof buf, buf };
    store->seq_dirty = false;
    return mdb_put(store->batch, store->meta, &key, &value, 0);
}

int store_batch_fail(struct shm_store *store, int rc, const char *what)
{
    if (store->batch_error == 0) {
        store->batch_error = rc;
        log_error("store: %s failed: %s; this batch of writes rolls back", what, mdb_strerror(rc));
    }
    return store_result(rc);
}

/* A read transaction of its own: LMDB (MDB_NOTLS) takes a reader slot under the reader table's
 * lock, which every process of the node shares, at each begin and gives it back at the abort. */
static int read_txn_begin(struct shm_store *store, MDB_txn **txn)
{
    int rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(store->env, 0);
        rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, txn);
    }
    return rc;
}

/* The kept reader renewed: its slot stays this process's between reads (a reset transaction
 * holds no snapshot, so it keeps no page from being reused), and a renew takes no lock. */
static int reader_renew(struct shm_store *store)
{
    int rc = mdb_txn_renew(store->reader);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map: no transaction of ours may be live to adopt it. */
        mdb_txn_abort(store->reader);
        store->reader = NULL;
        if (store->batch != NULL)
            return rc;
        mdb_env_set_mapsize(store->env, 0);
        return read_txn_begin(store, &store->reader);
    }
    return rc;
}

int store_read_begin(struct shm_store *store, MDB_txn **txn)
{
    if (store->batch != NULL) {
        *txn = store->batch;
        return 0;
    }
    int rc;
    if (!store->reader_busy) {
        rc = store->reader != NULL ? reader_renew(store) : read_txn_begin(store, &store->reader);
        if (rc == 0) {
            store->reader_busy = true;
            *txn = store->reader;
            return 0;
        }
        if (store->reader != NULL) {
            mdb_txn_abort(store->reader);
            store->reader = NULL;
        }
    } else {
        rc = read_txn_begin(store, txn);
    }
    if (rc != 0)
        log_error("store: cannot begin a read transaction: %s", mdb_strerror(rc));
    return store_result(rc);
}

void store_read_end(struct shm_store *store, MDB_txn *txn)
{
    if (txn == store->batch)
        return;
    if (txn == store->reader) {
        mdb_txn_reset(txn);
        store->reader_busy = false;
        return;
    }
    mdb_txn_abort(txn);
}

int shm_batch_on_commit(struct shm_store *store, shm_commit_cb cb, void *arg)
{
    if (grow_for((void **)&store->waiters, &store->waiter_cap, store->waiter_count,
                 sizeof *store->waiters, 16) != 0)
        return SHM_ERROR;
    store->waiters[store->waiter_count++] = (struct shm_commit_waiter){ cb, arg };
    return SHM_OK;
}

bool shm_batch_pending(const struct shm_store *store)
{
    return store->batch != NULL || store->waiter_count > 0;
}

static void waiters_notify(struct shm_store *store, int result)
{
    /* A callback may start the next batch and register new waiters: they go in the other
     * list. Both lists are kept, so that a batch allocates nothing. */
    size_t count = store->waiter_count, cap = store->waiter_cap;
    struct shm_commit_waiter *list = store->waiters;
    store->waiters = store->spare;
    store->waiter_cap = store->spare_cap;
    store->waiter_count = 0;
    store->spare = NULL;
    store->spare_cap = 0;
    for (size_t i = 0; i < count; i++)
        list[i].cb(list[i].arg, result);
    if (store->spare == NULL) {
        store->spare = list;
        store->spare_cap = cap;
    } else {
        free(list);
    }
}

/* A batch that failed; one refused for lack of room is reported by /__heartbeat__ for
 * SHM_HEALTH_REFUSED_MS. */
static void store_failure_note(struct shm_store *store, int rc)
{
    store->counters.commit_failures++;
    store->failed_rc = rc;
    if (store_result(rc) == SHM_FULL) {
        store->refused_ms = clock_wall_ms();
        store->refused_rc = rc;
    }
}

int shm_batch_commit(struct shm_store *store)
{
    int result = SHM_OK;
    if (store->batch != NULL) {
        int rc = store->batch_error == 0 ? seq_save(store) : 0;
        if (rc != 0)
            store_batch_fail(store, rc, "store sequence");
        MDB_txn *txn = store->batch;
        store->batch = NULL;
        /* The commit or the abort closes the batch's cursors. */
        memset(store->cursors, 0, sizeof store->cursors);
        store->seq_loaded = store->seq_dirty = false;
        if (store->batch_error != 0) {
            mdb_txn_abort(txn);
            result = store_result(store->batch_error);
        } else {
            rc = mdb_txn_commit(txn);
            if (rc != 0)
                log_error("store: commit failed: %s", mdb_strerror(rc));
            result = store_result(rc);
        }
        if (result == SHM_OK)
            store->counters.commits++;
        else
            store_failure_note(store, store->batch_error != 0 ? store->batch_error : rc);
        store->batch_error = 0;
    }
    waiters_notify(store, result);
    return result;
}

int shm_store_sync(struct shm_store *store)
{
    int rc = mdb_env_sync(store->env, 1);
    if (rc != 0)
        log_error("store: flush to disk failed: %s", mdb_strerror(rc));
    return store_result(rc);
}

int shm_store_reader_check(struct shm_store *store)
{
    int dead = 0;
    if (mdb_reader_check(store->env, &dead) != 0)
        return -1;
    return dead;
}

int shm_store_reset_volatile(struct shm_store *store)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    MDB_dbi volatile_dbis[] = { store->conns, store->conns_by_worker, store->workers,
                                store->mail,  store->app_conns,       store->cl_self };
    for (size_t i = 0; i < sizeof volatile_dbis / sizeof volatile_dbis[0]; i++) {
        int rc = mdb_drop(txn, volatile_dbis[i], 0);
        if (rc != 0)
            return store_batch_fail(store, rc, "clearing volatile records");
    }
    return shm_batch_commit(store);
}

int shm_store_stats(struct shm_store *store, struct shm_store_stats *out)
{
    MDB_envinfo info;
    MDB_stat stat;
    if (mdb_env_info(store->env, &info) != 0 || mdb_env_stat(store->env, &stat) != 0)
        return SHM_ERROR;
    *out = store->counters;
    out->map_size = info.me_mapsize;
    out->used_bytes = (uint64_t)(info.me_last_pgno + 1) * stat.ms_psize;
    out->readers_max = info.me_maxreaders;
    out->readers_used = info.me_numreaders;
    return SHM_OK;
}

#define HEARTBEAT_KEY "heartbeat"

static void store_read_check(struct shm_store *store, struct shm_store_health *out)
{
    MDB_txn *txn;
    out->read = store_read_begin(store, &txn);
    if (out->read != SHM_OK) {
        snprintf(out->read_error, sizeof out->read_error, "the store cannot be read");
        return;
    }
    MDB_val key = { 6, "schema" }, value;
    int rc = mdb_get(txn, store->meta, &key, &value);
    store_read_end(store, txn);
    if (rc != 0 || value.mv_size != 4 || store_get_be32(value.mv_data) != SHM_SCHEMA_VERSION) {
        out->read = SHM_ERROR;
        snprintf(out->read_error, sizeof out->read_error,
                 "the store's schema is not version %u", SHM_SCHEMA_VERSION);
    }
}

/* A heartbeat record written and committed in a batch of its own. */
static int store_write_probe(struct shm_store *store, int64_t now_ms, char *why, size_t len)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL) {
        snprintf(why, len, "no write transaction can begin");
        return SHM_ERROR;
    }
    unsigned char when[8];
    store_put_be64(when, (uint64_t)now_ms);
    MDB_val key = { sizeof HEARTBEAT_KEY - 1, HEARTBEAT_KEY }, value = { sizeof when, when };
    int rc = mdb_put(txn, store->meta, &key, &value, 0);
    if (rc != 0)
        store_batch_fail(store, rc, "heartbeat write");
    int result = shm_batch_commit(store);
    if (result != SHM_OK)
        snprintf(why, len, "the store refuses writes: %s", mdb_strerror(store->failed_rc));
    return result;
}

static int store_disk_check(struct shm_store *store, char *why, size_t len)
{
    const char *path;
    struct statvfs fs;
    if (mdb_env_get_path(store->env, &path) != 0 || statvfs(path, &fs) != 0)
        return SHM_OK; /* nothing known: the write probe speaks */
    uint64_t free_bytes = (uint64_t)fs.f_bavail * fs.f_frsize;
    if (free_bytes >= SHM_HEALTH_DISK_MIN)
        return SHM_OK;
    snprintf(why, len, "the disk is full: %llu bytes free on the file system of %s",
             (unsigned long long)free_bytes, path);
    return SHM_FULL;
}

int shm_store_health(struct shm_store *store, int64_t now_ms, struct shm_store_health *out)
{
    memset(out, 0, sizeof *out);
    if (store->batch != NULL)
        shm_batch_commit(store); /* the probe needs a batch of its own */
    store_read_check(store, out);
    out->write = store_write_probe(store, now_ms, out->write_error, sizeof out->write_error);
    if (out->write == SHM_OK)
        out->write = store_disk_check(store, out->write_error, sizeof out->write_error);
    if (out->write == SHM_OK && store->refused_ms != 0 &&
        now_ms - store->refused_ms < SHM_HEALTH_REFUSED_MS) {
        out->write = SHM_FULL;
        snprintf(out->write_error, sizeof out->write_error,
                 "the store refused writes %lld ms ago: %s",
                 (long long)(now_ms - store->refused_ms), mdb_strerror(store->refused_rc));
    }
    return out->read == SHM_OK && out->write == SHM_OK ? SHM_OK : SHM_ERROR;
}

/* The expired records a sweep found, read without the write lock. */
#define SWEEP_FOUND_BYTES 16384
struct sweep_found {
    unsigned char keys[SWEEP_FOUND_BYTES]; /* each key's length (2 bytes), then the key */
    size_t used, count;
};

static bool expired_value(const MDB_val *value, int64_t now_ms)
{
    return !(value->mv_size >= 8 && (int64_t)store_get_be64(value->mv_data) > now_ms);
}

/* Examines, in a read transaction, up to max records from where sweep stopped, keeping the keys
 * of the expired ones (until found is full) and the place to go on from. */
static int sweep_read(struct shm_store *store, MDB_dbi dbi, int64_t now_ms, size_t max,
                      struct shm_sweep *sweep, struct sweep_found *found)
{
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_cursor_open(txn, dbi, &cursor);
    if (rc != 0) {
        store_read_end(store, txn);
        return store_result(rc);
    }
    MDB_val key = { sweep->key_len, sweep->key }, value;
    rc = mdb_cursor_get(cursor, &key, &value, sweep->key_len > 0 ? MDB_SET_RANGE : MDB_FIRST);
    for (size_t seen = 0; rc == 0 && seen < max;
         seen++, rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        if (!expired_value(&value, now_ms))
            continue;
        if (found->used + 2 + key.mv_size > sizeof found->keys)
            break; /* full: this one is the next sweep's first */
        found->keys[found->used] = (unsigned char)(key.mv_size >> 8);
        found->keys[found->used + 1] = (unsigned char)key.mv_size;
        memcpy(found->keys + found->used + 2, key.mv_data, key.mv_size);
        found->used += 2 + key.mv_size;
        found->count++;
    }
    if (rc == 0 && key.mv_size <= sizeof sweep->key) {
        memcpy(sweep->key, key.mv_data, key.mv_size); /* the first record not examined */
        sweep->key_len = key.mv_size;
    } else {
        sweep->key_len = 0; /* the end: the next sweep starts over */
    }
    mdb_cursor_close(cursor);
    store_read_end(store, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? SHM_OK : store_result(rc);
}

/* Most visits find nothing expired and take no write lock: every process of the node waits
 * while one holds it, and the master sweeps every second. What was found is deleted in the
 * batch, each record checked again there (it may have been renewed since it was read). */
int store_expired_sweep(struct shm_store *store, MDB_dbi dbi, int64_t now_ms, size_t max,
                        struct shm_sweep *sweep, size_t *removed, const char *what)
{
    *removed = 0;
    struct sweep_found *found = malloc(sizeof *found);
    if (found == NULL)
        return SHM_ERROR;
    found->used = found->count = 0;
    int rc = sweep_read(store, dbi, now_ms, max, sweep, found);
    MDB_txn *txn = rc == SHM_OK && found->count > 0 ? store_batch_txn(store) : NULL;
    if (rc == SHM_OK && found->count > 0 && txn == NULL)
        rc = SHM_ERROR;
    for (size_t at = 0; txn != NULL && at < found->used;) {
        MDB_val key = { ((size_t)found->keys[at] << 8) | found->keys[at + 1], found->keys + at + 2 },
                value;
        at += 2 + key.mv_size;
        int get = mdb_get(txn, dbi, &key, &value);
        if (get == MDB_NOTFOUND || (get == 0 && !expired_value(&value, now_ms)))
            continue;
        if (get != 0 || (get = mdb_del(txn, dbi, &key, NULL)) != 0) {
            rc = store_batch_fail(store, get, what);
            break;
        }
        (*removed)++;
    }
    free(found);
    return rc;
}

int store_counter_add(struct shm_store *store, MDB_txn *txn, const char *name, uint64_t n)
{
    MDB_val key = { strlen(name), (void *)name }, value;
    uint64_t total = n;
    int rc = mdb_get(txn, store->meta, &key, &value);
    if (rc == 0 && value.mv_size == 8)
        total += store_get_be64(value.mv_data);
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return store_batch_fail(store, rc, name);
    unsigned char buf[8];
    store_put_be64(buf, total);
    value.mv_size = sizeof buf;
    value.mv_data = buf;
    rc = mdb_put(txn, store->meta, &key, &value, 0);
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, name);
}

uint64_t store_counter_read(struct shm_store *store, MDB_txn *txn, const char *name)
{
    MDB_val key = { strlen(name), (void *)name }, value;
    if (mdb_get(txn, store->meta, &key, &value) != 0 || value.mv_size != 8)
        return 0;
    return store_get_be64(value.mv_data);
}

int store_prefix_walk(struct shm_store *store, MDB_dbi dbi, const char *prefix, store_prefix_cb cb,
                      void *arg)
{
    char buf[256]; /* an e-mail or an appid, and the NUL */
    size_t prefix_len = strlen(prefix) + 1;
    if (prefix_len > sizeof buf)
        return SHM_ERROR;
    memcpy(buf, prefix, prefix_len);
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    if (mdb_cursor_open(txn, dbi, &cursor) != 0) {
        store_read_end(store, txn);
        return SHM_ERROR;
    }
    MDB_val key = { prefix_len, buf }, value;
    int count = 0;
    for (int rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
         rc == 0 && key.mv_size > prefix_len && memcmp(key.mv_data, buf, prefix_len) == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        MDB_val rest = { key.mv_size - prefix_len, (char *)key.mv_data + prefix_len };
        cb(arg, &rest, &value);
        count++;
    }
    mdb_cursor_close(cursor);
    store_read_end(store, txn);
    return count;
}
