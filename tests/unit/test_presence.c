/* Unit tests of shm/presence.c: offline_grace holds, since, last seen, a restart, and the events
 * apps get with since (SPEC.md §7). */
#include "scratch_store.h"
#include "tap.h"

#include "../../shm/app_channel.h"
#include "../../shm/conn.h"
#include "../../shm/presence.h"
#include "../../shm/store.h"

#include <stdint.h>
#include <unistd.h>

#define GRACE 5000

static const struct shm_presence_policy policy = { GRACE, 7LL * 86400 * 1000 };

struct told {
    int count;
    uint8_t status;
    int64_t since_ms;
};

static void told_note(void *arg, const char *email, const struct shm_presence *before,
                      const struct shm_presence *after, struct shm_store *store)
{
    struct told *t = arg;
    (void)email;
    (void)before;
    (void)store;
    t->count++;
    t->status = after->status;
    t->since_ms = after->since_ms;
}

/* Connects (email, device) as connection (pid, id) with status at now_ms. */
static void bind_device(struct shm_store *store, const char *email, const char *device, int32_t pid,
                        uint64_t id, uint8_t status, int64_t now_ms, struct shm_presence *before,
                        struct shm_presence *after)
{
    struct shm_conn_owner me = { pid, id, status, now_ms }, previous;
    int had;
    shm_conn_claim(store, email, device, &me, &previous, &had);
    shm_presence_device_bound(store, email, device, &policy, now_ms, before, after);
}

static void test_reload_within_the_grace(struct shm_store *store)
{
    const char *u = "reload@example.com";
    struct shm_presence before, after;
    bind_device(store, u, "browser", 10, 1, SHM_STATUS_ONLINE, 1000, &before, &after);
    ok(before.status == SHM_STATUS_OFFLINE && after.status == SHM_STATUS_ONLINE &&
           after.since_ms == 1000,
       "a first device: online since it bound");
    is_int(shm_presence_device_left(store, u, "browser", 10, 1, &policy, 2000, &before, &after),
           SHM_OK, "the page unloads");
    ok(after.status == SHM_STATUS_ONLINE && after.held && after.live == SHM_STATUS_OFFLINE &&
           after.devices == 0,
       "apps still see online (held), no device is connected");
    int64_t due;
    shm_presence_next_due(store, &due);
    is_int(due, 2000 + GRACE, "the hold ends after the grace");
    bind_device(store, u, "browser", 11, 2, SHM_STATUS_ONLINE, 3000, &before, &after);
    ok(before.status == SHM_STATUS_ONLINE && after.status == SHM_STATUS_ONLINE &&
           after.since_ms == 1000 && !after.held,
       "back within the grace: nothing changed for apps, since still 1000");
    struct told told = { 0 };
    int64_t next;
    shm_presence_expire(store, &policy, 2000 + GRACE + 1, 100, told_note, &told, &next);
    is_int(told.count, 0, "the hold had ended: nothing to tell");
    is_int(next, 0, "no hold left");
    is_int(shm_presence_device_left(store, u, "browser", 10, 1, &policy, 3500, &before, &after),
           SHM_NOT_FOUND, "the old connection, superseded, leaves nothing");
    shm_batch_commit(store);
}

static void test_gone_past_the_grace(struct shm_store *store)
{
    const char *u = "gone@example.com";
    struct shm_presence before, after, got;
    bind_device(store, u, "phone", 10, 3, SHM_STATUS_ONLINE, 10000, &before, &after);
    shm_presence_device_left(store, u, "phone", 10, 3, &policy, 11000, &before, &after);
    struct told told = { 0 };
    int64_t next;
    shm_presence_expire(store, &policy, 11000 + GRACE - 1, 100, told_note, &told, &next);
    ok(told.count == 0 && next == 11000 + GRACE, "not due yet: nothing told");
    shm_batch_commit(store);
    shm_presence_expire(store, &policy, 11000 + GRACE + 10, 100, told_note, &told, &next);
    ok(told.count == 1 && told.status == SHM_STATUS_OFFLINE && told.since_ms == 11000,
       "past the grace: one offline, since when the device left (last seen)");
    shm_batch_commit(store);
    is_int(shm_presence_get(store, u, &got), SHM_OK, "last seen kept");
    ok(got.status == SHM_STATUS_OFFLINE && got.since_ms == 11000, "offline since 11000");
    told.count = 0;
    shm_presence_expire(store, &policy, 11000 + GRACE + 2000, 100, told_note, &told, &next);
    is_int(told.count, 0, "a hold ends once");
}

