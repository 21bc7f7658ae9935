/* issuer_keys: a worker's cache of identity providers' public keys — BrowserID's (static key
 * files, and keys fetched from https://<host>/.well-known/browserid following authority
 * delegation) and OpenID issuers' key sets (JWKS files, or OpenID discovery → jwks_uri). */
#ifndef PRESENCED_ISSUER_KEYS_H
#define PRESENCED_ISSUER_KEYS_H

#include "../fetch.h"

#include "../../common/config.h"
#include "../../common/id_key.h"
#include "../../common/jwk.h"

#define ISSUER_MAX_DELEGATIONS 6

struct issuer_keys;
struct issuer_wait;

/* Called once the key of host is known (error 0, key borrowed for the call) or not (error 34:
 * no usable support document; 35: the document could not be fetched). */
typedef void (*issuer_key_cb)(void *arg, int error, const char *why, const struct id_key *key);

/* Loads the trusted_issuer key files; on error writes "file: reason" into err. */
int issuer_keys_init(struct issuer_keys **out, struct fetcher *fetcher, const struct config *cfg,
                     char *err, size_t errlen);
void issuer_keys_free(struct issuer_keys *keys);

/* The key of host: returns 0 with *key filled (a reference the caller frees with id_key_free),
 * 34 or 35 with *why set when a failure is cached, or 1 when a fetch is under way — cb will run
 * and *wait can cancel it. */
int issuer_key_get(struct issuer_keys *keys, const char *host, struct id_key *key, const char **why,
                   issuer_key_cb cb, void *arg, struct issuer_wait **wait);
void issuer_key_cancel(struct issuer_wait *wait);
/* Whether issuer names a host on the delegation chain that led to host's key: host itself, or
 * an authority its support document (or one it delegates to) named. False unless host's key is
 * known (issuer_key_get returned 0, or its callback runs with error 0). */
bool issuer_key_chain_has(struct issuer_keys *keys, const char *host, const char *issuer);

/* An OpenID issuer's key set, and its endpoints when they were discovered. */
struct issuer_oidc {
    struct jwk_set keys;
    char *authorization_endpoint; /* NULL: from a JWKS file, or not published */
    char *token_endpoint;
    bool secret_post; /* its token endpoint takes client_secret_post, not HTTP Basic */
};

/* A token's kid the keys lacked is fetched for again at most this often, per issuer. */
#define ISSUER_KID_REFETCH_MS 10000

typedef void (*issuer_oidc_cb)(void *arg, int error, const char *why,
                               const struct issuer_oidc *oidc);

/* Adds an issuer whose keys never change (a JWKS file, the development issuer); the set is
 * taken over. Returns 0 or -1. */
int issuer_oidc_fixed(struct issuer_keys *keys, const char *issuer, struct jwk_set *set);

/* What issuer (an https URL) publishes: 0 with *oidc set (borrowed: valid until the next call
 * into issuer_keys), 34 or 35 with *why when a failure is cached, or 1 when a fetch is under way
 * (cb will run; *wait can cancel it). When kid (may be NULL) is not among the keys, they are
 * fetched again — at most once every ISSUER_KID_REFETCH_MS — and that fetch is waited for;
 * otherwise the keys as they are are returned and the caller finds no key. Keys past
 * issuer_cache_ttl keep serving while they are fetched again. */
int issuer_oidc_get(struct issuer_keys *keys, const char *issuer, const char *kid,
                    const struct issuer_oidc **oidc, const char **why, issuer_oidc_cb cb, void *arg,
                    struct issuer_wait **wait);

#endif
