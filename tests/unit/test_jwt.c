/* Unit tests of common/jwk.c and common/jwt.c: keys and key sets, every accepted algorithm with
 * keys OpenSSL makes here, the refusals (none, HS*, crit, alg/key mismatch, tampering), the
 * claims (aud, azp, exp, nbf, iat, email) and the size limit. */
#include "tap.h"

#include "../../common/config.h"
#include "../../common/dev_issuer.h"
#include "../../common/jwk.h"
#include "../../common/jwt.h"
#include "../../common/oidc_doc.h"

#include "../tools/id_forge.h"

#include <openssl/hmac.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW_S 1700000000LL
#define NOW_MS (NOW_S * 1000)
#define ISS "https://op.example"

static char payload_buf[4096];

/* A payload of the usual claims, with extra members appended (a JSON fragment, or ""). */
static const char *claims(const char *extra)
{
    snprintf(payload_buf, sizeof payload_buf,
             "{\"iss\":\"" ISS "\",\"aud\":\"presenced\",\"exp\":%lld,\"iat\":%lld,"
             "\"email\":\"alice@example.com\",\"email_verified\":true%s%s}",
             NOW_S + 600, NOW_S - 10, extra[0] ? "," : "", extra);
    return payload_buf;
}

static struct jwk_set set_of(const char *json)
{
    struct jwk_set set;
    const char *why = NULL;
    if (jwk_set_parse(json, strlen(json), &set, NULL, &why) != 0)
        diag("key set refused: %s", why);
    return set;
}

/* Parse, claims (audience "presenced"), e-mail, then signature: the first errno, or 0. */
static int verify_text(const char *token, const struct jwk_set *set, const char **why)
{
    struct jwt t;
    char *audiences[] = { "presenced", "other-client" };
    const char *matched;
    int rc = jwt_parse(token, strlen(token), &t, why);
    if (rc == 0)
        rc = jwt_claims_check(&t, audiences, 2, NOW_MS, 60000, &matched, why);
    if (rc == 0)
        rc = jwt_email_check(&t, why);
    if (rc == 0)
        rc = jwt_signature_check(&t, set, why);
    jwt_free(&t);
    return rc;
}

static void test_algorithms(void)
{
    static const struct {
        const char *alg, *type;
        int bits;
    } cases[] = {
        { "RS256", "RSA", 2048 }, { "RS384", "RSA", 2048 }, { "RS512", "RSA", 3072 },
        { "PS256", "RSA", 2048 }, { "ES256", "P-256", 0 },  { "ES384", "P-384", 0 },
        { "EdDSA", "ED25519", 0 },
    };
    char jwk[4000], jwks[4200];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        EVP_PKEY *key = cases[i].bits ? key_generate("RSA", cases[i].bits)
                                      : key_generate_named(cases[i].type);
        snprintf(jwks, sizeof jwks, "{\"keys\":[%s]}", jwk_json(key, "k1", jwk, sizeof jwk));
        struct jwk_set set = set_of(jwks);
        const char *why = NULL;
        char *token = jwt_make(key, cases[i].alg, "k1", claims(""));
        is_int(verify_text(token, &set, &why), 0, "%s token verifies (%s)", cases[i].alg,
               why ? why : "");
        /* One flipped bit in the signature's middle. */
        size_t len = strlen(token), sig_at = strrchr(token, '.') - token + 1;
        size_t at = sig_at + (len - sig_at) / 2;
        token[at] = token[at] == 'A' ? 'B' : 'A';
        is_int(verify_text(token, &set, &why), 34, "%s with a flipped signature: 34",
               cases[i].alg);
        /* Tampered payload: the same signature over other claims. */
        char *good = jwt_make(key, cases[i].alg, "k1", claims(""));
        char *other = jwt_make(key, cases[i].alg, "k1", claims("\"role\":\"admin\""));
        char forged[16384];
        const char *good_sig = strrchr(good, '.');
        snprintf(forged, sizeof forged, "%.*s%s", (int)(strrchr(other, '.') - other), other,
                 good_sig);
        is_int(verify_text(forged, &set, &why), 34, "%s with a tampered payload: 34",
               cases[i].alg);
        jwk_set_free(&set);
        EVP_PKEY_free(key);
    }
}

