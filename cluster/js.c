/* js: the JetStream operations presenced makes, over the engine client and without waiting —
 * streams and KV buckets made idempotently, compare-and-set writes and deletes, direct and
 * leader gets. cnats 3.4's own KV and JetStream calls all wait for their answer (and its KV
 * watcher cannot resume from a sequence), so these are the same requests made by hand: the
 * subjects and headers are the engine's documented API (ADR-8 of NATS for KV). */
#include "js.h"

#include "../common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS ((int64_t)1000000)

enum op_kind { OP_WRITE, OP_DIRECT_GET, OP_LEADER_GET, OP_API, OP_STREAM_ENSURE };

struct op {
    struct engine *engine;
    enum op_kind kind;
    js_cb cb;
    void *arg;
    char what[96]; /* OP_STREAM_ENSURE: the update request to make on 10058 */
    char *body;    /* OP_STREAM_ENSURE: the configuration, for that update */
};

void js_kv_subject(const char *bucket, const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "$KV.%s.%s", bucket, key);
}

void js_kv_stream(const char *bucket, char *out, size_t cap)
{
    snprintf(out, cap, "KV_%s", bucket);
}

static int unavailable_error(const struct js_error *err)
{
    return err->code == 503 || err->err_code == JS_ERR_CLUSTER_NOT_AVAILABLE;
}

static void finish(struct op *op, struct js_result *res)
{
    op->cb(op->arg, res);
    free(op->body);
    free(op);
}

static void write_answer(struct op *op, const struct engine_msg *msg, struct js_result *res)
{
    struct js_puback ack;
    int rc = js_puback_parse(msg->data, msg->len, &ack, &res->err);
    if (rc == JS_PARSED) {
        res->outcome = JS_OK;
        res->seq = ack.seq;
    } else if (rc == JS_API_ERROR)
        res->outcome = res->err.err_code == JS_ERR_WRONG_LAST_SEQUENCE ? JS_CONFLICT
                       : unavailable_error(&res->err)                  ? JS_UNAVAILABLE
                                                                       : JS_REFUSED;
    else
        res->outcome = JS_BAD_ANSWER;
    (void)op;
}

/* A direct get answers with the stored message itself (its headers say where it sits), or a
 * status: 404 when there is none. */
static void direct_answer(const struct engine_msg *msg, struct js_result *res)
{
    int status = engine_msg_status(msg);
    if (status == 404) {
        res->outcome = JS_NOT_FOUND;
        return;
    }
    if (status != 0) {
        res->outcome = status == 503 || status == 408 ? JS_UNAVAILABLE : JS_REFUSED;
        res->err.code = status;
        return;
    }
    const char *seq, *op;
    char *end;
    if (engine_msg_header(msg, "Nats-Sequence", &seq) != 1 ||
        (res->seq = strtoull(seq, &end, 10)) == 0 || *end != '\0') {
        res->outcome = JS_BAD_ANSWER;
        return;
    }
    const char *stamp;
    if (engine_msg_header(msg, "Nats-Time-Stamp", &stamp) == 1)
        res->time_ms = js_time_parse(stamp);
    res->deleted = engine_msg_header(msg, "KV-Operation", &op) == 1 &&
                   (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0);
    res->value = msg->data;
    res->len = msg->len;
    res->outcome = JS_OK;
}

static void leader_answer(const struct engine_msg *msg, struct js_result *res,
                          struct js_stored *stored)
{
    int rc = js_msg_get_parse(msg->data, msg->len, stored, &res->err);
    if (rc == JS_PARSED) {
        res->outcome = JS_OK;
        res->seq = stored->seq;
        res->deleted = stored->deleted;
        res->value = stored->data;
        res->len = stored->len;
        res->time_ms = stored->time_ms;
        res->hdrs = stored->hdrs;
        res->hdrs_len = stored->hdrs_len;
    } else if (rc == JS_API_ERROR)
        res->outcome = res->err.err_code == JS_ERR_NO_MESSAGE || res->err.code == 404 ? JS_NOT_FOUND
                       : unavailable_error(&res->err) ? JS_UNAVAILABLE
                                                      : JS_REFUSED;
    else
        res->outcome = JS_BAD_ANSWER;
}

static void api_answer(const struct engine_msg *msg, struct js_result *res)
{
    int rc = js_api_result(msg->data, msg->len, &res->err);
    res->json = msg->data;
    res->json_len = msg->len;
    if (rc == JS_PARSED)
        res->outcome = JS_OK;
    else if (rc == JS_API_ERROR)
        res->outcome = unavailable_error(&res->err) ? JS_UNAVAILABLE
                       : res->err.code == 404 || res->err.err_code == JS_ERR_NO_MESSAGE_DELETE
                           ? JS_NOT_FOUND
                           : JS_REFUSED;
    else
        res->outcome = JS_BAD_ANSWER;
}

static void on_answer(void *arg, int status, const struct engine_msg *msg);