static void test_own_status_at_once(struct shm_store *store)
{
    const char *u = "own@example.com";
    struct shm_presence before, after;
    bind_device(store, u, "phone", 10, 4, SHM_STATUS_ONLINE, 20000, &before, &after);
    is_int(shm_presence_device_status(store, u, "phone", 10, 4, SHM_STATUS_UNAVAILABLE, &policy,
                                      21000, &before, &after),
           SHM_OK, "a status update");
    ok(before.status == SHM_STATUS_ONLINE && after.status == SHM_STATUS_UNAVAILABLE &&
           after.since_ms == 21000,
       "a device's own unavailable is published at once");
    /* Two devices: the phone (online) goes away, the laptop stays unavailable. */
    shm_presence_device_status(store, u, "phone", 10, 4, SHM_STATUS_ONLINE, &policy, 22000,
                               &before, &after);
    bind_device(store, u, "laptop", 10, 5, SHM_STATUS_UNAVAILABLE, 22500, &before, &after);
    shm_presence_device_left(store, u, "phone", 10, 4, &policy, 23000, &before, &after);
    ok(after.status == SHM_STATUS_ONLINE && after.live == SHM_STATUS_UNAVAILABLE,
       "the phone's online is held over the laptop's unavailable");
    shm_presence_device_status(store, u, "laptop", 10, 5, SHM_STATUS_OFFLINE, &policy, 24000,
                               &before, &after);
    is_int(after.status, SHM_STATUS_ONLINE, "the laptop's own offline does not end the phone's hold");
    bind_device(store, u, "phone", 11, 6, SHM_STATUS_UNAVAILABLE, 25000, &before, &after);
    ok(after.status == SHM_STATUS_UNAVAILABLE && after.since_ms == 25000 && !after.held,
       "the phone back with a lower status of its own: published at once");
    shm_batch_commit(store);
}

/* A status update walks the user's devices once: the record changes only for its owner, and
 * the presence comes out as a separate update and refresh would make it. */
static void test_device_status(struct shm_store *store)
{
    const char *u = "walk@example.com";
    struct shm_presence before, after;
    struct shm_conn_owner owner;
    bind_device(store, u, "phone", 10, 7, SHM_STATUS_ONLINE, 30000, &before, &after);
    bind_device(store, u, "laptop", 10, 8, SHM_STATUS_ONLINE, 30000, &before, &after);
    is_int(shm_presence_device_status(store, u, "phone", 10, 7, SHM_STATUS_UNAVAILABLE, &policy,
                                      31000, &before, &after),
           SHM_OK, "the phone goes unavailable");
    ok(after.status == SHM_STATUS_ONLINE && after.live == SHM_STATUS_ONLINE &&
           after.devices == 2 && after.since_ms == before.since_ms,
       "the laptop keeps the user online: nothing changes for apps");
    shm_presence_device_status(store, u, "laptop", 10, 8, SHM_STATUS_UNAVAILABLE, &policy, 32000,
                               &before, &after);
    ok(before.status == SHM_STATUS_ONLINE && after.status == SHM_STATUS_UNAVAILABLE &&
           after.since_ms == 32000 && after.live_since_ms == 32000,
       "both unavailable: the user is, since now");
    is_int(shm_presence_device_status(store, u, "phone", 10, 99, SHM_STATUS_ONLINE, &policy,
                                      33000, &before, &after),
           SHM_NOT_FOUND, "another connection of the phone changes nothing");
    ok(shm_conn_get(store, u, "phone", &owner) == SHM_OK &&
           owner.status == SHM_STATUS_UNAVAILABLE && owner.conn_id == 7,
       "the phone's record is as it was");
    is_int(shm_presence_device_status(store, u, "tablet", 10, 7, SHM_STATUS_ONLINE, &policy,
                                      33000, &before, &after),
           SHM_NOT_FOUND, "a device not connected changes nothing");
    is_int(shm_presence_device_status(store, "nobody@example.com", "phone", 10, 7,
                                      SHM_STATUS_ONLINE, &policy, 33000, &before, &after),
           SHM_NOT_FOUND, "nor does a user without devices");
    struct shm_presence got;
    shm_batch_commit(store);
    ok(shm_presence_get(store, u, &got) == SHM_OK && got.status == SHM_STATUS_UNAVAILABLE &&
           got.since_ms == 32000,
       "stored");
}

static void test_no_grace(const char *dir)
{
    struct shm_store *store = scratch_store_open(dir);
    if (store == NULL)
        return;
    struct shm_presence_policy none = { 0, 0 };
    struct shm_conn_owner me = { 10, 9, SHM_STATUS_ONLINE, 1 }, previous;
    struct shm_presence before, after, got;
    int had;
    shm_conn_claim(store, "now@example.com", "d", &me, &previous, &had);
    shm_presence_device_bound(store, "now@example.com", "d", &none, 1000, &before, &after);
    shm_presence_device_left(store, "now@example.com", "d", 10, 9, &none, 2000, &before, &after);
    ok(before.status == SHM_STATUS_ONLINE && after.status == SHM_STATUS_OFFLINE && !after.held,
       "offline_grace 0: a departure counts at once");
    shm_batch_commit(store);
    is_int(shm_presence_get(store, "now@example.com", &got), SHM_NOT_FOUND,
           "last_seen_ttl 0: nothing kept of an offline user");
    shm_store_close(store);
}