static void test_refusals(EVP_PKEY *rsa, EVP_PKEY *ec)
{
    char jwk_r[4000], jwk_e[1000], jwks[5200];
    snprintf(jwks, sizeof jwks, "{\"keys\":[%s,%s]}", jwk_json(rsa, "r", jwk_r, sizeof jwk_r),
             jwk_json(ec, "e", jwk_e, sizeof jwk_e));
    struct jwk_set set = set_of(jwks);
    is_int(set.count, 2, "a set of two keys");
    const char *why = NULL;

    /* alg none, with an empty or any signature. */
    char none[8192], h[256], p[6000];
    const char *none_header = "{\"alg\":\"none\"}";
    b64url_encode((const unsigned char *)none_header, strlen(none_header), h);
    b64url_encode((const unsigned char *)claims(""), strlen(claims("")), p);
    snprintf(none, sizeof none, "%s.%s.", h, p);
    is_int(verify_text(none, &set, &why), 34, "alg none with no signature: 34");
    snprintf(none, sizeof none, "%s.%s.AAAA", h, p);
    is_int(verify_text(none, &set, &why), 34, "alg none with a signature: 34");
    is_str(why, "alg none refused", "says why");

    /* HS256 keyed with the RSA public key's JWK text: the algorithm confusion attack. */
    const char *hs_header = "{\"alg\":\"HS256\",\"kid\":\"r\"}";
    char data[8192], hs[9000], s[64];
    b64url_encode((const unsigned char *)hs_header, strlen(hs_header), h);
    snprintf(data, sizeof data, "%s.%s", h, p);
    unsigned char mac[32];
    unsigned int mac_len = sizeof mac;
    HMAC(EVP_sha256(), jwk_r, (int)strlen(jwk_r), (const unsigned char *)data, strlen(data), mac,
         &mac_len);
    b64url_encode(mac, mac_len, s);
    snprintf(hs, sizeof hs, "%s.%s", data, s);
    is_int(verify_text(hs, &set, &why), 34, "HS256 keyed with the RSA public key: 34");
    is_str(why, "HMAC algorithms refused", "says why");

    /* alg/kty mismatch: ES256 naming the RSA key, RS256 naming the EC key. */
    char *es_on_r = jwt_make(ec, "ES256", "r", claims(""));
    is_int(verify_text(es_on_r, &set, &why), 34, "ES256 naming an RSA key: 34");
    is_str(why, "token alg does not fit its key", "says why");
    char *rs_on_e = jwt_make(rsa, "RS256", "e", claims(""));
    is_int(verify_text(rs_on_e, &set, &why), 34, "RS256 naming an EC key: 34");

    char *unknown = jwt_make(rsa, "RS256", "nope", claims(""));
    is_int(verify_text(unknown, &set, &why), 34, "unknown kid: 34");
    is_str(why, "no key of the issuer for the token", "says why");

    char *crit = jwt_make_header(rsa, "RS256",
                                 "{\"alg\":\"RS256\",\"kid\":\"r\",\"crit\":[\"exp\"],\"exp\":1}",
                                 claims(""));
    is_int(verify_text(crit, &set, &why), 34, "a crit header: 34");
    char *logout = jwt_make_header(rsa, "RS256", "{\"alg\":\"RS256\",\"typ\":\"logout+jwt\"}",
                                   claims(""));
    is_int(verify_text(logout, &set, &why), 34, "typ logout+jwt: 34");
    char *at = jwt_make_header(rsa, "RS256", "{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}", claims(""));
    is_int(verify_text(at, &set, &why), 0, "typ at+jwt, no kid: accepted (%s)", why);

    /* A key that names its alg serves only that alg. */
    char pinned[4200], pinned_set[4300];
    snprintf(pinned, sizeof pinned, "%s", jwk_r);
    pinned[strlen(pinned) - 1] = '\0';
    snprintf(pinned_set, sizeof pinned_set, "{\"keys\":[%s,\"alg\":\"PS256\"}]}", pinned);
    struct jwk_set only_ps = set_of(pinned_set);
    char *rs = jwt_make(rsa, "RS256", "r", claims(""));
    is_int(verify_text(rs, &only_ps, &why), 34, "RS256 on a key whose alg is PS256: 34");
    char *ps = jwt_make(rsa, "PS256", "r", claims(""));
    is_int(verify_text(ps, &only_ps, &why), 0, "PS256 on it: accepted");
    jwk_set_free(&only_ps);
    jwk_set_free(&set);
}

