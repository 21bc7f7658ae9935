/* utf8: whether bytes are well-formed UTF-8 (RFC 3629), as RFC 6455 §8.1 requires of text. */
#ifndef PRESENCED_UTF8_H
#define PRESENCED_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when text holds only whole, shortest-form sequences of scalar values: no overlong form,
 * no surrogate (U+D800..U+DFFF), nothing above U+10FFFF, no sequence cut short. */
bool utf8_valid(const char *text, size_t len);
/* The length of the one well-formed sequence text starts with (1 to 4), or 0 when it does not
 * start with one (or len is 0). */
size_t utf8_sequence(const char *text, size_t len);

#endif
