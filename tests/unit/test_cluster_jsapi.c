/* Unit tests: the engine's answers parsed (cluster/jsapi.c) — PubAcks and the JetStream errors
 * presenced acts on, leader-get messages with their header blocks, ack subjects, times. The
 * answers are those nats-server 2.9.10 gave (captured with tests/tools/engine_probe), and the
 * node record's JSON (cluster/node_record.c). */
#include "tap.h"

#include "../../cluster/jsapi.h"
#include "../../cluster/node_record.h"

#define S(text) text, sizeof text - 1

static void test_puback(void)
{
    struct js_puback ack;
    struct js_error err;
    is_int(js_puback_parse(S("{\"stream\":\"KV_pd_u3\",\"seq\":26505}"), &ack, &err), JS_PARSED,
           "a PubAck");
    is_str(ack.stream, "KV_pd_u3", "its stream");
    ok(ack.seq == 26505 && !ack.duplicate, "its sequence");
    is_int(js_puback_parse(S("{\"stream\":\"PD_Q\",\"seq\":7,\"duplicate\":true}"), &ack, &err),
           JS_PARSED, "a duplicate's PubAck");
    ok(ack.duplicate, "says duplicate");
    is_int(js_puback_parse(S("{\"error\":{\"code\":400,\"err_code\":10071,\"description\":"
                             "\"wrong last sequence: 26504\"},\"stream\":\"KV_users\",\"seq\":0}"),
                           &ack, &err),
           JS_API_ERROR, "a lost compare-and-set");
    is_int(err.err_code, JS_ERR_WRONG_LAST_SEQUENCE, "10071");
    is_int(err.code, 400, "code 400");
    is_str(err.description, "wrong last sequence: 26504", "description");
    is_int(js_puback_parse(S("{\"error\":{\"code\":503,\"err_code\":10077,\"description\":"
                             "\"maximum messages per subject exceeded\"}}"),
                           &ack, &err),
           JS_API_ERROR, "a full queue");
    is_int(err.err_code, JS_ERR_MAX_PER_SUBJECT, "10077");
    is_int(js_puback_parse(S("{\"stream\":\"x\",\"seq\":0}"), &ack, &err), JS_MALFORMED,
           "sequence 0 is no PubAck");
    is_int(js_puback_parse(S("{\"seq\":3}"), &ack, &err), JS_MALFORMED, "no stream");
    is_int(js_puback_parse(S("{\"stream\":\"x\",\"seq\":-3}"), &ack, &err), JS_MALFORMED,
           "negative sequence");
    is_int(js_puback_parse(S("{\"error\":\"no\"}"), &ack, &err), JS_MALFORMED,
           "an error of another shape");
    is_int(js_puback_parse(S("[1]"), &ack, &err), JS_MALFORMED, "not an object");
    is_int(js_puback_parse(S(""), &ack, &err), JS_MALFORMED, "empty (a no-responders status)");
}

static void test_api_result(void)
{
    struct js_error err;
    is_int(js_api_result(S("{\"type\":\"io.nats.jetstream.api.v1.stream_create_response\","
                           "\"error\":{\"code\":400,\"err_code\":10058,\"description\":\"stream "
                           "name already in use with a different configuration\"}}"),
                         &err),
           JS_API_ERROR, "stream create with another configuration");
    is_int(err.err_code, JS_ERR_STREAM_NAME_IN_USE, "10058");
    is_int(js_api_result(S("{\"type\":\"io.nats.jetstream.api.v1.stream_info_response\",\"error\""
                           ":{\"code\":404,\"err_code\":10059,\"description\":\"stream not "
                           "found\"},\"total\":0,\"offset\":0,\"limit\":0}"),
                         &err),
           JS_API_ERROR, "stream not found");
    is_int(err.err_code, JS_ERR_STREAM_NOT_FOUND, "10059");
    is_int(js_api_result(S("{\"type\":\"io.nats.jetstream.api.v1.stream_create_response\","
                           "\"did_create\":true}"),
                         &err),
           JS_PARSED, "a success");
}

