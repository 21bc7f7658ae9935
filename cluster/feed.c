/* feed: a changefeed — every message of one stream from a sequence on, in order, through an
 * ordered push consumer that is made again from the last applied sequence whenever it skips,
 * stalls or cannot show a write known to be committed (the watchdog).
 *
 * This is what cnats's ordered consumer and KV watcher do, by hand: cnats 3.4's watcher takes
 * entries only with a waiting call, and cannot resume at a sequence, which the watchdog needs
 * (a frozen server stalled a cnats watcher for 28 s; a consumer made again delivered within a
 * millisecond — research/scale-out.md §3.1). The consumer is ephemeral, in memory, one replica,
 * without acks; its deliveries come on a subject of this process's inbox, each with the ack
 * subject that tells its stream and consumer sequences; a gap in the consumer sequence means a
 * lost message, and the consumer is made again from the last one applied. */
#include "feed.h"

#include "jsapi.h"

#include "../common/clock.h"
#include "../common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MS 1000
#define CREATE_TIMEOUT_MS 5000

struct feed {
    struct engine *engine;
    char stream[JS_NAME_MAX + 1];
    char filter[JS_SUBJECT_MAX + 1];
    feed_apply_cb apply;
    void *arg;
    struct engine_sub *sub;
    char deliver[128];
    char consumer[JS_NAME_MAX + 1]; /* "" until known */
    uint64_t applied, last_cseq, recreations;
    uint64_t pending_at_create; /* messages the stream held past applied when made */
    bool creating, caught_up, stopped;
    int64_t last_activity_ms, retry_at_ms;
    uint64_t expect_seq;
    int64_t expect_since_ms;
    uint64_t create_id; /* the pending create, cancelled by the next one and by feed_stop */
};

static void consumer_make(struct feed *f);

static void restart(struct feed *f, const char *why)
{
    if (f->stopped)
        return;
    log_notice("changefeed %s: %s; made again from %" PRIu64, f->stream, why, f->applied + 1);
    f->recreations++;
    consumer_make(f);
}

static void on_delivery(void *arg, const struct engine_msg *msg);

/* The answer to the current consumer's create: an earlier create is cancelled before the next
 * one is sent, and feed_stop cancels the last, so this never sees a stale one nor a freed feed
 * (and nothing is allocated per create that a cancel could leave behind). */
static void on_created(void *arg, int status, const struct engine_msg *msg)
{
    struct feed *f = arg;
    if (f->stopped)
        return;
    f->creating = false;
    f->create_id = 0;
    struct js_error err;
    if (status != ENGINE_OK || js_api_result(msg->data, msg->len, &err) != JS_PARSED) {
        if (status == ENGINE_OK)
            log_warning("changefeed %s: the engine refused the consumer: %s (%d)", f->stream,
                        err.description, err.err_code);
        f->retry_at_ms = clock_mono_ms() + RETRY_MS;
        return;
    }
    f->last_activity_ms = clock_mono_ms();
    /* How much there was to catch up with: "num_pending" of the consumer's info. */
    const char *p = memmem(msg->data, msg->len, "\"num_pending\":", 14);
    f->pending_at_create = p != NULL ? strtoull(p + 14, NULL, 10) : 0;
    if (f->pending_at_create <= f->last_cseq)
        f->caught_up = true;
    const char *n = memmem(msg->data, msg->len, "\"name\":\"", 8);
    f->consumer[0] = '\0';
    if (n != NULL) {
        n += 8;
        size_t len = strcspn(n, "\"");
        if (len <= JS_NAME_MAX && n + len <= msg->data + msg->len)
            snprintf(f->consumer, sizeof f->consumer, "%.*s", (int)len, n);
    }
}

static void ignore_answer(void *arg, int status, const struct engine_msg *msg)
{
    (void)arg;
    (void)status;
    (void)msg;
}

/* Drops the current consumer (its server removes an ephemeral one anyway once nobody listens,
 * but sooner is cheaper) and makes a new one starting after the last applied sequence. */
static void consumer_make(struct feed *f)
{
    if (f->create_id != 0)
        engine_request_cancel(f->engine, f->create_id);
    f->create_id = 0;
    if (f->sub != NULL) {
        engine_unsubscribe(f->engine, f->sub);
        f->sub = NULL;
    }
    if (f->consumer[0] != '\0') {
        char subject[160];
        snprintf(subject, sizeof subject, "$JS.API.CONSUMER.DELETE.%s.%s", f->stream, f->consumer);
        engine_request(f->engine, subject, NULL, 0, NULL, 0, 2000, ignore_answer, NULL, NULL);
        f->consumer[0] = '\0';
    }
    f->last_cseq = 0;
    f->caught_up = false;
    f->expect_seq = 0;
    engine_inbox_subject(f->engine, f->deliver, sizeof f->deliver);
    f->creating = true;
    f->retry_at_ms = 0;
    f->last_activity_ms = clock_mono_ms();
    if (engine_subscribe(f->engine, f->deliver, on_delivery, f, &f->sub) != ENGINE_OK) {
        f->creating = false;
        f->retry_at_ms = clock_mono_ms() + RETRY_MS;
        return;
    }
    char body[768], subject[160];
    char start[64];
    if (f->applied == 0)
        snprintf(start, sizeof start, "\"deliver_policy\":\"all\"");
    else
        snprintf(start, sizeof start,
                 "\"deliver_policy\":\"by_start_sequence\",\"opt_start_seq\":%" PRIu64,
                 f->applied + 1);
    snprintf(body, sizeof body,
             "{\"stream_name\":\"%s\",\"config\":{\"deliver_subject\":\"%s\",%s,"
             "\"ack_policy\":\"none\",\"filter_subject\":\"%s\",\"replay_policy\":\"instant\","
             "\"flow_control\":true,\"idle_heartbeat\":%lld,\"mem_storage\":true,"
             "\"num_replicas\":1}}",
             f->stream, f->deliver, start, f->filter, (long long)FEED_HEARTBEAT_MS * 1000000LL);
    snprintf(subject, sizeof subject, "$JS.API.CONSUMER.CREATE.%s", f->stream);
    if (engine_request(f->engine, subject, NULL, 0, body, strlen(body), CREATE_TIMEOUT_MS,
                       on_created, f, &f->create_id) != ENGINE_OK) {
        f->creating = false;
        f->retry_at_ms = clock_mono_ms() + RETRY_MS;
    }
}

