/* Unit tests of the per-status device counts in a user's presence record (shm/presence.c): after
 * every step of random sequences of binds, takeovers, status updates, departures, worker
 * releases, ends of holds and restarts, the stored presence is what a walk of the user's
 * devices gives; and a record of the previous layout (no counts) still reads and is counted at
 * the user's next update. */
#include "scratch_store.h"
#include "tap.h"

#include "../../shm/conn.h"
#include "../../shm/presence.h"
#include "../../shm/store.h"
#include "../../shm/store_internal.h"

#include <stdint.h>
#include <unistd.h>

#define USERS 3
#define DEVICES 4
#define PIDS 3
#define STEPS 4000

static const struct shm_presence_policy policy = { 3000, 7LL * 86400 * 1000 };

/* The test's own model of who holds each device: the brute force the store is compared with. */
struct model_device {
    bool connected;
    int32_t pid;
    uint64_t conn_id;
    uint8_t status;
};

struct model {
    struct model_device devices[USERS][DEVICES];
    bool restarted[USERS]; /* since a restart and before the user's next recompute: the record is
                              the previous run's until its holds end */
    uint64_t next_conn_id;
    int64_t now_ms;
    unsigned seed;
};

static unsigned next_random(struct model *m, unsigned below)
{
    m->seed = m->seed * 1103515245u + 12345u;
    return (m->seed >> 16) % below;
}

static void names(int user, int device, char *email, char *name)
{
    snprintf(email, 32, "user%d@counts.example", user);
    snprintf(name, 16, "dev%d", device);
}

/* The presence a walk of the user's devices gives now: shm_presence_refresh recomputes it from
 * the connection records (and must leave the record as it was). */
static bool same_as_walk(struct shm_store *store, const char *email, int64_t now_ms,
                         const struct shm_presence *got)
{
    struct shm_presence before, walked;
    if (shm_presence_refresh(store, email, &policy, now_ms, &before, &walked) != SHM_OK)
        return false;
    return walked.status == got->status && walked.since_ms == got->since_ms &&
           walked.live == got->live && walked.live_since_ms == got->live_since_ms &&
           walked.devices == got->devices && walked.held == got->held &&
           walked.counted == got->counted &&
           memcmp(walked.at_status, got->at_status, sizeof walked.at_status) == 0;
}

/* What the model says of a user: live status, devices, counts. */
static void model_user(const struct model *m, int user, uint8_t *live, int *devices,
                       uint16_t at_status[3])
{
    *live = SHM_STATUS_OFFLINE;
    *devices = 0;
    at_status[0] = at_status[1] = at_status[2] = 0;
    for (int d = 0; d < DEVICES; d++) {
        const struct model_device *dev = &m->devices[user][d];
        if (!dev->connected)
            continue;
        (*devices)++;
        at_status[dev->status]++;
        if (dev->status > *live)
            *live = dev->status;
    }
}

/* The stored record agrees with the model and with a walk; false (with a diagnosis) if not. */
static bool user_checks(struct shm_store *store, const struct model *m, int user,
                        const struct shm_presence *after, int step)
{
    char email[32], name[16];
    names(user, 0, email, name);
    uint8_t live;
    int devices;
    uint16_t at_status[3];
    model_user(m, user, &live, &devices, at_status);
    struct shm_presence stored;
    shm_presence_get(store, email, &stored);
    if (m->restarted[user])
        return true;
    bool right = stored.live == live && (devices == 0 || stored.live_since_ms > 0) &&
                 (devices > 0 || stored.live_since_ms == 0);
    if (devices > 0) /* counted since this run's first bind of the user */
        right =
            right && stored.counted && memcmp(stored.at_status, at_status, sizeof at_status) == 0;
    if (after != NULL)
        right = right && after->live == live && after->devices == devices &&
                same_as_walk(store, email, m->now_ms, after);
    if (!right)
        diag("step %d, %s: stored live %d counted %d (%u %u %u), model live %d devices %d "
             "(%u %u %u)",
             step, email, stored.live, stored.counted, stored.at_status[0], stored.at_status[1],
             stored.at_status[2], live, devices, at_status[0], at_status[1], at_status[2]);
    return right;
}

