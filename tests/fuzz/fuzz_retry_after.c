/* libFuzzer target: a Retry-After header value as a push service may send it, through
 * retry_after_parse (common/retry_after.c): never a crash, never below -1, a CR LF after the
 * value changes nothing, and delay-seconds read as the number they are. */
#include "../../common/retry_after.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const time_t now = 1796169600; /* a fixed now: the same input, the same answer */
    const char *value = (const char *)data;
    int64_t seconds = retry_after_parse(value, size, now);
    if (seconds < -1)
        __builtin_trap();
    if (size + 2 <= RETRY_AFTER_MAX && memchr(value, '\r', size) == NULL &&
        memchr(value, '\n', size) == NULL) {
        char line[RETRY_AFTER_MAX];
        memcpy(line, value, size);
        memcpy(line + size, "\r\n", 2);
        if (retry_after_parse(line, size + 2, now) != seconds)
            __builtin_trap();
    }
    size_t digits = 0;
    while (digits < size && value[digits] >= '0' && value[digits] <= '9')
        digits++;
    if (size > 0 && digits == size && size < 10) {
        char number[10];
        memcpy(number, value, size);
        number[size] = '\0';
        if (seconds != strtoll(number, NULL, 10))
            __builtin_trap();
    }
    return 0;
}
