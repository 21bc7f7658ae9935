/* Unit tests of the records a cluster node shares beside apps, grants and sessions: a Web Push
 * subscription's changes (shm/push_sub.c, pd_push) and an app's absence per node
 * (shm/app_away_shared.c, pd_appaway) — a writer's store leaves each in its outbox, another
 * store (an agent's, no outbox) applies what the engine would bring, and reads the same; what is
 * not such a record is refused. */
#include "scratch_store.h"
#include "tap.h"

#include "../../shm/app.h"
#include "../../shm/app_away_shared.h"
#include "../../shm/outbox.h"
#include "../../shm/push_sub.h"
#include "../../shm/store.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

struct seen {
    char bucket[SHM_OUTBOX_BUCKET_MAX + 1];
    char key[SHM_OUTBOX_KEY_MAX + 1];
    unsigned char value[2048];
    size_t len;
    uint64_t seq;
    size_t count;
};

static void entry_seen(void *arg, const struct shm_outbox_entry *e)
{
    struct seen *s = arg;
    s->count++;
    if (e->len > sizeof s->value)
        return;
    snprintf(s->bucket, sizeof s->bucket, "%s", e->bucket);
    snprintf(s->key, sizeof s->key, "%s", e->key);
    memcpy(s->value, e->value, e->len);
    s->len = e->len;
    s->seq = e->seq;
}

/* The one entry the writer left, taken out of its outbox. */
static struct seen take_one(struct shm_store *writer)
{
    struct seen s;
    memset(&s, 0, sizeof s);
    shm_outbox_walk(writer, 8, entry_seen, &s);
    if (s.count > 0 && (shm_outbox_remove(writer, s.seq) != SHM_OK ||
                        shm_batch_commit(writer) != SHM_OK))
        diag("could not remove outbox entry %llu", (unsigned long long)s.seq);
    return s;
}

static void test_push_subscriptions(struct shm_store *writer, struct shm_store *agent)
{
    struct push_subscription sub;
    memset(&sub, 0, sizeof sub);
    snprintf(sub.endpoint, sizeof sub.endpoint, "https://push.test/s/1");
    memset(sub.p256dh, 4, sizeof sub.p256dh);
    memset(sub.auth, 7, sizeof sub.auth);
    ok(shm_push_sub_put(writer, "bob@example.com", "phone", &sub, 1000, 4) == SHM_OK &&
           shm_batch_commit(writer) == SHM_OK,
       "a subscription stored by a cluster writer");
    struct seen e = take_one(writer);
    ok(e.count == 1 && strcmp(e.bucket, SHM_BUCKET_PUSH) == 0 && strncmp(e.key, "s.", 2) == 0 &&
           strlen(e.key) == 34 && strstr(e.key, "bob") == NULL,
       "one entry: pd_push, a hash of the e-mail and device as its key");
    struct shm_push_shared in;
    ok(shm_push_shared_decode(e.value, e.len, &in) == SHM_OK && in.op == SHM_PUSH_SHARED_PUT &&
           strcmp(in.email, "bob@example.com") == 0 && strcmp(in.device, "phone") == 0 &&
           strcmp(in.sub.endpoint, sub.endpoint) == 0 && in.created_ms == 1000,
       "the record names the user, the device and the subscription");
    struct push_subscription got;
    ok(shm_push_sub_apply(agent, e.value, e.len, 4) == SHM_OK && shm_batch_commit(agent) == SHM_OK &&
           shm_push_sub_get(agent, "bob@example.com", "phone", &got) == SHM_OK &&
           strcmp(got.endpoint, sub.endpoint) == 0 && memcmp(got.auth, sub.auth, 16) == 0,
       "applied on another node: the same subscription there");
    struct seen none;
    memset(&none, 0, sizeof none);
    shm_outbox_walk(agent, 8, entry_seen, &none);
    is_int((int)none.count, 0, "the agent's store leaves no entry of its own");

    ok(shm_push_sub_delete_endpoint(writer, "bob@example.com", "phone", sub.endpoint) == SHM_OK &&
           shm_batch_commit(writer) == SHM_OK,
       "removed by its endpoint (a push service's 410)");
    e = take_one(writer);
    ok(shm_push_shared_decode(e.value, e.len, &in) == SHM_OK &&
           in.op == SHM_PUSH_SHARED_DELETE_ENDPOINT && strcmp(in.sub.endpoint, sub.endpoint) == 0,
       "the removal is a record of its own, with the endpoint");
    ok(shm_push_sub_apply(agent, e.value, e.len, 4) == SHM_OK && shm_batch_commit(agent) == SHM_OK &&
           shm_push_sub_get(agent, "bob@example.com", "phone", &got) == SHM_NOT_FOUND,
       "applied: gone there too");

    unsigned char bad[] = { 9, 3, 'a', '@', 'b', 0 };
    ok(shm_push_shared_decode(bad, sizeof bad, &in) != SHM_OK &&
           shm_push_shared_decode(bad, 2, &in) != SHM_OK,
       "an unknown op or a short record is refused");
    unsigned char plain[] = { SHM_PUSH_SHARED_DELETE, 3, 'a', '@', 'b', 1, 'x', 'z' };
    ok(shm_push_shared_decode(plain, sizeof plain - 1, &in) == SHM_OK &&
           shm_push_shared_decode(plain, sizeof plain, &in) != SHM_OK,
       "a delete carries nothing after the device");
}