static void control_message(struct feed *f, const struct engine_msg *msg)
{
    /* Flow control asks for an empty answer; so does a heartbeat of a stalled consumer. */
    const char *stalled;
    if (msg->reply != NULL && msg->reply[0] != '\0')
        engine_publish(f->engine, msg->reply, NULL, NULL, 0, NULL, 0);
    else if (engine_msg_header(msg, "Nats-Consumer-Stalled", &stalled) == 1)
        engine_publish(f->engine, stalled, NULL, NULL, 0, NULL, 0);
    const char *last;
    if (engine_msg_header(msg, "Nats-Last-Consumer", &last) == 1 &&
        strtoull(last, NULL, 10) > f->last_cseq)
        restart(f, "a heartbeat shows messages that never came");
    else if (f->last_cseq >= f->pending_at_create)
        f->caught_up = true;
}

static void on_delivery(void *arg, const struct engine_msg *msg)
{
    struct feed *f = arg;
    /* Deliveries may come before the answer to the create: the subscription is this
     * consumer's own. */
    if (f->stopped)
        return;
    f->last_activity_ms = clock_mono_ms();
    if (engine_msg_status(msg) == 100) {
        control_message(f, msg);
        return;
    }
    struct js_ack_info ack;
    if (msg->reply == NULL || js_ack_subject_parse(msg->reply, &ack) != 0) {
        restart(f, "a delivery without its ack subject");
        return;
    }
    if (ack.consumer_seq != f->last_cseq + 1) {
        restart(f, "a delivery skipped");
        return;
    }
    f->last_cseq = ack.consumer_seq;
    if (ack.stream_seq <= f->applied)
        return; /* already applied (a consumer made again overlaps) */
    const char *op;
    bool deleted = engine_msg_header(msg, "KV-Operation", &op) == 1 &&
                   (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0);
    f->applied = ack.stream_seq;
    f->apply(f->arg, msg->subject, ack.stream_seq, deleted, msg->data, msg->len, ack.time_ms);
    if (ack.pending == 0)
        f->caught_up = true;
}

int feed_start(struct feed **out, const struct feed_options *opt)
{
    struct feed *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->engine = opt->engine;
    snprintf(f->stream, sizeof f->stream, "%s", opt->stream);
    snprintf(f->filter, sizeof f->filter, "%s", opt->filter);
    f->apply = opt->apply;
    f->arg = opt->arg;
    f->applied = opt->applied;
    consumer_make(f);
    *out = f;
    return 0;
}

void feed_stop(struct feed *f)
{
    if (f == NULL)
        return;
    f->stopped = true;
    if (f->create_id != 0)
        engine_request_cancel(f->engine, f->create_id);
    if (f->sub != NULL)
        engine_unsubscribe(f->engine, f->sub);
    free(f);
}

uint64_t feed_applied(const struct feed *f)
{
    return f->applied;
}

bool feed_caught_up(const struct feed *f)
{
    return f->caught_up;
}

uint64_t feed_recreations(const struct feed *f)
{
    return f->recreations;
}

void feed_tick(struct feed *f, int64_t now_ms)
{
    if (!engine_connected(f->engine))
        return;
    if (!f->creating && f->retry_at_ms != 0 && now_ms >= f->retry_at_ms) {
        consumer_make(f);
        return;
    }
    if (!f->creating && f->retry_at_ms == 0 && now_ms - f->last_activity_ms > FEED_STALL_MS) {
        restart(f, "no delivery nor heartbeat for 3 s");
        return;
    }
    if (f->expect_seq != 0 && f->applied >= f->expect_seq)
        f->expect_seq = 0;
    if (f->expect_seq != 0 && now_ms - f->expect_since_ms > FEED_PROBE_MS)
        restart(f, "a committed write did not arrive within 2 s");
}

void feed_expect(struct feed *f, uint64_t seq, int64_t now_ms)
{
    if (seq <= f->applied || f->expect_seq != 0)
        return;
    f->expect_seq = seq;
    f->expect_since_ms = now_ms;
}

void feed_reconnected(struct feed *f)
{
    f->last_activity_ms = clock_mono_ms(); /* the stall clock starts again */
}
