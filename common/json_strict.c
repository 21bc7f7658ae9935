/* json_strict: RFC 8259 parsing of a whole message into a json-c object, nothing accepted around
 * it, and no string that json-c would not hold whole: none carrying U+0000 (json-c ends member
 * names at it: "a\u0000b" became "a") and none with an escaped lone surrogate (json-c turns it
 * into U+FFFD). */
#include "json_strict.h"

#include "hex.h"
#include "utf8.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* json-c stops its nesting at this depth; messages here are two levels deep at most. */
#define JSON_STRICT_DEPTH 16

static int only_whitespace(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            return 0;
    return 1;
}

/* json-c's strict mode still takes single-quoted keys, so the grammar of RFC 8259 is checked
 * here first; json-c then builds the object (and checks UTF-8). */
struct scan {
    const char *p, *end;
    int depth;
    bool nul; /* a string carries an escaped U+0000 */
};

static int scan_value(struct scan *s);

static void scan_space(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

/* The code unit of the \uXXXX escape at p (which points at the 'u'), or -1. */
static long escape_unit(const char *p, const char *end)
{
    if (end - p < 5 || *p != 'u')
        return -1;
    unsigned unit = 0;
    for (int i = 1; i <= 4; i++) {
        int digit = hex_digit((unsigned char)p[i]);
        if (digit < 0)
            return -1;
        unit = unit << 4 | (unsigned)digit;
    }
    return (long)unit;
}

/* A \uXXXX escape, s->p at the 'u'; a high surrogate must be followed by an escaped low one
 * (RFC 8259 §7), so that the string is one of Unicode scalar values. */
static int scan_unicode_escape(struct scan *s)
{
    long unit = escape_unit(s->p, s->end);
    if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
        return -1;
    if (unit == 0)
        s->nul = true;
    s->p += 4;
    if (unit < 0xD800 || unit > 0xDBFF)
        return 0;
    if (s->end - s->p < 3 || s->p[1] != '\\')
        return -1;
    long low = escape_unit(s->p + 2, s->end);
    if (low < 0xDC00 || low > 0xDFFF)
        return -1;
    s->p += 6;
    return 0;
}

static int scan_string(struct scan *s)
{
    if (s->p >= s->end || *s->p != '"')
        return -1;
    for (s->p++; s->p < s->end; s->p++) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c != '\\')
            continue;
        if (++s->p >= s->end)
            return -1;
        if (*s->p == 'u') {
            if (scan_unicode_escape(s) != 0)
                return -1;
        } else if (strchr("\"\\/bfnrt", *s->p) == NULL || *s->p == '\0') {
            return -1;
        }
    }
    return -1;
}

static int scan_digits(struct scan *s)
{
    const char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start ? 0 : -1;
}

static int scan_number(struct scan *s)
{
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (scan_digits(s) != 0)
        return -1;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (scan_digits(s) != 0)
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (scan_digits(s) != 0)
            return -1;
    }
    return 0;
}

/* Members of an object or elements of an array, after the opening bracket. */
static int scan_container(struct scan *s, char close, int is_object)
{
    if (++s->depth > JSON_STRICT_DEPTH)
        return -1;
    s->p++;
    scan_space(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        scan_space(s);
        if (is_object) {
            if (scan_string(s) != 0)
                return -1;
            scan_space(s);
            if (s->p >= s->end || *s->p++ != ':')
                return -1;
        }
        if (scan_value(s) != 0)
            return -1;
        scan_space(s);
        if (s->p >= s->end)
            return -1;
        char c = *s->p++;
        if (c == close)
            break;
        if (c != ',')
            return -1;
    }
    s->depth--;
    return 0;
}

static int scan_value(struct scan *s)
{
    scan_space(s);
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '{':
        return scan_container(s, '}', 1);
    case '[':
        return scan_container(s, ']', 0);
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        return scan_number(s);
    }
}

/* JSON_STRICT_OK, JSON_STRICT_NUL, or JSON_STRICT_MALFORMED when not RFC 8259 grammar. */
static enum json_strict_result grammar_check(const char *text, size_t len)
{
    struct scan s = { text, text + len, 0, false };
    scan_space(&s);
    if (s.p >= s.end || *s.p != '{' || scan_value(&s) != 0)
        return JSON_STRICT_MALFORMED;
    scan_space(&s);
    if (s.p != s.end)
        return JSON_STRICT_MALFORMED;
    return s.nul ? JSON_STRICT_NUL : JSON_STRICT_OK;
}

enum json_strict_result json_strict_parse(const char *text, size_t len, struct json_object **out)
{
    *out = NULL;
    if (len > (size_t)INT32_MAX || memchr(text, '\0', len) != NULL || !utf8_valid(text, len))
        return JSON_STRICT_MALFORMED;
    enum json_strict_result grammar = grammar_check(text, len);
    if (grammar == JSON_STRICT_MALFORMED)
        return grammar;
    struct json_tokener *tok = json_tokener_new_ex(JSON_STRICT_DEPTH);
    if (tok == NULL)
        return JSON_STRICT_MALFORMED;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (obj == NULL || jerr != json_tokener_success || !only_whitespace(text + used, len - used) ||
        !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return JSON_STRICT_MALFORMED;
    }
    *out = obj;
    return grammar;
}

struct json_object *json_strict_object(const char *text, size_t len)
{
    struct json_object *obj;
    if (json_strict_parse(text, len, &obj) == JSON_STRICT_OK)
        return obj;
    json_object_put(obj);
    return NULL;
}

int json_strict_string(struct json_object *obj, const char *key, const char **out, size_t *len)
{
    struct json_object *member;
    if (!json_object_object_get_ex(obj, key, &member))
        return 0;
    if (!json_object_is_type(member, json_type_string))
        return -1;
    *out = json_object_get_string(member);
    if (len != NULL)
        *len = (size_t)json_object_get_string_len(member);
    return 1;
}
