/* Unit tests of shm/: schema, batching, connection ownership, worker records, mail, full maps. */
#include "scratch_store.h"
#include "tap.h"

#include "../../common/clock.h"
#include "../../shm/assertion_cache.h"
#include "../../shm/conn.h"
#include "../../shm/mail.h"
#include "../../shm/notif.h"
#include "../../shm/presence.h"
#include "../../shm/store.h"
#include "../../shm/store_internal.h"
#include "../../shm/worker_info.h"

#include <lmdb.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct shm_conn_owner owner_a = { 100, 1, SHM_STATUS_ONLINE, 1000 };
static const struct shm_conn_owner owner_b = { 200, 7, SHM_STATUS_UNAVAILABLE, 2000 };

static void test_claim_and_supersede(struct shm_store *store)
{
    struct shm_conn_owner previous, got;
    int had;
    is_int(shm_conn_claim(store, "alice@example.com", "phone", &owner_a, &previous, &had), SHM_OK,
           "first claim");
    is_int(had, 0, "nobody held the device before");
    is_int(shm_batch_commit(store), SHM_OK, "batch commits");
    is_int(shm_conn_claim(store, "alice@example.com", "phone", &owner_b, &previous, &had), SHM_OK,
           "second claim of the same device");
    is_int(had, 1, "the second claim reports the first owner");
    is_int(previous.worker_pid, 100, "previous owner's worker");
    is_int(previous.conn_id, 1, "previous owner's connection");
    is_int(shm_conn_get(store, "alice@example.com", "phone", &got), SHM_OK,
           "a process reads its own uncommitted writes");
    is_int(got.worker_pid, 200, "the newer connection owns the device");
    is_int(shm_conn_release(store, "alice@example.com", "phone", 100, 1), SHM_NOT_FOUND,
           "the superseded connection releases nothing");
    is_int(shm_conn_get(store, "alice@example.com", "phone", &got), SHM_OK, "record still there");
    is_int(
        shm_conn_set_status(store, "alice@example.com", "phone", 100, 1, SHM_STATUS_ONLINE, NULL),
        SHM_NOT_FOUND, "the superseded connection cannot set the status");
    is_int(shm_batch_commit(store), SHM_OK, "batch commits");
}

static void test_presence(struct shm_store *store)
{
    struct shm_conn_owner previous;
    int had;
    uint8_t status;
    struct shm_conn_owner laptop = { 100, 2, SHM_STATUS_OFFLINE, 3000 };
    shm_conn_claim(store, "alice@example.com", "laptop", &laptop, &previous, &had);
    is_int(shm_conn_presence(store, "alice@example.com", &status), SHM_OK, "presence read");
    is_int(status, SHM_STATUS_UNAVAILABLE, "presence is the highest device status");
    shm_conn_set_status(store, "alice@example.com", "laptop", 100, 2, SHM_STATUS_ONLINE, NULL);
    shm_conn_presence(store, "alice@example.com", &status);
    is_int(status, SHM_STATUS_ONLINE, "a device going online makes the user online");
    is_int(shm_conn_devices(store, "alice@example.com", NULL, NULL), 2, "two devices");
    is_int(shm_conn_devices(store, "alice@example.co", NULL, NULL), 0,
           "a prefix of the e-mail matches nothing");
    shm_conn_presence(store, "bob@example.com", &status);
    is_int(status, SHM_STATUS_OFFLINE, "a user with no device is offline");
    shm_batch_commit(store);
}

static void test_release_worker(struct shm_store *store)
{
    size_t released;
    uint8_t status;
    is_int(shm_conn_release_worker(store, 100, &released, NULL, NULL), SHM_OK,
           "release a dead worker");
    is_int(released, 1, "worker 100 held only the laptop (the phone moved to 200)");
    is_int(shm_batch_commit(store), SHM_OK, "commit");
    is_int(shm_conn_devices(store, "alice@example.com", NULL, NULL), 1, "one device left");
    shm_conn_presence(store, "alice@example.com", &status);
    is_int(status, SHM_STATUS_UNAVAILABLE, "presence recomputed without the dead worker");
    is_int(shm_conn_release(store, "alice@example.com", "phone", 200, 7), SHM_OK,
           "a clean close releases its record");
    shm_batch_commit(store);
    is_int(shm_conn_devices(store, "alice@example.com", NULL, NULL), 0, "no device left");
}

static void test_bad_keys(struct shm_store *store)
{
    struct shm_conn_owner previous;
    int had;
    char long_device[100];
    memset(long_device, 'd', sizeof long_device - 1);
    long_device[sizeof long_device - 1] = '\0';
    is_int(shm_conn_claim(store, "", "phone", &owner_a, &previous, &had), SHM_ERROR,
           "an empty e-mail is refused");
    is_int(shm_conn_claim(store, "a@b", long_device, &owner_a, &previous, &had), SHM_ERROR,
           "a device name over 64 bytes is refused");
}

static void test_worker_info(struct shm_store *store)
{
    struct shm_worker_info info = { .pid = 4242,
                                    .slot = 1,
                                    .generation = 3,
                                    .connections = 17,
                                    .websockets = 5,
                                    .accepted_total = 99 };
    struct shm_worker_info got;
    is_int(shm_worker_info_put(store, &info), SHM_OK, "worker info put");
    shm_batch_commit(store);
    is_int(shm_worker_info_get(store, 4242, &got), SHM_OK, "worker info get");
    ok(got.slot == 1 && got.generation == 3 && got.connections == 17 && got.websockets == 5 &&
           got.accepted_total == 99,
       "worker info round trip");
    is_int(shm_worker_info_delete(store, 4242), SHM_OK, "worker info delete");
    shm_batch_commit(store);
    is_int(shm_worker_info_get(store, 4242, &got), SHM_NOT_FOUND, "deleted");
}

