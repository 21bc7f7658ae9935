/* id_verify: the checks of a parsed assertion that need no network — audience, expiry, issuer
 * trust and the signature chain (SPEC.md §3). */
#include "id_verify.h"

#include "origin.h"

#include <string.h>
#include <strings.h>

bool id_audience_allowed(const char *aud, char *const *allowed, size_t count)
{
    char canonical[ORIGIN_MAX];
    if (origin_normalize(aud, canonical, sizeof canonical) != 0)
        return false;
    for (size_t i = 0; i < count; i++)
        if (strcmp(canonical, allowed[i]) == 0)
            return true;
    return false;
}

int id_claims_check(const struct id_assertion *a, char *const *audiences, size_t audience_count,
                    int64_t now_ms, int64_t skew_ms, const char **why)
{
    if (!id_audience_allowed(a->assertion.aud, audiences, audience_count)) {
        *why = "assertion audience not accepted";
        return 32;
    }
    if (a->assertion.exp_ms + skew_ms < now_ms) {
        *why = "assertion expired";
        return 33;
    }
    for (size_t i = 0; i < a->cert_count; i++)
        if (a->certs[i].exp_ms + skew_ms < now_ms) {
            *why = "certificate expired";
            return 33;
        }
    return 0;
}

bool id_issuer_listed(const struct id_assertion *a, char *const *trusted, size_t trusted_count)
{
    for (size_t i = 0; i < trusted_count; i++)
        if (strcasecmp(a->root_issuer, trusted[i]) == 0)
            return true;
    return false;
}

const char *id_email_domain(const struct id_assertion *a)
{
    return strchr(a->email, '@') + 1;
}

static bool part_signed_by(const struct id_part *part, const struct id_key *key)
{
    return id_key_verify(key, part->alg, (const unsigned char *)part->text, part->signed_len,
                         part->sig, part->sig_len);
}

int id_signatures_check(const struct id_assertion *a, const struct id_key *issuer_key,
                        const char **why)
{
    struct id_key current;
    id_key_copy(&current, issuer_key);
    for (size_t i = 0; i < a->cert_count; i++) {
        const struct id_part *cert = &a->certs[i];
        if (!part_signed_by(cert, &current)) {
            id_key_free(&current);
            *why = i == 0 ? "certificate not signed by its issuer" : "certificate chain broken";
            return 34;
        }
        id_key_free(&current);
        if (id_key_from_json(cert->public_key, &current, why) != 0)
            return 34;
    }
    bool valid = part_signed_by(&a->assertion, &current);
    id_key_free(&current);
    if (!valid) {
        *why = "assertion signature invalid";
        return 34;
    }
    return 0;
}
