/* device_msg: parsing and validation of the JSON messages a device sends on /presence.
 *
 * A parser of its own rather than json-c: a status update comes thousands of times a second,
 * and building a json-c tree for its few fields (a tokener, an object with its hash table, a
 * string object per member) cost more instructions than all the rest of the update. It takes
 * exactly what the json-c path takes (common/json_strict.c, then json-c): one RFC 8259 object,
 * whitespace around it, well-formed UTF-8 (common/utf8.c's table), no escaped lone surrogate,
 * nesting no deeper than json-c goes, no string carrying U+0000, and the last of members of the
 * same name. tests/fuzz/fuzz_device_msg.c compares the two on every input. */
#include "device_msg.h"

#include "../../common/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* json-c, made with a depth of 16 (as json_strict makes it), refuses a 16th level of nesting. */
#define MSG_DEPTH_MAX 15

struct scan {
    const unsigned char *p, *end;
    bool nul; /* a string carries an escaped U+0000 */
};

/* A member of the status update, as last seen (a later member of the same name wins, as in
 * json-c). */
struct field {
    const unsigned char *start, *stop; /* a string's contents, between its quotes */
    bool present;
    bool is_string;
    bool escaped; /* the string holds escapes: decode it */
};

enum field_name { F_EMAIL, F_STATUS, F_DEVICE, F_ASSERTION, F_TOKEN, F_ACTION, F_COUNT };

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void space_skip(struct scan *s)
{
    while (s->p < s->end && is_space(*s->p))
        s->p++;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The code unit of the \uXXXX escape at p (which points at the 'u'), or -1. */
static long escape_unit(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 5 || *p != 'u')
        return -1;
    long unit = 0;
    for (int i = 1; i <= 4; i++) {
        int digit = hex_value(p[i]);
        if (digit < 0)
            return -1;
        unit = unit << 4 | digit;
    }
    return unit;
}

/* The escape after a backslash, p at the character after it; returns what follows, or NULL. A
 * high surrogate must be followed by an escaped low one (RFC 8259 §7). */
static const unsigned char *escape_scan(struct scan *s, const unsigned char *p)
{
    if (p >= s->end)
        return NULL;
    if (*p != 'u')
        return memchr("\"\\/bfnrt", *p, 8) != NULL ? p + 1 : NULL;
    long unit = escape_unit(p, s->end);
    if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
        return NULL;
    if (unit == 0)
        s->nul = true;
    p += 5;
    if (unit < 0xD800 || unit > 0xDBFF)
        return p;
    if (s->end - p < 6 || p[0] != '\\')
        return NULL;
    long low = escape_unit(p + 1, s->end);
    return low >= 0xDC00 && low <= 0xDFFF ? p + 6 : NULL;
}

#define BYTES(b) (0x0101010101010101ull * (b))

/* Whether any of the eight bytes at p needs a look of its own: a quote, a backslash, a control
 * character or a byte of a multibyte sequence (the word tricks of "Bit Twiddling Hacks"). */
static bool eight_need_look(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    uint64_t quote = v ^ BYTES('"'), backslash = v ^ BYTES('\\');
    uint64_t zero_quote = (quote - BYTES(1)) & ~quote;
    uint64_t zero_backslash = (backslash - BYTES(1)) & ~backslash;
    uint64_t below_space = (v - BYTES(0x20)) & ~v;
    return ((zero_quote | zero_backslash | below_space | v) & BYTES(0x80)) != 0;
}

/* A string, s->p at its opening quote: its contents are [*start, *stop), s->p goes past the
 * closing quote. No raw control character, well-formed UTF-8, known escapes only. */
static int string_scan(struct scan *s, struct field *f)
{
    const unsigned char *p = s->p + 1;
    f->start = p;
    f->escaped = false;
    while (p < s->end) {
        while (s->end - p >= 8 && !eight_need_look(p))
            p += 8; /* plain ASCII text */
        /* The eight bytes (or what is left) where something needs a look: one at a time. */
        const unsigned char *window = s->end - p > 8 ? p + 8 : s->end;
        while (p < window) {
            unsigned char c = *p;
            if (c == '"') {
                f->stop = p;
                s->p = p + 1;
                return 0;
            }
            if (c >= 0x20 && c < 0x80 && c != '\\') {
                p++;
            } else if (c >= 0x80) {
                size_t n = utf8_sequence((const char *)p, (size_t)(s->end - p));
                if (n == 0)
                    return -1;
                p += n;
            } else if (c == '\\') {
                f->escaped = true;
                if ((p = escape_scan(s, p + 1)) == NULL)
                    return -1;
            } else {
                return -1; /* a raw control character, U+0000 among them */
            }
        }
    }
    return -1;
}

