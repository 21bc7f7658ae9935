/* push_crypto: Web Push message encryption, RFC 8291 (the "aes128gcm" content coding of RFC 8188
 * keyed by ECDH P-256 with the subscription's key and its authentication secret). */
#ifndef PRESENCED_PUSH_CRYPTO_H
#define PRESENCED_PUSH_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#define PUSH_P256_LEN 65 /* an uncompressed P-256 point: 0x04, x, y */
#define PUSH_AUTH_LEN 16 /* the subscription's authentication secret */
#define PUSH_SALT_LEN 16
/* salt, record size (be32), key id length, the sender's public key */
#define PUSH_HEADER_LEN (PUSH_SALT_LEN + 4 + 1 + PUSH_P256_LEN)
/* The header, the last-record delimiter and the AES-GCM tag. */
#define PUSH_OVERHEAD (PUSH_HEADER_LEN + 1 + 16)
/* Push services take at least 4096 bytes of body (RFC 8030 §7.2): one record that size. */
#define PUSH_BODY_MAX 4096
#define PUSH_PLAINTEXT_MAX (PUSH_BODY_MAX - PUSH_OVERHEAD)

struct evp_pkey_st;

/* What every message's encryption reuses — P-256's parameters, so that no key pair or imported
 * key builds the group anew (that costs as much as the ECDH). One per process (not shared
 * between threads). */
struct push_crypto;
struct push_crypto *push_crypto_new(void);
void push_crypto_free(struct push_crypto *c);

/* Whether p256dh is an uncompressed point on P-256 (what a subscription's keys.p256dh must be). */
bool push_public_key_valid(const unsigned char p256dh[PUSH_P256_LEN]);

/* Encrypts len bytes (at most PUSH_PLAINTEXT_MAX) to the subscription (ua_public, auth) with a
 * new key pair and salt: out (len + PUSH_OVERHEAD bytes) gets the header and the one record,
 * *out_len their length. Returns 0, or -1 (a bad key, a plaintext too long, no memory). */
int push_encrypt(struct push_crypto *c, const unsigned char ua_public[PUSH_P256_LEN],
                 const unsigned char auth[PUSH_AUTH_LEN], const void *plaintext, size_t len,
                 unsigned char *out, size_t *out_len);

/* The same with the sender's key pair and salt given: for the test vector of RFC 8291
 * Appendix A. Never reuse a key pair or salt for another message. */
int push_encrypt_with(struct push_crypto *c, struct evp_pkey_st *as_key, const unsigned char salt[PUSH_SALT_LEN],
                      const unsigned char ua_public[PUSH_P256_LEN],
                      const unsigned char auth[PUSH_AUTH_LEN], const void *plaintext, size_t len,
                      unsigned char *out, size_t *out_len);

/* The uncompressed public point of a P-256 key. Returns 0 or -1. */
int push_p256_public(struct evp_pkey_st *key, unsigned char out[PUSH_P256_LEN]);

/* A P-256 key pair from its private scalar (32 bytes, big-endian), as the test vectors give
 * it; NULL when it is not one. */
struct evp_pkey_st *push_p256_from_private(const unsigned char d[32]);

#endif