static void test_claims(EVP_PKEY *key)
{
    char jwk[1000], jwks[1100];
    snprintf(jwks, sizeof jwks, "{\"keys\":[%s]}", jwk_json(key, "k", jwk, sizeof jwk));
    struct jwk_set set = set_of(jwks);
    char payload[2048];
    const char *why;
    struct {
        const char *extra_payload;
        int want;
        const char *what;
    } cases[] = {
        { "\"iss\":\"" ISS "\",\"aud\":\"elsewhere\",\"exp\":%lld", 32, "wrong aud" },
        { "\"iss\":\"" ISS "\",\"aud\":[\"elsewhere\",\"presenced\"],\"exp\":%lld", 0,
          "aud array holding ours" },
        { "\"iss\":\"" ISS "\",\"aud\":[\"elsewhere\",\"presenced\"],\"azp\":\"elsewhere\","
          "\"exp\":%lld",
          32, "azp not ours with several audiences" },
        { "\"iss\":\"" ISS "\",\"aud\":[\"other-client\",\"presenced\"],\"azp\":\"other-client\","
          "\"exp\":%lld",
          0, "azp ours with several audiences" },
        { "\"iss\":\"" ISS "\",\"aud\":\"presenced\",\"azp\":\"elsewhere\",\"exp\":%lld", 0,
          "azp with one audience" },
        { "\"iss\":\"" ISS "\",\"aud\":[],\"exp\":%lld", 34, "empty aud array" },
        { "\"iss\":\"" ISS "\",\"aud\":5,\"exp\":%lld", 34, "aud a number" },
        { "\"aud\":\"presenced\",\"exp\":%lld", 34, "no iss" },
        { "\"iss\":\"" ISS "\",\"aud\":\"presenced\",\"exp\":\"%lld\"", 34, "exp a string" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body, cases[i].extra_payload, NOW_S + 60);
        snprintf(payload, sizeof payload,
                 "{%s,\"email\":\"alice@example.com\",\"email_verified\":true}", body);
        is_int(verify_text(jwt_make(key, "ES256", "k", payload), &set, &why), cases[i].want,
               "%s: %d", cases[i].what, cases[i].want);
    }
    struct {
        long long exp, nbf, iat;
        int want;
        const char *what;
    } times[] = {
        { NOW_S - 61, 0, 0, 33, "expired past the skew" },
        { NOW_S - 59, 0, 0, 0, "expired within the skew" },
        { NOW_S + 600, NOW_S + 61, 0, 33, "nbf in the future" },
        { NOW_S + 600, NOW_S + 59, 0, 0, "nbf within the skew" },
        { NOW_S + 600, 0, NOW_S + 120, 33, "iat in the future" },
        { -1, 0, 0, 33, "no exp" },
    };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char extra[128] = "";
        if (times[i].nbf)
            snprintf(extra, sizeof extra, ",\"nbf\":%lld", times[i].nbf);
        if (times[i].iat)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",\"iat\":%lld",
                     times[i].iat);
        char exp[64] = "";
        if (times[i].exp >= 0)
            snprintf(exp, sizeof exp, ",\"exp\":%lld", times[i].exp);
        snprintf(payload, sizeof payload,
                 "{\"iss\":\"" ISS "\",\"aud\":\"presenced\"%s%s,\"email\":\"a@example.com\","
                 "\"email_verified\":true}",
                 exp, extra);
        is_int(verify_text(jwt_make(key, "ES256", "k", payload), &set, &why), times[i].want,
               "%s: %d", times[i].what, times[i].want);
    }
    const char *emails[][2] = {
        { ",\"email\":\"a@example.com\",\"email_verified\":false", "email_verified false" },
        { ",\"email\":\"a@example.com\"", "no email_verified" },
        { "", "no email" },
        { ",\"email\":\"not-an-address\",\"email_verified\":true", "an invalid address" },
    };
    for (size_t i = 0; i < sizeof emails / sizeof emails[0]; i++) {
        snprintf(payload, sizeof payload,
                 "{\"iss\":\"" ISS "\",\"aud\":\"presenced\",\"exp\":%lld%s}", NOW_S + 60,
                 emails[i][0]);
        is_int(verify_text(jwt_make(key, "ES256", "k", payload), &set, &why), 34, "%s: 34",
               emails[i][1]);
    }
    snprintf(payload, sizeof payload,
             "{\"iss\":\"" ISS "\",\"aud\":\"presenced\",\"exp\":%lld.5,\"email\":\"a@example.com\","
             "\"email_verified\":\"true\"}",
             NOW_S + 60);
    is_int(verify_text(jwt_make(key, "ES256", "k", payload), &set, &why), 0,
           "a fractional exp and email_verified \"true\" accepted");
    struct jwt t;
    is_int(jwt_parse(jwt_make(key, "ES256", "k", payload), strlen(jwt_make(key, "ES256", "k", payload)), &t, &why), 0, "parses");
    is_int(t.exp_ms, (NOW_S + 60) * 1000 + 500, "exp in milliseconds");
    jwt_free(&t);
    jwk_set_free(&set);
}