struct mail_seen {
    int count;
    uint8_t types[8];
    char payload[8][32];
};

static void mail_collect(void *arg, int32_t sender, uint8_t type, const void *payload, size_t len)
{
    struct mail_seen *seen = arg;
    (void)sender;
    if (seen->count < 8) {
        seen->types[seen->count] = type;
        snprintf(seen->payload[seen->count], sizeof seen->payload[0], "%.*s", (int)len,
                 (const char *)payload);
    }
    seen->count++;
}

struct mail_order {
    int next;
    int in_order;
};

static void mail_in_order(void *arg, int32_t sender, uint8_t type, const void *payload, size_t len)
{
    struct mail_order *o = arg;
    char text[16];
    (void)sender;
    (void)type;
    snprintf(text, sizeof text, "%.*s", (int)len, (const char *)payload);
    o->in_order &= atoi(text) == o->next++;
}

static void test_mail(struct shm_store *store)
{
    struct mail_seen seen = { 0 };
    shm_mail_post(store, 300, SHM_MAIL_PING, "one", 3);
    shm_mail_post(store, 300, SHM_MAIL_DELIVER, "two", 3);
    shm_mail_post(store, 301, SHM_MAIL_PING, "other", 5);
    is_int(shm_batch_commit(store), SHM_OK, "mail posted");
    is_int(shm_mail_take(store, 300, mail_collect, &seen), 2, "two messages for 300");
    shm_batch_commit(store);
    ok(seen.types[0] == SHM_MAIL_PING && strcmp(seen.payload[0], "one") == 0 &&
           seen.types[1] == SHM_MAIL_DELIVER && strcmp(seen.payload[1], "two") == 0,
       "in the order posted");
    is_int(shm_mail_take(store, 300, mail_collect, &seen), 0, "taken mail is gone");
    shm_batch_commit(store);
    is_int(shm_mail_drop(store, 301), SHM_OK, "a dead process's mail is dropped");
    shm_batch_commit(store);
    is_int(shm_mail_take(store, 301, mail_collect, &seen), 0, "nothing left for 301");
    shm_batch_commit(store);
    char big[SHM_MAIL_PAYLOAD_MAX + 1] = { 0 };
    is_int(shm_mail_post(store, 300, SHM_MAIL_PING, big, sizeof big), SHM_ERROR,
           "a payload over the limit is refused");
}

/* Mail read without the write lock, acted on, then forgotten in a batch: what was committed
 * after the read stays for the next one. */
static void test_mail_read_forget(struct shm_store *store)
{
    struct mail_seen seen = { 0 };
    struct shm_mail_inbox inbox = { 0 };
    for (int i = 0; i < 3; i++) {
        char text[8];
        int len = snprintf(text, sizeof text, "m%d", i);
        shm_mail_post(store, 310, SHM_MAIL_PING, text, (size_t)len);
    }
    shm_mail_post(store, 311, SHM_MAIL_PING, "other", 5);
    is_int(shm_batch_commit(store), SHM_OK, "mail posted to 310 and 311");
    is_int(shm_mail_read(store, 310, &inbox), 3, "three messages read for 310");
    ok(!shm_batch_pending(store), "the read took no write transaction");
    shm_mail_each(&inbox, mail_collect, &seen);
    ok(seen.count == 3 && strcmp(seen.payload[0], "m0") == 0 && strcmp(seen.payload[2], "m2") == 0,
       "each handed over, in the order posted");
    shm_mail_post(store, 310, SHM_MAIL_DELIVER, "late", 4);
    is_int(shm_batch_commit(store), SHM_OK, "one more committed after the read");
    is_int(shm_mail_forget(store, 310, inbox.last_seq), SHM_OK, "the read ones forgotten");
    is_int(shm_batch_commit(store), SHM_OK, "in a batch");
    seen.count = 0;
    is_int(shm_mail_read(store, 310, &inbox), 1, "the later one stays");
    shm_mail_each(&inbox, mail_collect, &seen);
    ok(seen.count == 1 && seen.types[0] == SHM_MAIL_DELIVER && strcmp(seen.payload[0], "late") == 0,
       "and it is the one committed after the read");
    is_int(shm_mail_forget(store, 310, inbox.last_seq), SHM_OK, "forgotten too");
    shm_batch_commit(store);
    is_int(shm_mail_read(store, 310, &inbox), 0, "nothing left for 310");
    is_int(shm_mail_read(store, 311, &inbox), 1, "311's mail untouched");
    shm_mail_drop(store, 311);
    shm_batch_commit(store);
    shm_mail_inbox_free(&inbox);
}

/* The reader kept between reads sees, at each read, what another process committed since the
 * last one (it is renewed on the newest snapshot, not left on an old one). */
static void test_reads_see_later_commits(const char *dir)
{
    struct shm_store *store = scratch_store_open(dir);
    if (store == NULL)
        return;
    unsigned char hash[SHM_ASSERTION_HASH_LEN] = { 7, 7, 7 };
    struct shm_assertion rec = { .expires_ms = 99999, .trust_id = 1 }, got;
    snprintf(rec.email, sizeof rec.email, "rita@example.com");
    int found_before = 0, seen_after = 0;
    for (int round = 0; round < 20; round++) {
        hash[3] = (unsigned char)round;
        found_before += shm_assertion_get(store, hash, 0, &got) == SHM_OK;
        pid_t child = fork();
        if (child == 0) {
            struct shm_store *other = scratch_store_open(dir);
            int failed = other == NULL || shm_assertion_put(other, hash, &rec) != SHM_OK ||
                         shm_batch_commit(other) != SHM_OK;
            shm_store_close(other);
            _exit(failed);
        }
        int status = 1;
        if (child > 0)
            waitpid(child, &status, 0);
        seen_after += status == 0 && shm_assertion_get(store, hash, 0, &got) == SHM_OK &&
                      got.trust_id == 1;
    }
    is_int(found_before, 0, "20 records missing at first");
    is_int(seen_after, 20, "each seen by the next read once another process committed it");
    shm_store_close(store);
}

