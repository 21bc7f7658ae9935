/* Unit tests of the metrics machinery: common/histogram.c, common/meter.c, the workers' published
 * meters and the retired workers' totals (shm/worker_info.c), the census (shm/census.c). */
#include "scratch_store.h"
#include "tap.h"

#include "../../common/histogram.h"
#include "../../common/meter.h"
#include "../../shm/app_channel.h"
#include "../../shm/census.h"
#include "../../shm/conn.h"
#include "../../shm/notif.h"
#include "../../shm/presence.h"
#include "../../shm/store.h"
#include "../../shm/worker_info.h"

#include <unistd.h>

static void test_buckets(void)
{
    struct histogram h = { 0 };
    histogram_observe(&h, 0);
    histogram_observe(&h, 25); /* a bound belongs to its bucket (le: less or equal) */
    histogram_observe(&h, 26);
    histogram_observe(&h, 1000);
    histogram_observe(&h, 60000000);
    histogram_observe(&h, 60000001);
    histogram_observe(&h, UINT64_MAX / 2);
    is_int(h.buckets[0], 2, "0 and 25 us in the first bucket");
    is_int(h.buckets[1], 1, "26 us in the second");
    is_int(h.buckets[5], 1, "1 ms in the 1 ms bucket");
    is_int(h.buckets[HISTOGRAM_BOUNDS - 1], 1, "60 s in the last bounded bucket");
    is_int(h.buckets[HISTOGRAM_BOUNDS], 2, "beyond 60 s: the unbounded one");
    is_int(histogram_count(&h), 7, "seven observations");
    is_int(h.sum_us - UINT64_MAX / 2, 0 + 25 + 26 + 1000 + 60000000 + 60000001, "the sum");
    for (size_t i = 1; i < HISTOGRAM_BOUNDS; i++)
        if (histogram_bounds_us[i] <= histogram_bounds_us[i - 1])
            ok(0, "bound %zu ascends", i);
    struct histogram twice = h;
    histogram_add(&twice, &h);
    is_int(histogram_count(&twice), 14, "added: the counts double");
    struct histogram none = { 0 };
    histogram_since(&none, 0);
    is_int(histogram_count(&none), 0, "since 0: nothing measured");
    histogram_since(&none, histogram_now_us());
    is_int(histogram_count(&none), 1, "since a moment ago: one");
    histogram_since_stamp(&none, 0);
    is_int(histogram_count(&none), 1, "stamp 0: nothing measured");
    uint32_t stamp = histogram_stamp();
    ok(stamp != 0, "a stamp is never 0");
    histogram_since_stamp(&none, stamp);
    is_int(histogram_count(&none), 2, "since a stamp: one more");
    ok(none.buckets[HISTOGRAM_BOUNDS] == 0, "and short, not a wrapped-around huge value");
}

