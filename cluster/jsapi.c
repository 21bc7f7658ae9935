/* jsapi: what the engine (NATS JetStream 2.9) answers, parsed — PubAcks and API errors, stored
 * messages of a leader get, header blocks, the ack subjects of pushed messages. json-c reads the
 * JSON (through json_strict, as every outside JSON is read); the rest is small enough to parse
 * here, byte by byte, with every length checked. */
#include "jsapi.h"

#include "../common/b64url.h"
#include "../common/json_strict.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void copy_bounded(char *out, size_t cap, const char *in)
{
    snprintf(out, cap, "%s", in != NULL ? in : "");
}

/* {"error":{"code":N,"err_code":N,"description":"…"}}: 1 when there, 0 when not, -1 when the
 * member is there but not of that shape. */
static int error_member(struct json_object *root, struct js_error *err)
{
    struct json_object *e, *v;
    if (!json_object_object_get_ex(root, "error", &e))
        return 0;
    if (!json_object_is_type(e, json_type_object))
        return -1;
    memset(err, 0, sizeof *err);
    if (json_object_object_get_ex(e, "code", &v) && json_object_is_type(v, json_type_int))
        err->code = (int)json_object_get_int64(v);
    if (json_object_object_get_ex(e, "err_code", &v) && json_object_is_type(v, json_type_int))
        err->err_code = (int)json_object_get_int64(v);
    if (json_object_object_get_ex(e, "description", &v) && json_object_is_type(v, json_type_string))
        copy_bounded(err->description, sizeof err->description, json_object_get_string(v));
    return err->code != 0 || err->err_code != 0 ? 1 : -1;
}

/* A JSON integer member of 0 to 2^63-1. */
static int uint_member(struct json_object *obj, const char *key, uint64_t *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    int64_t n = json_object_get_int64(v);
    if (n < 0)
        return -1;
    *out = (uint64_t)n;
    return 0;
}

int js_puback_parse(const void *data, size_t len, struct js_puback *ack, struct js_error *err)
{
    struct json_object *root = json_strict_object(data, len), *v;
    if (root == NULL)
        return JS_MALFORMED;
    int rc = error_member(root, err);
    if (rc != 0) {
        json_object_put(root);
        return rc > 0 ? JS_API_ERROR : JS_MALFORMED;
    }
    memset(ack, 0, sizeof *ack);
    rc = JS_MALFORMED;
    if (json_object_object_get_ex(root, "stream", &v) && json_object_is_type(v, json_type_string) &&
        json_object_get_string_len(v) > 0 && json_object_get_string_len(v) <= JS_NAME_MAX &&
        uint_member(root, "seq", &ack->seq) == 0 && ack->seq > 0) {
        copy_bounded(ack->stream, sizeof ack->stream, json_object_get_string(v));
        ack->duplicate = json_object_object_get_ex(root, "duplicate", &v) &&
                         json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
        rc = JS_PARSED;
    }
    json_object_put(root);
    return rc;
}

int js_api_result(const void *data, size_t len, struct js_error *err)
{
    struct json_object *root = json_strict_object(data, len);
    if (root == NULL)
        return JS_MALFORMED;
    int rc = error_member(root, err);
    json_object_put(root);
    return rc == 0 ? JS_PARSED : rc > 0 ? JS_API_ERROR : JS_MALFORMED;
}

void js_stored_free(struct js_stored *msg)
{
    free(msg->data);
    free(msg->hdrs);
    msg->data = NULL;
    msg->hdrs = NULL;
    msg->len = msg->hdrs_len = 0;
}

