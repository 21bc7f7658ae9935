/* Unit tests of the paged reads that bulk output is made of (worker/session/session_out.c): a
 * user's pending notifications (shm_notif_page, shm_notif_exists), an app's grants
 * (shm_grant_page_app), its missed changes (shm_app_away_take, shm_app_changes_page), and the
 * change time an AppService event carries. */
#include "scratch_store.h"
#include "tap.h"

#include "../../shm/app_channel.h"
#include "../../shm/grant.h"
#include "../../shm/mail.h"
#include "../../shm/notif.h"
#include "../../shm/store.h"

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#define APPID "00000000-0000-4000-8000-000000000001"

struct page {
    int numbers[64];
    int count;
    size_t bytes;
    struct shm_notif_key last;
};

static void note_in_page(void *arg, const struct shm_notif_key *key, const char *json, size_t len)
{
    struct page *p = arg;
    int n = -1;
    sscanf(json, "{\"n\":%d", &n);
    if (p->count < 64)
        p->numbers[p->count] = n;
    p->count++;
    p->bytes += len;
    p->last = *key;
}

static void test_notification_pages(struct shm_store *store)
{
    const char *email = "page@example.com";
    struct shm_notif_key key;
    size_t dropped;
    char json[128];
    for (int i = 0; i < 10; i++) {
        int len = snprintf(json, sizeof json, "{\"n\":%d,\"pad\":\"%080d\"}", i, 0);
        shm_notif_add(store, email, json, (size_t)len, 1000 + i, 100000, 100, &key, &dropped);
    }
    size_t one = strlen("{\"n\":0,\"pad\":\"") + 80 + 2;
    struct page p = { 0 };
    bool more;
    is_int(shm_notif_page(store, email, 2000, 3 * one, note_in_page, &p, &more), 3,
           "a page holds what fits in its budget");
    ok(more && p.numbers[0] == 0 && p.numbers[2] == 2, "the oldest first, and more are left");
    ok(p.bytes <= 3 * one, "within the budget");
    p = (struct page){ 0 };
    is_int(shm_notif_page(store, email, 2000, 1, note_in_page, &p, &more), 1,
           "a budget below one notification still gives one");
    ok(more, "and says more are left");
    ok(shm_notif_exists(store, &p.last), "a queued notification exists");
    shm_notif_delete(store, &p.last);
    ok(!shm_notif_exists(store, &p.last), "not once deleted (in the same batch)");
    p = (struct page){ 0 };
    is_int(shm_notif_page(store, email, 2000, 100 * one, note_in_page, &p, &more), 9,
           "the next page starts where the deletes left the queue");
    ok(!more && p.numbers[0] == 1 && p.numbers[8] == 9, "and ends with the queue");
    p = (struct page){ 0 };
    is_int(shm_notif_page(store, email, 1000000, 100 * one, note_in_page, &p, &more), 0,
           "expired ones are not given");
    ok(!more, "nor counted as more");
    is_int(shm_batch_commit(store), SHM_OK, "commit");
}

struct puids {
    char list[300][SHM_PUID_LEN + 1];
    int count;
};

static void grant_seen(void *arg, const char *puid, const char *email)
{
    (void)email;
    struct puids *p = arg;
    if (p->count < 300)
        memcpy(p->list[p->count], puid, SHM_PUID_LEN + 1);
    p->count++;
}

static void change_seen(void *arg, const char *puid, uint8_t status, int64_t since_ms)
{
    (void)since_ms;
    struct puids *p = arg;
    if (p->count < 300) {
        memcpy(p->list[p->count], puid, SHM_PUID_LEN + 1);
        p->list[p->count][0] = (char)('0' + status); /* the status, in place of a digit */
    }
    p->count++;
}

static void puid_of(int i, char *out)
{
    snprintf(out, SHM_PUID_LEN + 1, "%08u-0000-4000-8000-000000000000", (unsigned)i % 100000000u);
}