struct commit_seen {
    int calls;
    int result;
};

static void commit_noted(void *arg, int result)
{
    struct commit_seen *seen = arg;
    seen->calls++;
    seen->result = result;
}

static void test_commit_waiters(struct shm_store *store)
{
    struct commit_seen seen = { 0, 99 };
    struct shm_worker_info info = { .pid = 5 };
    shm_worker_info_put(store, &info);
    shm_batch_on_commit(store, commit_noted, &seen);
    is_int(seen.calls, 0, "a waiter is not called before the commit");
    ok(shm_batch_pending(store), "a batch is pending");
    shm_batch_commit(store);
    is_int(seen.calls, 1, "the waiter is called once at commit");
    is_int(seen.result, SHM_OK, "with the commit's result");
    ok(!shm_batch_pending(store), "nothing pending after the commit");
}

/* A burst of writes in one loop turn is one transaction: one commit, not one per write. */
static void test_batching(struct shm_store *store)
{
    struct shm_store_stats before, after;
    shm_store_stats(store, &before);
    for (int i = 0; i < 1000; i++) {
        struct shm_worker_info info = { .pid = 10000 + i, .connections = (uint64_t)i };
        shm_worker_info_put(store, &info);
    }
    is_int(shm_batch_commit(store), SHM_OK, "1000 writes commit together");
    shm_store_stats(store, &after);
    is_int(after.commits - before.commits, 1, "as one commit");
    struct shm_worker_info got;
    ok(shm_worker_info_get(store, 10999, &got) == SHM_OK && got.connections == 999,
       "the last write of the batch is there");
    is_int(shm_batch_commit(store), SHM_OK, "an empty batch commits");
    shm_store_stats(store, &before);
    is_int(before.commits, after.commits, "and costs no commit");
}

/* A sweep examines a bounded number of records per visit and goes on where it stopped: 250
 * records, 100 of them expired, 40 examined a visit. */
static void test_sweep_resumes(struct shm_store *store, struct shm_assertion *rec)
{
    unsigned char hash[32] = { 0 };
    for (int i = 0; i < 250; i++) {
        hash[0] = (unsigned char)(i >> 8);
        hash[1] = (unsigned char)i;
        hash[2] = 0xAB; /* apart from the records of the test before */
        rec->expires_ms = i % 5 < 2 ? 1000 : 99999;
        shm_assertion_put(store, hash, rec);
    }
    is_int(shm_batch_commit(store), SHM_OK, "250 records, 100 expired");
    struct shm_sweep sweep = { .key_len = 0 };
    size_t removed = 0, total = 0;
    int visits = 0;
    do {
        is_int(shm_assertion_expire(store, 2000, 40, &sweep, &removed) == SHM_OK &&
                   shm_batch_commit(store) == SHM_OK,
               1, "visit %d", visits + 1);
        ok(removed <= 40, "at most 40 examined, so at most 40 removed (%zu)", removed);
        total += removed;
        visits++;
    } while (sweep.key_len > 0 && visits < 20);
    is_int(total, 100, "every expired record removed once over the visits");
    struct shm_store_stats before, after;
    shm_store_stats(store, &before);
    sweep.key_len = 0;
    is_int(shm_assertion_expire(store, 2000, 1000, &sweep, &removed), SHM_OK,
           "a sweep that finds nothing expired");
    ok(removed == 0 && !shm_batch_pending(store), "takes no write transaction");
    shm_batch_commit(store);
    shm_store_stats(store, &after);
    is_int(after.commits, before.commits, "and commits nothing");
    ok(visits >= 7, "in several bounded visits (%d)", visits);
    int left = 0;
    struct shm_assertion got;
    for (int i = 0; i < 250; i++) {
        hash[0] = (unsigned char)(i >> 8);
        hash[1] = (unsigned char)i;
        left += shm_assertion_get(store, hash, 0, &got) == SHM_OK;
    }
    is_int(left, 150, "the 150 live records stay");
}

static void test_assertion_cache(struct shm_store *store)
{
    unsigned char fresh[SHM_ASSERTION_HASH_LEN] = { 1 }, stale[SHM_ASSERTION_HASH_LEN] = { 2 };
    struct shm_assertion rec = { .expires_ms = 5000, .trust_id = 77 }, got;
    snprintf(rec.email, sizeof rec.email, "alice@example.com");
    snprintf(rec.aud, sizeof rec.aud, "https://presence.example");
    is_int(shm_assertion_put(store, fresh, &rec), SHM_OK, "assertion cached");
    rec.expires_ms = 1000;
    is_int(shm_assertion_put(store, stale, &rec), SHM_OK, "a shorter-lived one cached");
    is_int(shm_batch_commit(store), SHM_OK, "batch commits");
    is_int(shm_assertion_get(store, fresh, 2000, &got), SHM_OK, "found before its expiry");
    is_str(got.email, "alice@example.com", "e-mail kept");
    is_str(got.aud, "https://presence.example", "audience kept");
    is_int(got.trust_id, 77, "trust id kept");
    is_int(got.expires_ms, 5000, "expiry kept");
    is_int(shm_assertion_get(store, stale, 2000, &got), SHM_NOT_FOUND, "expired: not found");
    size_t removed = 0;
    struct shm_sweep sweep = { .key_len = 0 };
    is_int(shm_assertion_expire(store, 2000, 100, &sweep, &removed), SHM_OK, "expired ones swept");
    is_int(removed, 1, "only the expired one");
    is_int(sweep.key_len, 0, "the sweep reached the end: the next one starts over");
    is_int(shm_batch_commit(store), SHM_OK, "batch commits");
    is_int(shm_assertion_get(store, fresh, 2000, &got), SHM_OK, "the live one stays");
    test_sweep_resumes(store, &rec);
    memset(rec.email, 'x', sizeof rec.email);
    is_int(shm_assertion_put(store, stale, &rec), SHM_ERROR, "an unterminated e-mail is refused");
    shm_batch_commit(store);
}

