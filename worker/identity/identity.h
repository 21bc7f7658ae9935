/* identity: verification of BrowserID assertions (SPEC.md §3) and of OpenID Connect and OAuth 2
 * tokens (§3.1) for a worker — the shared cache, then local checks with fetched issuer keys or a
 * remote verifier, never blocking the loop. Assertions in identity.c, tokens in
 * identity_token.c. */
#ifndef PRESENCED_IDENTITY_H
#define PRESENCED_IDENTITY_H

#include "../../common/config.h"
#include "../../common/id_assertion.h"
#include "../../shm/store.h"

#include <stdbool.h>
#include <stdint.h>

struct identity_result {
    int error;       /* 0, or the errno of SPEC.md §1: 32, 33, 34, 35 */
    const char *why; /* short English text when error != 0 */
    char email[ID_EMAIL_MAX + 1];
    bool cached; /* answered from the shared cache */
};

typedef void (*identity_cb)(void *arg, const struct identity_result *result);

struct identity_stats {
    uint64_t cache_hits;
    uint64_t verified;    /* checked (locally or remotely) and accepted */
    uint64_t refused;     /* errno 32, 33, 34 */
    uint64_t unavailable; /* errno 35 */
};

struct identity;
struct identity_req;

struct fetcher;

/* fetcher (the worker's) carries support documents and verifier requests. */
int identity_init(struct identity **out, struct fetcher *fetcher, struct shm_store *store,
                  const struct config *cfg, char *err, size_t errlen);
/* Cancels every verification under way; identity_free releases the rest. */
void identity_stop(struct identity *id);
void identity_free(struct identity *id);

/* Verifies assertion (len bytes, copied) for audience (a canonical origin), or for any of the
 * configured audiences when audience is NULL. Returns 0 when *out holds the outcome already, or
 * 1 when the outcome will reach cb on the loop; *pending can then cancel it. */
int identity_verify(struct identity *id, const char *assertion, size_t len, const char *audience,
                    struct identity_result *out, identity_cb cb, void *arg,
                    struct identity_req **pending);
void identity_cancel(struct identity_req *req);

/* What the web sign-in (oidc_login) wants of the ID token it was given: its issuer, its client
 * id as the audience, the nonce it sent. Such a token is not cached. */
struct identity_token_expect {
    const char *issuer;
    const char *audience;
    const char *nonce;
};

/* Verifies an ID token or JWT access token (len bytes, copied) as SPEC.md §3.1 says: with expect
 * NULL (a device's token), of a configured oidc_issuer with an oidc_audience value, or of the
 * development issuer with aud presenced-dev. Returns as identity_verify does; identity_cancel
 * cancels it. */
int identity_verify_token(struct identity *id, const char *token, size_t len,
                          const struct identity_token_expect *expect, struct identity_result *out,
                          identity_cb cb, void *arg, struct identity_req **pending);

const struct identity_stats *identity_stats(const struct identity *id);

struct issuer_keys;
/* The worker's cache of issuers' keys, for the web sign-in's discovery of endpoints. */
struct issuer_keys *identity_keys(struct identity *id);

#endif
