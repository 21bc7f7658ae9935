/* push_crypto: Web Push message encryption, RFC 8291 (the "aes128gcm" content coding of RFC 8188
 * keyed by ECDH P-256 with the subscription's key and its authentication secret).
 *
 * Every primitive is OpenSSL 3's (EVP: EC key generation and ECDH, the HKDF KDF, AES-128-GCM):
 * nothing of the cryptography is written here, only the key schedule of RFC 8291 §3.4 and the
 * layout of RFC 8188 §2. A message is always one record (a Web Push body is at most 4096 bytes),
 * the last one, so its delimiter is 0x02 and its nonce the derived one as it is; no padding is
 * added. */
#include "push_crypto.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_LEN 32
#define CEK_LEN 16
#define NONCE_LEN 12
#define TAG_LEN 16
#define KEY_INFO_PREFIX "WebPush: info"

/* HKDF-SHA-256 (RFC 5869): extract with salt, expand with info to len bytes. */
static int hkdf(const unsigned char *salt, size_t salt_len, const unsigned char *ikm,
                size_t ikm_len, const unsigned char *info, size_t info_len, unsigned char *out,
                size_t len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (ctx == NULL)
        return -1;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(ctx, out, len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok ? 0 : -1;
}

struct push_crypto {
    EVP_PKEY *params;      /* the P-256 group, without a key */
    EVP_PKEY_CTX *keygen;  /* makes the sender's key pairs from it */
};

struct push_crypto *push_crypto_new(void)
{
    struct push_crypto *c = calloc(1, sizeof *c);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (c == NULL || ctx == NULL || EVP_PKEY_paramgen_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_group_name(ctx, "prime256v1") != 1 ||
        EVP_PKEY_paramgen(ctx, &c->params) != 1 ||
        (c->keygen = EVP_PKEY_CTX_new_from_pkey(NULL, c->params, NULL)) == NULL ||
        EVP_PKEY_keygen_init(c->keygen) != 1) {
        EVP_PKEY_CTX_free(ctx);
        push_crypto_free(c);
        return NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return c;
}

void push_crypto_free(struct push_crypto *c)
{
    if (c == NULL)
        return;
    EVP_PKEY_CTX_free(c->keygen);
    EVP_PKEY_free(c->params);
    free(c);
}

/* key, when its point is on the curve; else NULL (key freed): a point an attacker chose gets no
 * agreement. P-256's cofactor is 1, so an on-curve point other than infinity has
 * the group's order and the full check's scalar multiplication (n·Q = O) would prove nothing
 * more: the quick check is the one. */
static EVP_PKEY *point_checked(EVP_PKEY *key)
{
    EVP_PKEY_CTX *check = key != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL) : NULL;
    bool valid = check != NULL && EVP_PKEY_public_check_quick(check) == 1;
    EVP_PKEY_CTX_free(check);
    if (!valid) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* A user agent's public key from its point, checked to be on the curve. */
static EVP_PKEY *point_import(struct push_crypto *c, const unsigned char point[PUSH_P256_LEN])
{
    EVP_PKEY *key = EVP_PKEY_new();
    if (point[0] != 0x04 || key == NULL || EVP_PKEY_copy_parameters(key, c->params) != 1 ||
        EVP_PKEY_set1_encoded_public_key(key, point, PUSH_P256_LEN) != 1) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return point_checked(key);
}

static EVP_PKEY *p256_from_point(const unsigned char point[PUSH_P256_LEN])
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, PUSH_P256_LEN),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (point[0] != 0x04 || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return point_checked(key); /* as point_import checks it */
}

bool push_public_key_valid(const unsigned char p256dh[PUSH_P256_LEN])
{
    EVP_PKEY *key = p256_from_point(p256dh);
    EVP_PKEY_free(key);
    return key != NULL;
}

int push_p256_public(EVP_PKEY *key, unsigned char out[PUSH_P256_LEN])
{
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out,
                                        PUSH_P256_LEN, &len) != 1 ||
        len != PUSH_P256_LEN || out[0] != 0x04)
        return -1;
    return 0;
}

/* The public point d·G of a private scalar (OpenSSL 3.0 does not derive it on import). */
static int p256_point_of(const BIGNUM *d, unsigned char out[PUSH_P256_LEN])
{
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *point = group ? EC_POINT_new(group) : NULL;
    int ok = point != NULL && EC_POINT_mul(group, point, d, NULL, NULL, NULL) == 1 &&
             EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, out, PUSH_P256_LEN,
                                NULL) == PUSH_P256_LEN;
    EC_POINT_free(point);
    EC_GROUP_free(group);
    return ok ? 0 : -1;
}

EVP_PKEY *push_p256_from_private(const unsigned char d[32])
{
    EVP_PKEY *key = NULL;
    unsigned char point[PUSH_P256_LEN];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *priv = BN_bin2bn(d, 32, NULL);
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (bld != NULL && priv != NULL && p256_point_of(priv, point) == 0 &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point) == 1)
        params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
        key = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    BN_clear_free(priv);
    OSSL_PARAM_BLD_free(bld);
    return key;
}