static void test_msg_get(void)
{
    struct js_stored m;
    struct js_error err;
    is_int(js_msg_get_parse(
               S("{\"type\":\"io.nats.jetstream.api.v1.stream_msg_get_response\",\"message\":{"
                 "\"subject\":\"$KV.t1.k1\",\"seq\":4,\"hdrs\":\"TkFUUy8xLjANCk5hdHMtRXhwZWN0ZWQtT"
                 "GFzdC1TdWJqZWN0LVNlcXVlbmNlOiAzDQoNCg==\",\"data\":\"YmFjaw==\",\"time\":"
                 "\"2026-12-01T22:37:09.077595411Z\"}}"),
               &m, &err),
           JS_PARSED, "a leader get");
    is_str(m.subject, "$KV.t1.k1", "subject");
    ok(m.seq == 4, "sequence");
    ok(m.len == 4 && memcmp(m.data, "back", 4) == 0, "data decoded");
    ok(!m.deleted, "not a delete marker");
    ok(m.time_ms == 1796164629077LL, "time in ms (%lld)", (long long)m.time_ms);
    char value[32];
    is_int(js_header_get(m.hdrs, m.hdrs_len, "nats-expected-last-subject-sequence", value,
                         sizeof value),
           1, "a header, case-insensitive");
    is_str(value, "3", "its value");
    js_stored_free(&m);
    /* A delete marker: hdrs "NATS/1.0\r\nKV-Operation: DEL\r\n\r\n", no data. */
    is_int(js_msg_get_parse(S("{\"message\":{\"subject\":\"$KV.t1.k1\",\"seq\":3,\"hdrs\":"
                              "\"TkFUUy8xLjANCktWLU9wZXJhdGlvbjogREVMDQoNCg==\",\"time\":"
                              "\"2026-12-01T22:37:08Z\"}}"),
                            &m, &err),
           JS_PARSED, "a delete marker");
    ok(m.deleted && m.len == 0, "is deleted, without data");
    js_stored_free(&m);
    is_int(js_msg_get_parse(S("{\"type\":\"io.nats.jetstream.api.v1.stream_msg_get_response\","
                              "\"error\":{\"code\":404,\"err_code\":10037,\"description\":\"no "
                              "message found\"}}"),
                            &m, &err),
           JS_API_ERROR, "nothing there");
    is_int(err.err_code, JS_ERR_NO_MESSAGE, "10037");
    is_int(js_msg_get_parse(S("{\"message\":{\"subject\":\"a\",\"seq\":1,\"data\":\"Y!==\"}}"), &m,
                            &err),
           JS_MALFORMED, "bad base64");
    is_int(js_msg_get_parse(S("{\"message\":{\"subject\":\"a\",\"seq\":1,\"hdrs\":\"eA==\"}}"), &m,
                            &err),
           JS_MALFORMED, "a header block that is not one");
    is_int(js_msg_get_parse(S("{\"message\":{\"subject\":\"a\",\"seq\":1,\"time\":\"yesterday\"}}"),
                            &m, &err),
           JS_MALFORMED, "a time that is not one");
}

static void test_headers(void)
{
    char v[16];
    is_int(js_header_status(S("NATS/1.0\r\n\r\n")), 0, "no status");
    is_int(js_header_status(S("NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\n\r\n")),
           100, "a heartbeat's status");
    is_int(js_header_status(S("NATS/1.0 404\r\n\r\n")), 404, "a bare status");
    is_int(js_header_status(S("NATS/1.1\r\n\r\n")), -1, "another version");
    is_int(js_header_status(S("NATS/1.0 99\r\n\r\n")), -1, "a short status");
    is_int(js_header_status(S("NATS/1.0\r\nno colon\r\n\r\n")), -1, "a line without a colon");
    is_int(js_header_status(S("NATS/1.0\r\nA: b\r\n\r\nextra")), -1, "bytes after the end");
    is_int(js_header_get(S("NATS/1.0\r\nA: 1\r\nB:  two  \r\n\r\n"), "b", v, sizeof v), 1,
           "found");
    is_str(v, "two", "trimmed");
    is_int(js_header_get(S("NATS/1.0\r\nA: 1\r\n\r\n"), "C", v, sizeof v), 0, "absent");
    is_int(js_header_get(S("NATS/1.0\r\nA: 0123456789abcdefXYZ\r\n\r\n"), "A", v, sizeof v), -1,
           "too long for the caller is refused, not cut");
}

static void test_ack_subject(void)
{
    struct js_ack_info a;
    is_int(js_ack_subject_parse("$JS.ACK.KV_pd_nodes.Wz8kA3.1.42.7.1733090000123456789.0", &a), 0,
           "a 2.9 ack subject");
    is_str(a.stream, "KV_pd_nodes", "stream");
    is_str(a.consumer, "Wz8kA3", "consumer");
    ok(a.stream_seq == 42 && a.consumer_seq == 7 && a.pending == 0 && a.delivered == 1,
       "sequences");
    ok(a.time_ms == 1733090000123LL, "time");
    is_int(js_ack_subject_parse("$JS.ACK.hub.ACCHASH.S.C.1.2.3.4.5", &a), 0,
           "with domain and account hash");
    ok(a.stream_seq == 2 && a.consumer_seq == 3, "its sequences");
    is_int(js_ack_subject_parse("$JS.ACK.S.C.1.2.3.4", &a), -1, "too few tokens");
    is_int(js_ack_subject_parse("$JS.ACK.S.C.1.x.3.4.5", &a), -1, "a sequence not a number");
    is_int(js_ack_subject_parse("$JS.ACK.S.C.1.99999999999999999999.3.4.5", &a), -1,
           "a sequence past 2^64");
    is_int(js_ack_subject_parse("$JS.ACK..C.1.2.3.4.5", &a), -1, "an empty token");
    is_int(js_ack_subject_parse("_INBOX.x.1.2.3.4.5.6.7", &a), -1, "not an ack subject");
}

