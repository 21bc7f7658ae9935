/* Unit tests of the identity pieces in common/: base64url, origins, assertion parsing, keys and
 * signatures (with keys OpenSSL makes here), claims, support documents, verifier answers. */
#include "tap.h"

#include "../../common/b64url.h"
#include "../../common/id_assertion.h"
#include "../../common/id_key.h"
#include "../../common/id_support.h"
#include "../../common/id_verify.h"
#include "../../common/origin.h"

#include "../tools/id_forge.h"

#include <stdint.h>
#include <unistd.h>

static void test_b64url(void)
{
    unsigned char out[64];
    char text[64];
    is_int(b64url_decode("aGVsbG8", 7, out), 5, "decodes without padding");
    ok(memcmp(out, "hello", 5) == 0, "to the right bytes");
    b64url_encode((const unsigned char *)"hello", 5, text);
    is_str(text, "aGVsbG8", "encodes without padding");
    b64url_encode((const unsigned char *)"\xfb\xff", 2, text);
    is_str(text, "-_8", "uses - and _");
    is_int(b64url_decode("aGVsbG8=", 8, out), -1, "padding refused");
    is_int(b64url_decode("a+/b", 4, out), -1, "the standard alphabet refused");
    is_int(b64url_decode("abcde", 5, out), -1, "a length of 4k+1 refused");
    is_int(b64url_decode("AB", 2, out), -1, "non-zero trailing bits refused");
    is_int(b64url_decode("", 0, out), 0, "empty is empty");
}

static void origin_is(const char *in, const char *want)
{
    char out[ORIGIN_MAX];
    int rc = origin_normalize(in, out, sizeof out);
    if (want == NULL)
        is_int(rc, -1, "'%s' is not an origin", in);
    else
        is_str(rc == 0 ? out : NULL, want, "'%s' is %s", in, want);
}

static void test_origins(void)
{
    origin_is("https://Example.COM", "https://example.com");
    origin_is("HTTPS://example.com:443", "https://example.com");
    origin_is("http://example.com:80", "http://example.com");
    origin_is("https://example.com:80", "https://example.com:80");
    origin_is("http://localhost:8282", "http://localhost:8282");
    origin_is("app://chat", "app://chat");
    origin_is("http://[::1]:8080", "http://[::1]:8080");
    origin_is("https://example.com/", NULL);
    origin_is("https://example.com/path", NULL);
    origin_is("https://user@example.com", NULL);
    origin_is("https://example.com:0", NULL);
    origin_is("https://example.com:99999", NULL);
    origin_is("ftp://example.com", NULL);
    origin_is("example.com", NULL);
    origin_is("https://", NULL);
}

static void test_emails_and_hosts(void)
{
    ok(id_email_valid("alice@example.com"), "plain address");
    ok(id_email_valid("a.b+tag@mail.example.co.uk"), "dots and plus");
    ok(!id_email_valid("alice@localhost"), "a host without a dot");
    ok(!id_email_valid("alice"), "no @");
    ok(!id_email_valid("@example.com"), "empty local part");
    ok(!id_email_valid("a..b@example.com"), "two dots");
    ok(!id_email_valid("a b@example.com"), "a space");
    ok(!id_email_valid("a@b@example.com"), "two @");
    ok(!id_email_valid("alice@-example.com"), "a label starting with -");
    ok(id_host_valid("login.persona.org"), "host");
    ok(!id_host_valid("a/b"), "a slash is no host");
    ok(!id_host_valid("a..b"), "an empty label");
}

/* A JWS with the given header and payload JSON and signature bytes (not a real signature). */
static char *part_make(const char *header, const char *payload, const char *sig)
{
    static char buf[8][2048];
    static int next;
    char *out = buf[next++ % 8];
    char h[512], p[1024], s[512];
    b64url_encode((const unsigned char *)header, strlen(header), h);
    b64url_encode((const unsigned char *)payload, strlen(payload), p);
    b64url_encode((const unsigned char *)sig, strlen(sig), s);
    snprintf(out, 2048, "%s.%s.%s", h, p, s);
    return out;
}

