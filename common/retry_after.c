/* retry_after: an HTTP Retry-After value (RFC 9110 §10.2.3) as seconds to wait. The dates are
 * read by libcurl's curl_getdate, which takes the three forms RFC 9110 §5.6.7 says a recipient
 * must (IMF-fixdate, RFC 850, asctime), rather than a date parser of our own. */
#include "retry_after.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

int64_t retry_after_parse(const char *value, size_t len, time_t now)
{
    if (len > RETRY_AFTER_MAX)
        return -1;
    char text[RETRY_AFTER_MAX + 1];
    memcpy(text, value, len);
    text[len] = '\0';
    char *start = text + strspn(text, " \t");
    start[strcspn(start, "\r\n")] = '\0';
    size_t digits = strspn(start, "0123456789");
    if (start[0] != '\0' && start[digits] == '\0' && digits < 10)
        return strtoll(start, NULL, 10);
    time_t when = curl_getdate(start, NULL);
    if (when <= 0)
        return -1;
    return when > now ? (int64_t)(when - now) : 0;
}
