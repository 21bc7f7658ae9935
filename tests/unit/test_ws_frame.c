/* Unit tests of common/ws_frame: the verdicts on client frame headers, from the header alone. */
#include "tap.h"

#include "../../common/ws_frame.h"

#include <stdint.h>

#define MAX 4096

/* A client frame header announcing length, masked with a key unless unmasked. */
static size_t header(unsigned char *out, int fin, int opcode, uint64_t length, int masked)
{
    size_t n = 0;
    out[n++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    unsigned char mask = masked ? 0x80 : 0;
    if (length < 126) {
        out[n++] = (unsigned char)(mask | length);
    } else if (length < 65536) {
        out[n++] = mask | 126;
        out[n++] = (unsigned char)(length >> 8);
        out[n++] = (unsigned char)length;
    } else {
        out[n++] = mask | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (unsigned char)(length >> (8 * i));
    }
    if (masked)
        for (int i = 0; i < 4; i++)
            out[n++] = (unsigned char)(0x11 * (i + 1));
    return n;
}

/* Feeds bytes one at a time (every split point) and returns the first verdict. */
static enum ws_frame_verdict feed_bytewise(struct ws_frame_scan *scan, const unsigned char *p,
                                           size_t len)
{
    for (size_t i = 0; i < len; i++) {
        enum ws_frame_verdict v = ws_frame_scan(scan, p + i, 1, MAX);
        if (v != WS_FRAME_OK)
            return v;
    }
    return WS_FRAME_OK;
}

int main(void)
{
    unsigned char buf[20000];
    struct ws_frame_scan scan = { 0 };
    size_t n;

    ok(!scan.seen, "nothing seen yet");
    n = header(buf, 1, 1, 2, 1);
    buf[n++] = '{' ^ 0x11;
    buf[n++] = '}' ^ 0x22;
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_OK, "a masked {} is fine");
    ok(scan.seen, "seen");

    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 1, 1, (uint64_t)1 << 62, 1);
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_TOO_BIG,
           "2^62 bytes announced: too big from the header alone");
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_OK, "the verdict is given once");

    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 1, 1, (uint64_t)1 << 62, 1);
    is_int(feed_bytewise(&scan, buf, 10), WS_FRAME_TOO_BIG,
           "known once the length is whole, before the mask key");

    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 1, 2, UINT64_MAX >> 1 | (uint64_t)1 << 63, 1);
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_TOO_BIG, "bit 63 set: too big");

    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 1, 1, MAX + 1, 1);
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_TOO_BIG, "one byte over the limit");

    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 1, 1, MAX, 1);
    memset(buf + n, 'x', MAX);
    is_int(feed_bytewise(&scan, buf, n + MAX), WS_FRAME_OK, "exactly the limit, bytewise");
    n = header(buf, 1, 1, 0, 1);
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_OK, "then an empty frame");
    n = header(buf, 1, 1, 10, 0);
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_UNMASKED,
           "then an unmasked frame: the boundaries were followed");

    /* A message in fragments: the sum counts, control frames in between do not. */
    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 0, 1, 3000, 1);
    memset(buf + n, 'x', 3000);
    n += 3000;
    n += header(buf + n, 1, 9, 4, 1); /* a ping in between */
    memcpy(buf + n, "ping", 4);
    n += 4;
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_OK, "3000 bytes and a ping");
    n = header(buf, 0, 0, 1000, 1);
    memset(buf + n, 'y', 1000);
    n += 1000;
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_OK, "1000 more: 4000 so far");
    n = header(buf, 1, 0, 97, 1);
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_TOO_BIG,
           "a last fragment announcing 97 more: 4097, too big before its payload");

    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 0, 1, 3000, 1);
    memset(buf + n, 'x', 3000);
    n += 3000;
    n += header(buf + n, 1, 0, 1096, 1);
    memset(buf + n, 'x', 1096);
    n += 1096;
    n += header(buf + n, 1, 1, 4000, 1);
    memset(buf + n, 'x', 4000);
    n += 4000;
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_OK,
           "a message of 4096 in two fragments, then a new one of 4000");

    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 1, 9, 0, 0);
    is_int(ws_frame_scan(&scan, buf, n, MAX), WS_FRAME_UNMASKED, "an unmasked ping");
    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 1, 1, 300, 1);
    memset(buf + n, 0, 300);
    n += 300;
    n += header(buf + n, 1, 8, 2, 0);
    is_int(feed_bytewise(&scan, buf, n), WS_FRAME_UNMASKED, "an unmasked close after a frame");
    scan = (struct ws_frame_scan){ 0 };
    n = header(buf, 1, 1, 70000, 1);
    memset(buf + n, 0, 30);
    is_int(ws_frame_scan(&scan, buf, n + 30, (uint64_t)100000), WS_FRAME_OK,
           "a 64-bit length under a higher limit");
    ok(scan.left == 70000 - 30, "its payload is being skipped");
    return tap_done();
}