static void ensure_answer(struct op *op, const struct engine_msg *msg, struct js_result *res)
{
    api_answer(msg, res);
    if (res->outcome == JS_REFUSED && res->err.err_code == JS_ERR_STREAM_NAME_IN_USE &&
        op->body != NULL) {
        /* Made before with other limits (a changed max_pending_notifications…): update. */
        char *body = op->body;
        op->body = NULL;
        op->kind = OP_API;
        log_notice("engine: stream configuration changed: %s", op->what);
        int rc = engine_request(op->engine, op->what, NULL, 0, body, strlen(body),
                                JS_REQUEST_TIMEOUT_MS, on_answer, op, NULL);
        free(body);
        if (rc == ENGINE_OK)
            res->outcome = -100; /* continued */
        else
            res->outcome = JS_UNAVAILABLE;
    }
}

static void on_answer(void *arg, int status, const struct engine_msg *msg)
{
    struct op *op = arg;
    struct js_result res;
    memset(&res, 0, sizeof res);
    res.engine_status = status;
    if (status != ENGINE_OK) {
        res.outcome = JS_UNAVAILABLE;
        finish(op, &res);
        return;
    }
    struct js_stored stored;
    memset(&stored, 0, sizeof stored);
    switch (op->kind) {
    case OP_WRITE:
        write_answer(op, msg, &res);
        break;
    case OP_DIRECT_GET:
        direct_answer(msg, &res);
        break;
    case OP_LEADER_GET:
        leader_answer(msg, &res, &stored);
        break;
    case OP_API:
        api_answer(msg, &res);
        break;
    case OP_STREAM_ENSURE:
        ensure_answer(op, msg, &res);
        if (res.outcome == -100)
            return;
        break;
    }
    finish(op, &res);
    js_stored_free(&stored);
}

static struct op *op_new(struct engine *e, enum op_kind kind, js_cb cb, void *arg)
{
    struct op *op = calloc(1, sizeof *op);
    if (op != NULL)
        *op = (struct op){ .engine = e, .kind = kind, .cb = cb, .arg = arg };
    return op;
}

static int op_send(struct op *op, const char *subject, const struct engine_header *headers,
                   size_t count, const void *data, size_t len)
{
    if (engine_request(op->engine, subject, headers, count, data, len, JS_REQUEST_TIMEOUT_MS,
                       on_answer, op, NULL) != ENGINE_OK) {
        free(op->body);
        free(op);
        return -1;
    }
    return 0;
}

int js_api(struct engine *e, const char *what, const char *json, js_cb cb, void *arg)
{
    struct op *op = op_new(e, OP_API, cb, arg);
    if (op == NULL)
        return -1;
    char subject[160];
    snprintf(subject, sizeof subject, "$JS.API.%s", what);
    return op_send(op, subject, NULL, 0, json, json ? strlen(json) : 0);
}

static char *stream_config(const struct js_stream_spec *s)
{
    char *out = NULL;
    int n = asprintf(
        &out,
        "{\"name\":\"%s\",\"subjects\":[\"%s\"],\"retention\":\"limits\",\"max_consumers\":-1,"
        "\"max_msgs\":-1,\"max_bytes\":-1,\"max_msgs_per_subject\":%" PRId64 ",\"max_age\":%" PRId64
        ",\"max_msg_size\":-1,\"storage\":\"file\",\"discard\":\"%s\",\"num_replicas\":%d,"
        "\"duplicate_window\":%" PRId64 ",\"deny_delete\":%s,\"deny_purge\":false,"
        "\"allow_rollup_hdrs\":%s,\"allow_direct\":true%s}",
        s->name, s->subjects, s->max_msgs_per_subject, s->max_age_ms * NS_PER_MS,
        s->discard_new ? "new" : "old", s->replicas,
        (s->duplicate_window_ms > 0 ? s->duplicate_window_ms : (int64_t)120000) * NS_PER_MS,
        s->kv ? "true" : "false", s->kv ? "true" : "false",
        s->discard_new_per_subject ? ",\"discard_new_per_subject\":true" : "");
    return n < 0 ? NULL : out;
}

int js_stream_ensure(struct engine *e, const struct js_stream_spec *spec, js_cb cb, void *arg)
{
    struct op *op = op_new(e, OP_STREAM_ENSURE, cb, arg);
    char *body = stream_config(spec);
    if (op == NULL || body == NULL) {
        free(op);
        free(body);
        return -1;
    }
    op->body = body;
    snprintf(op->what, sizeof op->what, "$JS.API.STREAM.UPDATE.%s", spec->name);
    char subject[160];
    snprintf(subject, sizeof subject, "$JS.API.STREAM.CREATE.%s", spec->name);
    return op_send(op, subject, NULL, 0, body, strlen(body));
}

int js_bucket_ensure(struct engine *e, const char *bucket, int replicas, int64_t max_age_ms,
                     js_cb cb, void *arg)
{
    char name[96], subjects[96];
    js_kv_stream(bucket, name, sizeof name);
    snprintf(subjects, sizeof subjects, "$KV.%s.>", bucket);
    struct js_stream_spec spec = { .name = name,
                                   .subjects = subjects,
                                   .replicas = replicas,
                                   .max_msgs_per_subject = 1,
                                   .max_age_ms = max_age_ms,
                                   .discard_new = true,
                                   .kv = true };
    return js_stream_ensure(e, &spec, cb, arg);
}

