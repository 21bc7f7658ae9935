/* jwt: OpenID Connect ID tokens and OAuth 2 JWT access tokens (RFC 7519, RFC 9068) — parsing of
 * the compact JWS, the claims checks that need no key, and the signature against a key set
 * (SPEC.md §3.1). */
#ifndef PRESENCED_JWT_H
#define PRESENCED_JWT_H

#include "jwk.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX 16384     /* bytes of a whole token */
#define JWT_AUD_MAX 16    /* values of an aud array */
#define JWT_VALUE_MAX 255 /* bytes of an issuer or audience value presenced keeps */

struct jwt {
    enum jwt_alg alg;
    char kid[JWK_KID_MAX + 1]; /* "" when the header has none */
    const char *text;          /* the token (not NUL-terminated): header.payload is signed */
    size_t signed_len;
    unsigned char *sig;
    size_t sig_len;
    const char *iss;
    const char *aud[JWT_AUD_MAX];
    size_t aud_count;
    const char *azp;   /* NULL when absent */
    int64_t exp_ms;    /* -1 when absent */
    int64_t nbf_ms;    /* -1 when absent */
    int64_t iat_ms;    /* -1 when absent */
    const char *email; /* NULL when absent */
    int email_verified; /* 1 true, 0 false or absent */
    const char *nonce;  /* NULL when absent */
    struct json_object *payload; /* owns the strings above */
};

/* Parses a compact JWS: three base64url parts, at most JWT_MAX bytes; a header whose alg is ours
 * (none and HS* refused), without crit, whose typ (if any) is JWT or at+jwt; a payload object
 * with a string iss and a string or array aud. Checks no key and no time. Returns 0, or 34 with
 * *why set. */
int jwt_parse(const char *text, size_t len, struct jwt *out, const char **why);
void jwt_free(struct jwt *t);

/* aud holds one of the accepted values (errno 32), azp is one of them when aud has several
 * (32), exp is present and not past, nbf and iat not in the future, each with skew_ms (33).
 * Returns 0 or the errno with *why set; *matched is the accepted value aud held. */
int jwt_claims_check(const struct jwt *t, char *const *audiences, size_t audience_count,
                     int64_t now_ms, int64_t skew_ms, const char **matched, const char **why);

/* The verified e-mail: the email claim, a valid address, with email_verified true. Returns 0 or
 * 34 with *why set. */
int jwt_email_check(const struct jwt *t, const char **why);

/* The signature by a key of set: the one(s) of the token's kid, or without a kid every key the
 * alg fits. Returns 0, or 34 with *why set. */
int jwt_signature_check(const struct jwt *t, const struct jwk_set *set, const char **why);

#endif
