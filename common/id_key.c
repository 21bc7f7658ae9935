/* id_key: BrowserID public keys (RS and DS in JSON) and the JWS signature algorithms over them. */
#include "id_key.h"

#include "json_strict.h"
#include "public_key.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <string.h>

#define RSA_MIN_BITS 1024
#define RSA_MAX_BITS 8192
/* Decimal digits of an 8192-bit number, and hex digits of a 2048-bit one, with room. */
#define DEC_MAX_DIGITS 2500
#define HEX_MAX_DIGITS 520

int id_alg_parse(const char *name, enum id_alg *alg)
{
    /* jwcrypto names an RS signature after its key's size (RS256 for RSA 2048, RS128 for RSA
     * 1024), both PKCS#1 v1.5 with SHA-256: RS128 is RS256, the key size coming from n. */
    static const struct {
        const char *name;
        enum id_alg alg;
    } table[] = { { "RS256", ID_ALG_RS256 },
                  { "RS128", ID_ALG_RS256 },
                  { "DS128", ID_ALG_DS128 },
                  { "DS256", ID_ALG_DS256 } };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) {
            *alg = table[i].alg;
            return 0;
        }
    return -1;
}

/* A positive number written in decimal (hex=false) or hex; NULL when absent or malformed. */
static BIGNUM *number_member(struct json_object *obj, const char *key, bool hex)
{
    const char *text;
    size_t len;
    if (json_strict_string(obj, key, &text, &len) != 1 || len == 0 ||
        len > (hex ? HEX_MAX_DIGITS : DEC_MAX_DIGITS) || strlen(text) != len)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!(hex ? (text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f') ||
                        (text[i] >= 'A' && text[i] <= 'F')
                  : (text[i] >= '0' && text[i] <= '9')))
            return NULL;
    BIGNUM *bn = NULL;
    int used = hex ? BN_hex2bn(&bn, text) : BN_dec2bn(&bn, text);
    if (used != (int)len || BN_is_zero(bn)) {
        BN_free(bn);
        return NULL;
    }
    return bn;
}

static int rs_key(struct json_object *obj, struct id_key *out, const char **why)
{
    BIGNUM *n = number_member(obj, "n", false), *e = number_member(obj, "e", false);
    int rc = -1;
    *why = "RS key needs decimal n and e";
    if (n == NULL || e == NULL)
        goto done;
    out->bits = BN_num_bits(n);
    *why = "RS key size must be from 1024 to 8192 bits";
    if (out->bits < RSA_MIN_BITS || out->bits > RSA_MAX_BITS)
        goto done;
    *why = "RS key exponent must be odd and above 1";
    if (!BN_is_odd(e) || BN_is_one(e) || BN_num_bits(e) > 64)
        goto done;
    out->pkey = public_key_rsa(n, e);
    *why = "RS key rejected";
    if (out->pkey != NULL) {
        out->type = 'R';
        rc = 0;
    }
done:
    BN_free(n);
    BN_free(e);
    return rc;
}

/* 1 < v < p: a generator or public value that is not degenerate. */
static bool in_group(const BIGNUM *v, const BIGNUM *p)
{
    return !BN_is_one(v) && BN_cmp(v, p) < 0;
}

static int ds_key(struct json_object *obj, struct id_key *out, const char **why)
{
    BIGNUM *p = number_member(obj, "p", true), *q = number_member(obj, "q", true),
           *g = number_member(obj, "g", true), *y = number_member(obj, "y", true);
    int rc = -1;
    *why = "DS key needs hex p, q, g and y";
    if (p == NULL || q == NULL || g == NULL || y == NULL)
        goto done;
    out->bits = BN_num_bits(p);
    out->qbits = BN_num_bits(q);
    *why = "DS key must be 1024/160 or 2048/256 bits";
    if (!((out->bits == 1024 && out->qbits == 160) || (out->bits == 2048 && out->qbits == 256)))
        goto done;
    *why = "DS key parameters out of range";
    if (!in_group(g, p) || !in_group(y, p))
        goto done;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld != NULL && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_FFC_P, p) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_FFC_Q, q) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_FFC_G, g) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, y))
        out->pkey = public_key_from_params("DSA", bld);
    OSSL_PARAM_BLD_free(bld);
    *why = "DS key rejected";
    if (out->pkey != NULL) {
        out->type = 'D';
        rc = 0;
    }
