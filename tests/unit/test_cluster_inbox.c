/* Unit tests: what a worker tells another node's worker through the engine (cluster/inbox.c) —
 * CLOSE, DELIVER and EARLY written and read back, and what is refused. */
#include "tap.h"

#include "../../cluster/inbox.h"

#define S(text) text, sizeof text - 1
#define UK "0123456789abcdef0123456789abcdef"

static void test_close(void)
{
    char out[64];
    long n = cl_inbox_close_encode(18446744073709551615ULL, 52, out, sizeof out);
    is_str(out, "C 18446744073709551615 52", "a CLOSE");
    struct cl_inbox_msg m;
    is_int(cl_inbox_parse(out, (size_t)n, &m), 0, "reads back");
    ok(m.kind == CL_INBOX_CLOSE && m.conn == 18446744073709551615ULL && m.number == 52,
       "the connection and the errno");
    is_int(cl_inbox_close_encode(7, 61, out, 6), -1, "too small a buffer");
    is_int(cl_inbox_parse(S("C 7 0"), &m), -1, "errno 0 refused");
    is_int(cl_inbox_parse(S("C 7 1000"), &m), -1, "errno past 999 refused");
    is_int(cl_inbox_parse(S("C 07 52"), &m), -1, "a leading zero refused");
    is_int(cl_inbox_parse(S("C 7 52 "), &m), -1, "trailing bytes refused");
    is_int(cl_inbox_parse(S("C -7 52"), &m), -1, "a sign refused");
    is_int(cl_inbox_parse(S("C 18446744073709551616 52"), &m), -1, "past 64 bits refused");
    is_int(cl_inbox_parse(S("C 118446744073709551615 52"), &m), -1, "21 digits refused");
    is_int(cl_inbox_parse(S("X 7 52"), &m), -1, "an unknown kind refused");
    is_int(cl_inbox_parse(S("C"), &m), -1, "a bare kind refused");
}

static void test_deliver(void)
{
    size_t len;
    char *d = cl_inbox_deliver_encode(42, UK, 9, 1700000000123, S("{\"a\":1}"), &len);
    ok(d != NULL, "a DELIVER");
    ok(len == sizeof "D 42 " UK " 9 1700000000123\n{\"a\":1}" - 1 &&
           memcmp(d, "D 42 " UK " 9 1700000000123\n{\"a\":1}", len) == 0,
       "its text");
    struct cl_inbox_msg m;
    is_int(cl_inbox_parse(d, len, &m), 0, "reads back");
    ok(m.kind == CL_INBOX_DELIVER && m.conn == 42 && m.seq == 9 && m.queued_ms == 1700000000123,
       "connection, sequence, time");
    is_str(m.user_key, UK, "the user key");
    ok(m.json_len == 7 && memcmp(m.json, "{\"a\":1}", 7) == 0, "the notification");
    free(d);
    is_int(cl_inbox_parse(S("D 42 " UK " 9 1\n"), &m), -1, "no JSON refused");
    is_int(cl_inbox_parse(S("D 42 " UK " 0 1\n{}"), &m), -1, "sequence 0 refused");
    is_int(cl_inbox_parse(S("D 42 0123456789ABCDEF0123456789abcdef 9 1\n{}"), &m), -1,
           "an upper-case key refused");
    is_int(cl_inbox_parse(S("D 42 0123 9 1\n{}"), &m), -1, "a short key refused");
    is_int(cl_inbox_parse(S("D 42 " UK " 9 1 {}"), &m), -1, "no newline refused");
    is_int(cl_inbox_parse(S("D 42 " UK " 9 99999999999999999999\n{}"), &m), -1,
           "a time out of range refused");
}

static void test_early(void)
{
    size_t len;
    char *e = cl_inbox_deliver_encode(42, UK, 0, 1700000000123, S("{\"a\":1}"), &len);
    ok(e != NULL && len == sizeof "E 42 " UK " 1700000000123\n{\"a\":1}" - 1 &&
           memcmp(e, "E 42 " UK " 1700000000123\n{\"a\":1}", len) == 0,
       "sequence 0 makes an EARLY, without a sequence");
    struct cl_inbox_msg m;
    is_int(cl_inbox_parse(e, len, &m), 0, "reads back");
    ok(m.kind == CL_INBOX_EARLY && m.conn == 42 && m.seq == 0 && m.queued_ms == 1700000000123 &&
           m.json_len == 7 && memcmp(m.json, "{\"a\":1}", 7) == 0,
       "connection, no sequence, time, the notification");
    free(e);
    is_int(cl_inbox_parse(S("E 42 " UK " 1\n"), &m), -1, "no JSON refused");
    is_int(cl_inbox_parse(S("E 42 " UK " 9 1\n{}"), &m), -1, "a sequence refused");
    is_int(cl_inbox_parse(S("E 42 " UK "\n{}"), &m), -1, "no time refused");
}

static void test_subject(void)
{
    char out[CL_INBOX_SUBJECT_MAX];
    cl_inbox_subject("node-a", 4294967295U, out, sizeof out);
    is_str(out, "pd.w.node-a.4294967295", "the inbox subject");
}

int main(void)
{
    test_close();
    test_deliver();
    test_early();
    test_subject();
    return tap_done();
}