static void presence_changed(void *arg, const char *email, const struct shm_presence *before,
                             const struct shm_presence *after, struct shm_store *store)
{
    int *count = arg;
    (void)email;
    (void)store;
    if (before->status != after->status)
        (*count)++;
}

static void test_presence_records(struct shm_store *store)
{
    struct shm_conn_owner phone = { 300, 1, SHM_STATUS_ONLINE, 1 }, tablet = { 301, 2, 0, 1 };
    struct shm_conn_owner previous;
    struct shm_presence before, after, got;
    struct shm_presence_policy no_grace = { 0, 3600 * 1000 };
    int had;
    shm_conn_claim(store, "pat@example.com", "phone", &phone, &previous, &had);
    shm_conn_claim(store, "pat@example.com", "tablet", &tablet, &previous, &had);
    is_int(shm_presence_refresh(store, "pat@example.com", &no_grace, 5000, &before, &after),
           SHM_OK, "presence refreshed");
    ok(before.status == SHM_STATUS_OFFLINE && after.status == SHM_STATUS_ONLINE &&
           after.devices == 2,
       "offline to online over two devices");
    is_int(shm_batch_commit(store), SHM_OK, "commit");
    is_int(shm_presence_get(store, "pat@example.com", &got), SHM_OK, "stored");
    ok(got.status == SHM_STATUS_ONLINE && got.since_ms == 5000, "online since 5000");
    shm_presence_refresh(store, "pat@example.com", &no_grace, 6000, &before, &after);
    is_int(after.since_ms, 5000, "no change keeps since");
    int changes = 0;
    size_t released;
    is_int(shm_presence_release_worker(store, 300, &no_grace, 7000, &released, presence_changed,
                                       &changes),
           SHM_OK, "a dead worker's devices released");
    ok(released == 1 && changes == 1, "one released, one change told (online to offline)");
    shm_presence_release_worker(store, 301, &no_grace, 8000, &released, presence_changed,
                                &changes);
    is_int(shm_batch_commit(store), SHM_OK, "commit");
    is_int(shm_presence_get(store, "pat@example.com", &got), SHM_OK,
           "no device: the record stays for last seen");
    ok(got.status == SHM_STATUS_OFFLINE && got.since_ms == 7000 && got.live_since_ms == 0,
       "offline since 7000 (last seen), no device");
}

/* A worker holding two devices of each of several hundred users, claimed in an order that mixes
 * the users: releasing it recomputes every user, and tells each change once. */
static void test_release_many_users(const char *dir)
{
    struct shm_store *store = scratch_store_open_sized(dir, 8 * SCRATCH_MIB, 64 * SCRATCH_MIB);
    if (store == NULL)
        return;
    struct shm_presence_policy no_grace = { 0, 3600 * 1000 };
    struct shm_conn_owner previous;
    int had, users = 300;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < users; i++) {
            char email[64], device[16];
            snprintf(email, sizeof email, "many%d@example.com", (i * 7) % users);
            snprintf(device, sizeof device, "d%d", round);
            struct shm_conn_owner owner = { 400, (uint64_t)(round * users + i + 1),
                                            SHM_STATUS_ONLINE, 1 };
            shm_conn_claim(store, email, device, &owner, &previous, &had);
            if (round == 1)
                shm_presence_refresh(store, email, &no_grace, 9000, NULL, NULL);
        }
        is_int(shm_batch_commit(store), SHM_OK, "%d devices of as many users claimed", users);
    }
    int changes = 0;
    size_t released;
    is_int(shm_presence_release_worker(store, 400, &no_grace, 9500, &released, presence_changed,
                                       &changes),
           SHM_OK, "their worker released");
    ok(released == 2 * (size_t)users && changes == users,
       "every device released, each user told offline once");
    shm_batch_commit(store);
    struct shm_presence got;
    int offline = 0;
    for (int i = 0; i < users; i++) {
        char email[64];
        snprintf(email, sizeof email, "many%d@example.com", i);
        offline += shm_presence_get(store, email, &got) == SHM_OK &&
                   got.status == SHM_STATUS_OFFLINE;
    }
    is_int(offline, users, "every one of them offline");
    shm_store_close(store);
}

struct seen_notes {
    int count;
    char first[64];
    struct shm_notif_key key;
};

static void note_seen(void *arg, const struct shm_notif_key *key, const char *json, size_t len)
{
    struct seen_notes *seen = arg;
    if (seen->count++ == 0) {
        snprintf(seen->first, sizeof seen->first, "%.*s", (int)len, json);
        seen->key = *key;
    }
}

static void mail_delivery(void *arg, int32_t sender, uint8_t type, const void *payload, size_t len)
{
    struct seen_notes *seen = arg;
    uint64_t conn_id;
    struct shm_notif_key key;
    const char *json;
    size_t json_len;
    (void)sender;
    if (type == SHM_MAIL_DELIVER &&
        shm_notif_delivery_decode(payload, len, &conn_id, &key, &json, &json_len) == 0 &&
        conn_id == 9) {
        seen->count++;
        snprintf(seen->first, sizeof seen->first, "%.*s", (int)json_len, json);
    }
}

/* Every notification of one user, in queue order, as "{\"v\":<n>}" numbers: -1 for any other text. */
struct queue_read {
    int count;
    int numbers[1000];
};

static void queue_number(void *arg, const struct shm_notif_key *key, const char *json, size_t len)
{
    struct queue_read *q = arg;
    (void)key;
    int n = -1, used = 0;
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)len, json);
    if (sscanf(text, "{\"v\":%d}%n", &n, &used) != 1 || (size_t)used != len)
        n = -1;
    if (q->count < 1000)
        q->numbers[q->count] = n;
    q->count++;
}

