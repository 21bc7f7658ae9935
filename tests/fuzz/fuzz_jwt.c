/* libFuzzer target: what OpenID Connect verification reads from outside, chosen by the first
 * byte modulo 4 — 0: a token (JWT) through jwt_parse, the claims checks and the signature check
 * against a fixed key set; 1: a key set (JWKS) through jwk_set_parse, then a fixed token checked
 * against it; 2: a discovery document; 3: a token endpoint's answer. */
#include "../../common/jwk.h"
#include "../../common/jwt.h"
#include "../../common/oidc_doc.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The Ed25519 key of RFC 8037 A.2 and a P-256 key; a token that key signed (valid signature,
 * long expired), checked against each key set the fuzzer makes. */
static const char FIXED_SET[] =
    "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\","
    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},"
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
static const char FIXED_TOKEN[] =
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImsifQ."
    "eyJpc3MiOiJodHRwczovL29wLmV4YW1wbGUiLCJhdWQiOiJwcmVzZW5jZWQiLCJleHAiOjEsImVtYWlsIjoiYUBleG"
    "FtcGxlLmNvbSIsImVtYWlsX3ZlcmlmaWVkIjp0cnVlfQ."
    "yo_1Rejs6dq40Y1QD45yJna24JkPJMw6gJmW8NdETYYhOWoOX0NGoeOOmDlxlYQN86DdivvZ7EavTVOaYYDnBw";

static void check_token(const char *text, size_t len, const struct jwk_set *set)
{
    struct jwt t;
    const char *why = NULL, *matched = NULL;
    if (jwt_parse(text, len, &t, &why) != 0) {
        if (why == NULL)
            __builtin_trap(); /* a refusal always says why */
        jwt_free(&t);
        return;
    }
    if (t.iss == NULL || t.aud_count == 0 || t.aud_count > JWT_AUD_MAX)
        __builtin_trap();
    char *audiences[] = { "presenced" };
    int rc = jwt_claims_check(&t, audiences, 1, 1700000000000, 60000, &matched, &why);
    if ((rc != 0 && rc != 32 && rc != 33) || (rc == 0 && matched == NULL))
        __builtin_trap();
    rc = jwt_email_check(&t, &why);
    if (rc != 0 && rc != 34)
        __builtin_trap();
    rc = jwt_signature_check(&t, set, &why);
    if (rc != 0 && rc != 34)
        __builtin_trap();
    jwt_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1, *why = NULL;
    size_t len = size - 1;
    struct jwk_set set;
    if (data[0] % 4 == 2) {
        struct oidc_discovery doc;
        if (oidc_discovery_parse(text, len, "https://op.example", &doc, &why) != 0) {
            if (why == NULL || doc.jwks_uri != NULL)
                __builtin_trap();
            return 0;
        }
        if (!oidc_https_url(doc.jwks_uri) ||
            (doc.token_endpoint != NULL && !oidc_https_url(doc.token_endpoint)))
            __builtin_trap();
        oidc_discovery_free(&doc);
        return 0;
    }
    if (data[0] % 4 == 3) {
        struct oidc_token_answer answer;
        if (oidc_token_answer_parse(text, len, &answer, &why) != 0 && why == NULL)
            __builtin_trap();
        if (answer.id_token != NULL && answer.error[0] != '\0')
            __builtin_trap();
        oidc_token_answer_free(&answer);
        return 0;
    }
    if (data[0] % 4 == 0) {
        if (jwk_set_parse(FIXED_SET, strlen(FIXED_SET), &set, NULL, &why) != 0)
            __builtin_trap();
        check_token(text, len, &set);
        jwk_set_free(&set);
        return 0;
    }
    size_t skipped;
    if (jwk_set_parse(text, len, &set, &skipped, &why) != 0) {
        if (why == NULL || set.count != 0)
            __builtin_trap();
        return 0;
    }
    if (set.count == 0 || set.count > JWKS_MAX_KEYS)
        __builtin_trap();
    for (size_t i = 0; i < set.count; i++)
        if (set.keys[i].pkey == NULL)
            __builtin_trap();
    check_token(FIXED_TOKEN, strlen(FIXED_TOKEN), &set);
    jwk_set_free(&set);
    return 0;
}