static int parse_text(const char *text, struct id_assertion *a, const char **why)
{
    return id_assertion_parse(text, strlen(text), a, why);
}

#define RS_HEADER "{\"alg\":\"RS256\"}"
#define CERT_PAYLOAD                                                                               \
    "{\"iss\":\"example.com\",\"exp\":2000,\"public-key\":{\"algorithm\":\"RS\",\"n\":\"1\","      \
    "\"e\":\"3\"},\"principal\":{\"email\":\"alice@example.com\"}}"

static void test_assertion_parse(void)
{
    struct id_assertion a;
    const char *why = NULL;
    char text[4096];
    snprintf(text, sizeof text, "%s~%s", part_make(RS_HEADER, CERT_PAYLOAD, "sig"),
             part_make("{\"alg\":\"DS128\"}", "{\"aud\":\"https://p.example\",\"exp\":1500}", "s"));
    is_int(parse_text(text, &a, &why), 0, "a backed assertion parses");
    is_str(a.email, "alice@example.com", "principal");
    is_str(a.root_issuer, "example.com", "root issuer");
    is_str(a.assertion.aud, "https://p.example", "audience");
    is_int(a.cert_count, 1, "one certificate");
    is_int(a.assertion.alg, ID_ALG_DS128, "assertion alg");
    is_int(id_assertion_expiry(&a), 1500, "earliest expiry");
    id_assertion_free(&a);

    const char *bad[] = {
        "", "abc", "a.b.c", "a.b.c~", "~a.b.c", "a.b~c.d.e",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        is_int(parse_text(bad[i], &a, &why), -1, "'%s' refused (%s)", bad[i], why);
        id_assertion_free(&a);
    }
    struct {
        const char *header, *payload, *what;
    } bad_certs[] = {
        { "{\"alg\":\"HS256\"}", CERT_PAYLOAD, "an unknown alg" },
        { "{}", CERT_PAYLOAD, "no alg" },
        { RS_HEADER, "{\"iss\":\"example.com\",\"public-key\":{},\"principal\":{}}", "no exp" },
        { RS_HEADER, "{\"iss\":\"example.com\",\"exp\":\"soon\"}", "a string exp" },
        { RS_HEADER, "{\"exp\":1,\"public-key\":{},\"principal\":{\"email\":\"a@b.c\"}}",
          "no iss" },
        { RS_HEADER,
          "{\"iss\":\"a/b\",\"exp\":1,\"public-key\":{},\"principal\":{\"email\":\"a@b.c\"}}",
          "an iss that is no host" },
        { RS_HEADER, "{\"iss\":\"b.c\",\"exp\":1,\"principal\":{\"email\":\"a@b.c\"}}", "no key" },
        { RS_HEADER, "{\"iss\":\"b.c\",\"exp\":1,\"public-key\":{}}", "no principal" },
        { RS_HEADER,
          "{\"iss\":\"b.c\",\"exp\":1,\"public-key\":{},\"principal\":{\"email\":\"ab.c\"}}",
          "an invalid e-mail" },
        { RS_HEADER, "[1]", "a payload not an object" },
    };
    for (size_t i = 0; i < sizeof bad_certs / sizeof bad_certs[0]; i++) {
        snprintf(text, sizeof text, "%s~%s",
                 part_make(bad_certs[i].header, bad_certs[i].payload, "sig"),
                 part_make(RS_HEADER, "{\"aud\":\"x\",\"exp\":1}", "s"));
        is_int(parse_text(text, &a, &why), -1, "certificate with %s refused", bad_certs[i].what);
        id_assertion_free(&a);
    }
    snprintf(text, sizeof text, "%s~%s", part_make(RS_HEADER, CERT_PAYLOAD, "sig"),
             part_make(RS_HEADER, "{\"exp\":1}", "s"));
    is_int(parse_text(text, &a, &why), -1, "assertion without aud refused");
    id_assertion_free(&a);
    char many[8192] = "";
    for (int i = 0; i < ID_MAX_CERTS + 1; i++) {
        strcat(many, part_make(RS_HEADER, CERT_PAYLOAD, "sig"));
        strcat(many, "~");
    }
    strcat(many, part_make(RS_HEADER, "{\"aud\":\"x\",\"exp\":1}", "s"));
    is_int(parse_text(many, &a, &why), -1, "more than %d certificates refused", ID_MAX_CERTS);
    is_str(why, "too many certificates", "with the reason");
    id_assertion_free(&a);
}

