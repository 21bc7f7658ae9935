/* Unit tests of apps as records and rules: what their fields may hold (common/app_rules.c), API
 * keys, the list of every app, and an app's open connections (shm/app.c, shm/app_channel.c). */
#include "scratch_store.h"
#include "tap.h"

#include "../../common/app_rules.h"
#include "../../common/uuid.h"
#include "../../shm/app.h"
#include "../../shm/app_channel.h"
#include "../../shm/store.h"

#include <openssl/sha.h>
#include <stdint.h>
#include <unistd.h>

static void test_rules(void)
{
    char long_name[APP_RULES_NAME_MAX + 2], lower[32];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    ok(app_name_valid("Chat") && app_name_valid(long_name + 1), "names of 1 to 64 characters");
    ok(!app_name_valid("") && !app_name_valid(NULL) && !app_name_valid(long_name),
       "an empty, missing or 65-character name is refused");
    ok(!app_name_valid("a\nb") && !app_name_valid("a\tb") && !app_name_valid("a\x7f"),
       "a name holds no control character");
    ok(app_description_valid("") && app_description_valid("two\r\nlines\tand a tab"),
       "a description may be empty and span lines");
    ok(!app_description_valid("bell\a"), "but holds no other control character");
    ok(app_domain_valid("chat.example.com", true) && app_domain_valid("localhost", false),
       "a dotted host name; a dotless one where allowed");
    ok(!app_domain_valid("localhost", true), "developers' domains need a dot");
    ok(!app_domain_valid("not a host", false) && !app_domain_valid("-x.com", false) &&
           !app_domain_valid("a..b", false) && !app_domain_valid(NULL, false),
       "what is no host name is refused");
    app_domain_lower("Chat.Example.COM", lower, sizeof lower);
    is_str(lower, "chat.example.com", "domains are lower-cased");
    app_domain_lower("Chat.Example.COM", lower, 5);
    is_str(lower, "chat", "and cut to the room given");
}

static void test_keys(void)
{
    char a[APP_RULES_KEY_LEN + 1], b[APP_RULES_KEY_LEN + 1];
    unsigned char hash[APP_RULES_KEY_HASH_LEN], want[SHA256_DIGEST_LENGTH];
    ok(app_api_key_issue(a, hash) == 0 && strlen(a) == APP_RULES_KEY_LEN,
       "an API key of 43 base64url characters");
    SHA256((const unsigned char *)a, strlen(a), want);
    ok(memcmp(hash, want, sizeof want) == 0, "its hash is the SHA-256 of the key");
    ok(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(a),
       "in the base64url alphabet");
    ok(app_key_make(b) == 0 && strcmp(a, b) != 0, "two keys differ");
}

static void app_seen(void *arg, const struct shm_app *app)
{
    char *names = arg;
    strcat(names, app->name);
    strcat(names, " ");
}