done:
    BN_free(p);
    BN_free(q);
    BN_free(g);
    BN_free(y);
    return rc;
}

int id_key_from_json(struct json_object *obj, struct id_key *out, const char **why)
{
    memset(out, 0, sizeof *out);
    const char *algorithm;
    if (obj == NULL || !json_object_is_type(obj, json_type_object) ||
        json_strict_string(obj, "algorithm", &algorithm, NULL) != 1) {
        *why = "public key needs an algorithm";
        return -1;
    }
    if (strcmp(algorithm, "RS") == 0)
        return rs_key(obj, out, why);
    if (strcmp(algorithm, "DS") == 0)
        return ds_key(obj, out, why);
    *why = "public key algorithm must be RS or DS";
    return -1;
}

void id_key_copy(struct id_key *dst, const struct id_key *src)
{
    *dst = *src;
    if (dst->pkey != NULL)
        EVP_PKEY_up_ref(dst->pkey);
}

void id_key_free(struct id_key *key)
{
    EVP_PKEY_free(key->pkey);
    memset(key, 0, sizeof *key);
}

static bool digest_verify(EVP_PKEY *pkey, const EVP_MD *md, const unsigned char *data, size_t len,
                          const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool valid = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey) == 1 &&
                 EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    return valid;
}

/* A DS signature is r || s, each q bytes wide; like PyBrowserID, leading zero bytes the signer
 * stripped are restored. OpenSSL wants the DER form. */
static bool ds_verify(const struct id_key *key, const EVP_MD *md, const unsigned char *data,
                      size_t len, const unsigned char *sig, size_t sig_len)
{
    size_t half = (size_t)key->qbits / 8;
    if (sig_len == 0 || sig_len > 2 * half)
        return false;
    unsigned char padded[64] = { 0 };
    memcpy(padded + 2 * half - sig_len, sig, sig_len);
    DSA_SIG *dsig = DSA_SIG_new();
    BIGNUM *r = BN_bin2bn(padded, (int)half, NULL), *s = BN_bin2bn(padded + half, (int)half, NULL);
    if (dsig == NULL || r == NULL || s == NULL || DSA_SIG_set0(dsig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        DSA_SIG_free(dsig);
        return false;
    }
    unsigned char *der = NULL;
    int der_len = i2d_DSA_SIG(dsig, &der);
    DSA_SIG_free(dsig);
    bool valid = der_len > 0 && digest_verify(key->pkey, md, data, len, der, (size_t)der_len);
    OPENSSL_free(der);
    return valid;
}

/* An RS signature is as wide as the modulus; jwcrypto (Persona's and early Firefox Accounts'
 * signer) writes it as a number, without its leading zero bytes — about one signature in 256.
 * Like Mozilla's verifier and PyBrowserID, the zeros are restored; OpenSSL wants the full width. */
static bool rs_verify(const struct id_key *key, const unsigned char *data, size_t len,
                      const unsigned char *sig, size_t sig_len)
{
    size_t width = (size_t)(key->bits + 7) / 8;
    if (sig_len == 0 || sig_len > width)
        return false;
    unsigned char padded[RSA_MAX_BITS / 8] = { 0 };
    memcpy(padded + width - sig_len, sig, sig_len);
    return digest_verify(key->pkey, EVP_sha256(), data, len, padded, width);
}

bool id_key_verify(const struct id_key *key, enum id_alg alg, const unsigned char *data, size_t len,
                   const unsigned char *sig, size_t sig_len)
{
    switch (alg) {
    case ID_ALG_RS256:
        return key->type == 'R' && rs_verify(key, data, len, sig, sig_len);
    case ID_ALG_DS128:
        return key->type == 'D' && key->qbits == 160 &&
               ds_verify(key, EVP_sha1(), data, len, sig, sig_len);
    case ID_ALG_DS256:
        return key->type == 'D' && key->qbits == 256 &&
               ds_verify(key, EVP_sha256(), data, len, sig, sig_len);
    }
    return false;
}
