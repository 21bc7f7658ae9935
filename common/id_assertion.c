/* id_assertion: parsing of a BrowserID backed assertion (cert~…~assertion, each part a JWS). */
#include "id_assertion.h"

#include "b64url.h"
#include "json_strict.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool id_host_valid(const char *text)
{
    size_t len = strlen(text), label = 0;
    if (len == 0 || len > ID_HOST_MAX)
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '.') {
            if (label == 0 || label > 63 || text[i - 1] == '-' || text[i - label] == '-')
                return false;
            label = 0;
        } else if (host_char(text[i])) {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* RFC 5322 atext plus '.', which is what mail providers hand out in practice. */
static bool local_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

bool id_email_valid(const char *text)
{
    const char *at = strchr(text, '@');
    size_t len = strlen(text);
    if (at == NULL || at == text || len > ID_EMAIL_MAX || at - text > 64)
        return false;
    for (const char *p = text; p < at; p++)
        if (!local_char(*p))
            return false;
    if (text[0] == '.' || at[-1] == '.' || strstr(text, "..") != NULL)
        return false;
    return strchr(at + 1, '.') != NULL && id_host_valid(at + 1);
}

/* Decodes one base64url segment and parses it as a JSON object. A segment has no limit of its
 * own: the whole assertion's (ID_ASSERTION_MAX) bounds it. */
static struct json_object *segment_json(const char *text, size_t len)
{
    unsigned char *buf = len > 0 ? malloc(B64URL_DECODED_MAX(len)) : NULL;
    long n = buf != NULL ? b64url_decode(text, len, buf) : -1;
    struct json_object *obj = n <= 0 ? NULL : json_strict_object((const char *)buf, (size_t)n);
    free(buf);
    return obj;
}

/* A millisecond time: a non-negative integer member. */
static int time_member(struct json_object *obj, const char *key, int64_t *out)
{
    struct json_object *member;
    if (!json_object_object_get_ex(obj, key, &member))
        return 0;
    if (!json_object_is_type(member, json_type_int) || json_object_get_int64(member) < 0)
        return -1;
    *out = json_object_get_int64(member);
    return 1;
}

static int fail(const char **why, const char *text)
{
    *why = text;
    return -1;
}

/* Splits "header.payload.signature", decodes the header's alg and the signature. */
static int jws_parse(const char *text, size_t len, struct id_part *part, const char **why)
{
    const char *dot1 = memchr(text, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - text)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - text)) != NULL)
        return fail(why, "a part is not header.payload.signature");
    part->text = text;
    part->signed_len = (size_t)(dot2 - text);
    struct json_object *header = segment_json(text, (size_t)(dot1 - text));
    const char *alg;
    int known = header != NULL && json_strict_string(header, "alg", &alg, NULL) == 1 &&
                id_alg_parse(alg, &part->alg) == 0;
    json_object_put(header);
    if (!known)
        return fail(why, "a part has no valid header or an unknown alg");
    part->payload = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (part->payload == NULL)
        return fail(why, "a part's payload is not base64url JSON");
    size_t sig_chars = len - (size_t)(dot2 + 1 - text);
    part->sig = malloc(B64URL_DECODED_MAX(sig_chars) + 1);
    if (part->sig == NULL)
        return fail(why, "out of memory");
    long n = b64url_decode(dot2 + 1, sig_chars, part->sig);
    if (n <= 0)
        return fail(why, "a signature is not base64url");
    part->sig_len = (size_t)n;
    int has = time_member(part->payload, "exp", &part->exp_ms);
    if (has != 1)
        return fail(why, "a part has no valid exp");
    part->iat_ms = -1;
    if (time_member(part->payload, "iat", &part->iat_ms) < 0)
        return fail(why, "a part has an invalid iat");
    return 0;
}

static int cert_claims(struct id_part *cert, bool last, const char **why)
{
    size_t iss_len;
    if (json_strict_string(cert->payload, "iss", &cert->iss, &iss_len) != 1 ||
        strlen(cert->iss) != iss_len || !id_host_valid(cert->iss))
        return fail(why, "a certificate has no valid iss");
    if (!json_object_object_get_ex(cert->payload, "public-key", &cert->public_key) ||
        !json_object_is_type(cert->public_key, json_type_object))
        return fail(why, "a certificate has no public-key");
    if (!last)
        return 0;
    struct json_object *principal;
    size_t email_len;
    if (!json_object_object_get_ex(cert->payload, "principal", &principal) ||
        !json_object_is_type(principal, json_type_object) ||
        json_strict_string(principal, "email", &cert->email, &email_len) != 1 ||
        strlen(cert->email) != email_len || !id_email_valid(cert->email))
        return fail(why, "the certificate has no valid principal e-mail");
    return 0;
}

static int assertion_claims(struct id_part *part, const char **why)
{
    size_t aud_len;
    if (json_strict_string(part->payload, "aud", &part->aud, &aud_len) != 1 || aud_len == 0 ||
        strlen(part->aud) != aud_len)
        return fail(why, "the assertion has no aud");
    return 0;
}

int id_assertion_parse(const char *text, size_t len, struct id_assertion *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (len == 0 || len > ID_ASSERTION_MAX)
        return fail(why, len == 0 ? "empty assertion" : "assertion too long");
    const char *parts[ID_MAX_CERTS + 1];
    size_t lens[ID_MAX_CERTS + 1], count = 0;
    for (const char *p = text, *end = text + len; p <= end; count++) {
        const char *tilde = memchr(p, '~', (size_t)(end - p));
        const char *stop = tilde ? tilde : end;
        if (count == ID_MAX_CERTS + 1 || stop == p)
            return fail(why, count == ID_MAX_CERTS + 1 ? "too many certificates" : "empty part");
        parts[count] = p;
        lens[count] = (size_t)(stop - p);
        p = stop + 1;
    }
    if (count < 2)
        return fail(why, "not a backed assertion (cert~assertion)");
    out->cert_count = count - 1;
    for (size_t i = 0; i < out->cert_count; i++)
        if (jws_parse(parts[i], lens[i], &out->certs[i], why) != 0 ||
            cert_claims(&out->certs[i], i + 1 == out->cert_count, why) != 0) {
            id_assertion_free(out);
            return -1;
        }
    if (jws_parse(parts[count - 1], lens[count - 1], &out->assertion, why) != 0 ||
        assertion_claims(&out->assertion, why) != 0) {
        id_assertion_free(out);
        return -1;
    }
    out->email = out->certs[out->cert_count - 1].email;
    out->root_issuer = out->certs[0].iss;
    return 0;
}

static void part_free(struct id_part *part)
{
    free(part->sig);
    json_object_put(part->payload);
    memset(part, 0, sizeof *part);
}

void id_assertion_free(struct id_assertion *a)
{
    for (size_t i = 0; i < ID_MAX_CERTS; i++)
        part_free(&a->certs[i]);
    part_free(&a->assertion);
    a->cert_count = 0;
    a->email = a->root_issuer = NULL;
}

int64_t id_assertion_expiry(const struct id_assertion *a)
{
    int64_t earliest = a->assertion.exp_ms;
    for (size_t i = 0; i < a->cert_count; i++)
        if (a->certs[i].exp_ms < earliest)
            earliest = a->certs[i].exp_ms;
    return earliest;
}