/* Writes code point cp as UTF-8 at out[n..] as far as cap allows; returns its length. */
static size_t utf8_put(uint32_t cp, char *out, size_t n, size_t cap)
{
    unsigned char bytes[4];
    size_t len;
    if (cp < 0x80) {
        bytes[0] = (unsigned char)cp;
        len = 1;
    } else if (cp < 0x800) {
        bytes[0] = (unsigned char)(0xC0 | cp >> 6);
        bytes[1] = (unsigned char)(0x80 | (cp & 0x3F));
        len = 2;
    } else if (cp < 0x10000) {
        bytes[0] = (unsigned char)(0xE0 | cp >> 12);
        bytes[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        bytes[2] = (unsigned char)(0x80 | (cp & 0x3F));
        len = 3;
    } else {
        bytes[0] = (unsigned char)(0xF0 | cp >> 18);
        bytes[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        bytes[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        bytes[3] = (unsigned char)(0x80 | (cp & 0x3F));
        len = 4;
    }
    for (size_t i = 0; i < len && n + i < cap; i++)
        out[n + i] = (char)bytes[i];
    return len;
}

/* The code point of the escape after a backslash (already checked by escape_scan); *p moves
 * past it. */
static uint32_t escape_decode(const unsigned char **p)
{
    unsigned char c = *(*p)++;
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return c; /* " \ / */
    }
    uint32_t unit = (uint32_t)escape_unit(*p - 1, *p + 4);
    *p += 4;
    if (unit < 0xD800 || unit > 0xDBFF)
        return unit;
    uint32_t low = (uint32_t)escape_unit(*p + 1, *p + 6);
    *p += 6;
    return 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
}

/* The contents of a string checked by string_scan, unescaped into out (at most cap bytes are
 * written); returns the whole length, which may be more than cap. */
static size_t string_decode(const struct field *f, char *out, size_t cap)
{
    if (!f->escaped) {
        size_t len = (size_t)(f->stop - f->start);
        memcpy(out, f->start, len < cap ? len : cap);
        return len;
    }
    size_t n = 0;
    for (const unsigned char *p = f->start; p < f->stop;) {
        if (*p != '\\') {
            if (n < cap)
                out[n] = (char)*p;
            n++;
            p++;
            continue;
        }
        p++;
        n += utf8_put(escape_decode(&p), out, n, cap);
    }
    return n;
}

static int value_skip(struct scan *s, int depth);

static int literal_skip(struct scan *s, const char *word, size_t len)
{
    if ((size_t)(s->end - s->p) < len || memcmp(s->p, word, len) != 0)
        return -1;
    s->p += len;
    return 0;
}

static int digits_skip(struct scan *s)
{
    const unsigned char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start ? 0 : -1;
}

static int number_skip(struct scan *s)
{
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (digits_skip(s) != 0)
        return -1;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digits_skip(s) != 0)
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits_skip(s) != 0)
            return -1;
    }
    return 0;
}

/* An array or an object nested at depth, s->p at its opening bracket. */
static int container_skip(struct scan *s, int depth, unsigned char close)
{
    if (depth > MSG_DEPTH_MAX)
        return -1;
    s->p++;
    space_skip(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        space_skip(s);
        if (close == '}') {
            struct field name;
            if (s->p >= s->end || *s->p != '"' || string_scan(s, &name) != 0)
                return -1;
            space_skip(s);
            if (s->p >= s->end || *s->p++ != ':')
                return -1;
        }
        if (value_skip(s, depth) != 0)
            return -1;
        space_skip(s);
        if (s->p >= s->end)
            return -1;
        unsigned char c = *s->p++;
        if (c == close)
            return 0;
        if (c != ',')
            return -1;
    }
}

