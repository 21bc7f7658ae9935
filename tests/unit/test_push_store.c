/* Unit tests of Web Push in the store and on the way in: the subscription object a device sends
 * (common/push_subscription.c), subscriptions per (e-mail, device) (shm/push_sub.c) and the jobs
 * to send (shm/push_job.c): queued only for devices not connected, leased, retried, finished
 * and counted. */
#include "scratch_store.h"
#include "tap.h"

#include "../../common/json_strict.h"
#include "../../common/push_subscription.h"
#include "../../shm/conn.h"
#include "../../shm/push_job.h"
#include "../../shm/push_sub.h"
#include "../../shm/store.h"

#include <unistd.h>

#define P256DH "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define AUTH "BTBZMqHH6r4Tts7J_aSIgg"

static int sub_parse(const char *text, struct push_subscription *out, const char **why)
{
    struct json_object *obj = json_strict_object(text, strlen(text));
    int rc = push_subscription_parse(obj, out, why);
    json_object_put(obj);
    return rc;
}

static void test_subscription_parse(void)
{
    struct push_subscription sub;
    const char *why = NULL;
    is_int(sub_parse("{\"endpoint\":\"https://fcm.googleapis.com/fcm/send/abc:APA91b\","
                     "\"expirationTime\":null,\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"" AUTH
                     "\"}}",
                     &sub, &why),
           0, "a browser's PushSubscription.toJSON()");
    is_str(sub.endpoint, "https://fcm.googleapis.com/fcm/send/abc:APA91b", "its endpoint");
    ok(sub.p256dh[0] == 0x04 && sub.auth[0] == 0x05, "its keys decoded");
    is_int(sub_parse("{\"endpoint\":\"https://push.example/p\",\"keys\":{\"p256dh\":\"" P256DH
                     "=\",\"auth\":\"" AUTH "==\"}}",
                     &sub, &why),
           0, "padded base64url keys are taken");
    struct {
        const char *text, *field, *name;
    } bad[] = {
        { "[]", "subscription", "not an object" },
        { "{\"keys\":{}}", "endpoint", "no endpoint" },
        { "{\"endpoint\":\"http://push.example/p\",\"keys\":{}}", "endpoint", "http" },
        { "{\"endpoint\":\"https://\",\"keys\":{}}", "endpoint", "no host" },
        { "{\"endpoint\":\"https://u:p@push.example/p\",\"keys\":{}}", "endpoint", "a user part" },
        { "{\"endpoint\":\"https://push.example/p#f\",\"keys\":{}}", "endpoint", "a fragment" },
        { "{\"endpoint\":\"https://push.example/a b\",\"keys\":{}}", "endpoint", "a space" },
        { "{\"endpoint\":\"https://push.example/p\"}", "keys", "no keys" },
        { "{\"endpoint\":\"https://push.example/p\",\"keys\":{\"p256dh\":\"AAAA\",\"auth\":\"" AUTH
          "\"}}",
          "p256dh", "a short key" },
        { "{\"endpoint\":\"https://push.example/p\",\"keys\":{\"p256dh\":\"" P256DH
          "\",\"auth\":\"AAAA\"}}",
          "auth", "a short auth" },
        { "{\"endpoint\":\"https://push.example/p\",\"keys\":{\"p256dh\":\"" P256DH "\"}}", "auth",
          "no auth" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        int rc = sub_parse(bad[i].text, &sub, &why);
        ok(rc == -1 && why != NULL && strstr(why, bad[i].field) != NULL, "refused: %s (%s)",
           bad[i].name, why ? why : "no reason");
    }
    static char long_endpoint[PUSH_ENDPOINT_MAX + 300];
    char path[PUSH_ENDPOINT_MAX];
    memset(path, 'a', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    snprintf(long_endpoint, sizeof long_endpoint,
             "{\"endpoint\":\"https://push.example/%s\",\"keys\":{\"p256dh\":\"%s\",\"auth\":\"%s\"}}",
             path, P256DH, AUTH);
    is_int(sub_parse(long_endpoint, &sub, &why), -1, "an endpoint over 1024 bytes is refused");
}

static struct push_subscription sub_make(const char *endpoint)
{
    struct push_subscription sub;
    const char *why;
    char text[600];
    snprintf(text, sizeof text,
             "{\"endpoint\":\"%s\",\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"" AUTH "\"}}",
             endpoint);
    sub_parse(text, &sub, &why);
    return sub;
}

static void test_subscriptions(struct shm_store *store)
{
    struct push_subscription a = sub_make("https://push.example/a"), b = sub_make("https://push.example/b");
    struct push_subscription got;
    is_int(shm_push_sub_put(store, "u@example.com", "phone", &a, 1000, 2), SHM_OK, "subscribed");
    is_int(shm_push_sub_put(store, "u@example.com", "phone", &b, 2000, 2), SHM_OK,
           "subscribed again: replaced");
    shm_push_sub_get(store, "u@example.com", "phone", &got);
    is_str(got.endpoint, "https://push.example/b", "the newer one holds");
    shm_push_sub_put(store, "u@example.com", "laptop", &a, 3000, 2);
    is_int(shm_push_subs(store, "u@example.com", NULL, NULL), 2, "two devices subscribed");
    shm_push_sub_put(store, "u@example.com", "tablet", &a, 4000, 2);
    is_int(shm_push_subs(store, "u@example.com", NULL, NULL), 2, "at most two: the oldest went");
    is_int(shm_push_sub_get(store, "u@example.com", "phone", &got), SHM_NOT_FOUND,
           "the phone's, the oldest");
    is_int(shm_push_sub_delete_endpoint(store, "u@example.com", "laptop", "https://push.example/b"),
           SHM_NOT_FOUND, "a 410 for another endpoint removes nothing");
    is_int(shm_push_sub_delete_endpoint(store, "u@example.com", "laptop", "https://push.example/a"),
           SHM_OK, "a 410 for its endpoint removes it");
    is_int(shm_push_sub_delete(store, "u@example.com", "tablet"), SHM_OK, "unsubscribed");
    is_int(shm_push_sub_delete(store, "u@example.com", "tablet"), SHM_NOT_FOUND, "once");
    uint64_t count;
    shm_push_sub_count(store, &count);
    is_int(count, 0, "none left");
    shm_batch_commit(store);
}

struct taken {
    int count;
    struct shm_push_job last;
};

static void job_seen(void *arg, const struct shm_push_job *job)
{
    struct taken *t = arg;
    t->count++;
    t->last = *job;
}

static void test_jobs(struct shm_store *store)
{
    struct push_subscription a = sub_make("https://push.example/a");
    struct shm_conn_owner me = { 42, 1, SHM_STATUS_ONLINE, 1 }, previous;
    int had;
    shm_push_sub_put(store, "j@example.com", "phone", &a, 1, 10);
    shm_push_sub_put(store, "j@example.com", "laptop", &a, 1, 10);
    shm_conn_claim(store, "j@example.com", "laptop", &me, &previous, &had);
    size_t queued;
    const char *json = "{\"source\":\"s\",\"message\":\"m\",\"id\":\"x\"}";
    is_int(shm_push_queue(store, "j@example.com", json, strlen(json), 1000, 61000, &queued), SHM_OK,
           "queued");
    is_int(queued, 1, "for the phone only: the laptop is connected");
    int64_t due;
    shm_push_next_due(store, &due);
    is_int(due, 1000, "due at once");
    struct taken t = { 0 };
    int64_t next;
    is_int(shm_push_take(store, 7, 999, 60000, 10, job_seen, &t, &next), SHM_OK, "too early");
    is_int(t.count, 0, "nothing taken before it is due");
    shm_push_take(store, 7, 1000, 60000, 10, job_seen, &t, &next);
    ok(t.count == 1 && strcmp(t.last.device, "phone") == 0 && t.last.owner == 7 &&
           t.last.json_len == strlen(json) && memcmp(t.last.json, json, t.last.json_len) == 0,
       "taken: the phone's, leased to pid 7, with the notification");
    is_int(next, 61000, "its lease is the next due time");
    t.count = 0;
    shm_push_take(store, 8, 2000, 60000, 10, job_seen, &t, &next);
    is_int(t.count, 0, "leased: no other process takes it");
    is_int(shm_push_retry(store, &t.last, 5000, SHM_PUSH_NO_PAYLOAD), SHM_OK, "put back for later");
    shm_push_take(store, 8, 5000, 60000, 10, job_seen, &t, &next);
    ok(t.count == 1 && t.last.attempts == 1 && (t.last.flags & SHM_PUSH_NO_PAYLOAD),
       "taken again at its time: one attempt made, without payload");
    struct shm_push_job stale = t.last;
    stale.key[15] ^= 1;
    is_int(shm_push_finish(store, &stale, SHM_PUSH_SENT), SHM_NOT_FOUND,
           "a finish under another key counts nothing");
    is_int(shm_push_finish(store, &t.last, SHM_PUSH_SENT), SHM_OK, "finished: sent");
    shm_push_next_due(store, &due);
    is_int(due, 0, "no job left");
    /* One that expires before it is taken is dropped and counted as failed. */
    shm_push_queue(store, "j@example.com", json, strlen(json), 10000, 11000, &queued);
    t.count = 0;
    shm_push_take(store, 7, 11000, 60000, 10, job_seen, &t, &next);
    is_int(t.count, 0, "an expired job is not taken");
    shm_batch_commit(store);
    struct shm_push_counters c;
    shm_push_counters(store, &c);
    ok(c.queued == 2 && c.sent == 1 && c.retried == 1 && c.failed == 1 && c.gone == 0,
       "counted: 2 queued, 1 sent, 1 retried, 1 failed (%llu %llu %llu %llu)",
       (unsigned long long)c.queued, (unsigned long long)c.sent, (unsigned long long)c.retried,
       (unsigned long long)c.failed);
}

int main(void)
{
    test_subscription_parse();
    struct scratch_dir scratch;
    struct shm_store *store = scratch_store_make(&scratch, "push");
    ok(store != NULL, "store opens in %s", scratch.path);
    if (store == NULL) {
        scratch_dir_remove(&scratch);
        return tap_done();
    }
    test_subscriptions(store);
    test_jobs(store);
    shm_store_close(store);
    scratch_dir_remove(&scratch);
    return tap_done();
}
