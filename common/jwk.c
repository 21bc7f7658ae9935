/* jwk: JSON Web Keys and key sets (RFC 7517) of OpenID Connect issuers — RSA, EC P-256/P-384 and
 * Ed25519 — and the JWS algorithms over them (RFC 7518 §3, RFC 8037).
 *
 * The library choice. Debian 12 has libcjose 0.6.2 (the JOSE library mod_auth_openidc uses); we
 * use OpenSSL 3's EVP under this short file instead, because:
 *  - cjose 0.6.2 has no EdDSA (its JWS algorithms are RS*, PS*, ES* and HS*), which SPEC §3.1
 *    and the development issuer need;
 *  - it is built on Jansson: a second JSON library beside json-c, and every token parsed twice,
 *    since cjose checks a signature and nothing else (no claim, no alg policy);
 *  - what goes wrong in JWT verification in practice — alg "none", HS* keyed with a public key,
 *    an alg that does not fit the key, crit — is policy that would be ours either way;
 *  - it reaches OpenSSL through the RSA and EC_KEY interfaces OpenSSL 3 deprecates, and Debian
 *    has had to patch it for security (CVE-2023-37464, in its JWE code).
 * What is left here is small: base64url (common/b64url.c, shared with BrowserID), EVP_PKEYs built
 * from the JWK members with OSSL_PARAM, and EVP_DigestVerify. The cryptography is OpenSSL's. */
#include "jwk.h"

#include "b64url.h"
#include "file_read.h"
#include "json_strict.h"
#include "public_key.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RSA_MIN_BITS 2048 /* RFC 7518 §3.3: 2048 bits or larger */
#define RSA_MAX_BITS 8192
#define MEMBER_MAX 1100 /* base64url characters of an 8192-bit modulus, with room */

static const struct {
    const char *name;
    enum jwt_alg alg;
} alg_names[] = {
    { "RS256", JWT_RS256 }, { "RS384", JWT_RS384 }, { "RS512", JWT_RS512 }, { "PS256", JWT_PS256 },
    { "ES256", JWT_ES256 }, { "ES384", JWT_ES384 }, { "EdDSA", JWT_EDDSA },
};

int jwt_alg_parse(const char *name, enum jwt_alg *alg, const char **why)
{
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (strcmp(name, alg_names[i].name) == 0) {
            *alg = alg_names[i].alg;
            return 0;
        }
    if (strcmp(name, "none") == 0)
        *why = "alg none refused";
    else if (strncmp(name, "HS", 2) == 0)
        *why = "HMAC algorithms refused";
    else
        *why = "unsupported alg";
    return -1;
}

const char *jwt_alg_name(enum jwt_alg alg)
{
    for (size_t i = 0; i < sizeof alg_names / sizeof alg_names[0]; i++)
        if (alg_names[i].alg == alg)
            return alg_names[i].name;
    return "?";
}

static int fail(const char **why, const char *text)
{
    *why = text;
    return -1;
}

/* A base64url member of at most max decoded bytes into buf; its length, or -1. */
static long member_bytes(struct json_object *obj, const char *key, unsigned char *buf, size_t max)
{
    const char *text;
    size_t len;
    if (json_strict_string(obj, key, &text, &len) != 1 || len == 0 || len > MEMBER_MAX ||
        B64URL_DECODED_MAX(len) > max)
        return -1;
    return b64url_decode(text, len, buf);
}