static void test_format(void)
{
    struct jwt t;
    const char *why;
    const char *bad[] = {
        "", "abc", "a.b", "a.b.c.d", "..", "e30.e30.", "e30.e30.AAAA", "%%%.e30.AAAA",
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AAAA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        is_int(jwt_parse(bad[i], strlen(bad[i]), &t, &why), 34, "'%s' refused (%s)", bad[i], why);
        jwt_free(&t);
    }
    size_t big_len = 1024 * 1024;
    char *big = malloc(big_len);
    memset(big, 'A', big_len);
    big[100] = big[200] = '.';
    is_int(jwt_parse(big, big_len, &t, &why), 34, "a 1 MB token refused");
    is_str(why, "token too long", "as too long");
    jwt_free(&t);
    free(big);
}

static void test_key_sets(EVP_PKEY *rsa)
{
    struct jwk_set set;
    size_t skipped;
    const char *why;
    char jwk[4000], text[9000];
    jwk_json(rsa, "r1", jwk, sizeof jwk);
    snprintf(text, sizeof text,
             "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},%s,"
             "{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"},"
             "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
             jwk);
    is_int(jwk_set_parse(text, strlen(text), &set, &skipped, &why), 0, "a set with others");
    is_int(set.count, 1, "one usable key");
    is_int(skipped, 3, "three skipped (oct, P-521, enc)");
    ok(jwk_set_has_kid(&set, "r1") && !jwk_set_has_kid(&set, "r2"), "kid lookup");
    struct jwk_set copy;
    is_int(jwk_set_copy(&copy, &set), 0, "copied");
    jwk_set_free(&set);
    is_int(copy.keys[0].bits, 2048, "the copy outlives the original");
    jwk_set_free(&copy);
    is_int(jwk_set_parse(jwk, strlen(jwk), &set, NULL, &why), 0, "a bare JWK is a set of one");
    jwk_set_free(&set);
    const char *bad[] = {
        "{\"keys\":[]}",
        "{\"keys\":{}}",
        "[]",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" /* not on the curve */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\",\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}",
        "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        is_int(jwk_set_parse(bad[i], strlen(bad[i]), &set, NULL, &why), -1, "%.50s refused (%s)",
               bad[i], why);
    }
    EVP_PKEY *small = key_generate("RSA", 1024);
    jwk_json(small, "s", jwk, sizeof jwk);
    is_int(jwk_set_parse(jwk, strlen(jwk), &set, NULL, &why), -1, "a 1024-bit RSA key refused");
    EVP_PKEY_free(small);
    snprintf(text, sizeof text, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"ES256\",\"x\":\"%s\"}",
             "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    is_int(jwk_set_parse(text, strlen(text), &set, NULL, &why), -1,
           "an Ed25519 key whose alg is ES256 refused");
    char thumb[44];
    unsigned char x[32];
    b64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", 43, x);
    jwk_ed25519_thumbprint(x, thumb);
    /* RFC 8037 appendix A.3. */
    is_str(thumb, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "RFC 8037 A.3 thumbprint");
}