/* How many of 0..count-1 are missing and how many appear twice or more in q. */
static void queue_tally(const struct queue_read *q, int count, int *lost, int *duplicated,
                        int *foreign)
{
    static int times[1000];
    memset(times, 0, sizeof times);
    *lost = *duplicated = *foreign = 0;
    for (int i = 0; i < q->count && i < 1000; i++) {
        if (q->numbers[i] < 0 || q->numbers[i] >= count)
            (*foreign)++;
        else
            times[q->numbers[i]]++;
    }
    for (int i = 0; i < count; i++) {
        if (times[i] == 0)
            (*lost)++;
        else if (times[i] > 1)
            (*duplicated)++;
    }
}

static void test_notification_queue(struct shm_store *store)
{
    struct shm_notif_key key;
    size_t dropped;
    const char *email = "quinn@example.com";
    is_int(shm_notif_add(store, email, "{\"n\":1}", 7, 1000, 100000, 2, &key, &dropped), SHM_OK,
           "first queued");
    shm_notif_add(store, email, "{\"n\":2}", 7, 1001, 100000, 2, &key, &dropped);
    is_int(shm_notif_add(store, email, "{\"n\":3}", 7, 1002, 1500, 2, &key, &dropped), SHM_OK,
           "third queued past the cap of 2");
    is_int(dropped, 1, "the oldest dropped");
    struct seen_notes seen = { 0 };
    is_int(shm_notif_pending(store, email, 1200, note_seen, &seen), 2, "two pending");
    is_str(seen.first, "{\"n\":2}", "oldest first");
    is_int(shm_notif_delete(store, &seen.key), SHM_OK, "deleted once written");
    is_int(shm_notif_delete(store, &seen.key), SHM_NOT_FOUND, "a second delete finds nothing");
    is_int(shm_notif_pending(store, email, 2000, NULL, NULL), 0, "the last one expired at 1500");
    is_int(shm_batch_commit(store), SHM_OK, "commit");
    uint64_t drop_count, expire_count;
    shm_notif_counters(store, &drop_count, &expire_count);
    ok(drop_count == 1 && expire_count == 1, "counters: 1 dropped, 1 expired");
    shm_notif_add(store, email, "{\"n\":4}", 7, 3000, 3500, 10, &key, &dropped);
    size_t removed;
    struct shm_sweep sweep = { .key_len = 0 };
    is_int(shm_notif_expire(store, 4000, 100, &sweep, &removed), SHM_OK, "sweep");
    is_int(removed, 1, "the sweep removes expired ones of any user");

    /* A key already taken (as a record of an older presenced could be): the next number is
     * tried with this notification, never with a copy of the record found. */
    shm_notif_add(store, "rita@example.com", "{\"v\":0}", 7, 9000, 99999, 10, &key, &dropped);
    uint64_t seq;
    store_seq_next(store, store_batch_txn(store), &seq);
    store->seq_next = seq - 1; /* the number the first one took */
    is_int(shm_notif_add(store, "rita@example.com", "{\"v\":1}", 7, 9000, 99999, 10, &key,
                         &dropped),
           SHM_OK, "queued past a taken key");
    struct queue_read taken = { 0 };
    is_int(shm_notif_pending(store, "rita@example.com", 9001, queue_number, &taken), 2,
           "does not overwrite the first notification");
    ok(taken.numbers[0] == 0 && taken.numbers[1] == 1, "nor copies it: %d, %d", taken.numbers[0],
       taken.numbers[1]);
    is_int(shm_batch_commit(store), SHM_OK, "commit");

    struct shm_conn_owner device = { getpid(), 9, SHM_STATUS_ONLINE, 1 }, previous;
    int had;
    int32_t rings[4];
    size_t ring_count;
    shm_conn_claim(store, email, "phone", &device, &previous, &had);
    is_int(shm_notif_send(store, email, "{\"n\":5}", 7, 5000, 99999, 10, rings, 4, &ring_count,
                          &dropped),
           SHM_OK, "sent");
    ok(ring_count == 1 && rings[0] == getpid(), "the device's worker is to be rung");
    is_int(shm_batch_commit(store), SHM_OK, "commit");
    struct seen_notes mailed = { 0 };
    shm_mail_take(store, getpid(), mail_delivery, &mailed);
    ok(mailed.count == 1 && strcmp(mailed.first, "{\"n\":5}") == 0,
       "the worker got the notification by mail");
    shm_conn_release(store, email, "phone", getpid(), 9);
    shm_batch_commit(store);
}

/* One visit as the master makes them: open, queue one, commit, close. */
static int visit_add(const char *dir, const char *email, int n, int64_t now_ms)
{
    struct shm_store *store = scratch_store_open(dir);
    if (store == NULL)
        return -1;
    char json[32];
    int len = snprintf(json, sizeof json, "{\"v\":%d}", n);
    struct shm_notif_key key;
    size_t dropped;
    int rc = shm_notif_add(store, email, json, (size_t)len, now_ms, now_ms + 100000, 1000, &key,
                           &dropped);
    if (rc == SHM_OK)
        rc = shm_batch_commit(store);
    shm_store_close(store);
    return rc == SHM_OK ? 0 : -1;
}

static void queue_check(const char *dir, const char *email, int count, int64_t now_ms,
                        const char *what)
{
    struct shm_store *store = scratch_store_open(dir);
    struct queue_read q = { 0 };
    int lost = count, duplicated = 0, foreign = 0;
    if (store != NULL) {
        shm_notif_pending(store, email, now_ms, queue_number, &q);
        shm_batch_commit(store);
        shm_store_close(store);
        queue_tally(&q, count, &lost, &duplicated, &foreign);
    }
    is_int(q.count, count, "%s: %d queued", what, count);
    ok(lost == 0 && duplicated == 0 && foreign == 0,
       "%s: each exactly once (%d lost, %d duplicated, %d foreign)", what, lost, duplicated,
       foreign);
}

