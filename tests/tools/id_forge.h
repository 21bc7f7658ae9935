/* id_forge: what the identity tests and benchmarks make with OpenSSL — RSA, DSA, EC and Ed25519
 * keys, their BrowserID and JWK forms, JWS parts and JWTs signed with them (test code: no error
 * paths). */
#ifndef PRESENCED_ID_FORGE_H
#define PRESENCED_ID_FORGE_H

#include "../../common/b64url.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dsa.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static inline EVP_PKEY *key_generate(const char *type, int bits)
{
    EVP_PKEY *params = NULL, *key = NULL;
    if (strcmp(type, "RSA") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL);
    if (pctx == NULL || EVP_PKEY_paramgen_init(pctx) <= 0 ||
        EVP_PKEY_CTX_set_dsa_paramgen_bits(pctx, bits) <= 0 ||
        EVP_PKEY_CTX_set_dsa_paramgen_q_bits(pctx, bits == 1024 ? 160 : 256) <= 0 ||
        EVP_PKEY_paramgen(pctx, &params) <= 0) {
        EVP_PKEY_CTX_free(pctx);
        return NULL;
    }
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new(params, NULL);
    if (kctx == NULL || EVP_PKEY_keygen_init(kctx) <= 0 || EVP_PKEY_keygen(kctx, &key) <= 0)
        key = NULL;
    EVP_PKEY_CTX_free(kctx);
    EVP_PKEY_free(params);
    return key;
}

static inline void bn_text(EVP_PKEY *key, const char *name, bool hex, char *out, size_t len)
{
    BIGNUM *bn = NULL;
    EVP_PKEY_get_bn_param(key, name, &bn);
    char *text = hex ? BN_bn2hex(bn) : BN_bn2dec(bn);
    snprintf(out, len, "%s", text ? text : "");
    OPENSSL_free(text);
    BN_free(bn);
}

static inline char *key_json(EVP_PKEY *key, char *out, size_t len)
{
    char a[1100], b[1100], c[1100], d[1100];
    if (EVP_PKEY_is_a(key, "RSA")) {
        bn_text(key, OSSL_PKEY_PARAM_RSA_N, false, a, sizeof a);
        bn_text(key, OSSL_PKEY_PARAM_RSA_E, false, b, sizeof b);
        snprintf(out, len, "{\"algorithm\":\"RS\",\"n\":\"%s\",\"e\":\"%s\"}", a, b);
    } else {
        bn_text(key, OSSL_PKEY_PARAM_FFC_P, true, a, sizeof a);
        bn_text(key, OSSL_PKEY_PARAM_FFC_Q, true, b, sizeof b);
        bn_text(key, OSSL_PKEY_PARAM_FFC_G, true, c, sizeof c);
        bn_text(key, OSSL_PKEY_PARAM_PUB_KEY, true, d, sizeof d);
        snprintf(out, len,
                 "{\"algorithm\":\"DS\",\"p\":\"%s\",\"q\":\"%s\",\"g\":\"%s\",\"y\":\"%s\"}", a, b,
                 c, d);
    }
    return out;
}

/* Signs data as the JWS alg wants: RSA PKCS#1 v1.5, or DSA r || s of q bytes each. */
static inline size_t jws_sign(EVP_PKEY *key, const char *alg, const char *data, unsigned char *sig)
{
    const EVP_MD *md = strcmp(alg, "DS128") == 0 ? EVP_sha1() : EVP_sha256();
    unsigned char der[1024];
    size_t len = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, NULL, md, NULL, key);
    EVP_DigestSign(ctx, der, &len, (const unsigned char *)data, strlen(data));
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'R') {
        memcpy(sig, der, len);
        return len;
    }
    size_t half = strcmp(alg, "DS128") == 0 ? 20 : 32;
    const unsigned char *p = der;
    DSA_SIG *dsig = d2i_DSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r, *s;
    DSA_SIG_get0(dsig, &r, &s);
    BN_bn2binpad(r, sig, (int)half);
    BN_bn2binpad(s, sig + half, (int)half);
    DSA_SIG_free(dsig);
    return 2 * half;
}

static inline char *jws_make(EVP_PKEY *key, const char *alg, const char *payload)
{
    static char out[4][8192];
    static int next;
    char *buf = out[next++ % 4];
    char header[64], h[128], p[6000], s[700];
    snprintf(header, sizeof header, "{\"alg\":\"%s\"}", alg);
    b64url_encode((const unsigned char *)header, strlen(header), h);
    b64url_encode((const unsigned char *)payload, strlen(payload), p);
    snprintf(buf, 8192, "%s.%s", h, p);
    unsigned char sig[600];
    size_t sig_len = jws_sign(key, alg, buf, sig);
    b64url_encode(sig, sig_len, s);
    strcat(buf, ".");
    strcat(buf, s);
    return buf;
}