static void test_dev_issuer(void)
{
    char dir[] = "/tmp/presenced-dev-issuer-XXXXXX", err[512], iss[300];
    struct config cfg;
    config_defaults(&cfg);
    ok(mkdtemp(dir) != NULL, "a data_dir");
    EVP_PKEY *key = dev_issuer_key(dir, err, sizeof err), *again = dev_issuer_key(dir, err, sizeof err);
    ok(key != NULL && again != NULL && EVP_PKEY_eq(key, again) == 1,
       "the key is made once and read back (%s)", key ? "" : err);
    char *token = dev_issuer_token(key, &cfg, "dev\"user@example.com", 60, NOW_S);
    struct jwk_set set;
    is_int(dev_issuer_key_set(key, &set), 0, "its public key set");
    struct jwt t;
    const char *why = NULL, *matched;
    char *audiences[] = { DEV_ISSUER_AUDIENCE };
    is_int(jwt_parse(token, strlen(token), &t, &why), 0, "the token parses");
    dev_issuer_iss(&cfg, iss, sizeof iss);
    is_str(t.iss, "http://localhost:8282/dev", "iss is public_url/dev");
    is_str(iss, t.iss, "as dev_issuer_iss says");
    is_int(jwt_claims_check(&t, audiences, 1, NOW_MS, 0, &matched, &why), 0, "aud presenced-dev");
    is_int(jwt_email_check(&t, &why), 34, "a quote is no address: refused by the checks, "
                                          "yet the JSON held it");
    is_int(jwt_signature_check(&t, &set, &why), 0, "the signature verifies");
    is_int(t.exp_ms - t.iat_ms, 60000, "valid the TTL asked");
    jwt_free(&t);
    free(token);
    token = dev_issuer_token(key, &cfg, "carol@example.com", 60, NOW_S);
    is_int(jwt_parse(token, strlen(token), &t, &why), 0, "another token");
    is_int(jwt_email_check(&t, &why), 0, "with a verified e-mail");
    is_str(t.email, "carol@example.com", "its e-mail");
    jwt_free(&t);
    free(token);
    jwk_set_free(&set);
    EVP_PKEY_free(key);
    EVP_PKEY_free(again);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, DEV_ISSUER_KEY_FILE);
    struct stat st;
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the key file is 0600");
    remove(path);
    rmdir(dir);
    config_free(&cfg);
}

