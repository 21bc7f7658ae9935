/* vapid: the application server's identity to push services, RFC 8292 — a P-256 key (vapid_key)
 * and the ES256 JWT that signs each push request with it.
 *
 * The key is read with OpenSSL's PEM decoder (any form `openssl ecparam -genkey` or
 * `openssl genpkey` writes), the signature is OpenSSL's ECDSA over SHA-256, turned from DER into
 * the 64-byte r || s a JWS carries (RFC 7518 §3.4). The JWT is written here: two small fixed
 * JSON objects. */
#include "vapid.h"

#include "b64url.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#define ES256_SIG_LEN 64

int vapid_key_from(EVP_PKEY *key, struct vapid_key *out)
{
    char group[32];
    size_t len = 0;
    memset(out, 0, sizeof *out);
    if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1 ||
        (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0) ||
        push_p256_public(key, out->public_key) != 0)
        return -1;
    out->key = key;
    b64url_encode(out->public_key, PUSH_P256_LEN, out->public_b64);
    return 0;
}

int vapid_key_load(const char *path, struct vapid_key *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(why, why_len, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL) {
        snprintf(why, why_len, "%s holds no PEM private key", path);
        return -1;
    }
    if (vapid_key_from(key, out) != 0) {
        EVP_PKEY_free(key);
        snprintf(why, why_len,
                 "%s is not a P-256 key (make one: openssl ecparam -name prime256v1 -genkey "
                 "-noout -out FILE)",
                 path);
        return -1;
    }
    return 0;
}

int vapid_topic(const struct vapid_key *k, const char *email, char out[VAPID_TOPIC_LEN + 1])
{
    /* The secret: SHA-256 of a label and the private scalar, so the topic key is not the
     * signing key itself. */
    unsigned char scalar[32], secret[SHA256_DIGEST_LENGTH], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    BIGNUM *d = NULL;
    if (EVP_PKEY_get_bn_param(k->key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
        BN_bn2binpad(d, scalar, sizeof scalar) != sizeof scalar) {
        BN_clear_free(d);
        return -1;
    }
    BN_clear_free(d);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, "presenced push topic", 20) == 1 &&
             EVP_DigestUpdate(ctx, scalar, sizeof scalar) == 1 &&
             EVP_DigestFinal_ex(ctx, secret, NULL) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(scalar, sizeof scalar);
    ok = ok && HMAC(EVP_sha256(), secret, sizeof secret, (const unsigned char *)email,
                    strlen(email), mac, &mac_len) != NULL;
    OPENSSL_cleanse(secret, sizeof secret);
    if (!ok || mac_len < 24)
        return -1;
    b64url_encode(mac, 24, out);
    return 0;
}

void vapid_key_free(struct vapid_key *k)
{
    EVP_PKEY_free(k->key);
    memset(k, 0, sizeof *k);
}

int vapid_subject_valid(const char *subject)
{
    size_t len = strlen(subject);
    if (len == 0 || len > VAPID_SUBJECT_MAX || strpbrk(subject, "\"\\ \t\r\n") != NULL)
        return 0;
    return (strncmp(subject, "mailto:", 7) == 0 && len > 7) ||
           (strncmp(subject, "https://", 8) == 0 && len > 8);
}

int vapid_audience(const char *endpoint, char *out, size_t cap)
{
    if (strncmp(endpoint, "https://", 8) != 0)
        return -1;
    const char *host = endpoint + 8;
    size_t host_len = strcspn(host, "/?#");
    if (host_len == 0 || memchr(host, '@', host_len) != NULL)
        return -1;
    /* ":443" is the default port: the origin is written without it. */
    if (host_len > 4 && memcmp(host + host_len - 4, ":443", 4) == 0)
        host_len -= 4;
    int n = snprintf(out, cap, "https://%.*s", (int)host_len, host);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* ES256: ECDSA P-256 over SHA-256, as r || s of 32 bytes each. */
static int es256_sign(EVP_PKEY *key, const char *data, size_t len,
                      unsigned char sig[ES256_SIG_LEN])
{
    unsigned char der[80];
    size_t der_len = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)data, len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    const unsigned char *p = der;
    ECDSA_SIG *esig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (esig == NULL)
        return -1;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(esig, &r, &s);
    ok = BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32;
    ECDSA_SIG_free(esig);
    return ok ? 0 : -1;
}

int vapid_authorization(const struct vapid_key *k, const char *audience, const char *subject,
                        int64_t exp_s, char *out, size_t cap)
{
    static const char header[] = "{\"typ\":\"JWT\",\"alg\":\"ES256\"}";
    char claims[VAPID_AUDIENCE_MAX + VAPID_SUBJECT_MAX + 64];
    if (strlen(audience) > VAPID_AUDIENCE_MAX || !vapid_subject_valid(subject) ||
        strpbrk(audience, "\"\\") != NULL)
        return -1;
    int claims_len = snprintf(claims, sizeof claims, "{\"aud\":\"%s\",\"exp\":%lld,\"sub\":\"%s\"}",
                              audience, (long long)exp_s, subject);
    if (claims_len < 0 || (size_t)claims_len >= sizeof claims)
        return -1;
    char signing[B64URL_ENCODED_LEN(sizeof header) + B64URL_ENCODED_LEN(sizeof claims) + 2];
    b64url_encode((const unsigned char *)header, sizeof header - 1, signing);
    size_t at = strlen(signing);
    signing[at++] = '.';
    b64url_encode((const unsigned char *)claims, (size_t)claims_len, signing + at);
    at += strlen(signing + at);
    unsigned char sig[ES256_SIG_LEN];
    char sig_b64[B64URL_ENCODED_LEN(ES256_SIG_LEN) + 1];
    if (es256_sign(k->key, signing, at, sig) != 0)
        return -1;
    b64url_encode(sig, sizeof sig, sig_b64);
    int n = snprintf(out, cap, "vapid t=%s.%s, k=%s", signing, sig_b64, k->public_b64);
    return n > 0 && (size_t)n < cap ? n : -1;
}
