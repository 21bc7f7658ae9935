/* identity_internal: what identity.c (BrowserID assertions) and identity_token.c (OpenID Connect
 * and OAuth 2 tokens) share — a worker's verifier, its requests and how they end. */
#ifndef PRESENCED_IDENTITY_INTERNAL_H
#define PRESENCED_IDENTITY_INTERNAL_H

#include "identity.h"

#include "../../common/jwt.h"
#include "../../common/list.h"

#include <openssl/sha.h>
#include <stdio.h>

struct identity {
    const struct config *cfg;
    struct shm_store *store;
    struct fetcher *fetcher;
    struct issuer_keys *keys;
    char *trusted[CONFIG_MAX_LIST]; /* trusted_issuer hosts, as id_verify wants them */
    uint64_t trust_id;
    uint64_t token_trust_id;            /* the same for tokens: issuers, key files, audiences */
    char dev_issuer[JWT_VALUE_MAX + 1]; /* the development issuer's iss; "" when off */
    char dev_kid[JWK_KID_MAX + 1];      /* and its key's kid */
    struct list_link pending;           /* the requests under way */
    struct identity_stats stats;
};

struct identity_req {
    struct list_link link; /* in the identity's pending list */
    struct identity *id;
    char *text;
    size_t len;
    unsigned char hash[SHA256_DIGEST_LENGTH];
    struct id_assertion assertion;
    struct issuer_wait *wait;
    struct fetch *fetch;
    identity_cb cb;
    void *arg;
    bool async;
    bool cacheable;              /* a verified outcome goes to the shared cache */
    struct identity_result *out; /* where a synchronous outcome goes */
    bool is_token;               /* a JWT (identity_token.c), not an assertion */
    struct jwt token;
    char token_aud[JWT_VALUE_MAX + 1]; /* the accepted aud value the token held */
};

/* The settings a trust id is made of (a trust id keeps a cached verification from being reused
 * under other settings): the caller writes them to f. */
struct identity_trust_text {
    FILE *f; /* an open_memstream of text and len */
    char *text;
    size_t len;
};

/* identity.c: opens t->f (NULL when it cannot: the trust id is then 0). */
FILE *identity_trust_open(struct identity_trust_text *t);
/* Closes t->f and frees its text: the trust id is the first 8 bytes of its SHA-256 (0 when the
 * memstream failed). */
uint64_t identity_trust_close(struct identity_trust_text *t);

/* identity.c: a request for text (copied) in the pending list; NULL (with *out answered 35)
 * when out of memory. */
struct identity_req *identity_req_new(struct identity *id, const char *text, size_t len,
                                      const unsigned char *hash, identity_cb cb, void *arg,
                                      struct identity_result *out);
/* Delivers the outcome (to *out, or to the callback), caches a cacheable success until
 * expires_ms, and frees the request. */
void identity_finish(struct identity_req *req, int error, const char *why, int64_t expires_ms);
/* Answers *out at once with a refusal (returns 0, identity_verify's "answered"). */
int identity_refuse_now(struct identity *id, struct identity_result *out, int error,
                        const char *why);
const char *identity_req_email(const struct identity_req *req);

/* identity_token.c: the development issuer's key, and the tokens' trust id. */
int identity_token_init(struct identity *id, char *err, size_t errlen);

#endif