/* Any value inside a container at depth. */
static int value_skip(struct scan *s, int depth)
{
    space_skip(s);
    if (s->p >= s->end)
        return -1;
    struct field ignored;
    switch (*s->p) {
    case '{':
        return container_skip(s, depth + 1, '}');
    case '[':
        return container_skip(s, depth + 1, ']');
    case '"':
        return string_scan(s, &ignored);
    case 't':
        return literal_skip(s, "true", 4);
    case 'f':
        return literal_skip(s, "false", 5);
    case 'n':
        return literal_skip(s, "null", 4);
    default:
        return number_skip(s);
    }
}

/* Which field of the update a member name is, or F_COUNT for any other. A name without
 * escapes (what client libraries write) is compared where it stands, without a copy. */
static enum field_name field_of(const struct field *name)
{
    char text[sizeof "assertion"];
    const char *at = text;
    size_t len;
    if (!name->escaped) {
        at = (const char *)name->start;
        len = (size_t)(name->stop - name->start);
    } else if ((len = string_decode(name, text, sizeof text)) > sizeof text) {
        return F_COUNT;
    }
    static const struct {
        const char *name;
        size_t len;
    } names[F_COUNT] = { [F_EMAIL] = { "email", 5 },
                         [F_STATUS] = { "status", 6 },
                         [F_DEVICE] = { "device", 6 },
                         [F_ASSERTION] = { "assertion", 9 },
                         [F_TOKEN] = { "token", 5 },
                         [F_ACTION] = { "action", 6 } };
    for (int i = 0; i < F_COUNT; i++)
        if (len == names[i].len && at[0] == names[i].name[0] &&
            memcmp(at, names[i].name, len) == 0)
            return (enum field_name)i;
    return F_COUNT;
}

/* One member of the top-level object: a name, a colon, a value. */
static int member_scan(struct scan *s, struct field *fields)
{
    struct field name;
    if (s->p >= s->end || *s->p != '"' || string_scan(s, &name) != 0)
        return -1;
    space_skip(s);
    if (s->p >= s->end || *s->p++ != ':')
        return -1;
    space_skip(s);
    enum field_name which = field_of(&name);
    if (which == F_COUNT)
        return value_skip(s, 1);
    struct field *f = &fields[which];
    f->present = true;
    f->is_string = s->p < s->end && *s->p == '"';
    return f->is_string ? string_scan(s, f) : value_skip(s, 1);
}

/* The whole text: one object and whitespace around it. *members counts its members. */
static int object_scan(struct scan *s, struct field *fields, size_t *members)
{
    *members = 0;
    space_skip(s);
    if (s->p >= s->end || *s->p++ != '{')
        return -1;
    space_skip(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        for (;;) {
            space_skip(s);
            if (member_scan(s, fields) != 0)
                return -1;
            (*members)++;
            space_skip(s);
            if (s->p >= s->end)
                return -1;
            unsigned char c = *s->p++;
            if (c == '}')
                break;
            if (c != ',')
                return -1;
        }
    }
    space_skip(s);
    return s->p == s->end ? 0 : -1;
}

static int failed(const char **error, int number, const char *text)
{
    *error = text;
    return number;
}

