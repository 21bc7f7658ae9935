/* libFuzzer target: everything presenced reads from the cluster's engine — PubAck and API
 * error JSON, leader-get messages (base64 data and header blocks), header blocks, ack subjects,
 * times, heartbeats, node records, user records and workers' inbox messages (re-encoded, the
 * encoding must read back the same). */
#include "../../cluster/inbox.h"
#include "../../cluster/jsapi.h"
#include "../../cluster/node_record.h"
#include "../../cluster/record.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void user_record(const uint8_t *data, size_t size)
{
    struct cl_record rec, again;
    const char *why;
    if (cl_record_decode(&rec, data, size, &why) != 0) {
        if (why == NULL)
            __builtin_trap();
        return;
    }
    static unsigned char out[CL_RECORD_MAX];
    long len = cl_record_encode(&rec, out, sizeof out);
    if (len < 0 || (size_t)len != size || memcmp(out, data, size) != 0)
        __builtin_trap(); /* one encoding per record */
    if (cl_record_decode(&again, out, (size_t)len, &why) != 0)
        __builtin_trap();
    int64_t since;
    size_t alive;
    if (cl_record_effective(&rec, NULL, NULL, &since, &alive) > SHM_STATUS_ONLINE ||
        alive != rec.count)
        __builtin_trap();
    cl_record_free(&again);
    cl_record_free(&rec);
}

/* A worker's inbox message: what reads must write back the same. */
static void inbox_message(const uint8_t *data, size_t size)
{
    struct cl_inbox_msg m;
    if (cl_inbox_parse(data, size, &m) != 0)
        return;
    char out[64];
    size_t len = 0;
    char *again = NULL;
    if (m.kind == CL_INBOX_CLOSE) {
        long n = cl_inbox_close_encode(m.conn, m.number, out, sizeof out);
        if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
            __builtin_trap();
        return;
    }
    if ((again = cl_inbox_deliver_encode(m.conn, m.user_key, m.seq, m.queued_ms, m.json, m.json_len,
                                         &len)) == NULL)
        return;
    if (len != size || memcmp(again, data, size) != 0)
        __builtin_trap();
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct js_puback ack;
    struct js_error err;
    struct js_stored stored;
    js_puback_parse(data, size, &ack, &err);
    js_api_result(data, size, &err);
    if (js_msg_get_parse(data, size, &stored, &err) == JS_PARSED)
        js_stored_free(&stored);
    char value[64];
    js_header_status((const char *)data, size);
    js_header_get((const char *)data, size, "KV-Operation", value, sizeof value);
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct js_ack_info info;
    js_ack_subject_parse(text, &info);
    js_time_parse(text);
    unsigned char b64[4096];
    if (size / 4 * 3 <= sizeof b64)
        js_base64_decode(text, size, b64);
    free(text);
    struct cl_node node;
    const char *why;
    if (cl_node_decode(data, size, "n1", &node, &why) == 0) {
        char json[CL_NODE_RECORD_MAX];
        if (cl_node_encode(&node, json, sizeof json) < 0)
            __builtin_trap();
    }
    char name[CONFIG_NODE_NAME_MAX + 1];
    uint64_t epoch, seq;
    if (cl_heartbeat_parse(data, size, name, &epoch, &seq) == 0) {
        char hb[CL_HEARTBEAT_MAX];
        if (cl_heartbeat_encode(name, epoch, seq, hb, sizeof hb) < 0)
            __builtin_trap();
    }
    user_record(data, size);
    inbox_message(data, size);
    return 0;
}
