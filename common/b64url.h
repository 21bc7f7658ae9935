/* b64url: strict base64url (RFC 4648 §5) as JWS uses it — no padding, no other characters. */
#ifndef PRESENCED_B64URL_H
#define PRESENCED_B64URL_H

#include <stddef.h>

/* The most bytes decoding len characters can give. */
#define B64URL_DECODED_MAX(len) (((len) / 4) * 3 + 2)
/* The characters encoding len bytes take, without the NUL. */
#define B64URL_ENCODED_LEN(len) (((len) / 3) * 4 + ((len) % 3 ? (len) % 3 + 1 : 0))

/* Decodes len characters into out (B64URL_DECODED_MAX(len) bytes). Refuses padding, any
 * character outside the alphabet, a length of 4k+1 and non-zero trailing bits. Returns the
 * decoded length, or -1. */
long b64url_decode(const char *in, size_t len, unsigned char *out);

/* Encodes len bytes into out (B64URL_ENCODED_LEN(len) + 1 bytes, NUL-terminated). */
void b64url_encode(const unsigned char *in, size_t len, char *out);

/* count random bytes (OpenSSL's RAND_bytes, count at most 64), encoded into out as
 * b64url_encode does: a token no one can guess. Returns 0, or -1 when there is no randomness. */
int b64url_random(size_t count, char *out);

#endif
