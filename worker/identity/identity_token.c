/* identity_token: verification of OpenID Connect ID tokens and OAuth 2 JWT access tokens for a
 * worker (SPEC.md §3.1) — the shared cache, then the checks that need no key, then the issuer's
 * keys (a JWKS file, the development issuer's key, or fetched through OpenID discovery on the
 * loop) and the signature. */
#include "identity_internal.h"

#include "issuer_keys.h"

#include "../../common/clock.h"
#include "../../common/dev_issuer.h"
#include "../../common/log.h"
#include "../../shm/assertion_cache.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Which settings a cached token was verified under: the issuers, their key files, the accepted
 * audiences, the development issuer. */
static uint64_t token_trust_compute(const struct identity *id)
{
    const struct config *cfg = id->cfg;
    struct identity_trust_text t;
    FILE *f = identity_trust_open(&t);
    if (f == NULL)
        return 0;
    fprintf(f, "token%c%s%c%s%c", 0, id->dev_issuer, 0, id->dev_kid, 0);
    for (size_t i = 0; i < cfg->oidc_issuer_count; i++)
        fprintf(f, "%s%c%s%c", cfg->oidc_issuer[i].issuer, 0,
                cfg->oidc_issuer[i].jwks_file ? cfg->oidc_issuer[i].jwks_file : "", 0);
    for (size_t i = 0; i < cfg->oidc_audience_count; i++)
        fprintf(f, "%s%c", cfg->oidc_audience[i], 0);
    return identity_trust_close(&t);
}

/* The development issuer: its key from data_dir (made there if the master has not yet), as a
 * fixed issuer of the key cache. */
static int dev_issuer_attach(struct identity *id, char *err, size_t errlen)
{
    struct jwk_set set;
    EVP_PKEY *key = dev_issuer_key(id->cfg->data_dir, err, errlen);
    if (key == NULL)
        return -1;
    int rc = dev_issuer_key_set(key, &set);
    EVP_PKEY_free(key);
    if (rc == 0)
        snprintf(id->dev_kid, sizeof id->dev_kid, "%s", set.keys[0].kid);
    if (rc != 0 || dev_issuer_iss(id->cfg, id->dev_issuer, sizeof id->dev_issuer) != 0 ||
        issuer_oidc_fixed(id->keys, id->dev_issuer, &set) != 0) {
        jwk_set_free(&set);
        id->dev_issuer[0] = '\0';
        snprintf(err, errlen, "cannot set up the development issuer");
        return -1;
    }
    return 0;
}

int identity_token_init(struct identity *id, char *err, size_t errlen)
{
    if (id->cfg->dev_issuer && dev_issuer_attach(id, err, errlen) != 0)
        return -1;
    id->token_trust_id = token_trust_compute(id);
    return 0;
}

struct issuer_keys *identity_keys(struct identity *id)
{
    return id->keys;
}

/* A token's hash in the shared cache: a token never answers for an assertion of the same text. */
static void token_hash(const char *token, size_t len, unsigned char *hash)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, "token", 6) != 1 || EVP_DigestUpdate(ctx, token, len) != 1 ||
        EVP_DigestFinal_ex(ctx, hash, NULL) != 1)
        SHA256((const unsigned char *)token, len, hash); /* still a hash of the text */
    EVP_MD_CTX_free(ctx);
}

static bool issuer_configured(const struct identity *id, const char *iss)
{
    for (size_t i = 0; i < id->cfg->oidc_issuer_count; i++)
        if (strcmp(iss, id->cfg->oidc_issuer[i].issuer) == 0)
            return true;
    return id->dev_issuer[0] != '\0' && strcmp(iss, id->dev_issuer) == 0;
}

static bool cache_lookup(struct identity *id, const unsigned char *hash,
                         struct identity_result *out)
{
    struct shm_assertion rec;
    if (shm_assertion_get(id->store, hash, clock_wall_ms(), &rec) != SHM_OK ||
        rec.trust_id != id->token_trust_id)
        return false;
    memset(out, 0, sizeof *out);
    snprintf(out->email, sizeof out->email, "%s", rec.email);
    out->cached = true;
    id->stats.cache_hits++;
    return true;
}

/* Everything a token must be that needs no key: its issuer, audience, times, e-mail and, for
 * the web sign-in, its nonce. Returns 0 or the errno. */
static int claims_check(struct identity_req *req, const struct identity_token_expect *expect,
                        const char **why)
{
    struct identity *id = req->id;
    const struct jwt *t = &req->token;
    bool trusted = expect ? strcmp(t->iss, expect->issuer) == 0 : issuer_configured(id, t->iss);
    if (!trusted) {
        *why = "untrusted issuer";
        return 34;
    }
    char *single[1] = { (char *)(expect ? expect->audience : DEV_ISSUER_AUDIENCE) };
    bool own = expect == NULL && !(id->dev_issuer[0] && strcmp(t->iss, id->dev_issuer) == 0);
    char *const *audiences = own ? id->cfg->oidc_audience : single;
    size_t count = own ? id->cfg->oidc_audience_count : 1;
    const char *matched;
    int error = jwt_claims_check(t, audiences, count, clock_wall_ms(), id->cfg->clock_skew_ms,
                                 &matched, why);
    if (error != 0)
        return error;
    snprintf(req->token_aud, sizeof req->token_aud, "%s", matched);
    if ((error = jwt_email_check(t, why)) != 0)
        return error;
    if (expect != NULL && expect->nonce != NULL &&
        (t->nonce == NULL || strcmp(t->nonce, expect->nonce) != 0)) {
        *why = "token nonce does not match the sign-in";
        return 34;
    }
    return 0;
}

static void signature_finish(struct identity_req *req, const struct issuer_oidc *oidc)
{
    const char *why = NULL;
    int error = jwt_signature_check(&req->token, &oidc->keys, &why);
    identity_finish(req, error, why, req->token.exp_ms);
}

static void keys_ready(void *arg, int error, const char *why, const struct issuer_oidc *oidc)
{
    struct identity_req *req = arg;
    req->wait = NULL;
    if (error != 0)
        identity_finish(req, error, why, 0);
    else
        signature_finish(req, oidc);
}

int identity_verify_token(struct identity *id, const char *token, size_t len,
                          const struct identity_token_expect *expect, struct identity_result *out,
                          identity_cb cb, void *arg, struct identity_req **pending)
{
    *pending = NULL;
    if (len == 0 || len > JWT_MAX)
        return identity_refuse_now(id, out, 34, len == 0 ? "empty token" : "token too long");
    unsigned char hash[SHA256_DIGEST_LENGTH];
    token_hash(token, len, hash);
    if (expect == NULL && cache_lookup(id, hash, out))
        return 0;
    struct identity_req *req = identity_req_new(id, token, len, hash, cb, arg, out);
    if (req == NULL)
        return 0;
    req->is_token = true;
    req->cacheable = expect == NULL;
    const char *why = NULL;
    int error = jwt_parse(req->text, len, &req->token, &why);
    if (error == 0)
        error = claims_check(req, expect, &why);
    if (error != 0) {
        identity_finish(req, error, why, 0);
        return 0;
    }
    const struct issuer_oidc *oidc;
    int rc = issuer_oidc_get(id->keys, req->token.iss, req->token.kid, &oidc, &why, keys_ready,
                             req, &req->wait);
    if (rc == 1) {
        req->async = true;
        *pending = req;
        return 1;
    }
    if (rc != 0)
        identity_finish(req, rc, why, 0);
    else
        signature_finish(req, oidc);
    return 0;
}