static int rsa_key(struct json_object *obj, struct jwk *out, const char **why)
{
    unsigned char n_bytes[MEMBER_MAX], e_bytes[16];
    long n_len = member_bytes(obj, "n", n_bytes, sizeof n_bytes);
    long e_len = member_bytes(obj, "e", e_bytes, sizeof e_bytes);
    if (n_len <= 0 || e_len <= 0 || e_len > 8)
        return fail(why, "RSA key needs base64url n and e");
    BIGNUM *n = BN_bin2bn(n_bytes, (int)n_len, NULL), *e = BN_bin2bn(e_bytes, (int)e_len, NULL);
    int rc = -1;
    if (n == NULL || e == NULL) {
        *why = "out of memory";
        goto done;
    }
    out->bits = BN_num_bits(n);
    *why = "RSA key size must be from 2048 to 8192 bits";
    if (out->bits < RSA_MIN_BITS || out->bits > RSA_MAX_BITS)
        goto done;
    *why = "RSA key exponent must be odd and above 1";
    if (!BN_is_odd(e) || BN_is_one(e))
        goto done;
    out->pkey = public_key_rsa(n, e);
    *why = "RSA key rejected";
    if (out->pkey != NULL) {
        out->type = JWK_RSA;
        rc = 0;
    }
done:
    BN_free(n);
    BN_free(e);
    return rc;
}

/* x and y of the curve's size, a point on the curve (OpenSSL checks it, and the public check
 * makes sure). */
static int ec_key(struct json_object *obj, const char *crv, struct jwk *out, const char **why)
{
    bool p256 = strcmp(crv, "P-256") == 0;
    if (!p256 && strcmp(crv, "P-384") != 0)
        return fail(why, "EC key curve must be P-256 or P-384");
    size_t size = p256 ? 32 : 48;
    unsigned char point[1 + 2 * 48 + 4], coord[64];
    point[0] = POINT_CONVERSION_UNCOMPRESSED;
    long x_len = member_bytes(obj, "x", coord, sizeof coord);
    if (x_len != (long)size)
        return fail(why, "EC key x has not the curve's size");
    memcpy(point + 1, coord, size);
    long y_len = member_bytes(obj, "y", coord, sizeof coord);
    if (y_len != (long)size)
        return fail(why, "EC key y has not the curve's size");
    memcpy(point + 1 + size, coord, size);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        p256 ? "prime256v1" : "secp384r1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size))
        out->pkey = public_key_from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX *check = out->pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, out->pkey, NULL) : NULL;
    bool valid = check != NULL && EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    if (!valid) {
        EVP_PKEY_free(out->pkey);
        out->pkey = NULL;
        return fail(why, "EC key is not a point on its curve");
    }
    out->type = p256 ? JWK_P256 : JWK_P384;
    return 0;
}

static int okp_key(struct json_object *obj, const char *crv, struct jwk *out, const char **why)
{
    unsigned char x[40];
    if (strcmp(crv, "Ed25519") != 0)
        return fail(why, "OKP key curve must be Ed25519");
    if (member_bytes(obj, "x", x, sizeof x) != 32)
        return fail(why, "Ed25519 key x must be 32 bytes");
    out->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32);
    if (out->pkey == NULL)
        return fail(why, "Ed25519 key rejected");
    out->type = JWK_ED25519;
    return 0;
}

/* kid, use and alg: what says which tokens the key may check. */
static int key_labels(struct json_object *obj, struct jwk *out, const char **why)
{
    const char *text;
    size_t len;
    int has = json_strict_string(obj, "kid", &text, &len);
    if (has < 0 || (has == 1 && (len > JWK_KID_MAX || strlen(text) != len)))
        return fail(why, "key kid must be a string of at most 128 bytes");
    if (has == 1)
        memcpy(out->kid, text, len + 1);
    has = json_strict_string(obj, "use", &text, NULL);
    if (has < 0 || (has == 1 && strcmp(text, "sig") != 0))
        return fail(why, "key is not a signature key");
    has = json_strict_string(obj, "alg", &text, NULL);
    if (has < 0 || (has == 1 && jwt_alg_parse(text, &out->alg, why) != 0))
        return fail(why, "key alg is not one of ours");
    out->has_alg = has == 1;
    return 0;
}