static int ecdh(EVP_PKEY *mine, EVP_PKEY *peer, unsigned char secret[SECRET_LEN])
{
    size_t len = SECRET_LEN;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(mine, NULL);
    /* The peer was checked as it was imported (p256_from_point): not again. */
    int ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
             EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) == 1 &&
             EVP_PKEY_derive(ctx, secret, &len) == 1 && len == SECRET_LEN;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* RFC 8291 §3.4: IKM from the ECDH secret and the auth secret, then CEK and nonce with the
 * message's salt (RFC 8188 §2.2, §2.3). */
static int keys_derive(const unsigned char secret[SECRET_LEN],
                       const unsigned char auth[PUSH_AUTH_LEN],
                       const unsigned char ua_public[PUSH_P256_LEN],
                       const unsigned char as_public[PUSH_P256_LEN],
                       const unsigned char salt[PUSH_SALT_LEN], unsigned char cek[CEK_LEN],
                       unsigned char nonce[NONCE_LEN])
{
    static const char cek_info[] = "Content-Encoding: aes128gcm"; /* and its NUL */
    static const char nonce_info[] = "Content-Encoding: nonce";
    unsigned char key_info[sizeof KEY_INFO_PREFIX + 2 * PUSH_P256_LEN], ikm[SECRET_LEN];
    memcpy(key_info, KEY_INFO_PREFIX, sizeof KEY_INFO_PREFIX); /* "WebPush: info" 0x00 */
    memcpy(key_info + sizeof KEY_INFO_PREFIX, ua_public, PUSH_P256_LEN);
    memcpy(key_info + sizeof KEY_INFO_PREFIX + PUSH_P256_LEN, as_public, PUSH_P256_LEN);
    int rc = hkdf(auth, PUSH_AUTH_LEN, secret, SECRET_LEN, key_info, sizeof key_info, ikm,
                  sizeof ikm) == 0 &&
                     hkdf(salt, PUSH_SALT_LEN, ikm, sizeof ikm, (const unsigned char *)cek_info,
                          sizeof cek_info, cek, CEK_LEN) == 0 &&
                     hkdf(salt, PUSH_SALT_LEN, ikm, sizeof ikm, (const unsigned char *)nonce_info,
                          sizeof nonce_info, nonce, NONCE_LEN) == 0
                 ? 0
                 : -1;
    OPENSSL_cleanse(ikm, sizeof ikm);
    return rc;
}

/* AES-128-GCM of plaintext and the last-record delimiter: out gets the ciphertext and tag. */
static int record_seal(const unsigned char cek[CEK_LEN], const unsigned char nonce[NONCE_LEN],
                       const void *plaintext, size_t len, unsigned char *out)
{
    static const unsigned char last = 0x02;
    int n = 0, m = 0, f = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, cek, nonce) == 1 &&
             (len == 0 || EVP_EncryptUpdate(ctx, out, &n, plaintext, (int)len) == 1) &&
             EVP_EncryptUpdate(ctx, out + n, &m, &last, 1) == 1 &&
             EVP_EncryptFinal_ex(ctx, out + n + m, &f) == 1 && (size_t)(n + m + f) == len + 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + len + 1) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

int push_encrypt_with(struct push_crypto *c, EVP_PKEY *as_key,
                      const unsigned char salt[PUSH_SALT_LEN],
                      const unsigned char ua_public[PUSH_P256_LEN],
                      const unsigned char auth[PUSH_AUTH_LEN], const void *plaintext, size_t len,
                      unsigned char *out, size_t *out_len)
{
    unsigned char as_public[PUSH_P256_LEN], secret[SECRET_LEN], cek[CEK_LEN], nonce[NONCE_LEN];
    if (len > PUSH_PLAINTEXT_MAX || push_p256_public(as_key, as_public) != 0)
        return -1;
    EVP_PKEY *ua_key = point_import(c, ua_public);
    if (ua_key == NULL)
        return -1;
    int rc = ecdh(as_key, ua_key, secret) == 0 &&
                     keys_derive(secret, auth, ua_public, as_public, salt, cek, nonce) == 0 &&
                     record_seal(cek, nonce, plaintext, len, out + PUSH_HEADER_LEN) == 0
                 ? 0
                 : -1;
    EVP_PKEY_free(ua_key);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(cek, sizeof cek);
    if (rc != 0)
        return -1;
    /* RFC 8188 §2.1: salt, rs (the record size: the whole body fits one), idlen, keyid. */
    memcpy(out, salt, PUSH_SALT_LEN);
    out[16] = 0;
    out[17] = 0;
    out[18] = PUSH_BODY_MAX >> 8;
    out[19] = PUSH_BODY_MAX & 0xff;
    out[20] = PUSH_P256_LEN;
    memcpy(out + 21, as_public, PUSH_P256_LEN);
    *out_len = PUSH_HEADER_LEN + len + 1 + TAG_LEN;
    return 0;
}

int push_encrypt(struct push_crypto *c, const unsigned char ua_public[PUSH_P256_LEN],
                 const unsigned char auth[PUSH_AUTH_LEN], const void *plaintext, size_t len,
                 unsigned char *out, size_t *out_len)
{
    unsigned char salt[PUSH_SALT_LEN];
    EVP_PKEY *as_key = NULL;
    if (RAND_bytes(salt, sizeof salt) != 1 || EVP_PKEY_keygen(c->keygen, &as_key) != 1)
        return -1;
    int rc = push_encrypt_with(c, as_key, salt, ua_public, auth, plaintext, len, out, out_len);
    EVP_PKEY_free(as_key);
    return rc;
}