/* OpenID Connect side: EC and Ed25519 keys ("P-256", "P-384", "ED25519"), their JWK form, and
 * JWTs signed with RS*, PS256, ES* or EdDSA. */
static inline EVP_PKEY *key_generate_named(const char *name)
{
    if (strcmp(name, "ED25519") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", strcmp(name, "P-256") == 0 ? "P-256" : "P-384");
}

static inline void bn_b64(EVP_PKEY *key, const char *name, int width, char *out)
{
    BIGNUM *bn = NULL;
    unsigned char bytes[1100];
    EVP_PKEY_get_bn_param(key, name, &bn);
    int len = width > 0 ? width : BN_num_bytes(bn);
    BN_bn2binpad(bn, bytes, len);
    BN_free(bn);
    b64url_encode(bytes, (size_t)len, out);
}

static inline char *jwk_json(EVP_PKEY *key, const char *kid, char *out, size_t len)
{
    char a[1500], b[1500];
    if (EVP_PKEY_is_a(key, "RSA")) {
        bn_b64(key, OSSL_PKEY_PARAM_RSA_N, 0, a);
        bn_b64(key, OSSL_PKEY_PARAM_RSA_E, 0, b);
        snprintf(out, len, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}", kid, a, b);
    } else if (EVP_PKEY_is_a(key, "EC")) {
        char group[32];
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL);
        int width = strcmp(group, "prime256v1") == 0 ? 32 : 48;
        bn_b64(key, OSSL_PKEY_PARAM_EC_PUB_X, width, a);
        bn_b64(key, OSSL_PKEY_PARAM_EC_PUB_Y, width, b);
        snprintf(out, len, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}",
                 kid, width == 32 ? "P-256" : "P-384", a, b);
    } else {
        unsigned char raw[32];
        size_t raw_len = sizeof raw;
        EVP_PKEY_get_raw_public_key(key, raw, &raw_len);
        b64url_encode(raw, raw_len, a);
        snprintf(out, len, "{\"kty\":\"OKP\",\"kid\":\"%s\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", kid,
                 a);
    }
    return out;
}

/* The JWS signature of data: PKCS#1 v1.5, PSS, ECDSA as R || S, or Ed25519. */
static inline size_t jwt_sign(EVP_PKEY *key, const char *alg, const char *data, unsigned char *sig)
{
    const EVP_MD *md = strstr(alg, "384")   ? EVP_sha384()
                       : strstr(alg, "512") ? EVP_sha512()
                       : strcmp(alg, "EdDSA") == 0 ? NULL
                                                   : EVP_sha256();
    unsigned char der[1100];
    size_t len = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    EVP_DigestSignInit(ctx, &pctx, md, NULL, key);
    if (alg[0] == 'P') {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    EVP_DigestSign(ctx, der, &len, (const unsigned char *)data, strlen(data));
    EVP_MD_CTX_free(ctx);
    if (alg[0] != 'E' || strcmp(alg, "EdDSA") == 0) {
        memcpy(sig, der, len);
        return len;
    }
    int half = strstr(alg, "384") ? 48 : 32;
    const unsigned char *p = der;
    ECDSA_SIG *esig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    BN_bn2binpad(ECDSA_SIG_get0_r(esig), sig, half);
    BN_bn2binpad(ECDSA_SIG_get0_s(esig), sig + half, half);
    ECDSA_SIG_free(esig);
    return (size_t)(2 * half);
}

/* header.payload.signature, the header as given (JSON text); signed as alg says. */
static inline char *jwt_make_header(EVP_PKEY *key, const char *alg, const char *header,
                             const char *payload)
{
    static char out[4][16384];
    static int next;
    char *buf = out[next++ % 4];
    char h[1024], p[9000], s[1500];
    unsigned char sig[1100];
    b64url_encode((const unsigned char *)header, strlen(header), h);
    b64url_encode((const unsigned char *)payload, strlen(payload), p);
    snprintf(buf, 16384, "%s.%s", h, p);
    size_t sig_len = jwt_sign(key, alg, buf, sig);
    b64url_encode(sig, sig_len, s);
    strcat(buf, ".");
    strcat(buf, s);
    return buf;
}

static inline char *jwt_make(EVP_PKEY *key, const char *alg, const char *kid, const char *payload)
{
    char header[256];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg, kid);
    return jwt_make_header(key, alg, header, payload);
}

#endif
