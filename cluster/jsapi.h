/* jsapi: what the engine (NATS JetStream 2.9) answers, parsed — PubAcks and API errors, stored
 * messages of a leader get, header blocks, the ack subjects of pushed messages. Pure functions
 * of bytes, fuzzed (tests/fuzz/fuzz_engine_reply.c): everything the engine sends is outside
 * input. */
#ifndef PRESENCED_CLUSTER_JSAPI_H
#define PRESENCED_CLUSTER_JSAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* JetStream error codes presenced acts on (nats-server server/errors.json). */
#define JS_ERR_WRONG_LAST_SEQUENCE 10071 /* compare-and-set lost: re-read, recompute, retry */
#define JS_ERR_NO_MESSAGE 10037          /* a leader get found nothing */
#define JS_ERR_NO_MESSAGE_DELETE 10057   /* a delete found nothing (taken already) */
#define JS_ERR_STREAM_NOT_FOUND 10059
#define JS_ERR_STREAM_NAME_IN_USE 10058 /* created with another configuration */
#define JS_ERR_MAX_PER_SUBJECT 10077    /* a full notification queue refused the publish */
#define JS_ERR_CONSUMER_NOT_FOUND 10014
#define JS_ERR_NOT_ENABLED 10039
#define JS_ERR_CLUSTER_NOT_AVAILABLE 10008 /* no quorum / no leader: retry later */

#define JS_NAME_MAX 64
#define JS_DESCRIPTION_MAX 160
#define JS_SUBJECT_MAX 256

struct js_error {
    int code;     /* HTTP-like: 400, 404, 503 … */
    int err_code; /* JS_ERR_* */
    char description[JS_DESCRIPTION_MAX];
};

struct js_puback {
    char stream[JS_NAME_MAX + 1];
    uint64_t seq;
    bool duplicate; /* a publish the stream had already (Nats-Msg-Id within its window) */
};

enum js_parse_result {
    JS_PARSED = 0,   /* a success answer */
    JS_API_ERROR = 1, /* an {"error":…} answer: *err filled */
    JS_MALFORMED = -1,
};

/* A publish's answer: {"stream":…,"seq":N[,"duplicate":true]} or {"error":{…}}. */
int js_puback_parse(const void *data, size_t len, struct js_puback *ack, struct js_error *err);

/* Any JetStream API answer (stream or consumer create, info, delete …): JS_PARSED when it is a
 * JSON object without "error", JS_API_ERROR with *err filled, or JS_MALFORMED. */
int js_api_result(const void *data, size_t len, struct js_error *err);

/* A stored message, from a leader get ($JS.API.STREAM.MSG.GET) or a direct get. data and hdrs
 * are the caller's to free (js_stored_free). */
struct js_stored {
    char subject[JS_SUBJECT_MAX + 1];
    uint64_t seq;
    int64_t time_ms;
    unsigned char *data;
    size_t len;
    char *hdrs; /* the NATS header block, NUL-terminated, or NULL */
    size_t hdrs_len;
    bool deleted; /* a KV delete or purge marker (KV-Operation: DEL / PURGE) */
};
void js_stored_free(struct js_stored *msg);

/* {"type":…,"message":{"subject","seq","hdrs"(base64),"data"(base64),"time"}} or an error
 * (JS_ERR_NO_MESSAGE when the subject has none). */
int js_msg_get_parse(const void *data, size_t len, struct js_stored *out, struct js_error *err);

/* The value of header key (case-insensitive, as NATS headers are) in a header block
 * "NATS/1.0[ status[ description]]\r\n(key: value\r\n)*\r\n": 1 with value copied (cap bytes,
 * NUL-terminated, too long is malformed), 0 when absent, -1 when the block is malformed. */
int js_header_get(const char *block, size_t len, const char *key, char *value, size_t cap);
/* The status of a header block: 0 when none (an ordinary message), else 100–999; -1 malformed. */
int js_header_status(const char *block, size_t len);

/* What the ack subject of a message a push consumer delivers says:
 * $JS.ACK[.<domain>.<account hash>].<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>
 * .<timestamp ns>.<pending>[.<token>] */
struct js_ack_info {
    char stream[JS_NAME_MAX + 1];
    char consumer[JS_NAME_MAX + 1];
    uint64_t delivered, stream_seq, consumer_seq, pending;
    int64_t time_ms;
};
int js_ack_subject_parse(const char *subject, struct js_ack_info *out);

/* An RFC 3339 time as the engine writes it (2024-05-01T10:00:00.123456789Z): wall ms, or -1. */
int64_t js_time_parse(const char *text);

/* Standard base64 (with padding, as Go's encoding/base64 writes it): the decoded length, or -1.
 * out must hold (len / 4) * 3 bytes. */
long js_base64_decode(const char *in, size_t len, unsigned char *out);

#endif