static void test_last_seen_expires(struct shm_store *store)
{
    struct shm_presence got;
    struct shm_sweep sweep = { .key_len = 0 };
    size_t removed;
    int64_t ttl = policy.last_seen_ttl_ms;
    shm_presence_last_seen_expire(store, 11000 + ttl - 1, 1000, &sweep, &removed);
    shm_batch_commit(store);
    is_int(shm_presence_get(store, "gone@example.com", &got), SHM_OK, "kept until last_seen_ttl");
    memset(&sweep, 0, sizeof sweep);
    shm_presence_last_seen_expire(store, 11000 + ttl, 1000, &sweep, &removed);
    shm_batch_commit(store);
    is_int(shm_presence_get(store, "gone@example.com", &got), SHM_NOT_FOUND,
           "forgotten after last_seen_ttl");
    is_int(shm_presence_get(store, "reload@example.com", &got), SHM_OK,
           "an online user's record stays");
}

/* The master starts over the previous run's records: its devices are held from now. */
static void test_restart(const char *dir)
{
    struct shm_store *store = scratch_store_open(dir);
    if (store == NULL)
        return;
    struct shm_presence before, after, got;
    bind_device(store, "crash@example.com", "tab", 40, 1, SHM_STATUS_ONLINE, 1000, &before, &after);
    shm_batch_commit(store);
    shm_store_close(store);
    store = scratch_store_open(dir);
    is_int(shm_presence_restart(store, &policy, 50000), SHM_OK, "restart holds the devices");
    shm_batch_commit(store);
    is_int(shm_store_reset_volatile(store), SHM_OK, "the previous run's connections go");
    is_int(shm_presence_get(store, "crash@example.com", &got), SHM_OK, "presence kept");
    is_int(got.status, SHM_STATUS_ONLINE, "online during the grace after a restart");
    struct told told = { 0 };
    int64_t next;
    shm_presence_expire(store, &policy, 50000 + GRACE, 100, told_note, &told, &next);
    ok(told.count == 1 && told.status == SHM_STATUS_OFFLINE && told.since_ms == 50000,
       "then offline, since the restart");
    shm_batch_commit(store);
    shm_store_close(store);
    store = scratch_store_open(dir);
    is_int(shm_presence_get(store, "crash@example.com", &got), SHM_OK, "last seen after a restart");
    ok(got.status == SHM_STATUS_OFFLINE && got.since_ms == 50000, "offline since 50000");
    shm_store_close(store);
}

static void change_seen(void *arg, const char *puid, uint8_t status, int64_t since_ms)
{
    int64_t *seen = arg;
    (void)puid;
    (void)status;
    *seen = since_ms;
}

static void test_events_carry_since(struct shm_store *store)
{
    /* A grant, an open AppService connection, then an absence: the change replayed carries the
     * since it was published with. */
    const char *puid = "11111111-2222-3333-4444-555555555555";
    const char *appid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    is_int(shm_grant_put(store, "ev@example.com", appid, puid, 1), SHM_OK, "a grant");
    size_t others;
    shm_app_conn_add(store, appid, 77, 1, &others);
    shm_app_conn_remove(store, appid, 77, 1, 100);
    int32_t rings[4];
    size_t ring_count;
    is_int(shm_app_event_publish(store, "ev@example.com", SHM_STATUS_OFFLINE, 42, NULL, 200, rings,
                                 4, &ring_count),
           SHM_OK, "a change published");
    int64_t seen = -1;
    is_int(shm_app_changes_since_away(store, appid, 300, change_seen, &seen), 1, "replayed");
    is_int(seen, 42, "with its since");
    shm_batch_commit(store);
}

int main(void)
{
    struct scratch_dir scratch;
    struct shm_store *store = scratch_store_make(&scratch, "presence");
    ok(store != NULL, "store opens in %s", scratch.path);
    if (store == NULL) {
        scratch_dir_remove(&scratch);
        return tap_done();
    }
    char none_dir[256], restart_dir[256];
    snprintf(none_dir, sizeof none_dir, "%s/none", scratch.path);
    snprintf(restart_dir, sizeof restart_dir, "%s/restart", scratch.path);
    test_reload_within_the_grace(store);
    test_gone_past_the_grace(store);
    test_own_status_at_once(store);
    test_device_status(store);
    test_last_seen_expires(store);
    test_events_carry_since(store);
    shm_store_close(store);
    test_no_grace(none_dir);
    test_restart(restart_dir);
    scratch_dir_remove(&scratch);
    return tap_done();
}