/* A part has no limit of its own: a 10,000-byte claim parses when the whole fits in
 * ID_ASSERTION_MAX, and the whole is refused one byte past it. */
static void test_large_part(void)
{
    static char payload[12000], encoded[16500], text[ID_ASSERTION_MAX + 2];
    int n =
        snprintf(payload, sizeof payload, "{\"aud\":\"https://p.example\",\"exp\":1,\"note\":\"");
    memset(payload + n, 'x', 10000);
    strcpy(payload + n + 10000, "\"}");
    b64url_encode((const unsigned char *)payload, strlen(payload), encoded);
    int len = snprintf(text, sizeof text, "%s~%s.%s.c2ln",
                       part_make(RS_HEADER, CERT_PAYLOAD, "sig"), "eyJhbGciOiJEUzEyOCJ9", encoded);
    struct id_assertion a;
    const char *why = NULL;
    ok(len > 13000 && len < ID_ASSERTION_MAX, "an assertion of %d bytes", len);
    is_int(parse_text(text, &a, &why), 0, "with a 10,000-byte claim parses (%s)", why ? why : "");
    id_assertion_free(&a);
    memset(text, 'A', ID_ASSERTION_MAX + 1);
    is_int(id_assertion_parse(text, ID_ASSERTION_MAX + 1, &a, &why), -1, "%d bytes are refused",
           ID_ASSERTION_MAX + 1);
    is_str(why, "assertion too long", "as too long");
    id_assertion_free(&a);
}

static struct id_key key_load(EVP_PKEY *pkey)
{
    char json[8000];
    struct id_key key = { 0 };
    const char *why;
    struct json_object *obj = json_tokener_parse(key_json(pkey, json, sizeof json));
    if (id_key_from_json(obj, &key, &why) != 0)
        diag("key refused: %s", why);
    json_object_put(obj);
    return key;
}

/* jwcrypto writes an RS signature as a number: one in 256 loses a leading zero byte. RSA PKCS#1
 * v1.5 is deterministic, so a message whose signature starts with 0 is found by trying. */
static void test_short_rs_signature(EVP_PKEY *rsa, const struct id_key *rk)
{
    unsigned char sig[600];
    char data[64];
    size_t len = 0;
    int tries = 0;
    do
        snprintf(data, sizeof data, "header.payload-%d", tries);
    while ((len = jws_sign(rsa, "RS256", data, sig)) > 0 && sig[0] != 0 && ++tries < 100000);
    ok(len == 128 && sig[0] == 0, "a signature starting with 0x00 (message %d)", tries);
    if (len != 128 || sig[0] != 0)
        return;
    ok(id_key_verify(rk, ID_ALG_RS256, (const unsigned char *)data, strlen(data), sig + 1, len - 1),
       "it verifies with its leading zero stripped");
    ok(id_key_verify(rk, ID_ALG_RS256, (const unsigned char *)data, strlen(data), sig, len),
       "and at full width");
    ok(!id_key_verify(rk, ID_ALG_RS256, (const unsigned char *)"header.payload-x", 16, sig + 1,
                      len - 1),
       "a stripped signature over other data fails");
    sig[len - 1] ^= 1;
    ok(!id_key_verify(rk, ID_ALG_RS256, (const unsigned char *)data, strlen(data), sig + 1,
                      len - 1),
       "a stripped signature with a flipped byte fails");
    sig[len - 1] ^= 1;
    unsigned char longer[600] = { 0 };
    memcpy(longer + 1, sig, len);
    ok(!id_key_verify(rk, ID_ALG_RS256, (const unsigned char *)data, strlen(data), longer, len + 1),
       "a signature wider than the modulus fails, even with a leading zero");
    ok(!id_key_verify(rk, ID_ALG_RS256, (const unsigned char *)data, strlen(data), sig, 0),
       "an empty signature fails");
}

