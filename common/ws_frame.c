/* ws_frame: follows the frame headers of the byte stream a WebSocket client sends (RFC 6455
 * §5.2). Only headers are looked at: payload bytes are counted and skipped, never copied. */
#include "ws_frame.h"

enum {
    STEP_FIRST,  /* FIN, RSV, opcode */
    STEP_SECOND, /* MASK, payload length 0..127 */
    STEP_LENGTH, /* 2 or 8 bytes of extended length */
    STEP_KEY,    /* 4 bytes of mask key */
    STEP_PAYLOAD,
};

#define OPCODE(first) ((first)&0x0F)
#define IS_CONTROL(first) (((first)&0x08) != 0)
#define IS_FIN(first) (((first)&0x80) != 0)

/* The header's length is known: a data frame adds to its message, which must stay within
 * max_message (control frames, at most 125 bytes, are lws's to check). */
static enum ws_frame_verdict length_known(struct ws_frame_scan *scan, uint64_t max_message)
{
    if (IS_CONTROL(scan->first))
        return WS_FRAME_OK;
    uint64_t before = OPCODE(scan->first) == 0 ? scan->message : 0;
    if (scan->left > max_message || before > max_message - scan->left ||
        before + scan->left > UINT32_MAX)
        return WS_FRAME_TOO_BIG;
    scan->message = IS_FIN(scan->first) ? 0 : (uint32_t)(before + scan->left);
    return WS_FRAME_OK;
}

/* One header byte; the step after it. */
static enum ws_frame_verdict header_byte(struct ws_frame_scan *scan, unsigned char c,
                                         uint64_t max_message)
{
    switch (scan->step) {
    case STEP_FIRST:
        scan->first = c;
        scan->step = STEP_SECOND;
        return WS_FRAME_OK;
    case STEP_SECOND:
        if ((c & 0x80) == 0)
            return WS_FRAME_UNMASKED;
        scan->left = c & 0x7F;
        if (scan->left >= 126) {
            scan->rest = scan->left == 126 ? 2 : 8;
            scan->left = 0;
            scan->step = STEP_LENGTH;
            return WS_FRAME_OK;
        }
        break;
    case STEP_LENGTH:
        scan->left = scan->left << 8 | c;
        if (--scan->rest > 0)
            return WS_FRAME_OK;
        break;
    case STEP_KEY:
        if (--scan->rest == 0)
            scan->step = scan->left > 0 ? STEP_PAYLOAD : STEP_FIRST;
        return WS_FRAME_OK;
    }
    /* The length is complete: the mask key follows. */
    scan->step = STEP_KEY;
    scan->rest = 4;
    return length_known(scan, max_message);
}

enum ws_frame_verdict ws_frame_scan(struct ws_frame_scan *scan, const unsigned char *bytes,
                                    size_t len, uint64_t max_message)
{
    const unsigned char *p = bytes, *end = bytes + len;
    if (len > 0)
        scan->seen = true;
    while (p < end && !scan->done) {
        if (scan->step == STEP_PAYLOAD) {
            size_t take = (uint64_t)(end - p) < scan->left ? (size_t)(end - p) : (size_t)scan->left;
            p += take;
            scan->left -= take;
            if (scan->left == 0)
                scan->step = STEP_FIRST;
            continue;
        }
        enum ws_frame_verdict verdict = header_byte(scan, *p++, max_message);
        if (verdict != WS_FRAME_OK) {
            scan->done = true;
            return verdict;
        }
    }
    return WS_FRAME_OK;
}
