/* inbox: what one node's worker tells another's through the engine — a CLOSE of one of its
 * connections (superseded: 52, kicked, fenced), a DELIVER of a queued notification to one of
 * its devices, and an EARLY copy of a notification sent as its publish starts (given to the
 * device at once; the DELIVER that follows the engine's acknowledgement then only deletes it
 * from the queue) — on the core subject pd.w.<node>.<pid> of the receiving worker. The codec
 * only: pure functions of bytes, fuzzed (tests/fuzz/fuzz_engine_reply.c), since what arrives
 * from the engine is outside input. */
#ifndef PRESENCED_CLUSTER_INBOX_H
#define PRESENCED_CLUSTER_INBOX_H

#include "record.h"

#include <stddef.h>
#include <stdint.h>

/* "pd.w." + node + "." + pid */
#define CL_INBOX_SUBJECT_MAX (5 + CONFIG_NODE_NAME_MAX + 1 + 10 + 1)
void cl_inbox_subject(const char *node, uint32_t pid, char *out, size_t cap);

enum cl_inbox_kind {
    CL_INBOX_CLOSE = 'C',   /* "C <conn> <errno>" */
    CL_INBOX_DELIVER = 'D', /* "D <conn> <user key> <seq> <queued ms>\n<json>" */
    CL_INBOX_EARLY = 'E',   /* "E <conn> <user key> <queued ms>\n<json>": no sequence yet */
};

struct cl_inbox_msg {
    int kind; /* enum cl_inbox_kind */
    uint64_t conn;
    int number;                         /* CLOSE: the errno to close with (52, 61…) */
    char user_key[CL_USER_KEY_LEN + 1]; /* DELIVER: whose queue it is in */
    uint64_t seq;                       /* DELIVER: its sequence in the queue stream; EARLY: 0 */
    int64_t queued_ms;                  /* DELIVER: when it was queued (wall ms) */
    const char *json;                   /* DELIVER: the notification object, into the input */
    size_t json_len;
};

/* The length written (NUL-terminated when it fits), or -1 when cap is too small. */
long cl_inbox_close_encode(uint64_t conn, int number, char *out, size_t cap);
/* A DELIVER, or with seq 0 an EARLY: malloc'd (the caller frees), *len its length; NULL when out
 * of memory. */
char *cl_inbox_deliver_encode(uint64_t conn, const char *user_key, uint64_t seq, int64_t queued_ms,
                              const char *json, size_t json_len, size_t *len);
/* Reads one message: 0, or -1 when it is anything else (unknown kind, numbers not decimal or
 * out of range, a user key that is not 32 lowercase hex, a DELIVER or EARLY without JSON). */
int cl_inbox_parse(const void *data, size_t len, struct cl_inbox_msg *out);

#endif