static void test_keys_and_signatures(EVP_PKEY *rsa, EVP_PKEY *dsa)
{
    struct id_key rk = key_load(rsa), dk = key_load(dsa);
    enum id_alg alg = ID_ALG_DS128;
    ok(id_alg_parse("RS128", &alg) == 0 && alg == ID_ALG_RS256,
       "RS128 (jwcrypto, RSA 1024) is RS256");
    ok(id_alg_parse("RS64", &alg) == -1 && id_alg_parse("HS256", &alg) == -1,
       "RS64, HS256 refused");
    ok(rk.type == 'R' && rk.bits == 1024, "RS key from n and e (%d bits)", rk.bits);
    ok(dk.type == 'D' && dk.bits == 1024 && dk.qbits == 160, "DS key from p, q, g, y");
    unsigned char sig[600];
    const char *data = "header.payload";
    size_t len = jws_sign(rsa, "RS256", data, sig);
    ok(id_key_verify(&rk, ID_ALG_RS256, (const unsigned char *)data, strlen(data), sig, len),
       "RS256 signature verifies");
    sig[len / 2] ^= 1;
    ok(!id_key_verify(&rk, ID_ALG_RS256, (const unsigned char *)data, strlen(data), sig, len),
       "one flipped byte fails");
    len = jws_sign(dsa, "DS128", data, sig);
    ok(id_key_verify(&dk, ID_ALG_DS128, (const unsigned char *)data, strlen(data), sig, len),
       "DS128 signature verifies");
    ok(!id_key_verify(&dk, ID_ALG_DS128, (const unsigned char *)"header.payloae", strlen(data), sig,
                      len),
       "over other data it fails");
    ok(!id_key_verify(&dk, ID_ALG_DS256, (const unsigned char *)data, strlen(data), sig, len),
       "DS256 on a 1024/160 key fails");
    ok(!id_key_verify(&rk, ID_ALG_DS128, (const unsigned char *)data, strlen(data), sig, len),
       "a DS alg on an RS key fails");
    ok(!id_key_verify(&dk, ID_ALG_DS128, (const unsigned char *)data, strlen(data), sig, 41),
       "a DS signature longer than 2q fails");
    test_short_rs_signature(rsa, &rk);
    id_key_free(&rk);
    id_key_free(&dk);

    struct id_key small;
    const char *why;
    EVP_PKEY *weak = key_generate("RSA", 512);
    char json[4000];
    struct json_object *obj = json_tokener_parse(key_json(weak, json, sizeof json));
    is_int(id_key_from_json(obj, &small, &why), -1, "a 512-bit RS key is refused");
    json_object_put(obj);
    EVP_PKEY_free(weak);
    const char *junk[] = {
        "{\"algorithm\":\"RS\",\"n\":\"12x\",\"e\":\"3\"}",
        "{\"algorithm\":\"RS\",\"n\":\"-5\",\"e\":\"3\"}",
        "{\"algorithm\":\"EC\"}",
        "{\"n\":\"5\"}",
        "{\"algorithm\":\"DS\",\"p\":\"zz\",\"q\":\"1\",\"g\":\"1\",\"y\":\"1\"}",
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        obj = json_tokener_parse(junk[i]);
        is_int(id_key_from_json(obj, &small, &why), -1, "key %s refused (%s)", junk[i], why);
        json_object_put(obj);
    }
}