struct away_got {
    char node[40];
    uint64_t epoch;
    int64_t since;
    int count;
};

static void visit(void *arg, const char *node, uint64_t epoch, int64_t since)
{
    struct away_got *got = arg;
    snprintf(got->node, sizeof got->node, "%s", node);
    got->epoch = epoch;
    got->since = since;
    got->count++;
}

static void test_app_absence(struct shm_store *writer, struct shm_store *agent)
{
    const char *appid = "0123abcd-0000-4000-8000-000000000001";
    ok(shm_app_away_share(writer, appid, "n1", 7, 123456) == SHM_OK &&
           shm_batch_commit(writer) == SHM_OK,
       "a node's absence of an app shared");
    struct seen e = take_one(writer);
    char key[80];
    snprintf(key, sizeof key, "%s.n1", appid);
    ok(e.count == 1 && strcmp(e.bucket, SHM_BUCKET_APP_AWAY) == 0 && strcmp(e.key, key) == 0 &&
           e.len == SHM_APP_AWAY_VALUE_LEN,
       "one entry: pd_appaway.<appid>.<node>");
    ok(shm_app_away_apply(agent, e.key, e.value, e.len) == SHM_OK &&
           shm_app_away_apply(agent, "not-an-appid.n1", e.value, e.len) != SHM_OK &&
           shm_app_away_apply(agent, e.key, e.value, e.len - 1) != SHM_OK &&
           shm_batch_commit(agent) == SHM_OK,
       "applied on another node; a bad key or value refused");
    struct away_got got = { "", 0, 0, 0 };
    ok(shm_app_away_nodes(agent, appid, visit, &got) == 1 && strcmp(got.node, "n1") == 0 &&
           got.epoch == 7 && got.since == 123456,
       "read there: the node, its epoch, since when it has no connection");
}

int main(void)
{
    struct scratch_dir dir_a, dir_b;
    struct shm_store *writer = scratch_store_make(&dir_a, "shared-a");
    struct shm_store *agent = scratch_store_make(&dir_b, "shared-b");
    ok(writer != NULL && agent != NULL, "two stores open");
    if (writer != NULL && agent != NULL) {
        shm_outbox_enable(writer, 0);
        test_push_subscriptions(writer, agent);
        test_app_absence(writer, agent);
    }
    if (writer != NULL)
        shm_store_close(writer);
    if (agent != NULL)
        shm_store_close(agent);
    scratch_dir_remove(&dir_a);
    scratch_dir_remove(&dir_b);
    return tap_done();
}