static void test_labels(void)
{
    struct meter m = { 0 };
    meter_error_reply(&m, METER_DEVICE, 10);
    meter_error_reply(&m, METER_APPSERVICE, 61);
    meter_error_reply(&m, METER_DEVICE, 99); /* not in the table: counted as 60 */
    is_int(m.error_replies[METER_DEVICE][0], 1, "errno 10 is the first");
    is_int(m.error_replies[METER_APPSERVICE][METER_ERRNOS - 1], 1, "errno 61 the last");
    is_int(m.error_replies[METER_DEVICE][METER_ERRNOS - 2], 1, "an unknown errno counts as 60");
    static const struct {
        const char *path;
        enum meter_route route;
    } routes[] = {
        { "/", METER_ROUTE_HOME },
        { "/__heartbeat__", METER_ROUTE_HEALTH },
        { "/__version__", METER_ROUTE_HEALTH },
        { "/__nothing__", METER_ROUTE_OTHER },
        { "/login", METER_ROUTE_SIGN_IN },
        { "/login/oidc", METER_ROUTE_SIGN_IN },
        { "/loginx", METER_ROUTE_OTHER },
        { "/logout", METER_ROUTE_SIGN_IN },
        { "/account", METER_ROUTE_ACCOUNT },
        { "/getApps", METER_ROUTE_ACCOUNT },
        { "/revoke/1234", METER_ROUTE_ACCOUNT },
        { "/grant/1234", METER_ROUTE_GRANT },
        { "/myapps", METER_ROUTE_MYAPPS },
        { "/myapps/1234", METER_ROUTE_MYAPPS },
        { "/myapps/1234/activate", METER_ROUTE_MYAPPS },
        { "/myapps/1234/status", METER_ROUTE_POLL },
        { "/myapps//status", METER_ROUTE_MYAPPS },
        { "/vapid", METER_ROUTE_VAPID },
        { "/presence", METER_ROUTE_OTHER },
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        is_str(meter_route_name(meter_route_of(routes[i].path)), meter_route_name(routes[i].route),
               "%s", routes[i].path);
    meter_http_done(&m, METER_ROUTE_POLL, 401, histogram_now_us());
    meter_http_done(&m, METER_ROUTE_POLL, 101, histogram_now_us());
    is_int(m.http_responses[METER_ROUTE_POLL][2], 1, "401 is a 4xx");
    is_int(histogram_count(&m.http[METER_ROUTE_POLL]), 2, "both timed");
    meter_verified(&m, 1, 0, 1, histogram_now_us());
    meter_verified(&m, 0, 35, 0, histogram_now_us());
    meter_verified(&m, 0, 33, 0, histogram_now_us());
    is_int(histogram_count(&m.verification[METER_TOKEN][METER_CACHED]), 1, "a cached token");
    is_int(histogram_count(&m.verification[METER_ASSERTION][METER_UNAVAILABLE]), 1, "35");
    is_int(histogram_count(&m.verification[METER_ASSERTION][METER_REFUSED]), 1, "33 refused");
    struct meter sum = { 0 };
    meter_add(&sum, &m);
    meter_add(&sum, &m);
    is_int(sum.error_replies[METER_DEVICE][0], 2, "meters add up");
    is_int(histogram_count(&sum.http[METER_ROUTE_POLL]), 4, "histograms too");
}

static void test_retired(struct shm_store *store)
{
    struct shm_worker_info a = { .pid = 4001, .connections = 3 }, b = { .pid = 4002 }, got[3];
    a.meter.takeovers = 5;
    histogram_observe(&a.meter.status_update, 100);
    b.meter.takeovers = 7;
    is_int(shm_worker_info_put(store, &a), SHM_OK, "a published");
    is_int(shm_worker_info_put(store, &b), SHM_OK, "b published");
    is_int(shm_batch_commit(store), SHM_OK, "committed");
    int32_t pids[3] = { 4001, 4002, 4003 };
    struct meter retired;
    is_int(shm_worker_info_snapshot(store, pids, 3, got, &retired), SHM_OK, "a snapshot");
    ok(got[0].connections == 3 && got[0].meter.takeovers == 5 &&
           histogram_count(&got[0].meter.status_update) == 1,
       "the meter survives the store");
    ok(got[2].pid == 0 && got[2].meter.takeovers == 0, "no record: zero");
    is_int(retired.takeovers, 0, "none retired yet");
    is_int(shm_worker_info_retire(store, 4001), SHM_OK, "a retires");
    is_int(shm_worker_info_retire(store, 4002), SHM_OK, "b retires");
    is_int(shm_worker_info_retire(store, 4002), SHM_NOT_FOUND, "once only");
    is_int(shm_batch_commit(store), SHM_OK, "committed");
    is_int(shm_worker_info_snapshot(store, pids, 3, got, &retired), SHM_OK, "a snapshot");
    is_int(retired.takeovers, 12, "their counts stay, added up");
    is_int(histogram_count(&retired.status_update), 1, "their histograms too");
    ok(got[0].pid == 0 && got[1].pid == 0, "their records are gone");
}

static void test_census(struct shm_store *store)
{
    struct shm_census census;
    is_int(shm_census_take(store, &census), SHM_OK, "an empty census");
    ok(census.notifications_pending == 0 && census.users[2] == 0, "nothing");
    const struct shm_presence_policy policy = { 5000, 7 * 86400 * 1000LL };
    static const struct {
        const char *email;
        uint8_t status;
    } users[] = { { "a@example.com", SHM_STATUS_ONLINE },
                  { "b@example.com", SHM_STATUS_UNAVAILABLE },
                  { "d@example.com", SHM_STATUS_ONLINE } };
    for (size_t i = 0; i < 3; i++) {
        struct shm_conn_owner owner = { 10, i + 1, users[i].status, 1 }, previous;
        int had;
        shm_conn_claim(store, users[i].email, "phone", &owner, &previous, &had);
        shm_presence_device_bound(store, users[i].email, "phone", &policy, 1, NULL, NULL);
    }
    /* d's phone goes: held for the grace, but no device is connected. */
    is_int(shm_presence_device_left(store, "d@example.com", "phone", 10, 3, &policy, 2, NULL, NULL),
           SHM_OK, "d's phone left");
    struct shm_notif_key key;
    size_t dropped;
    shm_notif_add(store, "c@example.com", "{}", 2, 1, INT64_MAX, 100, &key, &dropped);
    shm_notif_add(store, "c@example.com", "{}", 2, 2, INT64_MAX, 100, &key, &dropped);
    is_int(shm_notif_key_queued_ms(&key), 2, "the key says when it was queued");
    is_int(shm_batch_commit(store), SHM_OK, "committed");
    is_int(shm_census_take(store, &census), SHM_OK, "a census");
    is_int(census.notifications_pending, 2, "two pending");
    is_int(census.users[SHM_STATUS_ONLINE], 1, "one user online");
    is_int(census.users[SHM_STATUS_UNAVAILABLE], 1, "one unavailable");
    is_int(census.users[SHM_STATUS_OFFLINE], 0, "none appearing offline, d held is not counted");
}

static void test_busiest(struct shm_store *store)
{
    static const char *const appids[] = { "00000000-0000-4000-8000-00000000000a",
                                           "00000000-0000-4000-8000-00000000000b",
                                           "00000000-0000-4000-8000-00000000000c" };
    static const int conns[] = { 2, 5, 1 };
    uint64_t conn_id = 100;
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < conns[a]; i++) {
            size_t others;
            shm_app_conn_add(store, appids[a], 10 + i % 2, conn_id++, &others);
        }
    is_int(shm_batch_commit(store), SHM_OK, "connections of three apps");
    struct shm_app_busy top[2];
    size_t count;
    is_int(shm_app_conns_busiest(store, top, 2, &count), SHM_OK, "the busiest");
    is_int(count, 2, "two asked, two given");
    ok(count == 2 && strcmp(top[0].appid, appids[1]) == 0 && top[0].connections == 5 &&
           strcmp(top[1].appid, appids[0]) == 0 && top[1].connections == 2,
       "most connections first");
    struct shm_app_busy all[10];
    is_int(shm_app_conns_busiest(store, all, 10, &count), SHM_OK, "all of them");
    ok(count == 3 && all[2].connections == 1, "three apps, the quietest last");
}

int main(void)
{
    test_buckets();
    test_labels();
    struct scratch_dir scratch;
    struct shm_store *store = scratch_store_make(&scratch, "meter");
    ok(store != NULL, "store opens");
    if (store != NULL) {
        test_retired(store);
        test_census(store);
        test_busiest(store);
        shm_store_close(store);
    }
    scratch_dir_remove(&scratch);
    return tap_done();
}