static void test_chain(EVP_PKEY *issuer, EVP_PKEY *user)
{
    char json[8000], payload[9000], text[20000];
    struct id_key issuer_key = key_load(issuer);
    snprintf(payload, sizeof payload,
             "{\"iss\":\"example.com\",\"exp\":9999999999999,\"public-key\":%s,"
             "\"principal\":{\"email\":\"alice@example.com\"}}",
             key_json(user, json, sizeof json));
    char *cert = jws_make(issuer, "RS256", payload);
    char *signed_assertion =
        jws_make(user, "DS128", "{\"aud\":\"https://p.example:443\",\"exp\":9999999999999}");
    snprintf(text, sizeof text, "%s~%s", cert, signed_assertion);
    struct id_assertion a;
    const char *why = NULL;
    is_int(parse_text(text, &a, &why), 0, "a signed backed assertion parses");
    char *audiences[] = { "https://p.example" };
    is_int(id_claims_check(&a, audiences, 1, 1000, 0, &why), 0, "claims accepted");
    is_int(id_signatures_check(&a, &issuer_key, &why), 0, "RS256 certificate over DS128 verifies");
    char *other[] = { "https://q.example" };
    is_int(id_claims_check(&a, other, 1, 1000, 0, &why), 32, "another audience: 32");
    is_int(id_claims_check(&a, audiences, 1, 9999999999999 + 61000, 60000, &why), 33,
           "past exp and skew: 33");
    is_int(id_claims_check(&a, audiences, 1, 9999999999999 + 59000, 60000, &why), 0,
           "within the skew: accepted");
    char *trusted[] = { "login.example.org" };
    ok(!id_issuer_listed(&a, trusted, 1), "example.com is no trusted issuer");
    is_str(id_email_domain(&a), "example.com", "the chain starts at the e-mail's domain");
    char *listed[] = { "login.example.org", "EXAMPLE.com" };
    ok(id_issuer_listed(&a, listed, 2), "a trusted issuer, in any case");
    struct id_key user_key = key_load(user);
    is_int(id_signatures_check(&a, &user_key, &why), 34, "another issuer key: 34");
    id_key_free(&user_key);
    id_assertion_free(&a);
    text[strlen(text) - 3] = text[strlen(text) - 3] == 'A' ? 'B' : 'A';
    is_int(parse_text(text, &a, &why), 0, "a tampered signature still parses");
    is_int(id_signatures_check(&a, &issuer_key, &why), 34, "and fails the check: 34");
    id_assertion_free(&a);
    id_key_free(&issuer_key);
}

/* A trusted_issuer key file may be a bare key or a document without its sign-in paths. */
static void test_key_files(const char *key)
{
    char path[] = "/tmp/test_identity_keyXXXXXX", err[256];
    struct id_key loaded;
    const char *forms[] = { "%s", "{\"public-key\":%s}",
                            "{\"public-key\":%s,\"authentication\":\"/a\"}" };
    int fd = mkstemp(path);
    ok(fd >= 0, "a key file");
    if (fd < 0)
        return;
    close(fd);
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        FILE *f = fopen(path, "w");
        fprintf(f, forms[i], key);
        fclose(f);
        int rc = id_key_file_load(path, &loaded, err, sizeof err);
        is_int(rc, 0, "key file form %zu loads (%s)", i, rc == 0 ? "ok" : err);
        if (rc == 0)
            id_key_free(&loaded);
    }
    FILE *f = fopen(path, "w");
    fputs("{\"authority\":\"login.example.org\"}", f);
    fclose(f);
    is_int(id_key_file_load(path, &loaded, err, sizeof err), -1, "a delegation is no key file");
    unlink(path);
}