static void test_time(void)
{
    ok(js_time_parse("1970-01-01T00:00:00Z") == 0, "the epoch");
    ok(js_time_parse("2026-12-01T22:37:08.5Z") == 1796164628500LL, "a tenth");
    ok(js_time_parse("2026-12-01T23:37:08+01:00") == 1796164628000LL, "an offset");
    ok(js_time_parse("0001-01-01T00:00:00Z") == -1, "Go's zero time is no time");
    ok(js_time_parse("2026-13-01T00:00:00Z") == -1, "month 13");
    ok(js_time_parse("2026-12-01T22:37:08") == -1, "no zone");
    ok(js_time_parse("2026-12-01T22:37:08.Z") == -1, "an empty fraction");
}

static void test_node_record(void)
{
    struct cl_node n = { .name = "n1", .epoch = 7, .state = CL_NODE_ALIVE, .started_ms = 1000,
                         .beat = 12 };
    cl_node_pid_add(&n, 4242);
    cl_node_pid_add(&n, 4243);
    cl_node_pid_add(&n, 4242);
    is_int(n.dead_pid_count, 2, "a dead pid once");
    char json[CL_NODE_RECORD_MAX];
    long len = cl_node_encode(&n, json, sizeof json);
    ok(len > 0, "encoded: %s", json);
    struct cl_node back;
    const char *why = NULL;
    is_int(cl_node_decode(json, (size_t)len, "n1", &back, &why), 0, "decoded");
    ok(back.epoch == 7 && back.beat == 12 && back.started_ms == 1000 && back.dead_pid_count == 2,
       "fields kept");
    ok(cl_node_live(&back, 7, 1), "a live worker of the epoch");
    ok(!cl_node_live(&back, 7, 4243), "a dead worker");
    ok(cl_node_live(&back, 7, 0), "the incarnation itself is live");
    ok(!cl_node_live(&back, 6, 1), "another epoch is not");
    back.state = CL_NODE_DEAD;
    snprintf(back.declared_by, sizeof back.declared_by, "n2");
    len = cl_node_encode(&back, json, sizeof json);
    struct cl_node dead;
    is_int(cl_node_decode(json, (size_t)len, "n1", &dead, &why), 0, "a declared death");
    ok(dead.state == CL_NODE_DEAD && !cl_node_live(&dead, 7, 1), "nothing of it is live");
    is_str(dead.declared_by, "n2", "who declared it");
    cl_node_pid_remove(&dead, 4242);
    is_int(dead.dead_pid_count, 1, "a pid removed");
    is_int(cl_node_decode(S("{\"epoch\":0,\"state\":\"alive\"}"), "n1", &dead, &why), -1,
           "epoch 0 refused");
    is_int(cl_node_decode(S("{\"epoch\":1,\"state\":\"zombie\"}"), "n1", &dead, &why), -1,
           "an unknown state");
    is_int(cl_node_decode(S("{\"epoch\":1,\"state\":\"alive\",\"dead_pids\":[0]}"), "n1", &dead,
                          &why),
           -1, "pid 0");
    is_int(cl_node_decode(S("{\"epoch\":1,\"state\":\"alive\",\"declared_by\":\"N!\"}"), "n1",
                          &dead, &why),
           -1, "a declarer that is no node name");
}

static void test_heartbeat(void)
{
    char hb[CL_HEARTBEAT_MAX], name[CONFIG_NODE_NAME_MAX + 1];
    uint64_t epoch, seq;
    int n = cl_heartbeat_encode("node-1", 3, 99, hb, sizeof hb);
    is_str(hb, "node-1 3 99", "a heartbeat");
    is_int(cl_heartbeat_parse(hb, (size_t)n, name, &epoch, &seq), 0, "reads back");
    ok(strcmp(name, "node-1") == 0 && epoch == 3 && seq == 99, "name, epoch, sequence");
    is_int(cl_heartbeat_parse(S("n1 0 1"), name, &epoch, &seq), 0, "epoch 0: not registered yet");
    is_int(cl_heartbeat_parse(S("N1 1 1"), name, &epoch, &seq), -1, "a name node_name refuses");
    is_int(cl_heartbeat_parse(S("n1 1"), name, &epoch, &seq), -1, "no sequence");
    is_int(cl_heartbeat_parse(S("n1 1 2 3"), name, &epoch, &seq), -1, "a fourth word");
    is_int(cl_heartbeat_parse(S("n1 -1 2"), name, &epoch, &seq), -1, "a sign");
    is_int(cl_heartbeat_parse(S(" 1 2"), name, &epoch, &seq), -1, "no name");
}

int main(void)
{
    test_heartbeat();
    test_puback();
    test_api_result();
    test_msg_get();
    test_headers();
    test_ack_subject();
    test_time();
    test_node_record();
    return tap_done();
}