int jwk_parse(struct json_object *obj, struct jwk *out, const char **why)
{
    memset(out, 0, sizeof *out);
    const char *kty, *crv = "";
    if (obj == NULL || !json_object_is_type(obj, json_type_object) ||
        json_strict_string(obj, "kty", &kty, NULL) != 1)
        return fail(why, "key needs a kty");
    if (key_labels(obj, out, why) != 0)
        return -1;
    if (json_strict_string(obj, "crv", &crv, NULL) < 0)
        return fail(why, "key crv is not a string");
    int rc;
    if (strcmp(kty, "RSA") == 0)
        rc = rsa_key(obj, out, why);
    else if (strcmp(kty, "EC") == 0)
        rc = ec_key(obj, crv, out, why);
    else if (strcmp(kty, "OKP") == 0)
        rc = okp_key(obj, crv, out, why);
    else
        rc = fail(why, "key kty must be RSA, EC or OKP");
    if (rc == 0 && out->has_alg && !jwk_fits(out, out->alg)) {
        EVP_PKEY_free(out->pkey);
        out->pkey = NULL;
        rc = fail(why, "key alg does not fit its kty or crv");
    }
    return rc;
}

void jwk_set_free(struct jwk_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        EVP_PKEY_free(set->keys[i].pkey);
    free(set->keys);
    set->keys = NULL;
    set->count = 0;
}

static int set_from_array(struct json_object *keys, struct jwk_set *out, size_t *skipped,
                          const char **why)
{
    size_t n = json_object_array_length(keys);
    if (n > 4 * JWKS_MAX_KEYS)
        return fail(why, "key set holds too many keys");
    out->keys = calloc(JWKS_MAX_KEYS, sizeof *out->keys);
    if (out->keys == NULL)
        return fail(why, "out of memory");
    const char *key_why = "key set holds no key";
    for (size_t i = 0; i < n; i++) {
        struct jwk key;
        if (jwk_parse(json_object_array_get_idx(keys, i), &key, &key_why) != 0) {
            (*skipped)++;
            continue;
        }
        if (out->count == JWKS_MAX_KEYS) {
            EVP_PKEY_free(key.pkey);
            return fail(why, "key set holds too many keys");
        }
        out->keys[out->count++] = key;
    }
    if (out->count == 0)
        return fail(why, key_why);
    return 0;
}

int jwk_set_parse(const char *text, size_t len, struct jwk_set *out, size_t *skipped,
                  const char **why)
{
    size_t ignored = 0;
    memset(out, 0, sizeof *out);
    if (skipped == NULL)
        skipped = &ignored;
    *skipped = 0;
    if (len > JWKS_DOC_MAX)
        return fail(why, "key set too large");
    struct json_object *root = json_strict_object(text, len), *keys;
    if (root == NULL)
        return fail(why, "key set is not a JSON object");
    int rc;
    if (json_object_object_get_ex(root, "keys", &keys)) {
        rc = json_object_is_type(keys, json_type_array) ? set_from_array(keys, out, skipped, why)
                                                        : fail(why, "key set keys is not an array");
    } else {
        /* One bare JWK. */
        struct json_object *one = json_object_new_array();
        rc = one == NULL ? fail(why, "out of memory") : 0;
        if (rc == 0) {
            json_object_array_add(one, json_object_get(root));
            rc = set_from_array(one, out, skipped, why);
            json_object_put(one);
        }
    }
    json_object_put(root);
    if (rc != 0)
        jwk_set_free(out);
    return rc;
}

int jwk_set_file_load(const char *path, struct jwk_set *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t len;
    enum file_read_error error;
    char *buf = file_read(path, JWKS_DOC_MAX, &len, &error);
    if (buf == NULL && error == FILE_READ_OPEN) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    const char *why = buf != NULL                ? NULL
                      : error == FILE_READ_MEMORY ? "out of memory"
                                                  : "read error";
    int rc = why == NULL ? jwk_set_parse(buf, len, out, NULL, &why) : -1;
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, why);
    free(buf);
    return rc;
}