long js_base64_decode(const char *in, size_t len, unsigned char *out)
{
    if (len % 4 != 0)
        return -1;
    size_t pad = 0;
    while (pad < 2 && len > pad && in[len - 1 - pad] == '=')
        pad++;
    size_t body = len - pad;
    char *url = malloc(body + 1);
    if (url == NULL)
        return -1;
    for (size_t i = 0; i < body; i++) {
        char c = in[i];
        if (c == '-' || c == '_' || c == '=') { /* the other alphabet, or padding inside */
            free(url);
            return -1;
        }
        url[i] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    long n = b64url_decode(url, body, out);
    free(url);
    return n;
}

/* A base64 string member into a new NUL-terminated buffer; absent is an empty value. */
static int b64_member(struct json_object *obj, const char *key, unsigned char **out, size_t *len)
{
    struct json_object *v;
    *out = NULL;
    *len = 0;
    if (!json_object_object_get_ex(obj, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_string))
        return -1;
    size_t text_len = (size_t)json_object_get_string_len(v);
    unsigned char *buf = malloc(text_len / 4 * 3 + 1);
    if (buf == NULL)
        return -1;
    long n = js_base64_decode(json_object_get_string(v), text_len, buf);
    if (n < 0) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = (size_t)n;
    return 0;
}

static bool kv_marker(const char *hdrs, size_t len)
{
    char op[16];
    return hdrs != NULL && js_header_get(hdrs, len, "KV-Operation", op, sizeof op) == 1 &&
           (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0);
}

static int stored_fill(struct json_object *m, struct js_stored *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(m, "subject", &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) == 0 || json_object_get_string_len(v) > JS_SUBJECT_MAX ||
        uint_member(m, "seq", &out->seq) != 0 || out->seq == 0)
        return -1;
    copy_bounded(out->subject, sizeof out->subject, json_object_get_string(v));
    out->time_ms = 0;
    if (json_object_object_get_ex(m, "time", &v)) {
        if (!json_object_is_type(v, json_type_string) ||
            (out->time_ms = js_time_parse(json_object_get_string(v))) < 0)
            return -1;
    }
    unsigned char *hdrs;
    if (b64_member(m, "data", &out->data, &out->len) != 0 ||
        b64_member(m, "hdrs", &hdrs, &out->hdrs_len) != 0)
        return -1;
    out->hdrs = (char *)hdrs;
    if (out->hdrs != NULL && (memchr(out->hdrs, '\0', out->hdrs_len) != NULL ||
                              js_header_status(out->hdrs, out->hdrs_len) < 0))
        return -1;
    out->deleted = kv_marker(out->hdrs, out->hdrs_len);
    return 0;
}

int js_msg_get_parse(const void *data, size_t len, struct js_stored *out, struct js_error *err)
{
    memset(out, 0, sizeof *out);
    struct json_object *root = json_strict_object(data, len), *m;
    if (root == NULL)
        return JS_MALFORMED;
    int rc = error_member(root, err);
    if (rc != 0) {
        json_object_put(root);
        return rc > 0 ? JS_API_ERROR : JS_MALFORMED;
    }
    rc = JS_MALFORMED;
    if (json_object_object_get_ex(root, "message", &m) && json_object_is_type(m, json_type_object) &&
        stored_fill(m, out) == 0)
        rc = JS_PARSED;
    if (rc != JS_PARSED)
        js_stored_free(out);
    json_object_put(root);
    return rc;
}

/* The first line of a header block: "NATS/1.0", then optionally " NNN" and a description.
 * Returns the status (0 when none) and *line_end, or -1. */
static int status_line(const char *block, size_t len, size_t *line_end)
{
    static const char magic[] = "NATS/1.0";
    size_t m = sizeof magic - 1;
    const char *crlf = len >= 2 ? memmem(block, len, "\r\n", 2) : NULL;
    if (crlf == NULL || (size_t)(crlf - block) < m || memcmp(block, magic, m) != 0)
        return -1;
    size_t end = (size_t)(crlf - block);
    *line_end = end + 2;
    if (end == m)
        return 0;
    if (block[m] != ' ' || end < m + 4)
        return -1;
    int status = 0;
    for (size_t i = m + 1; i < m + 4; i++) {
        if (!isdigit((unsigned char)block[i]))
            return -1;
        status = status * 10 + (block[i] - '0');
    }
    if (end > m + 4 && block[m + 4] != ' ')
        return -1;
    return status >= 100 ? status : -1;
}

int js_header_status(const char *block, size_t len)
{
    size_t end;
    int status = status_line(block, len, &end);
    if (status < 0)
        return -1;
    /* The rest must be well formed too. */
    return js_header_get(block, len, "\x01", NULL, 0) < 0 ? -1 : status;
}

static bool trim_span(const char **start, const char **end)
{
    while (*start < *end && (**start == ' ' || **start == '\t'))
        (*start)++;
    while (*end > *start && ((*end)[-1] == ' ' || (*end)[-1] == '\t'))
        (*end)--;
    return *end > *start;
}

