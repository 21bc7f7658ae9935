/* origin: the canonical text of a web origin, so that audiences compare as strings. */
#ifndef PRESENCED_ORIGIN_H
#define PRESENCED_ORIGIN_H

#include <stddef.h>

#define ORIGIN_MAX 300

/* Writes the canonical form of an origin (scheme://host[:port] with scheme http, https or app;
 * lower case; the default port 80 or 443 dropped) into out. Returns 0, or -1 when in is not an
 * origin (a path, a query or a user part make it something else). */
int origin_normalize(const char *in, char *out, size_t outlen);

#endif