static int step_bind(struct shm_store *store, struct model *m, int user, int device,
                     struct shm_presence *after)
{
    char email[32], name[16];
    names(user, device, email, name);
    struct model_device *dev = &m->devices[user][device];
    struct shm_conn_owner me = { (int32_t)(100 + next_random(m, PIDS)), m->next_conn_id++,
                                 (uint8_t)next_random(m, 3), m->now_ms },
                          previous;
    int had;
    if (shm_conn_claim(store, email, name, &me, &previous, &had) != SHM_OK || had != dev->connected)
        return SHM_ERROR;
    *dev = (struct model_device){ true, me.worker_pid, me.conn_id, me.status };
    return shm_presence_device_bound(store, email, name, &policy, m->now_ms, NULL, after);
}

/* A status from the device's connection, or (stale) from one it superseded or that left. */
static int step_status(struct shm_store *store, struct model *m, int user, int device,
                       struct shm_presence *after)
{
    char email[32], name[16];
    names(user, device, email, name);
    struct model_device *dev = &m->devices[user][device];
    uint8_t status = (uint8_t)next_random(m, 3);
    bool stale = !dev->connected || next_random(m, 8) == 0;
    uint64_t conn_id = stale ? dev->conn_id - 1 : dev->conn_id;
    int rc = shm_presence_device_status(store, email, name, dev->pid, conn_id, status, &policy,
                                        m->now_ms, NULL, after);
    if (stale)
        return rc == SHM_NOT_FOUND ? SHM_NOT_FOUND : SHM_ERROR;
    dev->status = status;
    return rc;
}

static int step_left(struct shm_store *store, struct model *m, int user, int device,
                     struct shm_presence *after)
{
    char email[32], name[16];
    names(user, device, email, name);
    struct model_device *dev = &m->devices[user][device];
    int rc = shm_presence_device_left(store, email, name, dev->pid, dev->conn_id, &policy,
                                      m->now_ms, NULL, after);
    if (!dev->connected)
        return rc == SHM_NOT_FOUND ? SHM_NOT_FOUND : SHM_ERROR;
    dev->connected = false;
    return rc;
}

static int step_release_worker(struct shm_store *store, struct model *m)
{
    int32_t pid = (int32_t)(100 + next_random(m, PIDS));
    size_t released;
    for (int u = 0; u < USERS; u++)
        for (int d = 0; d < DEVICES; d++)
            if (m->devices[u][d].connected && m->devices[u][d].pid == pid)
                m->devices[u][d].connected = false;
    return shm_presence_release_worker(store, pid, &policy, m->now_ms, &released, NULL, NULL);
}

/* The master's start: the previous run's devices are held, their connections dropped. */
static int step_restart(struct shm_store *store, struct model *m)
{
    for (int u = 0; u < USERS; u++) {
        m->restarted[u] = true;
        for (int d = 0; d < DEVICES; d++)
            m->devices[u][d].connected = false;
    }
    if (shm_presence_restart(store, &policy, m->now_ms) != SHM_OK)
        return SHM_ERROR;
    return shm_store_reset_volatile(store);
}

/* One random step; *user is the user whose presence it returned in *after (-1: none). */
static int step_random(struct shm_store *store, struct model *m, int *user,
                       struct shm_presence *after)
{
    int u = (int)next_random(m, USERS), d = (int)next_random(m, DEVICES);
    unsigned kind = next_random(m, 100);
    int64_t next_due;
    m->now_ms += next_random(m, 700);
    *user = u;
    if (kind < 25)
        return step_bind(store, m, u, d, after);
    if (kind < 80)
        return step_status(store, m, u, d, after);
    if (kind < 92)
        return step_left(store, m, u, d, after);
    *user = -1;
    if (kind < 96)
        return shm_presence_expire(store, &policy, m->now_ms, 100, NULL, NULL, &next_due);
    if (kind < 99)
        return step_release_worker(store, m);
    return step_restart(store, m);
}

