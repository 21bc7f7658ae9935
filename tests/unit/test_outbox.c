/* Unit tests of a cluster node's outbox (shm/outbox.c): the writes of apps, grants and web
 * sessions that also leave an entry for the agent when the store is a cluster writer's, and none
 * otherwise; entries walked oldest first, removed, found pending by key; the entries a request
 * made; the grant's codec and engine key; the session's value. */
#include "scratch_store.h"
#include "tap.h"

#include "../../common/uuid.h"
#include "../../shm/app.h"
#include "../../shm/grant.h"
#include "../../shm/outbox.h"
#include "../../shm/store.h"
#include "../../shm/web_session.h"

#include <stdint.h>
#include <unistd.h>

struct seen {
    struct shm_outbox_entry entries[16];
    unsigned char values[16][512];
    size_t count;
};

static void entry_seen(void *arg, const struct shm_outbox_entry *e)
{
    struct seen *s = arg;
    if (s->count == 16 || e->len > 512)
        return;
    s->entries[s->count] = *e;
    memcpy(s->values[s->count], e->value, e->len);
    s->entries[s->count].value = s->values[s->count];
    s->count++;
}

static void test_single_node_writes_none(struct shm_store *store)
{
    struct shm_app app = { .validated = true };
    uuid_make(app.appid);
    snprintf(app.owner, sizeof app.owner, "dev@example.com");
    struct seen seen = { .count = 0 };
    ok(shm_app_put(store, &app) == SHM_OK && shm_batch_commit(store) == SHM_OK, "an app stored");
    is_int(shm_outbox_walk(store, 16, entry_seen, &seen), 0,
           "a store that is no cluster writer's leaves no outbox entry");
    uint64_t first, last;
    is_int((int)shm_outbox_take_new(store, &first, &last), 0, "nor anything to wait for");
}

