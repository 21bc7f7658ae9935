/* jwt: OpenID Connect ID tokens and OAuth 2 JWT access tokens (RFC 7519, RFC 9068) — parsing of
 * the compact JWS, the claims checks that need no key, and the signature against a key set
 * (SPEC.md §3.1). The header's jku, x5u and jwk are never followed: keys come from the
 * configuration or the issuer's discovery document only. */
#include "jwt.h"

#include "b64url.h"
#include "id_assertion.h"
#include "json_strict.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JWT_PART_MAX 12288 /* decoded bytes of a header or payload */
#define MS_MAX (INT64_MAX / 2)

static int fail(const char **why, const char *text)
{
    *why = text;
    return 34;
}

static struct json_object *segment_json(const char *text, size_t len)
{
    if (len == 0 || B64URL_DECODED_MAX(len) > JWT_PART_MAX)
        return NULL;
    unsigned char *buf = malloc(B64URL_DECODED_MAX(len));
    long n = buf ? b64url_decode(text, len, buf) : -1;
    struct json_object *obj = n <= 0 ? NULL : json_strict_object((const char *)buf, (size_t)n);
    free(buf);
    return obj;
}

static int header_check(struct json_object *header, struct jwt *out, const char **why)
{
    const char *alg, *typ, *kid;
    size_t kid_len;
    if (json_object_object_get_ex(header, "crit", NULL))
        return fail(why, "crit header refused");
    if (json_strict_string(header, "alg", &alg, NULL) != 1)
        return fail(why, "header has no alg");
    if (jwt_alg_parse(alg, &out->alg, why) != 0)
        return 34;
    int has = json_strict_string(header, "typ", &typ, NULL);
    /* RFC 9068 §4: access tokens say at+jwt; ID tokens JWT or nothing. Anything else (a logout
     * token, a JWE) is not an identity. */
    if (has < 0 || (has == 1 && strcasecmp(typ, "JWT") != 0 && strcasecmp(typ, "at+jwt") != 0 &&
                    strcasecmp(typ, "application/at+jwt") != 0))
        return fail(why, "header typ is not JWT or at+jwt");
    has = json_strict_string(header, "kid", &kid, &kid_len);
    if (has < 0 || (has == 1 && (kid_len == 0 || kid_len > JWK_KID_MAX || strlen(kid) != kid_len)))
        return fail(why, "header kid is not a short string");
    if (has == 1)
        memcpy(out->kid, kid, kid_len + 1);
    return 0;
}

/* A NumericDate (seconds, maybe with a fraction) as milliseconds: 1 with *ms set, 0 absent,
 * -1 invalid. */
static int time_claim(struct json_object *payload, const char *key, int64_t *ms)
{
    struct json_object *member;
    *ms = -1;
    if (!json_object_object_get_ex(payload, key, &member))
        return 0;
    if (json_object_is_type(member, json_type_int)) {
        int64_t s = json_object_get_int64(member);
        if (s < 0)
            return -1;
        *ms = s > MS_MAX / 1000 ? MS_MAX : s * 1000;
        return 1;
    }
    if (json_object_is_type(member, json_type_double)) {
        double s = json_object_get_double(member);
        if (!isfinite(s) || s < 0)
            return -1;
        *ms = s > (double)(MS_MAX / 1000) ? MS_MAX : (int64_t)(s * 1000.0);
        return 1;
    }
    return -1;
}

/* An optional string claim without NUL: 1 set, 0 absent, -1 invalid. */
static int string_claim(struct json_object *payload, const char *key, const char **out)
{
    size_t len;
    *out = NULL;
    int has = json_strict_string(payload, key, out, &len);
    if (has == 1 && (len == 0 || strlen(*out) != len))
        return -1;
    return has;
}

static int aud_claim(struct json_object *payload, struct jwt *out, const char **why)
{
    struct json_object *aud;
    if (!json_object_object_get_ex(payload, "aud", &aud))
        return fail(why, "token has no aud");
    if (json_object_is_type(aud, json_type_string)) {
        if (string_claim(payload, "aud", &out->aud[0]) != 1)
            return fail(why, "token aud is not a string");
        out->aud_count = 1;
        return 0;
    }
    if (!json_object_is_type(aud, json_type_array))
        return fail(why, "token aud is not a string or an array");
    size_t n = json_object_array_length(aud);
    if (n == 0 || n > JWT_AUD_MAX)
        return fail(why, "token aud has no value or too many");
    for (size_t i = 0; i < n; i++) {
        struct json_object *value = json_object_array_get_idx(aud, i);
        const char *text = json_object_get_string(value);
        size_t len = (size_t)json_object_get_string_len(value);
        if (!json_object_is_type(value, json_type_string) || len == 0 || strlen(text) != len)
            return fail(why, "token aud holds a value that is not a string");
        out->aud[i] = text;
    }
    out->aud_count = n;
    return 0;
}