static int kv_write(struct engine *e, const char *bucket, const char *key, const void *value,
                    size_t len, uint64_t expected, bool delete_marker, js_cb cb, void *arg)
{
    struct op *op = op_new(e, OP_WRITE, cb, arg);
    if (op == NULL)
        return -1;
    char subject[JS_SUBJECT_MAX], rev[24];
    js_kv_subject(bucket, key, subject, sizeof subject);
    snprintf(rev, sizeof rev, "%" PRIu64, expected);
    struct engine_header headers[] = { { "Nats-Expected-Last-Subject-Sequence", rev },
                                       { "KV-Operation", "DEL" } };
    bool any = expected == JS_ANY_REVISION;
    size_t count = (any ? 0 : 1) + (delete_marker ? 1 : 0);
    return op_send(op, subject, count > 0 ? headers + (any ? 1 : 0) : NULL, count, value, len);
}

int js_kv_put(struct engine *e, const char *bucket, const char *key, const void *value,
              size_t len, js_cb cb, void *arg)
{
    return kv_write(e, bucket, key, value, len, JS_ANY_REVISION, false, cb, arg);
}

int js_kv_remove(struct engine *e, const char *bucket, const char *key, js_cb cb, void *arg)
{
    return kv_write(e, bucket, key, NULL, 0, JS_ANY_REVISION, true, cb, arg);
}

int js_kv_update(struct engine *e, const char *bucket, const char *key, const void *value,
                 size_t len, uint64_t expected, js_cb cb, void *arg)
{
    return kv_write(e, bucket, key, value, len, expected, false, cb, arg);
}

int js_kv_delete(struct engine *e, const char *bucket, const char *key, uint64_t expected, js_cb cb,
                 void *arg)
{
    return kv_write(e, bucket, key, NULL, 0, expected, true, cb, arg);
}

int js_kv_get_direct(struct engine *e, const char *bucket, const char *key, js_cb cb, void *arg)
{
    struct op *op = op_new(e, OP_DIRECT_GET, cb, arg);
    if (op == NULL)
        return -1;
    char stream[96], subject[JS_SUBJECT_MAX + 128], kv[JS_SUBJECT_MAX];
    js_kv_stream(bucket, stream, sizeof stream);
    js_kv_subject(bucket, key, kv, sizeof kv);
    snprintf(subject, sizeof subject, "$JS.API.DIRECT.GET.%s.%s", stream, kv);
    return op_send(op, subject, NULL, 0, NULL, 0);
}

int js_kv_get_leader(struct engine *e, const char *bucket, const char *key, js_cb cb, void *arg)
{
    struct op *op = op_new(e, OP_LEADER_GET, cb, arg);
    if (op == NULL)
        return -1;
    char stream[96], subject[160], kv[JS_SUBJECT_MAX], body[JS_SUBJECT_MAX + 32];
    js_kv_stream(bucket, stream, sizeof stream);
    js_kv_subject(bucket, key, kv, sizeof kv);
    snprintf(subject, sizeof subject, "$JS.API.STREAM.MSG.GET.%s", stream);
    snprintf(body, sizeof body, "{\"last_by_subj\":\"%s\"}", kv);
    return op_send(op, subject, NULL, 0, body, strlen(body));
}

int js_publish(struct engine *e, const char *subject, const struct engine_header *headers,
               size_t header_count, const void *data, size_t len, js_cb cb, void *arg)
{
    struct op *op = op_new(e, OP_WRITE, cb, arg);
    if (op == NULL)
        return -1;
    return op_send(op, subject, headers, header_count, data, len);
}

int js_msg_next(struct engine *e, const char *stream, const char *subject, uint64_t from, js_cb cb,
                void *arg)
{
    struct op *op = op_new(e, OP_LEADER_GET, cb, arg);
    if (op == NULL)
        return -1;
    char api[160], body[JS_SUBJECT_MAX + 64];
    snprintf(api, sizeof api, "$JS.API.STREAM.MSG.GET.%s", stream);
    snprintf(body, sizeof body, "{\"seq\":%" PRIu64 ",\"next_by_subj\":\"%s\"}", from ? from : 1,
             subject);
    return op_send(op, api, NULL, 0, body, strlen(body));
}

int js_msg_delete(struct engine *e, const char *stream, uint64_t seq, js_cb cb, void *arg)
{
    struct op *op = op_new(e, OP_API, cb, arg);
    if (op == NULL)
        return -1;
    char api[160], body[64];
    snprintf(api, sizeof api, "$JS.API.STREAM.MSG.DELETE.%s", stream);
    snprintf(body, sizeof body, "{\"seq\":%" PRIu64 ",\"no_erase\":true}", seq);
    return op_send(op, api, NULL, 0, body, strlen(body));
}
