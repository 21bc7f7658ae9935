/* jwk: JSON Web Keys and key sets (RFC 7517) of OpenID Connect issuers — RSA, EC P-256/P-384 and
 * Ed25519 — and the JWS algorithms over them (RFC 7518 §3, RFC 8037). See jwk.c for why this is
 * our own code on OpenSSL 3's EVP and not libcjose. */
#ifndef PRESENCED_JWK_H
#define PRESENCED_JWK_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#define JWK_KID_MAX 128
#define JWKS_MAX_KEYS 32
#define JWKS_DOC_MAX 65536 /* bytes of a key set, a file or a jwks_uri answer */

/* The JWS algorithms a token may be signed with; none, HS* and every other name are refused. */
enum jwt_alg { JWT_RS256, JWT_RS384, JWT_RS512, JWT_PS256, JWT_ES256, JWT_ES384, JWT_EDDSA };

enum jwk_type { JWK_RSA, JWK_P256, JWK_P384, JWK_ED25519 };

struct evp_pkey_st;

struct jwk {
    char kid[JWK_KID_MAX + 1]; /* "" when the key has none */
    enum jwk_type type;
    int bits;           /* RSA: of n */
    bool has_alg;       /* the key names its algorithm ("alg"): only that one may use it */
    enum jwt_alg alg;
    struct evp_pkey_st *pkey;
};

struct jwk_set {
    struct jwk *keys;
    size_t count;
};

/* A JWS alg name → 0 with *alg set; -1 with *why saying why it is refused. */
int jwt_alg_parse(const char *name, enum jwt_alg *alg, const char **why);
const char *jwt_alg_name(enum jwt_alg alg);

/* One JWK object: kty RSA (n, e: 2048 to 8192 bits), EC (crv P-256 or P-384, x, y: a point on
 * the curve) or OKP (crv Ed25519, x). A key whose "use" is not "sig", or whose "alg" is not one of
 * ours, is refused. Returns 0, or -1 with *why set. */
int jwk_parse(struct json_object *obj, struct jwk *out, const char **why);

/* A key set {"keys":[…]} (or one bare JWK, the shorter form of a key file). Keys that cannot
 * serve (other types, encryption keys, malformed) are skipped and counted in *skipped (may be
 * NULL); a set without one usable key, or with more than JWKS_MAX_KEYS, is refused. Returns 0,
 * or -1 with *why set. */
int jwk_set_parse(const char *text, size_t len, struct jwk_set *out, size_t *skipped,
                  const char **why);
/* Reads a JWKS file; on error writes "path: reason" into err. */
int jwk_set_file_load(const char *path, struct jwk_set *out, char *err, size_t errlen);
/* Another reference to the same keys (each EVP_PKEY is reference-counted). Returns 0 or -1. */
int jwk_set_copy(struct jwk_set *dst, const struct jwk_set *src);
void jwk_set_free(struct jwk_set *set);
/* Whether a key of the set has this kid. */
bool jwk_set_has_kid(const struct jwk_set *set, const char *kid);

/* Whether alg may be used with key: its type and curve (RS and PS need RSA, ES256 P-256, ES384
 * P-384, EdDSA Ed25519) and the key's own alg when it names one. */
bool jwk_fits(const struct jwk *key, enum jwt_alg alg);

/* Whether sig is alg's JWS signature of data by key; false too when alg does not fit the key.
 * ECDSA signatures are R || S of the curve's size (RFC 7518 §3.4), RSA ones exactly the
 * modulus' size. */
bool jwk_verify(const struct jwk *key, enum jwt_alg alg, const unsigned char *data, size_t len,
                const unsigned char *sig, size_t sig_len);

/* The RFC 7638 thumbprint of an Ed25519 public key (32 bytes) in base64url: a kid. */
void jwk_ed25519_thumbprint(const unsigned char *x, char out[44]);

#endif