/* The master opens the store per request: 200 visits queue one each in the same millisecond. */
static void test_notifications_across_visits(const char *dir)
{
    int failed = 0;
    for (int i = 0; i < 200; i++)
        failed += visit_add(dir, "vera@example.com", i, 50000) != 0;
    is_int(failed, 0, "200 visits queued one notification each");
    queue_check(dir, "vera@example.com", 200, 50001, "visits in one millisecond");
    struct queue_read q = { 0 };
    struct shm_store *store = scratch_store_open(dir);
    shm_notif_pending(store, "vera@example.com", 50001, queue_number, &q);
    int in_order = 1;
    for (int i = 0; i < q.count && i < 1000; i++)
        in_order &= q.numbers[i] == i;
    ok(in_order, "in the order they were queued");
    shm_batch_commit(store);
    shm_store_close(store);
}

/* Two processes (one visit per notification, as the master; one long open, as a worker) queue
 * for one user in the same millisecond. */
static void test_notifications_from_processes(const char *dir)
{
    pid_t children[2];
    for (int c = 0; c < 2; c++) {
        children[c] = fork();
        if (children[c] == 0) {
            int failed = 0;
            if (c == 0) {
                for (int i = 0; i < 300; i++)
                    failed += visit_add(dir, "walt@example.com", 2 * i, 60000) != 0;
            } else {
                struct shm_store *store = scratch_store_open(dir);
                for (int i = 0; store != NULL && i < 300; i++) {
                    char json[32];
                    int len = snprintf(json, sizeof json, "{\"v\":%d}", 2 * i + 1);
                    struct shm_notif_key key;
                    size_t dropped;
                    failed += shm_notif_add(store, "walt@example.com", json, (size_t)len, 60000,
                                            160000, 1000, &key, &dropped) != SHM_OK ||
                              shm_batch_commit(store) != SHM_OK;
                }
                failed += store == NULL;
                shm_store_close(store);
            }
            _exit(failed == 0 ? 0 : 1);
        }
    }
    int clean = 0;
    for (int c = 0; c < 2; c++) {
        int status;
        clean += children[c] > 0 && waitpid(children[c], &status, 0) == children[c] &&
                 WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    is_int(clean, 2, "both processes queued 300 each");
    queue_check(dir, "walt@example.com", 600, 60001, "two processes in one millisecond");
}

/* Blocks of the store sequence never overlap, within a batch, across batches or reopens. */
static void test_sequence_blocks(const char *dir)
{
    uint64_t a = 0, b = 0, c = 0;
    struct shm_store *store = scratch_store_open(dir);
    int rc = shm_store_seq_reserve(store, 1000, &a) | shm_store_seq_reserve(store, 5, &b);
    is_int(rc | shm_batch_commit(store), SHM_OK, "two blocks reserved");
    ok(a > 0 && b == a + 1000, "the second block follows the first (%llu, %llu)",
       (unsigned long long)a, (unsigned long long)b);
    shm_store_close(store);
    store = scratch_store_open(dir);
    shm_store_seq_reserve(store, 1, &c);
    ok(c == b + 5, "a new visit goes on after them");
    shm_batch_commit(store);
    shm_store_seq_reserve(store, 1, &c);
    store_batch_fail(store, MDB_BAD_TXN, "a test write");
    is_int(shm_batch_commit(store), SHM_ERROR, "a batch rolls back");
    uint64_t d = 0;
    shm_store_seq_reserve(store, 1, &d);
    ok(d == c, "a rolled-back batch's numbers were never used: they are handed out again");
    shm_batch_commit(store);
    is_int(shm_store_seq_reserve(store, 0, &d), SHM_ERROR, "an empty block is refused");
    shm_batch_commit(store);
    shm_store_close(store);
}

/* Mail of 200 visits to one target: each message once, in the order posted. */
static void test_mail_across_visits(const char *dir)
{
    int failed = 0;
    for (int i = 0; i < 200; i++) {
        struct shm_store *store = scratch_store_open(dir);
        char payload[16];
        int len = snprintf(payload, sizeof payload, "%d", i);
        failed += store == NULL ||
                  shm_mail_post(store, 4242, SHM_MAIL_PING, payload, (size_t)len) != SHM_OK ||
                  shm_batch_commit(store) != SHM_OK;
        shm_store_close(store);
    }
    is_int(failed, 0, "200 visits posted one message each");
    struct shm_store *store = scratch_store_open(dir);
    struct mail_order order = { 0, 1 };
    is_int(shm_mail_take(store, 4242, mail_in_order, &order), 200, "200 messages taken");
    shm_batch_commit(store);
    ok(order.in_order, "each once, in the order posted");
    shm_store_close(store);
}

static void test_reset_volatile(struct shm_store *store)
{
    struct shm_conn_owner previous;
    int had;
    shm_conn_claim(store, "carol@example.com", "tab", &owner_a, &previous, &had);
    shm_batch_commit(store);
    is_int(shm_store_reset_volatile(store), SHM_OK, "volatile records cleared");
    is_int(shm_conn_devices(store, "carol@example.com", NULL, NULL), 0,
           "connections of a previous run are gone");
}

/* A small map that may not grow fills up: the failing batch rolls back, nothing crashes, and
 * the store works again once space is freed. */
static void test_map_full(const char *dir)
{
    struct shm_store *store = scratch_store_open_sized(dir, 1 * SCRATCH_MIB, 1 * SCRATCH_MIB);
    ok(store != NULL, "a 1 MiB store opens");
    if (store == NULL)
        return;
    struct commit_seen seen = { 0, 0 };
    char payload[512];
    memset(payload, 'p', sizeof payload);
    int rc = SHM_OK, posted = 0;
    for (int batch = 0; batch < 200 && rc == SHM_OK; batch++) {
        for (int i = 0; i < 50 && rc == SHM_OK; i++, posted++)
            rc = shm_mail_post(store, 77, SHM_MAIL_PING, payload, sizeof payload);
        shm_batch_on_commit(store, commit_noted, &seen);
        if (rc == SHM_OK)
            rc = shm_batch_commit(store);
        else
            shm_batch_commit(store);
    }
    is_int(rc, SHM_FULL, "the map fills up after %d messages", posted);
    is_int(seen.result, SHM_FULL, "the waiter of the failed batch learns it");
    struct shm_store_health health;
    is_int(shm_store_health(store, clock_wall_ms(), &health), SHM_ERROR,
           "the health check fails while the map is full");
    /* The probe's small write may still fit: the batch refused a moment ago counts too. */
    ok(health.read == SHM_OK && health.write == SHM_FULL &&
           strstr(health.write_error, "MDB_MAP_FULL") != NULL,
       "reads work, writes are refused: %s", health.write_error);
    ok(shm_mail_drop(store, 77) == SHM_OK && shm_batch_commit(store) == SHM_OK, "space is freed");
    is_int(shm_mail_post(store, 77, SHM_MAIL_PING, "x", 1), SHM_OK, "and writes work again");
    is_int(shm_batch_commit(store), SHM_OK, "commit after a full map");
    shm_store_health(store, clock_wall_ms(), &health);
    ok(health.write == SHM_FULL && strstr(health.write_error, "refused writes") != NULL,
       "the refusal is still reported for a moment: %s", health.write_error);
    is_int(shm_store_health(store, clock_wall_ms() + SHM_HEALTH_REFUSED_MS, &health), SHM_OK,
           "then the health check passes (%s)", health.write_error);
    ok(health.read == SHM_OK && health.write == SHM_OK, "both checks ok");
    shm_store_close(store);
}

static void test_map_grows(const char *dir)
{
    struct shm_store *store = scratch_store_open_sized(dir, 1 * SCRATCH_MIB, 64 * SCRATCH_MIB);
    ok(store != NULL, "a growable store opens");
    if (store == NULL)
        return;
    char payload[512];
    memset(payload, 'g', sizeof payload);
    int rc = SHM_OK;
    for (int batch = 0; batch < 40 && rc == SHM_OK; batch++) {
        for (int i = 0; i < 100 && rc == SHM_OK; i++)
            rc = shm_mail_post(store, 78, SHM_MAIL_PING, payload, sizeof payload);
        if (rc == SHM_OK)
            rc = shm_batch_commit(store);
    }
    is_int(rc, SHM_OK, "4000 messages of 512 bytes fit: the map grew");
    struct shm_store_stats stats;
    shm_store_stats(store, &stats);
    ok(stats.map_size > 1 * SCRATCH_MIB && stats.map_growths > 0,
       "map is now %llu bytes after %llu growths", (unsigned long long)stats.map_size,
       (unsigned long long)stats.map_growths);
    shm_mail_drop(store, 78);
    shm_batch_commit(store);
    shm_store_close(store);
}

static void test_schema_mismatch(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 8);
    mdb_env_open(env, dir, 0, 0640);
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, "meta", 0, &meta);
    unsigned char future[4] = { 0, 0, 0, 99 };
    MDB_val key = { 6, "schema" }, value = { 4, future };
    mdb_put(txn, meta, &key, &value, 0);
    mdb_txn_commit(txn);
    mdb_env_close(env);
    struct shm_store *store = NULL;
    char err[512] = "";
    struct shm_store_options opt = { dir, 8 * SCRATCH_MIB, 8 * SCRATCH_MIB, false };
    is_int(shm_store_open(&store, &opt, err, sizeof err), -1,
           "a store of another schema is refused");
    ok(strstr(err, "schema version 99") != NULL, "and the message says so (%s)", err);
}