int jwk_set_copy(struct jwk_set *dst, const struct jwk_set *src)
{
    dst->count = 0;
    dst->keys = src->count ? calloc(src->count, sizeof *dst->keys) : NULL;
    if (src->count && dst->keys == NULL)
        return -1;
    for (size_t i = 0; i < src->count; i++) {
        dst->keys[i] = src->keys[i];
        EVP_PKEY_up_ref(dst->keys[i].pkey);
    }
    dst->count = src->count;
    return 0;
}

bool jwk_set_has_kid(const struct jwk_set *set, const char *kid)
{
    for (size_t i = 0; i < set->count; i++)
        if (strcmp(set->keys[i].kid, kid) == 0)
            return true;
    return false;
}

bool jwk_fits(const struct jwk *key, enum jwt_alg alg)
{
    if (key->has_alg && key->alg != alg)
        return false;
    switch (alg) {
    case JWT_RS256:
    case JWT_RS384:
    case JWT_RS512:
    case JWT_PS256:
        return key->type == JWK_RSA;
    case JWT_ES256:
        return key->type == JWK_P256;
    case JWT_ES384:
        return key->type == JWK_P384;
    case JWT_EDDSA:
        return key->type == JWK_ED25519;
    }
    return false;
}

static const EVP_MD *alg_digest(enum jwt_alg alg)
{
    switch (alg) {
    case JWT_RS384:
    case JWT_ES384:
        return EVP_sha384();
    case JWT_RS512:
        return EVP_sha512();
    case JWT_EDDSA:
        return NULL;
    default:
        return EVP_sha256();
    }
}

static bool digest_verify(const struct jwk *key, enum jwt_alg alg, const unsigned char *data,
                          size_t len, const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool valid = ctx != NULL &&
                 EVP_DigestVerifyInit(ctx, &pctx, alg_digest(alg), NULL, key->pkey) == 1;
    /* PS256: PSS with MGF1 over SHA-256 and a salt as long as the digest (RFC 7518 §3.5). */
    if (valid && alg == JWT_PS256)
        valid = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1 &&
                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    valid = valid && EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    return valid;
}

/* R || S, each of the curve's size, into the DER form OpenSSL wants. */
static bool ecdsa_verify(const struct jwk *key, enum jwt_alg alg, const unsigned char *data,
                         size_t len, const unsigned char *sig, size_t sig_len)
{
    size_t half = key->type == JWK_P256 ? 32 : 48;
    if (sig_len != 2 * half)
        return false;
    ECDSA_SIG *esig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
    if (esig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(esig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(esig);
        return false;
    }
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(esig, &der);
    ECDSA_SIG_free(esig);
    bool valid = der_len > 0 && digest_verify(key, alg, data, len, der, (size_t)der_len);
    OPENSSL_free(der);
    return valid;
}

bool jwk_verify(const struct jwk *key, enum jwt_alg alg, const unsigned char *data, size_t len,
                const unsigned char *sig, size_t sig_len)
{
    if (key->pkey == NULL || !jwk_fits(key, alg))
        return false;
    switch (key->type) {
    case JWK_RSA:
        return sig_len == (size_t)(key->bits + 7) / 8 &&
               digest_verify(key, alg, data, len, sig, sig_len);
    case JWK_P256:
    case JWK_P384:
        return ecdsa_verify(key, alg, data, len, sig, sig_len);
    case JWK_ED25519:
        return sig_len == 64 && digest_verify(key, alg, data, len, sig, sig_len);
    }
    return false;
}

void jwk_ed25519_thumbprint(const unsigned char *x, char out[44])
{
    char x_text[44], members[128];
    unsigned char digest[SHA256_DIGEST_LENGTH];
    b64url_encode(x, 32, x_text);
    /* RFC 7638: the required members, in lexicographic order, without white space. */
    int n = snprintf(members, sizeof members, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}",
                     x_text);
    SHA256((const unsigned char *)members, (size_t)n, digest);
    b64url_encode(digest, sizeof digest, out);
}
