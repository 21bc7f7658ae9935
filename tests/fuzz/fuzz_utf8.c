/* libFuzzer target: common/utf8 against a second, arithmetic decoder (code point by code point:
 * shortest form, no surrogate, nothing above U+10FFFF, nothing cut short). */
#include "../../common/utf8.h"

#include <stddef.h>
#include <stdint.h>

static bool reference_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        int more = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2
                                : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (more < 0 || len - i <= (size_t)more)
            return false;
        uint32_t cp = more == 0 ? c : c & (0x3F >> more);
        for (int k = 1; k <= more; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        static const uint32_t smallest[] = { 0, 0x80, 0x800, 0x10000 };
        if (cp < smallest[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += (size_t)more + 1;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (utf8_valid((const char *)data, size) != reference_valid(data, size))
        __builtin_trap();
    return 0;
}
