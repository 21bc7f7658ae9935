/* retry_after: an HTTP Retry-After value (RFC 9110 §10.2.3) as seconds to wait — what a push
 * service or another server says when it wants to be asked again later. */
#ifndef PRESENCED_RETRY_AFTER_H
#define PRESENCED_RETRY_AFTER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The longest header value looked at; a longer one is no Retry-After. */
#define RETRY_AFTER_MAX 187

/* value: the header's value as it came (len bytes, not NUL-terminated, leading blanks and a
 * trailing CR LF allowed). Returns the seconds to wait from now — delay-seconds (at most 9
 * digits), or an HTTP-date in any of its three forms (0 when already past) — or -1 when the
 * value is neither. */
int64_t retry_after_parse(const char *value, size_t len, time_t now);

#endif