static void test_list_and_connections(struct shm_store *store)
{
    struct shm_app one = { .validated = true, .active = true }, two = { 0 };
    ok(uuid_make(one.appid) == 0 && uuid_make(two.appid) == 0, "two appids");
    snprintf(one.owner, sizeof one.owner, "%s", SHM_APP_OWNER_OPERATOR);
    snprintf(one.name, sizeof one.name, "One");
    snprintf(two.owner, sizeof two.owner, "dev@example.com");
    snprintf(two.name, sizeof two.name, "Two");
    char names[64] = "";
    is_int(shm_app_list(store, app_seen, names), 0, "no app at first");
    ok(shm_app_put(store, &one) == SHM_OK && shm_app_put(store, &two) == SHM_OK &&
           shm_batch_commit(store) == SHM_OK,
       "two apps stored");
    is_int(shm_app_list(store, app_seen, names), 2, "both are listed, whoever owns them");
    ok(strcmp(one.appid, two.appid) < 0 ? strcmp(names, "One Two ") == 0
                                        : strcmp(names, "Two One ") == 0,
       "in appid order (%s)", names);
    is_int(shm_app_list_by_owner(store, SHM_APP_OWNER_OPERATOR, NULL, NULL), 1,
           "the operator's app is indexed under its owner");
    is_int(shm_app_list_by_owner(store, "dev@example.com", NULL, NULL), 1, "and the other too");

    struct shm_app_conn *conns;
    size_t count = 99, others;
    ok(shm_app_conns(store, one.appid, &conns, &count) == SHM_OK && count == 0 && conns == NULL,
       "no connection open");
    ok(shm_app_conn_add(store, one.appid, 300, 5, &others) == SHM_OK &&
           shm_app_conn_add(store, one.appid, 200, 9, &others) == SHM_OK &&
           shm_app_conn_add(store, two.appid, 300, 6, &others) == SHM_OK &&
           shm_batch_commit(store) == SHM_OK,
       "three connections, two of the first app");
    ok(shm_app_conns(store, one.appid, &conns, &count) == SHM_OK && count == 2,
       "the first app's two connections");
    ok(count == 2 && conns[0].pid == 200 && conns[0].conn_id == 9 && conns[1].pid == 300 &&
           conns[1].conn_id == 5,
       "each with its worker pid and connection id");
    free(conns);
    ok(shm_app_conns(store, two.appid, &conns, &count) == SHM_OK && count == 1 &&
           conns[0].conn_id == 6,
       "the other app's one");
    free(conns);
    is_int(shm_app_conns(store, "short", &conns, &count), SHM_ERROR, "a bad appid is refused");
    ok(shm_app_delete(store, two.appid) == SHM_OK && shm_batch_commit(store) == SHM_OK &&
           shm_app_list(store, NULL, NULL) == 1,
       "a deleted app leaves the list");
}

struct gone_seen {
    char appids[4][SHM_APPID_LEN + 1];
    size_t count;
};

static void app_gone(void *arg, const char *appid)
{
    struct gone_seen *seen = arg;
    if (seen->count < 4)
        snprintf(seen->appids[seen->count], sizeof seen->appids[0], "%s", appid);
    seen->count++;
}

/* A dead worker's connections: each app it leaves with none open on the node is told once (a
 * cluster node's master shares that), an app another worker still holds is not. */
static void test_release_worker_tells_the_apps_left_with_none(struct shm_store *store)
{
    char kept[SHM_APPID_LEN + 1], left[SHM_APPID_LEN + 1];
    size_t others;
    ok(uuid_make(kept) == 0 && uuid_make(left) == 0, "two more appids");
    ok(shm_app_conn_add(store, kept, 500, 1, &others) == SHM_OK &&
           shm_app_conn_add(store, kept, 501, 2, &others) == SHM_OK &&
           shm_app_conn_add(store, left, 500, 3, &others) == SHM_OK &&
           shm_app_conn_add(store, left, 500, 4, &others) == SHM_OK &&
           shm_batch_commit(store) == SHM_OK,
       "worker 500 holds two connections of one app and one of another, which 501 holds too");
    struct gone_seen seen = { .count = 0 };
    ok(shm_app_conn_release_worker(store, 500, 1000, app_gone, &seen) == SHM_OK &&
           shm_batch_commit(store) == SHM_OK,
       "worker 500's connections released");
    ok(seen.count == 1 && strcmp(seen.appids[0], left) == 0,
       "the app left with none is told once, the other not (%zu)", seen.count);
    struct shm_app_conn *conns;
    size_t count;
    ok(shm_app_conns(store, left, &conns, &count) == SHM_OK && count == 0, "none of it open");
    free(conns);
    ok(shm_app_conns(store, kept, &conns, &count) == SHM_OK && count == 1 && conns[0].pid == 501,
       "worker 501's connection stays");
    free(conns);
}

int main(void)
{
    test_rules();
    test_keys();
    struct scratch_dir scratch;
    struct shm_store *store = scratch_store_make(&scratch, "apps");
    ok(store != NULL, "store opens");
    if (store != NULL) {
        test_list_and_connections(store);
        test_release_worker_tells_the_apps_left_with_none(store);
        shm_store_close(store);
    }
    scratch_dir_remove(&scratch);
    return tap_done();
}