static void test_media_types(void)
{
    const char *good[] = { "application/json", "application/json; charset=utf-8",
                           "Application/JSON", "application/json;charset=UTF-8" };
    const char *bad[] = { "text/html",
                          "text/plain",
                          "application/jsonp",
                          "application/json-seq",
                          "application/javascript",
                          "",
                          "text/html; application/json" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ok(id_support_media_type_ok(good[i]), "'%s' is JSON", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ok(!id_support_media_type_ok(bad[i]), "'%s' is not", bad[i]);
    ok(!id_support_media_type_ok(NULL), "no Content-Type is not");
}

static void test_support_documents(EVP_PKEY *rsa)
{
    struct id_support doc;
    const char *why;
    char json[4000], text[5000];
    key_json(rsa, json, sizeof json);
    snprintf(text, sizeof text,
             "{\"public-key\":%s,\"authentication\":\"/a\",\"provisioning\":\"/p\"}", json);
    is_int(id_support_parse(text, strlen(text), &doc, &why), 0, "support document with a key");
    is_int(doc.kind, ID_SUPPORT_KEY, "kind key");
    id_support_free(&doc);
    const char *incomplete[] = {
        "{\"public-key\":%s}",
        "{\"public-key\":%s,\"authentication\":\"/a\"}",
        "{\"public-key\":%s,\"provisioning\":\"/p\"}",
        "{\"public-key\":%s,\"authentication\":5,\"provisioning\":\"/p\"}",
        "{\"public-key\":%s,\"authentication\":\"a\",\"provisioning\":\"/p\"}",
        "{\"public-key\":%s,\"authentication\":\"\",\"provisioning\":\"/p\"}",
        "%s",
    };
    for (size_t i = 0; i < sizeof incomplete / sizeof incomplete[0]; i++) {
        snprintf(text, sizeof text, incomplete[i], json);
        is_int(id_support_parse(text, strlen(text), &doc, &why), -1,
               "served without its paths (%zu): refused (%s)", i, why);
    }
    test_key_files(json);
    const char *deleg = "{\"authority\":\"login.example.org\"}";
    is_int(id_support_parse(deleg, strlen(deleg), &doc, &why), 0, "delegation");
    is_str(doc.authority, "login.example.org", "authority kept");
    const char *off = "{\"disabled\":true}";
    is_int(id_support_parse(off, strlen(off), &doc, &why), 0, "disabled");
    is_int(doc.kind, ID_SUPPORT_DISABLED, "kind disabled");
    const char *bad[] = { "{\"authority\":\"a/b\"}", "{\"authority\":5}", "{}", "nope",
                          "{\"public-key\":{\"algorithm\":\"XX\"}}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(id_support_parse(bad[i], strlen(bad[i]), &doc, &why), -1, "%s refused", bad[i]);
}

static void test_remote(void)
{
    char *trusted[] = { "fxa.example", "login.example" };
    char *body = id_remote_request(ID_REMOTE_V1, "a~b c&d", 7, "https://p.example", trusted, 2);
    is_str(body, "assertion=a~b%20c%26d&audience=https%3A%2F%2Fp.example", "v1 form, escaped");
    free(body);
    body = id_remote_request(ID_REMOTE_V2, "a~b", 3, "https://p.example", trusted, 2);
    is_str(body,
           "{\"assertion\":\"a~b\",\"audience\":\"https://p.example\",\"trustedIssuers\":"
           "[\"fxa.example\",\"login.example\"]}",
           "v2 JSON with trustedIssuers");
    free(body);
    struct id_remote_answer answer;
    const char *why;
    struct {
        const char *text;
        int want;
    } cases[] = {
        { "{\"status\":\"okay\",\"email\":\"a@b.example\",\"audience\":\"https://p.example\","
          "\"expires\":5000}",
          0 },
        { "{\"status\":\"okay\",\"email\":\"a@b.example\",\"audience\":\"https://q.example\"}",
          32 },
        { "{\"status\":\"okay\",\"audience\":\"https://p.example\"}", 35 },
        { "{\"status\":\"failure\",\"reason\":\"assertion has expired\"}", 33 },
        { "{\"status\":\"failure\",\"reason\":\"audience mismatch\"}", 32 },
        { "{\"status\":\"failure\",\"reason\":\"bad signature\"}", 34 },
        { "{\"status\":\"failure\"}", 34 },
        { "<html>", 35 },
        { "{}", 35 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        is_int(id_remote_answer_parse(cases[i].text, strlen(cases[i].text), "https://p.example",
                                      &answer, &why),
               cases[i].want, "verifier answer %s", cases[i].text);
    id_remote_answer_parse(cases[0].text, strlen(cases[0].text), "https://p.example", &answer,
                           &why);
    is_str(answer.email, "a@b.example", "verified e-mail");
    is_int(answer.expires_ms, 5000, "expiry");
}

int main(void)
{
    test_b64url();
    test_origins();
    test_emails_and_hosts();
    test_assertion_parse();
    test_large_part();
    EVP_PKEY *rsa = key_generate("RSA", 1024), *dsa = key_generate("DSA", 1024);
    ok(rsa != NULL && dsa != NULL, "OpenSSL made an RSA and a DSA key");
    if (rsa != NULL && dsa != NULL) {
        test_keys_and_signatures(rsa, dsa);
        test_chain(rsa, dsa);
        test_support_documents(rsa);
    }
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(dsa);
    test_remote();
    test_media_types();
    return tap_done();
}
