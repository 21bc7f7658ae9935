/* commit_bench: what one write transaction of a few status updates costs in a store the size of
 * `make bench-million`'s (bench/README.md) — wall time, user-space instructions and the pages
 * LMDB writes per commit, split into the begin, the updates and the commit, with each database's
 * depth and the free list beside them.
 *   commit_bench DATA_DIR USERS [UPDATES_PER_COMMIT [COMMITS [DEVICES_PER_USER]]]
 * An empty DATA_DIR is filled first the way the bench's workers fill it (a validated app granted
 * by every user, as app_seed; each user's assertion cached; each device claimed by one of 56
 * workers and bound, users in random order); a filled one is reused. Each commit flips the status
 * of UPDATES_PER_COMMIT random devices between online and unavailable, as loadgen's status phase
 * does, through the calls a worker makes (shm_presence_device_status, then
 * shm_app_event_publish when the published status changed), COMMITS times after as many
 * unmeasured ones (the free list then is the steady state's, not the fill's). One process: no
 * lock waits. Instructions: run it under callgrind with --toggle-collect=commit_measured. */
#include "../common/clock.h"
#include "../common/uuid.h"
#include "../shm/app.h"
#include "../shm/app_channel.h"
#include "../shm/assertion_cache.h"
#include "../shm/conn.h"
#include "../shm/grant.h"
#include "../shm/presence.h"
#include "../shm/store.h"
/* The bench reads LMDB's own figures (depths, the free list) off the environment. */
#include "../shm/store_internal.h"

#include <dlfcn.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 56 /* make bench-million's */
#define FILL_BATCH 5000

/* The writes LMDB makes, counted by wrapping libc's (liblmdb calls them through its PLT). */
struct io_count {
    uint64_t calls, bytes, meta_calls;
};
static struct io_count io;

