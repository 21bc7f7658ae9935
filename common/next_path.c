/* next_path: whether a sign-in's `next` is a path on this site as a browser reads it (SPEC 6).
 *
 * A browser's URL parser (WHATWG URL) removes every tab, LF and CR anywhere in a URL, reads '\'
 * as '/' in http and https URLs, and takes "//host" as another site: "/\t/evil.com" and
 * "/\evil.com" both go to evil.com. Refusing every control character leaves no character a
 * browser strips, so the first two characters decide. The same checks on the value with its
 * escapes decoded once keep "/%2F/evil.com" or "/%09/..." from turning into such a URL behind
 * a proxy or an app that decodes paths again; escapes further in (a grant's redirect=https%3A
 * %2F%2F...) are fine. */
#include "next_path.h"

#include "hex.h"

#include <stddef.h>
#include <string.h>

/* C0 controls, DEL, and C1 controls (U+0080..U+009F, two bytes in UTF-8). */
static bool has_control(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            return true;
        if (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
            return true;
    }
    return false;
}

static bool starts_local(const unsigned char *s, size_t len)
{
    return len >= 1 && s[0] == '/' && (len == 1 || (s[1] != '/' && s[1] != '\\'));
}

/* %XX decoded once into out (at least len bytes); a '%' without two hex digits stays. */
static size_t percent_decode(const unsigned char *s, size_t len, unsigned char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        bool escape =
            s[i] == '%' && i + 2 < len && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0;
        if (escape) {
            out[n++] = (unsigned char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    return n;
}

bool next_path_local(const char *next)
{
    if (next == NULL)
        return false;
    size_t len = strlen(next);
    const unsigned char *raw = (const unsigned char *)next;
    if (len == 0 || len > NEXT_PATH_MAX || has_control(raw, len) || !starts_local(raw, len))
        return false;
    unsigned char decoded[NEXT_PATH_MAX];
    size_t decoded_len = percent_decode(raw, len, decoded);
    return !has_control(decoded, decoded_len) && starts_local(decoded, decoded_len);
}
