/* Unit tests of common/push_crypto.c against RFC 8291's worked example (§5, Appendix A), and of
 * common/vapid.c: the key file, the audience, and the ES256 token checked with common/jwk.c. */
#include "tap.h"

#include "../../common/b64url.h"
#include "../../common/jwk.h"
#include "../../common/push_crypto.h"
#include "../../common/vapid.h"

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <unistd.h>

/* RFC 8291 Appendix A. */
static const char PLAINTEXT[] = "When I grow up, I want to be a watermelon";
static const char UA_PUBLIC[] =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
static const char UA_PRIVATE[] = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
static const char AUTH[] = "BTBZMqHH6r4Tts7J_aSIgg";
static const char AS_PUBLIC[] =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
static const char AS_PRIVATE[] = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
static const char SALT[] = "DGv6ra1nlYgDCS1FRnbzlw";
static const char BODY[] =
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmY"
    "WAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexS"
    "gSxsj_Qulcy4a-fN";

static struct push_crypto *crypto;

static size_t decode(const char *text, unsigned char *out)
{
    long n = b64url_decode(text, strlen(text), out);
    return n < 0 ? 0 : (size_t)n;
}

static void test_rfc8291_example(void)
{
    unsigned char ua_public[65], auth[16], as_private[32], as_public[65], salt[16], body[256];
    unsigned char out[256];
    size_t out_len = 0;
    ok(decode(UA_PUBLIC, ua_public) == 65 && decode(AUTH, auth) == 16 &&
           decode(AS_PRIVATE, as_private) == 32 && decode(AS_PUBLIC, as_public) == 65 &&
           decode(SALT, salt) == 16,
       "the vector's keys decode");
    size_t body_len = decode(BODY, body);
    is_int(body_len, 144, "the vector's body is 144 bytes");
    EVP_PKEY *as_key = push_p256_from_private(as_private);
    ok(as_key != NULL, "the sender's key from its private scalar");
    unsigned char point[65];
    ok(as_key && push_p256_public(as_key, point) == 0 && memcmp(point, as_public, 65) == 0,
       "its public point is the vector's as_public");
    is_int(push_encrypt_with(crypto, as_key, salt, ua_public, auth, PLAINTEXT, strlen(PLAINTEXT), out,
                             &out_len),
           0, "encrypts");
    is_int(out_len, body_len, "the body's length");
    ok(memcmp(out, body, PUSH_HEADER_LEN) == 0, "the header: salt, rs 4096, idlen 65, keyid");
    ok(memcmp(out, body, body_len) == 0, "the body is the RFC's, byte for byte");
    EVP_PKEY_free(as_key);
}