static void io_note(ssize_t n)
{
    io.calls++;
    if (n > 0) {
        io.bytes += (uint64_t)n;
        if (n < 4096)
            io.meta_calls++; /* the meta page: LMDB writes only its changed part */
    }
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (real == NULL)
        real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    ssize_t r = real(fd, buf, n, off);
    io_note(r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int count)
{
    static ssize_t (*real)(int, const struct iovec *, int);
    if (real == NULL)
        real = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
    ssize_t r = real(fd, iov, count);
    io_note(r);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t off)
{
    static ssize_t (*real)(int, const struct iovec *, int, off_t);
    if (real == NULL)
        real = (ssize_t(*)(int, const struct iovec *, int, off_t))dlsym(RTLD_NEXT, "pwritev");
    ssize_t r = real(fd, iov, count, off);
    io_note(r);
    return r;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

struct bench {
    struct shm_store *store;
    int users, per_user;
    char appid[SHM_APPID_LEN + 1];
    uint8_t *status; /* each device's status, as the flips left it */
    struct shm_presence_policy policy;
};

static void device_names(int device, int per_user, char *email, char *name)
{
    snprintf(email, 64, "user%d@bench.example", device / per_user);
    snprintf(name, 32, "d%d", device);
}

static int32_t device_pid(int device)
{
    return 100000 + device % WORKERS;
}

/* One user as the bench's server has it: the grant, the cached assertion, its devices claimed
 * and bound online. */
static int user_fill(struct bench *b, int user)
{
    char email[64], name[32], puid[UUID_LEN + 1];
    snprintf(email, sizeof email, "user%d@bench.example", user);
    int64_t now = clock_wall_ms();
    if (uuid_make(puid) != 0 || shm_grant_put(b->store, email, b->appid, puid, now) != SHM_OK)
        return -1;
    struct shm_assertion rec = { .expires_ms = now + 3600 * 1000, .trust_id = 1 };
    unsigned char hash[SHA256_DIGEST_LENGTH];
    snprintf(rec.email, sizeof rec.email, "%s", email);
    snprintf(rec.aud, sizeof rec.aud, "http://127.0.0.1:8080");
    SHA256((const unsigned char *)email, strlen(email), hash);
    if (shm_assertion_put(b->store, hash, &rec) != SHM_OK)
        return -1;
    for (int d = user * b->per_user; d < (user + 1) * b->per_user; d++) {
        struct shm_conn_owner owner = { device_pid(d), (uint64_t)d + 1, SHM_STATUS_ONLINE, now },
                              previous;
        int had;
        device_names(d, b->per_user, email, name);
        if (shm_conn_claim(b->store, email, name, &owner, &previous, &had) != SHM_OK ||
            shm_presence_device_bound(b->store, email, name, &b->policy, now, NULL, NULL) != SHM_OK)
            return -1;
    }
    return 0;
}

static int store_fill(struct bench *b)
{
    struct shm_app app = { .validated = true, .active = true, .has_key = true };
    memcpy(app.appid, b->appid, sizeof app.appid);
    snprintf(app.owner, sizeof app.owner, "bench@bench.example");
    snprintf(app.name, sizeof app.name, "Bench");
    snprintf(app.domain, sizeof app.domain, "bench.example");
    if (shm_app_put(b->store, &app) != SHM_OK)
        return -1;
    int *order = malloc(sizeof *order * (size_t)b->users);
    if (order == NULL)
        return -1;
    for (int i = 0; i < b->users; i++)
        order[i] = i;
    for (int i = b->users - 1; i > 0; i--) { /* the loadgens connect all at once: any order */
        int j = (int)(rng_next() % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint64_t start = now_ns();
    int rc = 0;
    for (int i = 0; rc == 0 && i < b->users; i++) {
        rc = user_fill(b, order[i]);
        if (rc == 0 && (i % FILL_BATCH == FILL_BATCH - 1 || i == b->users - 1))
            rc = shm_batch_commit(b->store) == SHM_OK ? 0 : -1;
    }
    free(order);
    fprintf(stderr, "commit_bench: %d users filled in %.1f s\n", b->users,
            (double)(now_ns() - start) / 1e9);
    return rc;
}

/* The app of a store filled before, found by its owner. */
static void app_found(void *arg, const struct shm_app *app)
{
    memcpy(arg, app->appid, SHM_APPID_LEN + 1);
}

/* One status update as a worker applies it (worker/backend/local_batch.c). */
static int update_apply(struct bench *b, int device)
{
    char email[64], name[32];
    struct shm_presence before, after;
    int64_t now = clock_wall_ms();
    uint8_t next =
        b->status[device] == SHM_STATUS_ONLINE ? SHM_STATUS_UNAVAILABLE : SHM_STATUS_ONLINE;
    device_names(device, b->per_user, email, name);
    int rc =
        shm_presence_device_status(b->store, email, name, device_pid(device), (uint64_t)device + 1,
                                   next, &b->policy, now, &before, &after);
    if (rc != SHM_OK)
        return -1;
    b->status[device] = next;
    if (before.status != after.status) {
        int32_t rings[SHM_RINGS_MAX];
        size_t count;
        if (shm_app_event_publish(b->store, email, after.status, after.since_ms, NULL, now, rings,
                                  SHM_RINGS_MAX, &count) != SHM_OK)
            return -1;
    }
    return 0;
}

struct sample {
    uint64_t begin_ns, updates_ns, commit_ns, io_calls, io_bytes, faults;
};

static int sample_cmp_total(const void *a, const void *b)
{
    const struct sample *x = a, *y = b;
    uint64_t tx = x->begin_ns + x->updates_ns + x->commit_ns,
             ty = y->begin_ns + y->updates_ns + y->commit_ns;
    return tx < ty ? -1 : tx > ty;
}

/* One write transaction of per_commit updates, begun, filled and committed. */
static int commit_run(struct bench *b, int per_commit, struct sample *s)
{
    struct io_count io0 = io;
    struct rusage u0, u1;
    getrusage(RUSAGE_SELF, &u0);
    uint64_t t0 = now_ns();
    if (store_batch_txn(b->store) == NULL)
        return -1;
    uint64_t t1 = now_ns();
    for (int k = 0; k < per_commit; k++)
        if (update_apply(b, (int)(rng_next() % (uint64_t)(b->users * b->per_user))) != 0)
            return -1;
    uint64_t t2 = now_ns();
    if (shm_batch_commit(b->store) != SHM_OK)
        return -1;
    uint64_t t3 = now_ns();
    getrusage(RUSAGE_SELF, &u1);
    *s = (struct sample){ t1 - t0,
                          t2 - t1,
                          t3 - t2,
                          io.calls - io0.calls,
                          io.bytes - io0.bytes,
                          (uint64_t)(u1.ru_minflt - u0.ru_minflt) };
    return 0;
}

/* The measured commits only: `valgrind --tool=callgrind --toggle-collect=commit_measured` counts
 * their instructions (this machine's VM has no hardware counters for perf). */
__attribute__((noinline)) static int commit_measured(struct bench *b, int per_commit,
                                                     struct sample *s)
{
    return commit_run(b, per_commit, s);
}

static void db_print(struct shm_store *store, MDB_txn *txn, const char *name, MDB_dbi dbi)
{
    MDB_stat st;
    if (mdb_stat(txn, dbi, &st) != 0)
        return;
    printf("  %-16s depth %u, %zu entries, %zu branch + %zu leaf + %zu overflow pages\n", name,
           st.ms_depth, st.ms_entries, st.ms_branch_pages, st.ms_leaf_pages, st.ms_overflow_pages);
    (void)store;
}

/* Each database a status update may touch, and the free list (LMDB's dbi 0). */
static void dbs_print(struct shm_store *store)
{
    MDB_txn *txn;
    if (mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn) != 0)
        return;
    db_print(store, txn, "free list", 0);
    db_print(store, txn, "main (db roots)", 1);
    db_print(store, txn, "conns", store->conns);
    db_print(store, txn, "conns_by_worker", store->conns_by_worker);
    db_print(store, txn, "presence", store->presence);
    db_print(store, txn, "presence_grace", store->presence_grace);
    db_print(store, txn, "grants", store->grants);
    db_print(store, txn, "app_changes", store->app_changes);
    db_print(store, txn, "assertions", store->assertions);
    db_print(store, txn, "meta", store->meta);
    mdb_txn_abort(txn);
    MDB_envinfo info;
    if (mdb_env_info(store->env, &info) == 0)
        printf("  file: %zu pages used of a %zu MB map\n", (size_t)info.me_last_pgno + 1,
               info.me_mapsize >> 20);
}

static double mean_of(const struct sample *s, size_t n, size_t field)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)((const uint64_t *)&s[i])[field];
    return n ? sum / (double)n : 0;
}

static void report(const struct sample *s, size_t n, int per_commit)
{
    struct sample *sorted = malloc(sizeof *sorted * n);
    if (sorted == NULL)
        return;
    memcpy(sorted, s, sizeof *sorted * n);
    qsort(sorted, n, sizeof *sorted, sample_cmp_total);
    const struct sample *p50 = &sorted[n / 2], *p99 = &sorted[n * 99 / 100];
    double begin = mean_of(s, n, 0) / 1e3, updates = mean_of(s, n, 1) / 1e3,
           commit = mean_of(s, n, 2) / 1e3;
    printf("per commit of %d updates, %zu commits: mean %.1f us (begin %.1f, updates %.1f, "
           "commit %.1f), p50 %.1f us, p99 %.1f us\n",
           per_commit, n, begin + updates + commit, begin, updates, commit,
           (double)(p50->begin_ns + p50->updates_ns + p50->commit_ns) / 1e3,
           (double)(p99->begin_ns + p99->updates_ns + p99->commit_ns) / 1e3);
    printf("  writes %.1f calls, %.1f pages (%.0f bytes) a commit; %.1f minor page faults\n",
           mean_of(s, n, 3), mean_of(s, n, 4) / 4096, mean_of(s, n, 4), mean_of(s, n, 5));
    free(sorted);
}

/* A reused store's statuses, as the last run's flips left them. */
static void status_found(void *arg, const char *email, const char *device,
                         const struct shm_conn_owner *owner)
{
    struct bench *b = arg;
    (void)email;
    long d = device[0] == 'd' ? strtol(device + 1, NULL, 10) : -1;
    if (d >= 0 && d < (long)b->users * b->per_user)
        b->status[d] = owner->status;
}

static int bench_open(struct bench *b, const char *dir)
{
    char err[512];
    struct shm_store_options opt = { dir, 4LL << 30, 16LL << 30, false }; /* million.py's map */
    if (shm_store_open(&b->store, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "commit_bench: %s\n", err);
        return -1;
    }
    b->policy = (struct shm_presence_policy){ 5000, 7LL * 24 * 3600 * 1000 };
    b->appid[0] = '\0';
    shm_app_list_by_owner(b->store, "bench@bench.example", app_found, b->appid);
    if (b->appid[0] != '\0')
        return shm_conn_walk_all(b->store, status_found, b) < 0 ? -1 : 0;
    if (uuid_make(b->appid) != 0)
        return -1;
    return store_fill(b);
}

/* Many writers at once (-p N): N processes, as the workers, each owning the devices d with
 * d % N == its number and flipping them at RATE / N a second for SECONDS. A process sleeps
 * until its next update is due, then commits in one transaction every update due by then (the
 * ones that came due while it waited for the lock included, as a worker reads them in its next
 * turn), so batches grow with the wait as they do in the server. Per update: the time from due
 * to committed; per commit: the wait for the lock (the begin) and the time it was held. */
struct writer_result {
    uint64_t commits, updates, wait_ns, hold_ns, max_hold_ns;
    uint64_t hold_faults, hold_preempted; /* minor faults and involuntary switches while held */
    uint64_t latency_ns[];                /* one per update, in order */
};

struct contention {
    int procs, rate, seconds;
    size_t per_writer_max; /* latencies room for each writer */
    unsigned char *shared; /* procs results of result_size bytes, shared with the parent */
    size_t result_size;
};

static struct writer_result *writer_slot(const struct contention *c, int i)
{
    return (struct writer_result *)(void *)(c->shared + (size_t)i * c->result_size);
}

static void sleep_until(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

/* A random device of writer i's own. */
static int writer_device(const struct bench *b, const struct contention *c, int i)
{
    size_t mine = ((size_t)b->users * (size_t)b->per_user - (size_t)i + (size_t)c->procs - 1) /
                  (size_t)c->procs;
    return (int)((size_t)i + (size_t)c->procs * (size_t)(rng_next() % mine));
}

static int writer_run(struct bench *b, const struct contention *c, int i, const char *dir,
                      uint64_t start_ns)
{
    char err[512];
    struct shm_store_options opt = { dir, 4LL << 30, 16LL << 30, false }; /* million.py's map */
    if (shm_store_open(&b->store, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "commit_bench: writer %d: %s\n", i, err);
        return 1;
    }
    /* As a worker does; COMMIT_BENCH_PREFAULT=0: not, as the workers did before. */
    const char *prefault = getenv("COMMIT_BENCH_PREFAULT");
    if (prefault == NULL || strcmp(prefault, "0") != 0) {
        uint64_t t0 = now_ns();
        shm_store_prefault(b->store);
        if (i == 0) { /* flushed: a writer leaves by _exit */
            printf("  writer 0 prefaulted its map in %.1f ms\n", (double)(now_ns() - t0) / 1e6);
            fflush(stdout);
        }
    }
    struct writer_result *r = writer_slot(c, i);
    uint64_t period = 1000000000ull * (uint64_t)c->procs / (uint64_t)c->rate,
             end = start_ns + (uint64_t)c->seconds * 1000000000ull,
             next = start_ns + period * (uint64_t)i / (uint64_t)c->procs, done = 0;
    rng_state ^= (uint64_t)(i + 1) * 0x2545f4914f6cdd1dull;
    while (next < end && done < c->per_writer_max) {
        sleep_until(next);
        uint64_t t0 = now_ns(), first = next, count = 0;
        while (next <= t0 && next < end && done + count < c->per_writer_max) {
            next += period;
            count++;
        }
        if (store_batch_txn(b->store) == NULL)
            return 1;
        struct rusage u0, u1;
        getrusage(RUSAGE_SELF, &u0);
        uint64_t t1 = now_ns();
        for (uint64_t k = 0; k < count; k++)
            if (update_apply(b, writer_device(b, c, i)) != 0)
                return 1;
        if (shm_batch_commit(b->store) != SHM_OK)
            return 1;
        uint64_t t2 = now_ns();
        getrusage(RUSAGE_SELF, &u1);
        r->hold_faults += (uint64_t)(u1.ru_minflt - u0.ru_minflt);
        r->hold_preempted += (uint64_t)(u1.ru_nivcsw - u0.ru_nivcsw);
        for (uint64_t k = 0; k < count; k++)
            r->latency_ns[done + k] = t2 - (first + k * period);
        done += count;
        r->commits++;
        r->wait_ns += t1 - t0;
        r->hold_ns += t2 - t1;
        if (t2 - t1 > r->max_hold_ns)
            r->max_hold_ns = t2 - t1;
    }
    r->updates = done;
    shm_store_close(b->store);
    return 0;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void contention_report(const struct contention *c)
{
    uint64_t commits = 0, updates = 0, wait = 0, hold = 0, max_hold = 0, faults = 0, preempted = 0;
    for (int i = 0; i < c->procs; i++) {
        struct writer_result *r = writer_slot(c, i);
        faults += r->hold_faults;
        preempted += r->hold_preempted;
        commits += r->commits;
        updates += r->updates;
        wait += r->wait_ns;
        hold += r->hold_ns;
        max_hold = r->max_hold_ns > max_hold ? r->max_hold_ns : max_hold;
    }
    uint64_t *all = malloc(sizeof *all * (updates ? updates : 1)), n = 0;
    if (all == NULL)
        return;
    for (int i = 0; i < c->procs; i++) {
        struct writer_result *r = writer_slot(c, i);
        memcpy(all + n, r->latency_ns, sizeof *all * r->updates);
        n += r->updates;
    }
    qsort(all, n, sizeof *all, u64_cmp);
    printf("%d writers, %d updates/s offered for %d s: %llu updates in %llu commits (%.1f a "
           "commit, %.0f commits/s)\n",
           c->procs, c->rate, c->seconds, (unsigned long long)updates, (unsigned long long)commits,
           commits ? (double)updates / (double)commits : 0, (double)commits / c->seconds);
    if (commits > 0 && n > 0)
        printf("  lock held %.1f us a commit (max %.0f us), waited %.1f us a commit; %.0f%% of "
               "the time held; update due to committed p50 %.0f us, p99 %.0f us\n",
               (double)hold / (double)commits / 1e3, (double)max_hold / 1e3,
               (double)wait / (double)commits / 1e3, (double)hold / 1e7 / c->seconds,
               (double)all[n / 2] / 1e3, (double)all[n * 99 / 100] / 1e3);
    if (commits > 0)
        printf("  while held: %.1f minor page faults and %.2f preemptions a commit\n",
               (double)faults / (double)commits, (double)preempted / (double)commits);
    free(all);
}

/* A figure (kB) of a /proc file's "name: value kB" lines; 0 when absent. */
static long proc_kb(const char *path, const char *name)
{
    char line[256];
    long value = 0;
    size_t len = strlen(name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, name, len) == 0 && line[len] == ':')
            value = strtol(line + len + 1, NULL, 10);
    fclose(f);
    return value;
}

/* What the writers hold halfway through: the kernel's page tables (all of the machine's, against
 * before they started) and the writers' shared file pages as Pss and as RSS. */
static void memory_report(const pid_t *pids, int count, long tables_before_kb)
{
    long pss_file = 0, rss = 0;
    for (int i = 0; i < count; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pids[i]);
        pss_file += proc_kb(path, "Pss_File");
        rss += proc_kb(path, "Rss");
    }
    printf("  halfway: page tables %+ld kB (the machine's), the writers' Pss of files %ld kB, "
           "RSS %ld kB\n",
           proc_kb("/proc/meminfo", "PageTables") - tables_before_kb, pss_file, rss);
}

static uint64_t cpu_ns(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (uint64_t)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1000u;
}

/* The master's part while the writers run: the store flushed to disk once a second
 * (sync_interval's default), its CPU time measured (the kernel's writeback of each dirty page
 * visits every process that maps it), and the memory read halfway. */
static void flushes_run(const char *dir, const struct contention *c, uint64_t start,
                        const pid_t *pids, long tables_kb)
{
    char err[512];
    struct shm_store *store;
    struct shm_store_options opt = { dir, 4LL << 30, 16LL << 30, false };
    if (shm_store_open(&store, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "commit_bench: %s\n", err);
        return;
    }
    shm_store_sync(store); /* what earlier runs left dirty is not the writers' */
    uint64_t cpu = 0;
    int flushes = 0;
    for (int s = 1; s <= c->seconds; s++) {
        sleep_until(start + (uint64_t)s * 1000000000ull);
        uint64_t c0 = cpu_ns();
        shm_store_sync(store);
        cpu += cpu_ns() - c0;
        flushes++;
        if (s == (c->seconds + 1) / 2)
            memory_report(pids, c->procs, tables_kb);
    }
    printf("  the flush once a second: %.1f ms of CPU each (%d)\n",
           flushes ? (double)cpu / 1e6 / flushes : 0, flushes);
    shm_store_close(store);
}

static int contention_run(struct bench *b, struct contention *c, const char *dir)
{
    shm_store_close(b->store); /* never across fork() */
    b->store = NULL;
    c->per_writer_max = (size_t)c->rate * (size_t)c->seconds / (size_t)c->procs + 16;
    c->result_size = sizeof(struct writer_result) + sizeof(uint64_t) * c->per_writer_max;
    c->shared = mmap(NULL, c->result_size * (size_t)c->procs, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (c->shared == MAP_FAILED)
        return 1;
    /* All open, and their maps prefaulted, before the first update is due. */
    uint64_t start = now_ns() + 5000000000ull;
    int failed = 0;
    long tables_kb = proc_kb("/proc/meminfo", "PageTables");
    pid_t *pids = calloc((size_t)c->procs, sizeof *pids);
    if (pids == NULL)
        return 1;
    for (int i = 0; i < c->procs; i++) {
        pid_t child = fork();
        if (child == 0)
            _exit(writer_run(b, c, i, dir, start));
        if (child < 0)
            failed = 1;
        pids[i] = child;
    }
    flushes_run(dir, c, start, pids, tables_kb);
    free(pids);
    int status;
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    if (failed)
        fprintf(stderr, "commit_bench: a writer failed\n");
    contention_report(c);
    munmap(c->shared, c->result_size * (size_t)c->procs);
    return failed;
}

int main(int argc, char **argv)
{
    struct contention c = { .procs = 0, .rate = 10000, .seconds = 5 };
    if (argc >= 4 && strcmp(argv[argc - 4], "-p") == 0) { /* -p PROCS RATE SECONDS */
        c.procs = atoi(argv[argc - 3]);
        c.rate = atoi(argv[argc - 2]);
        c.seconds = atoi(argv[argc - 1]);
        argc -= 4;
    }
    if (argc < 3 || (argc >= 4 && c.procs > 0) || c.procs < 0 || c.rate <= 0 || c.seconds <= 0) {
        fprintf(stderr, "usage: commit_bench DATA_DIR USERS [UPDATES_PER_COMMIT [COMMITS "
                        "[DEVICES_PER_USER]]]\n"
                        "       commit_bench DATA_DIR USERS -p PROCS RATE SECONDS\n");
        return 2;
    }
    struct bench b = { .users = atoi(argv[2]), .per_user = argc > 5 ? atoi(argv[5]) : 2 };
    int per_commit = argc > 3 ? atoi(argv[3]) : 3, commits = argc > 4 ? atoi(argv[4]) : 5000;
    if (b.users <= 0 || b.per_user <= 0 || per_commit <= 0 || commits <= 0)
        return 2;
    size_t devices = (size_t)b.users * (size_t)b.per_user;
    b.status = malloc(devices);
    struct sample *samples = malloc(sizeof *samples * (size_t)commits);
    if (b.status == NULL || samples == NULL)
        return 1;
    memset(b.status, SHM_STATUS_ONLINE, devices); /* as filled */
    if (bench_open(&b, argv[1]) != 0)
        return 1;
    if (c.procs > 0)
        return contention_run(&b, &c, argv[1]);
    rng_state ^= (uint64_t)now_ns();
    /* A warm-up of as many commits, so that the free list and the page cache are the steady
     * state's, not the fill's. */
    for (int i = 0; i < commits; i++)
        if (commit_run(&b, per_commit, &samples[i]) != 0)
            return 1;
    for (int i = 0; i < commits; i++)
        if (commit_measured(&b, per_commit, &samples[i]) != 0) {
            fprintf(stderr, "commit_bench: a commit failed\n");
            return 1;
        }
    printf("store: %d users, %zu devices (%s)\n", b.users, devices, argv[1]);
    report(samples, (size_t)commits, per_commit);
    dbs_print(b.store);
    shm_store_close(b.store);
    free(samples);
    free(b.status);
    return 0;
}