static int status_parse(const struct field *f, uint8_t *out)
{
    static const struct {
        const char *name;
        size_t len;
        uint8_t status;
    } table[] = {
        { "online", 6, SHM_STATUS_ONLINE },
        { "unavailable", 11, SHM_STATUS_UNAVAILABLE },
        { "offline", 7, SHM_STATUS_OFFLINE },
    };
    char text[sizeof "unavailable"];
    const char *at = text;
    size_t len;
    if (!f->escaped) { /* compared where it stands, as field_of does */
        at = (const char *)f->start;
        len = (size_t)(f->stop - f->start);
    } else {
        len = string_decode(f, text, sizeof text);
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (len == table[i].len && memcmp(at, table[i].name, len) == 0) {
            *out = table[i].status;
            return 0;
        }
    return -1;
}

/* A credential's text: where it is in the message, or a decoded copy when it has escapes. */
static int credential_take(struct dev_msg *out, const struct field *f, const char **text,
                           size_t *len)
{
    if (!f->present)
        return 0;
    if (!f->escaped) {
        *text = (const char *)f->start;
        *len = (size_t)(f->stop - f->start);
        return 0;
    }
    size_t raw = (size_t)(f->stop - f->start); /* never shorter than what it decodes to */
    out->decoded = malloc(raw > 0 ? raw : 1);
    if (out->decoded == NULL)
        return -1;
    *len = string_decode(f, out->decoded, raw);
    *text = out->decoded;
    return 0;
}

/* The checks of a status update, in the order the errors are reported. */
static int status_fields(struct dev_msg *out, const struct field *f, const char **error)
{
    out->kind = DEV_MSG_STATUS;
    size_t len;
    if (!f[F_EMAIL].is_string ||
        (len = string_decode(&f[F_EMAIL], out->email, SHM_EMAIL_MAX)) == 0 || len > SHM_EMAIL_MAX)
        return failed(error, 11, "missing or invalid field: email");
    out->email[len] = '\0';
    if (!f[F_STATUS].is_string)
        return failed(error, 11, "missing or invalid field: status");
    out->device_given = f[F_DEVICE].present;
    if (!f[F_DEVICE].present) {
        memcpy(out->device, "default", sizeof "default");
    } else if (!f[F_DEVICE].is_string ||
               (len = string_decode(&f[F_DEVICE], out->device, SHM_DEVICE_MAX)) == 0 ||
               len > SHM_DEVICE_MAX) {
        return failed(error, 11, "invalid field: device (a string of 1 to 64 bytes)");
    } else {
        out->device[len] = '\0';
    }
    if (f[F_ASSERTION].present && !f[F_ASSERTION].is_string)
        return failed(error, 11, "invalid field: assertion");
    if (f[F_TOKEN].present && !f[F_TOKEN].is_string)
        return failed(error, 11, "invalid field: token");
    if (f[F_ASSERTION].present && f[F_TOKEN].present)
        return failed(error, 11, "invalid fields: token and assertion together");
    if (status_parse(&f[F_STATUS], &out->status) != 0)
        return failed(error, 12, "unknown status value");
    if (credential_take(out, &f[F_ASSERTION], &out->assertion, &out->assertion_len) != 0 ||
        credential_take(out, &f[F_TOKEN], &out->token, &out->token_len) != 0)
        return failed(error, 60, "internal error");
    return 0;
}

/* A command: its action; the handler parses the rest (a command is rare, a json-c tree then is
 * no cost). */
static int command_fields(struct dev_msg *out, const struct field *f, const char *text,
                          size_t len, const char **error)
{
    if (!f[F_ACTION].is_string)
        return failed(error, 11, "invalid field: action");
    out->kind = DEV_MSG_COMMAND;
    out->action_len = string_decode(&f[F_ACTION], out->action, DEV_MSG_ACTION_MAX);
    out->action[out->action_len < DEV_MSG_ACTION_MAX ? out->action_len : DEV_MSG_ACTION_MAX] =
        '\0';
    out->text = text;
    out->text_len = len;
    return 0;
}

int dev_msg_parse(const char *text, size_t len, struct dev_msg *out, const char **error)
{
    struct field fields[F_COUNT] = { 0 };
    struct scan s = { (const unsigned char *)text, (const unsigned char *)text + len, false };
    size_t members;
    out->kind = DEV_MSG_PING;
    out->assertion = out->token = NULL;
    out->assertion_len = out->token_len = 0;
    out->decoded = NULL;
    out->action[0] = '\0';
    out->action_len = 0;
    out->text = NULL;
    out->text_len = 0;
    if (len > INT32_MAX || object_scan(&s, fields, &members) != 0)
        return failed(error, 10, "malformed JSON, or not an object");
    if (s.nul)
        return failed(error, 11, "a string carries U+0000");
    if (members == 0)
        return 0;
    if (fields[F_ACTION].present)
        return command_fields(out, fields, text, len, error);
    return status_fields(out, fields, error);
}

void dev_msg_free(struct dev_msg *msg)
{
    free(msg->decoded);
    msg->decoded = NULL;
}
