/* Unit tests of common/retry_after: Retry-After as delay-seconds and as each form of HTTP-date
 * (RFC 9110 §10.2.3, §5.6.7), and what is no Retry-After. */
#include "tap.h"

#include "../../common/retry_after.h"

#include <string.h>

/* Wed, 02 Dec 2026 00:00:00 GMT. */
#define NOW ((time_t)1796169600)

static int64_t parse(const char *value)
{
    return retry_after_parse(value, strlen(value), NOW);
}

int main(void)
{
    is_int(parse("120"), 120, "delay-seconds");
    is_int(parse(" 2\r\n"), 2, "as a header line holds it: leading blank, CR LF after");
    is_int(parse("0"), 0, "zero: ask again at once");
    is_int(parse("999999999"), 999999999, "nine digits");
    is_int(parse("Wed, 02 Dec 2026 00:00:10 GMT"), 10, "an IMF-fixdate 10 s ahead");
    is_int(parse("Wednesday, 02-Dec-26 00:01:00 GMT"), 60, "the obsolete RFC 850 form");
    is_int(parse("Wed Dec  2 01:00:00 2026"), 3600, "the obsolete asctime form");
    is_int(parse("Tue, 01 Dec 2026 23:00:00 GMT"), 0, "a date already past: at once");
    is_int(parse(""), -1, "empty");
    is_int(parse("soon"), -1, "not a delay nor a date");
    is_int(parse("-5"), -1, "a negative delay");
    is_int(parse("1.5"), -1, "a fraction");
    char long_value[RETRY_AFTER_MAX + 2];
    memset(long_value, '1', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    is_int(parse(long_value), -1, "longer than RETRY_AFTER_MAX");
    return tap_done();
}
