/* engine_probe: drives cluster/engine.c and cluster/js.c against real nats-servers for the
 * integration tests — one JetStream operation per run, its result on stdout as JSON:
 *   engine_probe SERVERS bucket BUCKET REPLICAS
 *   engine_probe SERVERS put BUCKET KEY VALUE EXPECTED_REV
 *   engine_probe SERVERS del BUCKET KEY EXPECTED_REV
 *   engine_probe SERVERS get BUCKET KEY direct|leader
 *   engine_probe SERVERS api WHAT [JSON]
 *   engine_probe SERVERS ping SUBJECT        (a core request; prints the answer)
 *   engine_probe SERVERS feed BUCKET         (a changefeed of the bucket from its start, read
 *                                             until caught up; prints the last sequence and how
 *                                             many it applied; a first feed is stopped before
 *                                             its consumer was made)
 * It exits 0 when the engine answered (whatever the answer), 1 when it could not be reached
 * within ENGINE_PROBE_GIVE_UP_MS (10000 when unset). */
#include "../../cluster/engine.h"
#include "../../cluster/feed.h"
#include "../../cluster/js.h"
#include "../../common/clock.h"

#include <nats/nats.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct probe {
    uv_loop_t loop;
    struct engine *engine;
    char **argv;
    int argc;
    int rc;
    uv_timer_t give_up;
    struct feed *feed;
    uv_timer_t feed_tick;
    uint64_t feed_count;
    uint64_t give_up_ms;
};

static const char *outcome_name(int outcome)
{
    switch (outcome) {
    case JS_OK:
        return "ok";
    case JS_CONFLICT:
        return "conflict";
    case JS_NOT_FOUND:
        return "not_found";
    case JS_UNAVAILABLE:
        return "unavailable";
    case JS_REFUSED:
        return "refused";
    default:
        return "bad_answer";
    }
}

