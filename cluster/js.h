/* js: the JetStream operations presenced makes, over the engine client and without waiting —
 * streams and KV buckets made idempotently, compare-and-set writes and deletes, direct and
 * leader gets. Each answers once through its callback, on the loop. */
#ifndef PRESENCED_CLUSTER_JS_H
#define PRESENCED_CLUSTER_JS_H

#include "engine.h"
#include "jsapi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long any JetStream request waits for its answer before ENGINE_TIMEOUT. */
#define JS_REQUEST_TIMEOUT_MS 2000

enum js_outcome {
    JS_OK = 0,
    JS_CONFLICT = 1,    /* compare-and-set lost (10071): someone wrote first */
    JS_NOT_FOUND = 2,   /* no such key or message */
    JS_UNAVAILABLE = 3, /* timeout, no responders, no leader (503, 10008): retry later */
    JS_REFUSED = 4,     /* any other API error (err says which) */
    JS_BAD_ANSWER = -1, /* the answer could not be read */
};

/* The result of a write, a get or an API call. */
struct js_result {
    int outcome;         /* enum js_outcome */
    int engine_status;   /* enum engine_status of the request */
    struct js_error err; /* when outcome is JS_CONFLICT or JS_REFUSED */
    uint64_t seq;        /* a write's new revision, a get's revision */
    bool deleted;        /* a get found a delete marker (seq is its revision: write with it) */
    const void *value;   /* a get's value (valid during the callback) */
    size_t len;
    int64_t time_ms;  /* a get's write time (engine clock) */
    const char *json; /* an API call's answer (valid during the callback) */
    size_t json_len;
    const char *hdrs; /* a leader get's header block, NUL-terminated, or NULL */
    size_t hdrs_len;
};

typedef void (*js_cb)(void *arg, const struct js_result *result);

struct js_stream_spec {
    const char *name;
    const char *subjects; /* one subject filter, e.g. "$KV.pd_nodes.>" */
    int replicas;
    int64_t max_msgs_per_subject; /* -1: no limit */
    int64_t max_age_ms;           /* 0: none */
    bool discard_new, discard_new_per_subject, kv;
    int64_t duplicate_window_ms; /* 0: the server's default (2 min) */
};

/* Makes the stream, or brings an existing one to this configuration (create, and update on
 * "name in use with another configuration"). */
int js_stream_ensure(struct engine *e, const struct js_stream_spec *spec, js_cb cb, void *arg);
/* A KV bucket as every NATS client makes one (stream KV_<bucket>, subjects $KV.<bucket>.>),
 * history 1. */
int js_bucket_ensure(struct engine *e, const char *bucket, int replicas, int64_t max_age_ms,
                     js_cb cb, void *arg);

/* Writes value to bucket.key if its current revision is expected (0: the key never had one; a
 * deleted key's revision is its delete marker's). JS_CONFLICT when another write came first. */
int js_kv_update(struct engine *e, const char *bucket, const char *key, const void *value,
                 size_t len, uint64_t expected, js_cb cb, void *arg);
/* Whatever the revision: a write (the last one wins) and a delete marker. */
#define JS_ANY_REVISION UINT64_MAX
int js_kv_put(struct engine *e, const char *bucket, const char *key, const void *value,
              size_t len, js_cb cb, void *arg);
int js_kv_remove(struct engine *e, const char *bucket, const char *key, js_cb cb, void *arg);
/* Writes a delete marker under the same condition. */
int js_kv_delete(struct engine *e, const char *bucket, const char *key, uint64_t expected, js_cb cb,
                 void *arg);
/* The latest revision of bucket.key from any replica (fast, may be stale). JS_NOT_FOUND when
 * the key never had one; a delete marker comes as JS_OK with deleted set. */
int js_kv_get_direct(struct engine *e, const char *bucket, const char *key, js_cb cb, void *arg);
/* The same from the stream's leader: sees every write acknowledged before it. */
int js_kv_get_leader(struct engine *e, const char *bucket, const char *key, js_cb cb, void *arg);

/* Publishes to a stream's subject and answers with its PubAck (result->seq; a publish the
 * stream already had by its Nats-Msg-Id comes as JS_OK too). */
int js_publish(struct engine *e, const char *subject, const struct engine_header *headers,
               size_t header_count, const void *data, size_t len, js_cb cb, void *arg);
/* The first message of stream on subject at or after sequence from, from the stream's leader
 * (value, seq, time_ms, hdrs); JS_NOT_FOUND when there is none. */
int js_msg_next(struct engine *e, const char *stream, const char *subject, uint64_t from, js_cb cb,
                void *arg);
/* Removes message seq of stream; JS_NOT_FOUND when it is not there (any more). */
int js_msg_delete(struct engine *e, const char *stream, uint64_t seq, js_cb cb, void *arg);

/* Any API request ($JS.API.<what>) with a JSON body; the answer in result->json. */
int js_api(struct engine *e, const char *what, const char *json, js_cb cb, void *arg);

/* Subject and stream names of a bucket. */
void js_kv_subject(const char *bucket, const char *key, char *out, size_t cap);
void js_kv_stream(const char *bucket, char *out, size_t cap);

#endif