/* A process that dies inside a read transaction leaves its reader slot behind. */
static pid_t reader_die_holding(const char *dir)
{
    pid_t child = fork();
    if (child == 0) {
        MDB_env *env;
        MDB_txn *txn;
        mdb_env_create(&env);
        mdb_env_set_maxdbs(env, 8);
        if (mdb_env_open(env, dir, MDB_NOTLS, 0640) == 0 &&
            mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0)
            _exit(0); /* no abort, no close: the slot stays */
        _exit(1);
    }
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? child : -1;
}

static void test_stale_reader(const char *dir)
{
    struct shm_store *store = scratch_store_open(dir);
    if (store == NULL)
        return;
    ok(reader_die_holding(dir) > 0, "a process died holding a reader slot");
    is_int(shm_store_reader_check(store), 1, "reader_check frees the dead process's slot");
    is_int(shm_store_reader_check(store), 0, "and finds nothing the second time");
    shm_store_close(store);
}

/* Another process's commits put pages where this one never read; a store prefaulted
 * (shm_store_prefault) has every page of the file in its page table by its next batch, so its
 * reads, under the node's write lock, take no page fault. Checked in the kernel's page map of
 * this process (minor-fault counts would include ASan's shadow memory). */
#define PREFAULT_RECORDS 20000

static void prefault_hash(int i, unsigned char *hash)
{
    memset(hash, 0, SHM_ASSERTION_HASH_LEN);
    memcpy(hash, &i, sizeof i);
    hash[SHM_ASSERTION_HASH_LEN - 1] = 0x5a;
}

