/* id_verify: the checks of a parsed assertion that need no network — audience, expiry, issuer
 * trust and the signature chain (SPEC.md §3). */
#ifndef PRESENCED_ID_VERIFY_H
#define PRESENCED_ID_VERIFY_H

#include "id_assertion.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether aud is one of the origins in allowed (already normalized). */
bool id_audience_allowed(const char *aud, char *const *allowed, size_t count);

/* Audience (errno 32) then the expiry of every part with skew_ms of tolerance (errno 33). Returns
 * 0 or that errno with *why set. */
int id_claims_check(const struct id_assertion *a, char *const *audiences, size_t audience_count,
                    int64_t now_ms, int64_t skew_ms, const char **why);

/* Whether the root issuer is one of the trusted hosts (trusted_issuer), which vouch for any
 * e-mail. Any other must be on the delegation chain of the e-mail's domain, which only the
 * network tells (SPEC.md §3). */
bool id_issuer_listed(const struct id_assertion *a, char *const *trusted, size_t trusted_count);
/* The domain of the principal's e-mail, where that chain starts. */
const char *id_email_domain(const struct id_assertion *a);

/* Verifies the first certificate with issuer_key, each next one with the previous one's key and
 * the assertion with the last certificate's key. Returns 0, or 34 with *why set. */
int id_signatures_check(const struct id_assertion *a, const struct id_key *issuer_key,
                        const char **why);

#endif
