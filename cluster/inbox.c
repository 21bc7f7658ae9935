/* inbox: the codec of what workers of different nodes tell each other through the engine (a
 * CLOSE of a connection, a DELIVER of a notification, its EARLY copy), on pd.w.<node>.<pid>. Text
 * with decimal numbers, so that `nats sub 'pd.w.>'` shows an operator what goes where. */
#include "inbox.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cl_inbox_subject(const char *node, uint32_t pid, char *out, size_t cap)
{
    snprintf(out, cap, "pd.w.%s.%" PRIu32, node, pid);
}

long cl_inbox_close_encode(uint64_t conn, int number, char *out, size_t cap)
{
    int n = snprintf(out, cap, "C %" PRIu64 " %d", conn, number);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

char *cl_inbox_deliver_encode(uint64_t conn, const char *user_key, uint64_t seq, int64_t queued_ms,
                              const char *json, size_t json_len, size_t *len)
{
    char head[160];
    int n = seq == 0 ? snprintf(head, sizeof head, "E %" PRIu64 " %s %" PRId64 "\n", conn, user_key,
                                queued_ms)
                     : snprintf(head, sizeof head, "D %" PRIu64 " %s %" PRIu64 " %" PRId64 "\n",
                                conn, user_key, seq, queued_ms);
    if (n < 0 || (size_t)n >= sizeof head)
        return NULL;
    char *out = malloc((size_t)n + json_len);
    if (out == NULL)
        return NULL;
    memcpy(out, head, (size_t)n);
    memcpy(out + n, json, json_len);
    *len = (size_t)n + json_len;
    return out;
}

/* A decimal number that fits in 64 bits, no sign, no leading zero but "0"; then end (or the
 * input's end when end is NUL). */
static bool number_read(const char **p, const char *stop, uint64_t *out, char end)
{
    const char *s = *p;
    uint64_t v = 0;
    size_t digits = 0;
    while (s < stop && *s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (++digits > 20 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        s++;
    }
    if (digits == 0 || (digits > 1 && **p == '0'))
        return false;
    if (end != '\0') {
        if (s >= stop || *s != end)
            return false;
        s++;
    } else if (s != stop)
        return false;
    *out = v;
    *p = s;
    return true;
}

static bool user_key_read(const char **p, const char *stop, char *out)
{
    const char *s = *p;
    if (stop - s < CL_USER_KEY_LEN + 1)
        return false;
    for (int i = 0; i < CL_USER_KEY_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        out[i] = c;
    }
    out[CL_USER_KEY_LEN] = '\0';
    if (s[CL_USER_KEY_LEN] != ' ')
        return false;
    *p = s + CL_USER_KEY_LEN + 1;
    return true;
}

int cl_inbox_parse(const void *data, size_t len, struct cl_inbox_msg *out)
{
    memset(out, 0, sizeof *out);
    const char *s = data, *stop = s + len;
    if (len < 2 || s[1] != ' ')
        return -1;
    out->kind = s[0];
    s += 2;
    uint64_t v;
    if (out->kind == CL_INBOX_CLOSE) {
        if (!number_read(&s, stop, &out->conn, ' ') || !number_read(&s, stop, &v, '\0') || v < 1 ||
            v > 999)
            return -1;
        out->number = (int)v;
        return 0;
    }
    if (out->kind != CL_INBOX_DELIVER && out->kind != CL_INBOX_EARLY)
        return -1;
    if (!number_read(&s, stop, &out->conn, ' ') || !user_key_read(&s, stop, out->user_key))
        return -1;
    if (out->kind == CL_INBOX_DELIVER && (!number_read(&s, stop, &out->seq, ' ') || out->seq == 0))
        return -1;
    if (!number_read(&s, stop, &v, '\n') || v > INT64_MAX || s == stop)
        return -1;
    out->queued_ms = (int64_t)v;
    out->json = s;
    out->json_len = (size_t)(stop - s);
    return 0;
}