static void test_writes_leave_entries(struct shm_store *store)
{
    shm_outbox_enable(store, 4242);
    ok(shm_outbox_enabled(store), "the store is a cluster writer's now");
    struct shm_app app = { .validated = true, .active = true };
    uuid_make(app.appid);
    snprintf(app.owner, sizeof app.owner, "dev@example.com");
    snprintf(app.name, sizeof app.name, "Chat");
    char puid[SHM_PUID_LEN + 1];
    uuid_make(puid);
    unsigned char hash[SHM_WEB_HASH_LEN];
    memset(hash, 0xab, sizeof hash);
    struct shm_web_session session = { .expires_ms = 99999999999 };
    memset(session.csrf, 'c', SHM_CSRF_LEN);
    snprintf(session.email, sizeof session.email, "bob@example.com");
    ok(shm_app_put(store, &app) == SHM_OK &&
           shm_grant_put(store, "bob@example.com", app.appid, puid, 1234) == SHM_OK &&
           shm_web_session_put(store, hash, &session) == SHM_OK,
       "an app, a grant and a session written");
    uint64_t first = 0, last = 0;
    is_int((int)shm_outbox_take_new(store, &first, &last), 3, "three entries to wait for");
    ok(first < last, "numbered in the order written (%llu..%llu)", (unsigned long long)first,
       (unsigned long long)last);
    is_int((int)shm_outbox_take_new(store, &first, &last), 0, "taken once");
    ok(shm_batch_commit(store) == SHM_OK, "committed with the views");

    struct seen seen = { .count = 0 };
    is_int(shm_outbox_walk(store, 16, entry_seen, &seen), 3, "the agent finds three entries");
    struct shm_outbox_entry *e = seen.entries;
    ok(e[0].op == SHM_OUTBOX_PUT && strcmp(e[0].bucket, SHM_BUCKET_APPS) == 0 &&
           strcmp(e[0].key, app.appid) == 0 && e[0].reply_pid == 4242,
       "the app: a put of pd_apps.<appid>, answered to the writer");
    struct shm_app back;
    ok(shm_app_decode(app.appid, e[0].value, e[0].len, &back) == SHM_OK &&
           strcmp(back.name, "Chat") == 0 && back.active && back.validated,
       "its value is the app's JSON");
    char gkey[SHM_GRANT_KEY_MAX + 1];
    shm_grant_engine_key("bob@example.com", app.appid, gkey);
    ok(e[1].op == SHM_OUTBOX_GRANT && strcmp(e[1].bucket, SHM_BUCKET_GRANTS) == 0 &&
           strcmp(e[1].key, gkey) == 0,
       "the grant: made once per user and app, under g.<hash>");
    struct shm_outbox_grant g;
    ok(shm_outbox_grant_decode(e[1].value, e[1].len, &g) == 0 && strcmp(g.puid, puid) == 0 &&
           strcmp(g.email, "bob@example.com") == 0 && strcmp(g.appid, app.appid) == 0 &&
           g.granted_ms == 1234,
       "with its PUID, user, app and time");
    char hex[2 * SHM_WEB_HASH_LEN + 1];
    shm_web_session_key(hash, hex);
    struct shm_web_session s2;
    ok(e[2].op == SHM_OUTBOX_PUT && strcmp(e[2].bucket, SHM_BUCKET_SESSIONS) == 0 &&
           strcmp(e[2].key, hex) == 0 &&
           shm_web_session_decode(e[2].value, e[2].len, &s2) == SHM_OK &&
           strcmp(s2.email, "bob@example.com") == 0 && s2.expires_ms == session.expires_ms,
       "the session: its hash in hex, the store's value");
    ok(shm_outbox_pending(store, SHM_BUCKET_APPS, app.appid) &&
           !shm_outbox_pending(store, SHM_BUCKET_APPS, "another"),
       "a key with an entry is pending, another is not");

    ok(shm_grant_revoke(store, "bob@example.com", app.appid, NULL) == SHM_OK &&
           shm_web_session_delete(store, hash) == SHM_OK && shm_batch_commit(store) == SHM_OK,
       "the grant revoked, the session deleted");
    seen.count = 0;
    is_int(shm_outbox_walk(store, 16, entry_seen, &seen), 5, "two entries more");
    ok(e[3].op == SHM_OUTBOX_REVOKE && strcmp(e[3].key, gkey) == 0 &&
           e[4].op == SHM_OUTBOX_DELETE && strcmp(e[4].key, hex) == 0,
       "a revoke and a delete");
    for (size_t i = 0; i < 5; i++)
        shm_outbox_remove(store, e[i].seq);
    ok(shm_batch_commit(store) == SHM_OK && shm_outbox_walk(store, 16, entry_seen, &seen) == 0,
       "removed, the outbox is empty");
    ok(!shm_outbox_pending(store, SHM_BUCKET_APPS, app.appid), "nothing pending");

    uint64_t seq;
    ok(shm_outbox_add(store, SHM_OUTBOX_FETCH, SHM_BUCKET_APPS, app.appid, NULL, 0, &seq) ==
               SHM_OK &&
           shm_batch_commit(store) == SHM_OK,
       "a fetch asked for");
    ok(!shm_outbox_pending(store, SHM_BUCKET_APPS, app.appid), "a fetch is no pending write");
    shm_outbox_remove(store, seq);
    shm_batch_commit(store);
    is_int(shm_outbox_add(store, SHM_OUTBOX_PUT, "", "k", NULL, 0, NULL), SHM_ERROR,
           "an entry needs a bucket");
    char long_key[SHM_OUTBOX_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    is_int(shm_outbox_add(store, SHM_OUTBOX_PUT, "b", long_key, NULL, 0, NULL), SHM_ERROR,
           "and a key of at most %d bytes", SHM_OUTBOX_KEY_MAX);
    shm_outbox_take_new(store, &first, &last);
}

static void test_codecs(void)
{
    struct shm_outbox_grant g = { .granted_ms = 7 }, back;
    unsigned char buf[512];
    snprintf(g.puid, sizeof g.puid, "0123456789abcdef0123456789abcdef0123");
    snprintf(g.email, sizeof g.email, "a@b.c");
    snprintf(g.appid, sizeof g.appid, "fedcba9876543210fedcba9876543210fedc");
    long n = shm_outbox_grant_encode(&g, buf, sizeof buf);
    ok(n > 0 && shm_outbox_grant_decode(buf, (size_t)n, &back) == 0 &&
           memcmp(&g, &back, sizeof g) == 0,
       "a grant reads back as written");
    int refused = 0;
    for (long cut = 0; cut < n; cut++)
        refused += shm_outbox_grant_decode(buf, (size_t)cut, &back) != 0;
    is_int(refused, (int)n, "every truncation of it is refused");
    buf[SHM_PUID_LEN + 9 + 1] = '\0';
    ok(shm_outbox_grant_decode(buf, (size_t)n, &back) != 0, "an e-mail holding a NUL is refused");
    buf[SHM_PUID_LEN + 9 + 1] = '@';
    buf[n] = 'x';
    ok(shm_outbox_grant_decode(buf, (size_t)n + 1, &back) != 0, "and trailing bytes");
    snprintf(g.puid, sizeof g.puid, "short");
    ok(shm_outbox_grant_encode(&g, buf, sizeof buf) < 0, "a PUID that is no UUID is not written");
    char k1[SHM_GRANT_KEY_MAX + 1], k2[SHM_GRANT_KEY_MAX + 1];
    shm_grant_engine_key("a@b.c", "app", k1);
    shm_grant_engine_key("a@b.ca", "pp", k2);
    ok(strlen(k1) == SHM_GRANT_KEY_MAX && strncmp(k1, "g.", 2) == 0 && strcmp(k1, k2) != 0,
       "the grant key is g. and 32 hex digits; the e-mail's end is no part of the app's");
    char email[SHM_EMAIL_MAX + 1];
    int64_t expires;
    const char *json;
    size_t json_len;
    n = shm_outbox_notify_encode("a@b.c", 99, "{\"m\":1}", 7, buf, sizeof buf);
    ok(n > 0 && shm_outbox_notify_decode(buf, (size_t)n, email, &expires, &json, &json_len) == 0 &&
           strcmp(email, "a@b.c") == 0 && expires == 99 && json_len == 7 &&
           memcmp(json, "{\"m\":1}", 7) == 0,
       "an operator's notification reads back as written");
    ok(shm_outbox_notify_decode(buf, 1 + 5 + 8, email, &expires, &json, &json_len) != 0 &&
           shm_outbox_notify_encode("", 99, "{}", 2, buf, sizeof buf) < 0,
       "one without JSON or without an e-mail is refused");
    memset(buf, 'a', sizeof buf);
    buf[0] = 255; /* a length byte one past the longest e-mail (found by fuzz_shared_records) */
    ok(shm_outbox_notify_decode(buf, 1 + 255 + 8 + 2, email, &expires, &json, &json_len) != 0,
       "a notification whose e-mail is longer than an e-mail may be is refused");
    buf[SHM_PUID_LEN + 8] = 255;
    ok(shm_outbox_grant_decode(buf, SHM_PUID_LEN + 9 + 255 + SHM_APPID_LEN, &back) != 0,
       "and a grant's");
    struct shm_web_session s;
    unsigned char value[8 + SHM_CSRF_LEN + 3] = { 0 };
    memset(value + 8, 'c', SHM_CSRF_LEN);
    memcpy(value + 8 + SHM_CSRF_LEN, "a@b", 3);
    ok(shm_web_session_decode(value, sizeof value, &s) == SHM_OK && strcmp(s.email, "a@b") == 0,
       "a session's value reads");
    ok(shm_web_session_decode(value, 8 + SHM_CSRF_LEN, &s) != SHM_OK,
       "one without an e-mail is refused");
    value[8 + SHM_CSRF_LEN + 1] = '\0';
    ok(shm_web_session_decode(value, sizeof value, &s) != SHM_OK, "and one with a NUL in it");
    struct shm_app app;
    ok(shm_app_decode("0123456789abcdef0123456789abcdef0123", "[1]", 3, &app) != SHM_OK &&
           shm_app_decode("short", "{}", 2, &app) != SHM_OK,
       "an app's JSON must be an object, for an appid");
}

int main(void)
{
    test_codecs();
    struct scratch_dir scratch;
    struct shm_store *store = scratch_store_make(&scratch, "outbox");
    ok(store != NULL, "store opens");
    if (store != NULL) {
        test_single_node_writes_none(store);
        test_writes_leave_entries(store);
        shm_store_close(store);
    }
    scratch_dir_remove(&scratch);
    return tap_done();
}