static void test_oidc_documents(void)
{
    struct oidc_discovery doc;
    const char *why;
    const char *good = "{\"issuer\":\"https://op.example/t\",\"jwks_uri\":\"https://k.example/j\","
                       "\"authorization_endpoint\":\"https://op.example/auth\","
                       "\"token_endpoint\":\"https://op.example/token\"}";
    is_int(oidc_discovery_parse(good, strlen(good), "https://op.example/t", &doc, &why), 0,
           "a discovery document");
    is_str(doc.jwks_uri, "https://k.example/j", "its jwks_uri");
    is_str(doc.token_endpoint, "https://op.example/token", "its token endpoint");
    ok(!doc.secret_post, "HTTP Basic by default");
    oidc_discovery_free(&doc);
    is_int(oidc_discovery_parse(good, strlen(good), "https://op.example/t/", &doc, &why), -1,
           "naming another issuer (a final /): refused (OpenID Discovery 4.3)");
    const char *post = "{\"issuer\":\"https://a.example\",\"jwks_uri\":\"https://a.example/j\","
                       "\"token_endpoint_auth_methods_supported\":[\"client_secret_post\"]}";
    is_int(oidc_discovery_parse(post, strlen(post), "https://a.example", &doc, &why), 0,
           "without endpoints, a key source still");
    ok(doc.secret_post && doc.authorization_endpoint == NULL, "client_secret_post only");
    oidc_discovery_free(&doc);
    const char *bad[] = {
        "{\"issuer\":\"https://a.example\"}",
        "{\"issuer\":\"https://a.example\",\"jwks_uri\":\"http://a.example/j\"}",
        "{\"issuer\":\"https://a.example\",\"jwks_uri\":\"https://a.example/j\","
        "\"token_endpoint\":\"javascript:x\"}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(oidc_discovery_parse(bad[i], strlen(bad[i]), "https://a.example", &doc, &why), -1,
               "%s refused (%s)", bad[i], why);
    struct oidc_token_answer answer;
    const char *tok = "{\"access_token\":\"x\",\"id_token\":\"h.p.s\",\"token_type\":\"Bearer\"}";
    is_int(oidc_token_answer_parse(tok, strlen(tok), &answer, &why), 0, "a token answer");
    is_str(answer.id_token, "h.p.s", "its id_token");
    oidc_token_answer_free(&answer);
    const char *refusal = "{\"error\":\"invalid_grant\",\"error_description\":\"<b>x</b>\"}";
    is_int(oidc_token_answer_parse(refusal, strlen(refusal), &answer, &why), 0, "a refusal");
    ok(answer.id_token == NULL, "without a token");
    is_str(answer.error, "invalid_grant", "its error code");
    const char *odd = "{\"error\":\"<script>\"}";
    oidc_token_answer_parse(odd, strlen(odd), &answer, &why);
    is_str(answer.error, "error", "an error code that is no word is not repeated");
    const char *none = "{\"access_token\":\"x\"}";
    is_int(oidc_token_answer_parse(none, strlen(none), &answer, &why), -1, "no id_token: refused");
}

/* b64url_random: the tokens of API keys, domain keys, sessions and CSRF. */
static void test_random_tokens(void)
{
    char a[B64URL_ENCODED_LEN(32) + 1], b[sizeof a];
    unsigned char bytes[B64URL_DECODED_MAX(43)];
    is_int(b64url_random(32, a), 0, "a token");
    is_int(strlen(a), 43, "of 43 characters");
    is_int(b64url_decode(a, strlen(a), bytes), 32, "which decode to 32 bytes");
    is_int(b64url_random(32, b), 0, "another");
    ok(strcmp(a, b) != 0, "not the same");
    is_int(b64url_random(65, a), -1, "more than 64 bytes is refused");
}

int main(void)
{
    test_random_tokens();
    test_oidc_documents();
    test_dev_issuer();
    test_format();
    test_algorithms();
    EVP_PKEY *rsa = key_generate("RSA", 2048), *ec = key_generate_named("P-256");
    test_refusals(rsa, ec);
    test_claims(ec);
    test_key_sets(rsa);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return tap_done();
}