static int prefault_writer(const char *dir)
{
    struct shm_store *store = scratch_store_open_sized(dir, 64 * SCRATCH_MIB, 64 * SCRATCH_MIB);
    if (store == NULL)
        return 1;
    struct shm_assertion rec = { .expires_ms = INT64_MAX / 2, .trust_id = 1 };
    snprintf(rec.email, sizeof rec.email, "prefault@example.com");
    memset(rec.aud, 'a', 200);
    rec.aud[200] = '\0';
    int rc = SHM_OK;
    for (int i = 0; rc == SHM_OK && i < PREFAULT_RECORDS; i++) {
        unsigned char hash[SHM_ASSERTION_HASH_LEN];
        prefault_hash(i, hash);
        rc = shm_assertion_put(store, hash, &rec);
        if (rc == SHM_OK && i % 1000 == 999)
            rc = shm_batch_commit(store);
    }
    if (rc == SHM_OK)
        rc = shm_batch_commit(store);
    shm_store_close(store);
    return rc == SHM_OK ? 0 : 1;
}

/* Where the map starts, from a record read in txn: the value lies in a page of the map, and an
 * LMDB page begins with its own page number. */
static unsigned char *map_start(struct shm_store *store, MDB_txn *txn)
{
    MDB_val key = { 6, "schema" }, value;
    if (mdb_get(txn, store->meta, &key, &value) != 0)
        return NULL;
    uintptr_t page = (uintptr_t)value.mv_data & ~(uintptr_t)4095;
    uint64_t pgno;
    memcpy(&pgno, (void *)page, sizeof pgno);
    return (unsigned char *)(page - pgno * 4096);
}

/* How many of the pages from start, len bytes, this process's page table holds. */
static long pages_present(const unsigned char *start, size_t len)
{
    FILE *map = fopen("/proc/self/pagemap", "r");
    long present = 0;
    if (map == NULL || fseeko(map, (off_t)((uintptr_t)start / 4096 * 8), SEEK_SET) != 0) {
        if (map != NULL)
            fclose(map);
        return -1;
    }
    for (size_t i = 0; i < len / 4096; i++) {
        uint64_t entry;
        if (fread(&entry, sizeof entry, 1, map) != 1)
            break;
        present += (long)(entry >> 63); /* bit 63: present */
    }
    fclose(map);
    return present;
}

static void test_prefault(const char *dir)
{
    struct shm_store *store = scratch_store_open_sized(dir, 64 * SCRATCH_MIB, 64 * SCRATCH_MIB);
    if (store == NULL)
        return;
    shm_store_prefault(store);
    pid_t child = fork();
    if (child == 0)
        _exit(prefault_writer(dir));
    int status;
    waitpid(child, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "another process wrote %d records",
       PREFAULT_RECORDS);
    MDB_txn *txn = store_batch_txn(store);
    ok(txn != NULL, "a batch begins after them");
    MDB_envinfo info;
    unsigned char *start = txn != NULL ? map_start(store, txn) : NULL;
    ok(start != NULL && mdb_env_info(store->env, &info) == 0, "the map is found");
    if (start != NULL) {
        size_t len = (info.me_last_pgno + 1) * 4096;
        long present = pages_present(start, len);
        ok(len > 1000 * 4096, "the file holds %zu pages", len / 4096);
        ok(present == (long)(len / 4096), "all of them are in this process's page table (%ld)",
           present);
    }
    struct shm_assertion got;
    unsigned char hash[SHM_ASSERTION_HASH_LEN];
    prefault_hash(PREFAULT_RECORDS - 1, hash);
    is_int(shm_assertion_get(store, hash, 0, &got), SHM_OK, "the batch reads them");
    is_int(shm_batch_commit(store), SHM_OK, "the batch commits");
    shm_store_close(store);
}

int main(void)
{
    struct scratch_dir scratch;
    struct shm_store *store = scratch_store_make(&scratch, "store");
    const char *dir = scratch.path;
    ok(store != NULL, "store opens in %s", dir);
    if (store == NULL) {
        scratch_dir_remove(&scratch);
        return tap_done();
    }
    char small_dir[256], grow_dir[256], visits_dir[256], many_dir[256], prefault_dir[256];
    snprintf(prefault_dir, sizeof prefault_dir, "%s/prefault", dir);
    snprintf(small_dir, sizeof small_dir, "%s/small", dir);
    snprintf(grow_dir, sizeof grow_dir, "%s/grow", dir);
    snprintf(visits_dir, sizeof visits_dir, "%s/visits", dir);
    snprintf(many_dir, sizeof many_dir, "%s/many", dir);
    test_claim_and_supersede(store);
    test_presence(store);
    test_release_worker(store);
    test_bad_keys(store);
    test_worker_info(store);
    test_mail(store);
    test_mail_read_forget(store);
    test_commit_waiters(store);
    test_batching(store);
    test_assertion_cache(store);
    test_presence_records(store);
    test_release_many_users(many_dir);
    test_notification_queue(store);
    test_reset_volatile(store);
    struct shm_store_health health;
    is_int(shm_store_health(store, clock_wall_ms(), &health), SHM_OK, "a working store is healthy");
    ok(health.read == SHM_OK && health.write == SHM_OK, "reads and writes ok");
    unsigned char cached[SHM_ASSERTION_HASH_LEN] = { 1 };
    struct shm_assertion got;
    is_int(shm_assertion_get(store, cached, 0, &got), SHM_OK,
           "verified assertions are not volatile: they survive the reset");
    is_int(shm_store_sync(store), SHM_OK, "sync to disk");
    ok(shm_store_reader_check(store) >= 0, "reader check runs");
    shm_store_close(store);
    store = scratch_store_open(dir);
    ok(store != NULL, "the store opens again with its schema");
    shm_store_close(store);
    test_notifications_across_visits(visits_dir);
    test_notifications_from_processes(visits_dir);
    test_mail_across_visits(visits_dir);
    test_reads_see_later_commits(visits_dir);
    test_sequence_blocks(visits_dir);
    test_map_full(small_dir);
    test_map_grows(grow_dir);
    test_stale_reader(dir);
    test_schema_mismatch(dir);
    test_prefault(prefault_dir);
    scratch_dir_remove(&scratch);
    return tap_done();
}
