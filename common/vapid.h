/* vapid: the application server's identity to push services, RFC 8292 — a P-256 key (vapid_key)
 * and the ES256 JWT that signs each push request with it. */
#ifndef PRESENCED_VAPID_H
#define PRESENCED_VAPID_H

#include "push_crypto.h"

#include <stddef.h>
#include <stdint.h>

#define VAPID_PUBLIC_B64_LEN 87 /* base64url of the 65-byte point, without the NUL */
#define VAPID_AUDIENCE_MAX 300  /* "https://" host [":" port] */
#define VAPID_SUBJECT_MAX 256
/* "vapid t=" JWT ", k=" key: the JWT's header and claims are short and fixed in form. */
#define VAPID_AUTHORIZATION_MAX 1024
/* RFC 8292 §2: a token valid at most 24 hours; presenced signs for 12 and renews at 1 left. */
#define VAPID_TOKEN_TTL_S (12 * 3600)

struct evp_pkey_st;

struct vapid_key {
    struct evp_pkey_st *key;
    unsigned char public_key[PUSH_P256_LEN];
    char public_b64[VAPID_PUBLIC_B64_LEN + 1]; /* what GET /vapid and browsers use */
};

/* Loads a PEM P-256 private key (SEC 1 "EC PRIVATE KEY" or PKCS#8) from path. Returns 0, or -1
 * with why (for "file:line"-style messages) set. */
int vapid_key_load(const char *path, struct vapid_key *out, char *why, size_t why_len);
/* The same from a key already made (tests, the benchmark). Takes the reference. */
int vapid_key_from(struct evp_pkey_st *key, struct vapid_key *out);
void vapid_key_free(struct vapid_key *k);

/* Whether subject is what RFC 8292 §2.1 asks: a mailto: or https: URI. */
int vapid_subject_valid(const char *subject);

/* The audience of a push endpoint: its origin, "https://host[:port]" (the port only when not
 * 443). Returns 0, or -1 for an endpoint that is not an https URL with a host. */
int vapid_audience(const char *endpoint, char *out, size_t cap);

/* RFC 8030 §5.4: at most 32 characters of the base64url alphabet. */
#define VAPID_TOPIC_LEN 32

/* The Topic of a user's pushes (one per user, so a push service keeps only the latest pending
 * one): 24 bytes of HMAC-SHA-256 of the e-mail under a secret derived from the private key, in
 * base64url — stable for a key, and telling the push service nothing of the e-mail. */
int vapid_topic(const struct vapid_key *k, const char *email, char out[VAPID_TOPIC_LEN + 1]);

/* The Authorization header value "vapid t=<JWT>, k=<public key>" (RFC 8292 §3) for audience,
 * expiring at exp_s (seconds since the epoch) and naming subject. Returns its length, or -1. */
int vapid_authorization(const struct vapid_key *k, const char *audience, const char *subject,
                        int64_t exp_s, char *out, size_t cap);

#endif