static void test_random_sequences(const char *dir, unsigned seed)
{
    struct shm_store *store = scratch_store_open(dir);
    if (store == NULL) {
        ok(0, "store opens");
        return;
    }
    struct model m = { .next_conn_id = 10, .now_ms = 1000000, .seed = seed };
    int step, failures = 0, updates = 0;
    for (step = 0; step < STEPS && failures == 0; step++) {
        struct shm_presence after;
        int user, rc = step_random(store, &m, &user, &after);
        if (rc != SHM_OK && rc != SHM_NOT_FOUND) {
            diag("step %d failed: %d", step, rc);
            failures++;
            break;
        }
        updates += rc == SHM_OK && user >= 0;
        if (rc == SHM_OK && user >= 0)
            m.restarted[user] = false; /* recomputed from this run's devices */
        for (int u = 0; u < USERS; u++)
            if (!user_checks(store, &m, u, rc == SHM_OK && u == user ? &after : NULL, step))
                failures++;
        if (next_random(&m, 10) == 0 && shm_batch_commit(store) != SHM_OK)
            failures++;
    }
    shm_batch_commit(store);
    shm_store_close(store);
    ok(failures == 0 && updates > STEPS / 3,
       "seed %u: %d steps, %d changes, the stored presence is the walk's after each", seed, step,
       updates);
}

/* A record of the previous layout (26 bytes, no counts), as an older presenced left it. */
static void test_previous_layout(const char *dir)
{
    struct shm_store *store = scratch_store_open(dir);
    if (store == NULL) {
        ok(0, "store opens");
        return;
    }
    const char *email = "old@counts.example";
    struct shm_conn_owner phone = { 100, 1, SHM_STATUS_ONLINE, 1000 },
                          tablet = { 100, 2, SHM_STATUS_UNAVAILABLE, 1000 }, previous;
    int had;
    shm_conn_claim(store, email, "phone", &phone, &previous, &had);
    shm_conn_claim(store, email, "tablet", &tablet, &previous, &had);
    unsigned char old[26] = { 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, SHM_STATUS_ONLINE };
    store_put_be64(old + 9, 1000);
    old[17] = SHM_STATUS_ONLINE;
    store_put_be64(old + 18, 1000);
    MDB_val key = { strlen(email), (void *)email }, value = { sizeof old, old };
    ok(mdb_put(store_batch_txn(store), store->presence, &key, &value, 0) == 0,
       "a record of the previous layout is stored");
    struct shm_presence got;
    is_int(shm_presence_get(store, email, &got), SHM_OK, "it reads");
    ok(got.status == SHM_STATUS_ONLINE && got.since_ms == 1000 && !got.counted,
       "online since 1000, not counted");
    struct shm_presence before, after;
    is_int(shm_presence_device_status(store, email, "phone", 100, 1, SHM_STATUS_UNAVAILABLE,
                                      &policy, 2000, &before, &after),
           SHM_OK, "the phone goes unavailable");
    ok(after.status == SHM_STATUS_UNAVAILABLE && after.since_ms == 2000 && after.devices == 2 &&
           after.counted && after.at_status[SHM_STATUS_UNAVAILABLE] == 2,
       "the devices were walked and counted: unavailable since 2000, two devices");
    shm_presence_get(store, email, &got);
    ok(got.counted && got.at_status[SHM_STATUS_UNAVAILABLE] == 2 &&
           got.at_status[SHM_STATUS_ONLINE] == 0,
       "the record now has the counts");
    shm_presence_device_status(store, email, "tablet", 100, 2, SHM_STATUS_ONLINE, &policy, 3000,
                               &before, &after);
    ok(after.status == SHM_STATUS_ONLINE && after.since_ms == 3000 &&
           after.at_status[SHM_STATUS_ONLINE] == 1 && after.at_status[SHM_STATUS_UNAVAILABLE] == 1,
       "the next update moves one count: online since 3000");
    /* A cluster agent's record has no counts either. */
    struct shm_presence agent = { .status = SHM_STATUS_OFFLINE };
    shm_presence_put(store, email, &agent, &policy, NULL);
    shm_presence_get(store, email, &got);
    ok(!got.counted, "a record the cluster agent stores is not counted");
    shm_batch_commit(store);
    shm_store_close(store);
}

int main(void)
{
    struct scratch_dir scratch;
    const char *dir = scratch_dir_make(&scratch, "counts");
    if (dir == NULL)
        return 1;
    static const unsigned seeds[] = { 1, 2, 3, 20261202 };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char sub[300];
        snprintf(sub, sizeof sub, "%s/random%zu", dir, i);
        test_random_sequences(sub, seeds[i]);
    }
    char old_dir[300];
    snprintf(old_dir, sizeof old_dir, "%s/old", dir);
    test_previous_layout(old_dir);
    scratch_dir_remove(&scratch);
    return tap_done();
}