int js_header_get(const char *block, size_t len, const char *key, char *value, size_t cap)
{
    size_t pos;
    if (status_line(block, len, &pos) < 0)
        return -1;
    int found = 0;
    size_t key_len = strlen(key);
    while (pos < len) {
        const char *line = block + pos;
        const char *crlf = memmem(line, len - pos, "\r\n", 2);
        if (crlf == NULL)
            return -1;
        if (crlf == line) /* the blank line that ends the block */
            return pos + 2 == len ? found : -1;
        const char *colon = memchr(line, ':', (size_t)(crlf - line));
        if (colon == NULL || colon == line)
            return -1;
        const char *k = line, *k_end = colon, *v = colon + 1, *v_end = crlf;
        if (!trim_span(&k, &k_end))
            return -1;
        trim_span(&v, &v_end);
        if (found == 0 && (size_t)(k_end - k) == key_len && strncasecmp(k, key, key_len) == 0) {
            size_t n = (size_t)(v_end - v);
            if (value != NULL) {
                if (n >= cap)
                    return -1;
                memcpy(value, v, n);
                value[n] = '\0';
            }
            found = 1;
        }
        pos = (size_t)(crlf - block) + 2;
    }
    /* No blank line: a block cut short. The engine's own blocks end with one; a block that
     * ends right after its last header line is accepted too (cnats hands them so). */
    return found;
}

static int uint_token(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        uint64_t next = n * 10 + (uint64_t)(s[i] - '0');
        if (next / 10 != n)
            return -1;
        n = next;
    }
    *out = n;
    return 0;
}

int js_ack_subject_parse(const char *subject, struct js_ack_info *out)
{
    const char *tokens[14];
    size_t lens[14], count = 0;
    const char *p = subject;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (count == 14 || n == 0)
            return -1;
        tokens[count] = p;
        lens[count++] = n;
        if (dot == NULL)
            break;
        p = dot + 1;
    }
    /* 9 tokens (2.9: $JS ACK stream consumer delivered sseq cseq tm pending), or 11–12 with
     * the domain and account hash after ACK (and a random token at the end). */
    size_t at;
    if (count == 9)
        at = 2;
    else if (count == 11 || count == 12)
        at = 4;
    else
        return -1;
    if (lens[0] != 3 || memcmp(tokens[0], "$JS", 3) != 0 || lens[1] != 3 ||
        memcmp(tokens[1], "ACK", 3) != 0 || lens[at] > JS_NAME_MAX || lens[at + 1] > JS_NAME_MAX)
        return -1;
    memset(out, 0, sizeof *out);
    memcpy(out->stream, tokens[at], lens[at]);
    memcpy(out->consumer, tokens[at + 1], lens[at + 1]);
    uint64_t ns;
    if (uint_token(tokens[at + 2], lens[at + 2], &out->delivered) != 0 ||
        uint_token(tokens[at + 3], lens[at + 3], &out->stream_seq) != 0 ||
        uint_token(tokens[at + 4], lens[at + 4], &out->consumer_seq) != 0 ||
        uint_token(tokens[at + 5], lens[at + 5], &ns) != 0 ||
        uint_token(tokens[at + 6], lens[at + 6], &out->pending) != 0)
        return -1;
    out->time_ms = (int64_t)(ns / 1000000);
    return 0;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t js_time_parse(const char *text)
{
    /* YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM) */
    size_t len = strlen(text);
    if (len < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
        text[16] != ':')
        return -1;
    int year = digits(text, 4), mon = digits(text + 5, 2), day = digits(text + 8, 2);
    int hour = digits(text + 11, 2), min = digits(text + 14, 2), sec = digits(text + 17, 2);
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
        min < 0 || min > 59 || sec < 0 || sec > 60)
        return -1;
    const char *p = text + 19;
    int64_t ms = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n < 3)
                ms = ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return -1;
        for (; n < 3; n++)
            ms *= 10;
    }
    int64_t offset_s = 0;
    if (*p == 'Z')
        p++;
    else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59)
            return -1;
        offset_s = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
        p += 6;
    } else
        return -1;
    if (*p != '\0')
        return -1;
    struct tm tm = { .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day, .tm_hour = hour,
                     .tm_min = min, .tm_sec = sec };
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return ((int64_t)t - offset_s) * 1000 + ms;
}