static int payload_claims(struct json_object *p, struct jwt *out, const char **why)
{
    if (string_claim(p, "iss", &out->iss) != 1)
        return fail(why, "token has no iss");
    if (aud_claim(p, out, why) != 0)
        return 34;
    if (string_claim(p, "azp", &out->azp) < 0 || string_claim(p, "nonce", &out->nonce) < 0 ||
        string_claim(p, "email", &out->email) < 0)
        return fail(why, "token azp, nonce or email is not a string");
    if (time_claim(p, "exp", &out->exp_ms) < 0 || time_claim(p, "nbf", &out->nbf_ms) < 0 ||
        time_claim(p, "iat", &out->iat_ms) < 0)
        return fail(why, "token exp, nbf or iat is not a date");
    struct json_object *verified;
    out->email_verified = 0;
    /* A boolean, or the string "true" some providers (Amazon Cognito) send. */
    if (json_object_object_get_ex(p, "email_verified", &verified))
        out->email_verified =
            json_object_is_type(verified, json_type_boolean)
                ? json_object_get_boolean(verified)
                : json_object_is_type(verified, json_type_string) &&
                      strcmp(json_object_get_string(verified), "true") == 0;
    return 0;
}

int jwt_parse(const char *text, size_t len, struct jwt *out, const char **why)
{
    memset(out, 0, sizeof *out);
    out->exp_ms = out->nbf_ms = out->iat_ms = -1;
    if (len == 0 || len > JWT_MAX)
        return fail(why, len == 0 ? "empty token" : "token too long");
    const char *dot1 = memchr(text, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - text)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - text)) != NULL)
        return fail(why, "token is not header.payload.signature");
    out->text = text;
    out->signed_len = (size_t)(dot2 - text);
    struct json_object *header = segment_json(text, (size_t)(dot1 - text));
    if (header == NULL)
        return fail(why, "token header is not base64url JSON");
    int rc = header_check(header, out, why);
    json_object_put(header);
    if (rc != 0)
        return rc;
    out->payload = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (out->payload == NULL)
        return fail(why, "token payload is not base64url JSON");
    size_t sig_chars = len - (size_t)(dot2 + 1 - text);
    out->sig = malloc(B64URL_DECODED_MAX(sig_chars) + 1);
    if (out->sig == NULL)
        return fail(why, "out of memory");
    long n = b64url_decode(dot2 + 1, sig_chars, out->sig);
    if (n <= 0)
        return fail(why, "token signature is not base64url");
    out->sig_len = (size_t)n;
    return payload_claims(out->payload, out, why);
}

void jwt_free(struct jwt *t)
{
    free(t->sig);
    json_object_put(t->payload);
    memset(t, 0, sizeof *t);
}

static const char *accepted(const char *value, char *const *audiences, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(value, audiences[i]) == 0)
            return audiences[i];
    return NULL;
}

int jwt_claims_check(const struct jwt *t, char *const *audiences, size_t audience_count,
                     int64_t now_ms, int64_t skew_ms, const char **matched, const char **why)
{
    *matched = NULL;
    for (size_t i = 0; i < t->aud_count && *matched == NULL; i++)
        *matched = accepted(t->aud[i], audiences, audience_count);
    if (*matched == NULL) {
        *why = "token audience not accepted";
        return 32;
    }
    /* OpenID Connect Core §3.1.3.7: with several audiences, the party it was issued to. */
    if (t->aud_count > 1 && t->azp != NULL && accepted(t->azp, audiences, audience_count) == NULL) {
        *why = "token azp not accepted";
        return 32;
    }
    if (t->exp_ms < 0) {
        *why = "token has no exp";
        return 33;
    }
    if (t->exp_ms + skew_ms < now_ms) {
        *why = "token expired";
        return 33;
    }
    if (t->nbf_ms > now_ms + skew_ms) {
        *why = "token not yet valid (nbf)";
        return 33;
    }
    if (t->iat_ms > now_ms + skew_ms) {
        *why = "token issued in the future (iat)";
        return 33;
    }
    return 0;
}

int jwt_email_check(const struct jwt *t, const char **why)
{
    if (t->email == NULL)
        return fail(why, "token has no email");
    if (!id_email_valid(t->email))
        return fail(why, "token email is not a valid address");
    if (!t->email_verified)
        return fail(why, "token email is not verified");
    return 0;
}

int jwt_signature_check(const struct jwt *t, const struct jwk_set *set, const char **why)
{
    bool candidate = false;
    for (size_t i = 0; i < set->count; i++) {
        const struct jwk *key = &set->keys[i];
        if ((t->kid[0] != '\0' && strcmp(key->kid, t->kid) != 0) || !jwk_fits(key, t->alg))
            continue;
        candidate = true;
        if (jwk_verify(key, t->alg, (const unsigned char *)t->text, t->signed_len, t->sig,
                       t->sig_len))
            return 0;
    }
    if (!candidate)
        return fail(why, t->kid[0] != '\0' && jwk_set_has_kid(set, t->kid)
                             ? "token alg does not fit its key"
                             : "no key of the issuer for the token");
    return fail(why, "token signature invalid");
}