static void test_grant_pages(struct shm_store *store)
{
    char puid[SHM_PUID_LEN + 1], email[64];
    for (int i = 0; i < 250; i++) {
        puid_of(i, puid);
        snprintf(email, sizeof email, "user%d@example.com", i);
        shm_grant_put(store, email, APPID, puid, 1000);
    }
    is_int(shm_batch_commit(store), SHM_OK, "250 grants");
    struct puids seen = { 0 };
    char after[SHM_PUID_LEN + 1] = "";
    bool done = false;
    int pages = 0;
    while (!done && pages < 10) {
        int n = shm_grant_page_app(store, APPID, after, 100, grant_seen, &seen, &done);
        ok(n >= 0 && n <= 100, "page %d: %d grants", pages, n);
        pages++;
    }
    is_int(pages, 3, "250 grants in pages of 100: three");
    is_int(seen.count, 250, "each grant once");
    puid_of(249, puid);
    is_str(seen.list[249], puid, "in PUID order, to the last");
    bool distinct = true;
    for (int i = 1; i < 250 && i < seen.count; i++)
        distinct = distinct && strcmp(seen.list[i - 1], seen.list[i]) < 0;
    ok(distinct, "no PUID twice, none skipped");
    struct puids exact = { 0 };
    after[0] = '\0';
    ok(shm_grant_page_app(store, APPID, after, 250, grant_seen, &exact, &done) == 250 && done,
       "a page of exactly what is left is the last");
}

static void test_missed_changes(struct shm_store *store)
{
    int64_t since = 0;
    is_int(shm_app_away_take(store, APPID, 10000, &since), 0, "not away: nothing to replay");
    size_t others;
    shm_app_conn_add(store, APPID, 300, 1, &others);
    /* Each user's change is recorded with its time; user i changed at 1000 + i. */
    char email[64];
    int32_t rings[4];
    size_t ring_count;
    for (int i = 0; i < 250; i++) {
        snprintf(email, sizeof email, "user%d@example.com", i);
        shm_app_event_publish(store, email, (uint8_t)(i % 3), 900 + i, NULL, 1000 + i, rings, 4,
                              &ring_count);
    }
    shm_app_conn_remove(store, APPID, 300, 1, 1100); /* away since the change of user 100 */
    is_int(shm_batch_commit(store), SHM_OK, "250 changes, away since 1100");
    is_int(shm_app_away_take(store, APPID, 2000, &since), 1, "back from an absence");
    is_int(since, 1100, "since when it went away");
    is_int(shm_app_away_take(store, APPID, 2000, &since), 0, "taken once");
    struct puids seen = { 0 };
    char after[SHM_PUID_LEN + 1] = "";
    bool done = false;
    int pages = 0;
    while (!done && pages < 20) {
        if (shm_app_changes_page(store, APPID, since, after, 64, change_seen, &seen, &done) < 0)
            break;
        pages++;
    }
    is_int(seen.count, 150, "the changes since then, users 100 to 249, each once");
    is_int(pages, 3, "in pages of 64");
    char want[SHM_PUID_LEN + 1];
    puid_of(100, want);
    want[0] = (char)('0' + 100 % 3);
    is_str(seen.list[0], want, "the first with its status");
    is_int(shm_batch_commit(store), SHM_OK, "commit");
}

struct mailed {
    int64_t since_ms, changed_ms;
    int count;
};

static void event_mail(void *arg, int32_t sender, uint8_t type, const void *payload, size_t len)
{
    (void)sender;
    struct mailed *m = arg;
    uint64_t conn_id;
    char puid[SHM_PUID_LEN + 1];
    uint8_t status;
    if (type == SHM_MAIL_APP_EVENT &&
        shm_app_event_decode(payload, len, &conn_id, puid, &status, &m->since_ms,
                             &m->changed_ms) == 0)
        m->count++;
}

static void test_event_time(struct shm_store *store)
{
    size_t others;
    int32_t rings[4];
    size_t ring_count;
    shm_app_conn_add(store, APPID, getpid(), 2, &others);
    shm_app_event_publish(store, "user7@example.com", 2, 100000, NULL, 123456, rings, 4,
                          &ring_count);
    is_int(shm_batch_commit(store), SHM_OK, "an event mailed");
    struct mailed m = { 0 };
    shm_mail_take(store, getpid(), event_mail, &m);
    is_int(m.count, 1, "one event");
    is_int(m.changed_ms, 123456, "it carries when its change was recorded");
    is_int(m.since_ms, 100000, "and since when the user has the status");
    shm_batch_commit(store);
}

int main(void)
{
    struct scratch_dir scratch;
    struct shm_store *store = scratch_store_make(&scratch, "paging");
    ok(store != NULL, "store opens");
    if (store != NULL) {
        test_notification_pages(store);
        test_grant_pages(store);
        test_missed_changes(store);
        test_event_time(store);
        shm_store_close(store);
    }
    scratch_dir_remove(&scratch);
    return tap_done();
}