/* What a user agent does (RFC 8291 §3.4): the test's own decryption, from OpenSSL primitives. */
static int hkdf(const unsigned char *salt, size_t salt_len, const unsigned char *ikm,
                size_t ikm_len, const void *info, size_t info_len, unsigned char *out, size_t len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
        OSSL_PARAM_construct_octet_string("salt", (void *)salt, salt_len),
        OSSL_PARAM_construct_octet_string("key", (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string("info", (void *)info, info_len),
        OSSL_PARAM_construct_end(),
    };
    int rc = EVP_KDF_derive(ctx, out, len, params) == 1 ? 0 : -1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
}

static long ua_decrypt(const unsigned char ua_private[32], const unsigned char auth[16],
                       const unsigned char *body, size_t len, unsigned char *plain)
{
    if (len < PUSH_OVERHEAD || body[20] != 65)
        return -1;
    EVP_PKEY *ua = push_p256_from_private(ua_private);
    unsigned char ua_public[65], secret[32], ikm[32], cek[16], nonce[12];
    push_p256_public(ua, ua_public);
    /* The sender's key from the header, as a peer. */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("group", "prime256v1", 0),
        OSSL_PARAM_construct_octet_string("pub", (void *)(body + 21), 65),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *as = NULL;
    EVP_PKEY_CTX *fctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY_fromdata_init(fctx);
    EVP_PKEY_fromdata(fctx, &as, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(fctx);
    size_t secret_len = 32;
    EVP_PKEY_CTX *dctx = EVP_PKEY_CTX_new(ua, NULL);
    EVP_PKEY_derive_init(dctx);
    EVP_PKEY_derive_set_peer(dctx, as);
    EVP_PKEY_derive(dctx, secret, &secret_len);
    EVP_PKEY_CTX_free(dctx);
    unsigned char info[14 + 130];
    memcpy(info, "WebPush: info", 14);
    memcpy(info + 14, ua_public, 65);
    memcpy(info + 79, body + 21, 65);
    hkdf(auth, 16, secret, 32, info, sizeof info, ikm, 32);
    hkdf(body, 16, ikm, 32, "Content-Encoding: aes128gcm", 28, cek, 16);
    hkdf(body, 16, ikm, 32, "Content-Encoding: nonce", 24, nonce, 12);
    size_t record = len - PUSH_HEADER_LEN - 16;
    int n = 0, f = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    EVP_DecryptInit_ex(c, EVP_aes_128_gcm(), NULL, cek, nonce);
    EVP_DecryptUpdate(c, plain, &n, body + PUSH_HEADER_LEN, (int)record);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(body + len - 16));
    int good = EVP_DecryptFinal_ex(c, plain + n, &f) == 1;
    EVP_CIPHER_CTX_free(c);
    EVP_PKEY_free(ua);
    EVP_PKEY_free(as);
    if (!good || n + f < 1 || plain[n + f - 1] != 0x02)
        return -1;
    return n + f - 1;
}

static void test_round_trip_and_limits(void)
{
    unsigned char ua_public[65], ua_private[32], auth[16], out[PUSH_BODY_MAX], out2[PUSH_BODY_MAX];
    unsigned char plain[PUSH_BODY_MAX];
    size_t len = 0, len2 = 0;
    decode(UA_PUBLIC, ua_public);
    decode(UA_PRIVATE, ua_private);
    decode(AUTH, auth);
    const char *message = "{\"source\":\"Bob\",\"message\":\"caf\xc3\xa9\"}";
    is_int(push_encrypt(crypto, ua_public, auth, message, strlen(message), out, &len), 0,
           "a fresh key pair and salt");
    long n = ua_decrypt(ua_private, auth, out, len, plain);
    ok(n == (long)strlen(message) && memcmp(plain, message, (size_t)n) == 0,
       "the user agent's key opens it");
    push_encrypt(crypto, ua_public, auth, message, strlen(message), out2, &len2);
    ok(memcmp(out, out2, 16) != 0 && memcmp(out + 21, out2 + 21, 65) != 0,
       "two messages share neither salt nor key pair");
    auth[0] ^= 1;
    is_int(ua_decrypt(ua_private, auth, out, len, plain), -1, "another auth secret opens nothing");
    auth[0] ^= 1;
    static unsigned char big[PUSH_PLAINTEXT_MAX + 1];
    memset(big, 'x', sizeof big);
    is_int(push_encrypt(crypto, ua_public, auth, big, PUSH_PLAINTEXT_MAX, out, &len), 0,
           "the largest plaintext a 4096-byte body holds");
    is_int(len, PUSH_BODY_MAX, "makes a body of 4096 bytes");
    is_int(push_encrypt(crypto, ua_public, auth, big, sizeof big, out, &len), -1, "one byte more: refused");
    ok(push_public_key_valid(ua_public), "the vector's key is a point of P-256");
    unsigned char bad[65];
    memcpy(bad, ua_public, 65);
    bad[40] ^= 0xff;
    ok(!push_public_key_valid(bad), "a point off the curve is refused");
    is_int(push_encrypt(crypto, bad, auth, "x", 1, out, &len), -1, "and nothing is encrypted to it");
    bad[0] = 0x02;
    ok(!push_public_key_valid(bad), "a compressed point is refused");
    memset(bad, 0, sizeof bad);
    bad[0] = 0x04;
    ok(!push_public_key_valid(bad), "(0, 0) is refused");
}

/* The JWT of an Authorization header, verified as a push service does: with the k it names. */
static void test_vapid_token(void)
{
    char dir[] = "/tmp/presenced-test-vapid-XXXXXX", path[300], why[300];
    ok(mkdtemp(dir) != NULL, "a directory for key files");
    snprintf(path, sizeof path, "%s/vapid.pem", dir);
    EVP_PKEY *made = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FILE *f = fopen(path, "w");
    PEM_write_PrivateKey(f, made, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    struct vapid_key k;
    is_int(vapid_key_load(path, &k, why, sizeof why), 0, "a PEM P-256 key loads");
    is_int(strlen(k.public_b64), VAPID_PUBLIC_B64_LEN, "its public key in base64url, 87 chars");
    char audience[VAPID_AUDIENCE_MAX];
    is_int(vapid_audience("https://push.example.net:443/wpush/v2/abc?x=1", audience,
                          sizeof audience),
           0, "an endpoint's audience");
    is_str(audience, "https://push.example.net", "its origin, without the default port");
    vapid_audience("https://push.test:8443/p", audience, sizeof audience);
    is_str(audience, "https://push.test:8443", "another port is kept");
    is_int(vapid_audience("http://push.test/p", audience, sizeof audience), -1, "http: refused");
    is_int(vapid_audience("https://u@push.test/p", audience, sizeof audience), -1,
           "a user part: refused");
    ok(vapid_subject_valid("mailto:ops@example.com") && vapid_subject_valid("https://ex.com/") &&
           !vapid_subject_valid("ops@example.com") && !vapid_subject_valid("mailto:a\"b"),
       "subjects: mailto: or https:");
    char header[VAPID_AUTHORIZATION_MAX];
    int n = vapid_authorization(&k, "https://push.example.net", "mailto:ops@example.com",
                                1900000000, header, sizeof header);
    ok(n > 0 && strncmp(header, "vapid t=", 8) == 0, "an Authorization header: %.40s...", header);
    char *comma = strstr(header, ", k=");
    ok(comma != NULL && strcmp(comma + 4, k.public_b64) == 0, "k is the public key");
    /* The token's three parts; its signature checked with the key as a JWK. */
    char token[VAPID_AUTHORIZATION_MAX];
    snprintf(token, sizeof token, "%.*s", (int)(comma - header - 8), header + 8);
    char *dot1 = strchr(token, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    ok(dot2 != NULL, "header.claims.signature");
    unsigned char part[1024];
    long len = b64url_decode(token, (size_t)(dot1 - token), part);
    part[len > 0 ? len : 0] = '\0';
    is_str((char *)part, "{\"typ\":\"JWT\",\"alg\":\"ES256\"}", "the JOSE header");
    len = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), part);
    part[len > 0 ? len : 0] = '\0';
    is_str((char *)part,
           "{\"aud\":\"https://push.example.net\",\"exp\":1900000000,\"sub\":\"mailto:ops@example.com\"}",
           "the claims: aud, exp, sub");
    char x[64], y[64], jwk_text[256];
    b64url_encode(k.public_key + 1, 32, x);
    b64url_encode(k.public_key + 33, 32, y);
    snprintf(jwk_text, sizeof jwk_text, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
             x, y);
    struct json_object *obj = json_tokener_parse(jwk_text);
    struct jwk jwk;
    const char *jwk_why;
    is_int(jwk_parse(obj, &jwk, &jwk_why), 0, "the public key as a JWK");
    unsigned char sig[128];
    long sig_len = b64url_decode(dot2 + 1, strlen(dot2 + 1), sig);
    is_int(sig_len, 64, "an ES256 signature: r || s");
    ok(jwk_verify(&jwk, JWT_ES256, (unsigned char *)token, (size_t)(dot2 - token), sig,
                  (size_t)sig_len),
       "verifies with the public key");
    sig[10] ^= 1;
    ok(!jwk_verify(&jwk, JWT_ES256, (unsigned char *)token, (size_t)(dot2 - token), sig,
                   (size_t)sig_len),
       "a changed signature does not");
    EVP_PKEY_free(jwk.pkey);
    json_object_put(obj);
    vapid_key_free(&k);
    /* Keys that are not P-256 ones. */
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    f = fopen(path, "w");
    PEM_write_PrivateKey(f, rsa, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    EVP_PKEY_free(rsa);
    is_int(vapid_key_load(path, &k, why, sizeof why), -1, "an RSA key is refused");
    ok(strstr(why, "not a P-256 key") != NULL, "saying so: %s", why);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    is_int(vapid_key_from(p384, &k), -1, "a P-384 key is refused");
    EVP_PKEY_free(p384);
    f = fopen(path, "w");
    fputs("not a key\n", f);
    fclose(f);
    is_int(vapid_key_load(path, &k, why, sizeof why), -1, "a file without a key is refused");
    unlink(path);
    is_int(vapid_key_load(path, &k, why, sizeof why), -1, "a missing file too");
    rmdir(dir);
    EVP_PKEY_free(made);
}

int main(void)
{
    crypto = push_crypto_new();
    ok(crypto != NULL, "the P-256 parameters are made");
    test_rfc8291_example();
    test_round_trip_and_limits();
    test_vapid_token();
    push_crypto_free(crypto);
    return tap_done();
}