static void json_string(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void done(struct probe *p, int rc)
{
    p->rc = rc;
    uv_timer_stop(&p->give_up);
    feed_stop(p->feed);
    p->feed = NULL;
    engine_close(p->engine);
    uv_close((uv_handle_t *)&p->give_up, NULL);
    uv_close((uv_handle_t *)&p->feed_tick, NULL);
}

static void on_result(void *arg, const struct js_result *r)
{
    struct probe *p = arg;
    printf("{\"outcome\":\"%s\",\"seq\":%" PRIu64 ",\"deleted\":%s,\"err_code\":%d,\"code\":%d",
           outcome_name(r->outcome), r->seq, r->deleted ? "true" : "false", r->err.err_code,
           r->err.code);
    if (r->value != NULL) {
        printf(",\"value\":");
        json_string(r->value, r->len);
    }
    if (r->json != NULL) {
        printf(",\"json\":");
        json_string(r->json, r->json_len);
    }
    printf("}\n");
    done(p, r->engine_status == ENGINE_OK ? 0 : 1);
}

static void on_ping(void *arg, int status, const struct engine_msg *msg)
{
    struct probe *p = arg;
    printf("{\"status\":%d", status);
    if (msg != NULL) {
        printf(",\"data\":");
        json_string(msg->data, msg->len);
    }
    printf("}\n");
    done(p, status == ENGINE_OK ? 0 : 1);
}

static void feed_applied_one(void *arg, const char *subject, uint64_t seq, bool deleted,
                             const void *data, size_t len, int64_t time_ms)
{
    struct probe *p = arg;
    (void)subject, (void)seq, (void)deleted, (void)data, (void)len, (void)time_ms;
    p->feed_count++;
}

static void feed_watch(uv_timer_t *timer)
{
    struct probe *p = timer->data;
    feed_tick(p->feed, clock_mono_ms());
    if (!feed_caught_up(p->feed))
        return;
    printf("{\"outcome\":\"ok\",\"seq\":%" PRIu64 ",\"applied\":%" PRIu64 "}\n",
           feed_applied(p->feed), p->feed_count);
    done(p, 0);
}

static int feed_run(struct probe *p, const char *bucket)
{
    char stream[96], filter[128];
    js_kv_stream(bucket, stream, sizeof stream);
    snprintf(filter, sizeof filter, "$KV.%s.>", bucket);
    struct feed_options opt = { .engine = p->engine, .stream = stream, .filter = filter,
                                .apply = feed_applied_one, .arg = p };
    /* A feed stopped while its consumer's create is still on its way (a node stopping then). */
    struct feed *early;
    if (feed_start(&early, &opt) != 0)
        return -1;
    feed_stop(early);
    if (feed_start(&p->feed, &opt) != 0)
        return -1;
    uv_timer_start(&p->feed_tick, feed_watch, 20, 20);
    return 0;
}

static int run(struct probe *p)
{
    struct engine *e = p->engine;
    char **a = p->argv;
    const char *cmd = a[2];
    if (strcmp(cmd, "bucket") == 0 && p->argc == 5)
        return js_bucket_ensure(e, a[3], atoi(a[4]), 0, on_result, p);
    if (strcmp(cmd, "put") == 0 && p->argc == 7)
        return js_kv_update(e, a[3], a[4], a[5], strlen(a[5]), strtoull(a[6], NULL, 10),
                            on_result, p);
    if (strcmp(cmd, "del") == 0 && p->argc == 6)
        return js_kv_delete(e, a[3], a[4], strtoull(a[5], NULL, 10), on_result, p);
    if (strcmp(cmd, "get") == 0 && p->argc == 6)
        return strcmp(a[5], "leader") == 0 ? js_kv_get_leader(e, a[3], a[4], on_result, p)
                                           : js_kv_get_direct(e, a[3], a[4], on_result, p);
    if (strcmp(cmd, "api") == 0 && (p->argc == 4 || p->argc == 5))
        return js_api(e, a[3], p->argc == 5 ? a[4] : NULL, on_result, p);
    if (strcmp(cmd, "ping") == 0 && p->argc == 4)
        return engine_request(e, a[3], NULL, 0, "ping", 4, 2000, on_ping, p, NULL);
    if (strcmp(cmd, "feed") == 0 && p->argc == 4)
        return feed_run(p, a[3]);
    fprintf(stderr, "engine_probe: unknown command or arguments\n");
    return -2;
}

static void on_event(void *arg, enum engine_event event)
{
    struct probe *p = arg;
    if (event != ENGINE_EVENT_CONNECTED)
        return;
    int rc = run(p);
    if (rc != 0)
        done(p, rc == -2 ? 2 : 1);
}

static void give_up(uv_timer_t *timer)
{
    struct probe *p = timer->data;
    fprintf(stderr, "engine_probe: no answer in %llu ms\n", (unsigned long long)p->give_up_ms);
    done(p, 1);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: engine_probe SERVERS COMMAND ARGS...\n");
        return 2;
    }
    struct probe p = { .argv = argv, .argc = argc, .rc = 1 };
    uv_loop_init(&p.loop);
    uv_timer_init(&p.loop, &p.give_up);
    p.give_up.data = &p;
    uv_timer_init(&p.loop, &p.feed_tick);
    p.feed_tick.data = &p;
    const char *give_up_ms = getenv("ENGINE_PROBE_GIVE_UP_MS");
    long long asked = give_up_ms != NULL ? atoll(give_up_ms) : 0;
    p.give_up_ms = asked > 0 ? (uint64_t)asked : 10000;
    uv_timer_start(&p.give_up, give_up, p.give_up_ms, 0);
    char err[256];
    struct engine_options opt = { .loop = &p.loop, .servers = argv[1], .name = "engine_probe",
                                  .on_event = on_event, .arg = &p };
    if (engine_open(&p.engine, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "engine_probe: %s\n", err);
        return 1;
    }
    uv_run(&p.loop, UV_RUN_DEFAULT);
    uv_loop_close(&p.loop);
    nats_CloseAndWait(1000);
    return p.rc;
}
