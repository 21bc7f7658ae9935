/* utf8: whether bytes are well-formed UTF-8 (RFC 3629), as RFC 6455 §8.1 requires of text.
 * json-c's JSON_TOKENER_VALIDATE_UTF8 only catches sequences cut short (it takes overlong
 * forms, surrogates and code points above U+10FFFF), so the check is made here, by the table
 * of well-formed byte sequences of the Unicode Standard (§3.9, Table 3-7). */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

/* The range the second byte of a sequence may take after first byte c; the bytes after it are
 * 0x80..0xBF. *more is how many bytes follow c. False for a byte that cannot start one. */
static bool sequence_start(unsigned char c, unsigned char *low, unsigned char *high, int *more)
{
    *low = 0x80;
    *high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        *more = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        *more = 2;
    else if (c >= 0xF0 && c <= 0xF4)
        *more = 3;
    else
        return false; /* a continuation byte, C0/C1 (overlong), F5..FF (above U+10FFFF) */
    if (c == 0xE0)
        *low = 0xA0; /* below: an overlong form of U+0000..U+07FF */
    else if (c == 0xED)
        *high = 0x9F; /* above: the surrogates U+D800..U+DFFF */
    else if (c == 0xF0)
        *low = 0x90; /* below: an overlong form of U+0000..U+FFFF */
    else if (c == 0xF4)
        *high = 0x8F; /* above: past U+10FFFF */
    return true;
}

size_t utf8_sequence(const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    if (len == 0)
        return 0;
    if (*p < 0x80)
        return 1;
    unsigned char low, high;
    int more;
    if (!sequence_start(*p, &low, &high, &more) || len <= (size_t)more)
        return 0;
    if (p[1] < low || p[1] > high)
        return 0;
    for (int i = 2; i <= more; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return (size_t)more + 1;
}

bool utf8_valid(const char *text, size_t len)
{
    size_t at = 0;
    while (at < len) {
        /* Text is mostly ASCII: eight bytes at a time while none has its high bit set. */
        uint64_t eight;
        if (len - at >= 8 && (memcpy(&eight, text + at, 8), (eight & 0x8080808080808080ull) == 0)) {
            at += 8;
            continue;
        }
        size_t n = utf8_sequence(text + at, len - at);
        if (n == 0)
            return false;
        at += n;
    }
    return true;
}
