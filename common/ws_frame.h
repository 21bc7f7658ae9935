/* ws_frame: follows the frame headers of the byte stream a WebSocket client sends (RFC 6455
 * §5.2) and says, as soon as a header shows it, that a frame is unmasked or announces a message
 * over the limit — before its payload comes. */
#ifndef PRESENCED_WS_FRAME_H
#define PRESENCED_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_frame_verdict {
    WS_FRAME_OK = 0,
    WS_FRAME_UNMASKED, /* a client frame without a mask (RFC 6455 §5.1: close 1002) */
    WS_FRAME_TOO_BIG,  /* a data frame whose message would pass the limit (errno 14, 1009) */
};

/* 16 bytes: one per WebSocket. */
struct ws_frame_scan {
    uint64_t left;    /* payload bytes of the current frame to come (its length, in a header) */
    uint32_t message; /* payload of the data message under way, as its frames announce it */
    uint8_t step;     /* where in a header the next byte falls (enum in ws_frame.c) */
    uint8_t rest;     /* bytes of the length or of the mask key still to come */
    uint8_t first;    /* the header's first byte: FIN and opcode */
    bool seen : 1;    /* a byte has been scanned */
    bool done : 1;    /* a verdict was given: nothing more is looked at */
};

/* Scans the next len bytes of the stream (scan starts zeroed, at a frame boundary). Returns
 * WS_FRAME_OK, or the first violation, once; after it the rest of the stream is not looked
 * at. A message is too big when the payload of its data frames passes max_message (below
 * 2^32). */
enum ws_frame_verdict ws_frame_scan(struct ws_frame_scan *scan, const unsigned char *bytes,
                                    size_t len, uint64_t max_message);

#endif
