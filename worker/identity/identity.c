/* identity: verification of BrowserID assertions for a worker — the shared cache, then local
 * checks with fetched issuer keys or a remote verifier, never blocking the loop (SPEC.md §3).
 * Tokens (§3.1) are identity_token.c's. */
#include "identity.h"

#include "../fetch.h"
#include "identity_internal.h"
#include "issuer_keys.h"

#include "../../common/clock.h"
#include "../../common/id_support.h"
#include "../../common/id_verify.h"
#include "../../common/log.h"
#include "../../common/origin.h"
#include "../../shm/assertion_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

FILE *identity_trust_open(struct identity_trust_text *t)
{
    t->text = NULL;
    t->len = 0;
    return t->f = open_memstream(&t->text, &t->len);
}

uint64_t identity_trust_close(struct identity_trust_text *t)
{
    if (fclose(t->f) != 0) {
        free(t->text);
        return 0; /* as when the memstream could not be opened */
    }
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)t->text, t->len, digest);
    free(t->text);
    uint64_t trust = 0;
    for (int i = 0; i < 8; i++)
        trust = trust << 8 | digest[i];
    return trust;
}

/* Which trust settings a cached verification was made under: the verifier, or the trusted
 * issuers and their key files. Another worker configuration must not reuse it. */
static uint64_t trust_id_compute(const struct config *cfg)
{
    struct identity_trust_text t;
    FILE *f = identity_trust_open(&t);
    if (f == NULL)
        return 0;
    fprintf(f, "%s%c%d%c", cfg->verifier ? cfg->verifier : "", 0, cfg->verifier_protocol, 0);
    for (size_t i = 0; i < cfg->trusted_issuer_count; i++)
        fprintf(f, "%s%c%s%c", cfg->trusted_issuer[i].host, 0,
                cfg->trusted_issuer[i].key_file ? cfg->trusted_issuer[i].key_file : "", 0);
    return identity_trust_close(&t);
}

int identity_init(struct identity **out, struct fetcher *fetcher, struct shm_store *store,
                  const struct config *cfg, char *err, size_t errlen)
{
    struct identity *id = calloc(1, sizeof *id);
    if ((*out = id) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    list_init(&id->pending);
    id->cfg = cfg;
    id->store = store;
    id->trust_id = trust_id_compute(cfg);
    for (size_t i = 0; i < cfg->trusted_issuer_count; i++)
        id->trusted[i] = cfg->trusted_issuer[i].host;
    id->fetcher = fetcher;
    if (issuer_keys_init(&id->keys, id->fetcher, cfg, err, errlen) != 0)
        return -1;
    return identity_token_init(id, err, errlen);
}

static void req_free(struct identity_req *req)
{
    list_remove(&req->link);
    if (req->wait != NULL)
        issuer_key_cancel(req->wait);
    if (req->fetch != NULL)
        fetch_cancel(req->fetch);
    id_assertion_free(&req->assertion);
    jwt_free(&req->token);
    free(req->text);
    free(req);
}

void identity_cancel(struct identity_req *req)
{
    req_free(req);
}

void identity_stop(struct identity *id)
{
    if (id == NULL)
        return;
    struct list_link *first;
    while ((first = list_first(&id->pending)) != NULL)
        req_free(LIST_ENTRY(first, struct identity_req, link));
    issuer_keys_free(id->keys);
    id->keys = NULL;
}

void identity_free(struct identity *id)
{
    if (id == NULL)
        return;
    issuer_keys_free(id->keys);
    free(id);
}

const struct identity_stats *identity_stats(const struct identity *id)
{
    return &id->stats;
}

static void cache_put(struct identity_req *req, int64_t expires_ms)
{
    struct identity *id = req->id;
    struct shm_assertion rec = { .expires_ms = expires_ms,
                                 .trust_id = req->is_token ? id->token_trust_id : id->trust_id };
    if (expires_ms <= clock_wall_ms())
        return;
    if (req->is_token)
        snprintf(rec.aud, sizeof rec.aud, "%s", req->token_aud);
    else if (origin_normalize(req->assertion.assertion.aud, rec.aud, sizeof rec.aud) != 0)
        return;
    snprintf(rec.email, sizeof rec.email, "%s", identity_req_email(req));
    if (shm_assertion_put(id->store, req->hash, &rec) != SHM_OK)
        log_warning("identity: cannot cache a verified assertion");
}

const char *identity_req_email(const struct identity_req *req)
{
    return req->is_token ? req->token.email : req->assertion.email;
}

/* Delivers the outcome (to *out, or to the callback) and frees the request. */
static void finish(struct identity_req *req, int error, const char *why, int64_t expires_ms)
{
    struct identity *id = req->id;
    struct identity_result local, *result = req->async ? &local : req->out;
    memset(result, 0, sizeof *result);
    result->error = error;
    result->why = why;
    if (error == 0) {
        snprintf(result->email, sizeof result->email, "%s", identity_req_email(req));
        if (req->cacheable)
            cache_put(req, expires_ms);
        id->stats.verified++;
    } else if (error == 35) {
        id->stats.unavailable++;
    } else {
        id->stats.refused++;
    }
    if (error != 0)
        log_debug("identity: %s refused (%d): %s", req->is_token ? "token" : "assertion", error,
                  why);
    identity_cb cb = req->cb;
    void *arg = req->arg;
    bool async = req->async;
    req_free(req);
    if (async)
        cb(arg, result);
}

void identity_finish(struct identity_req *req, int error, const char *why, int64_t expires_ms)
{
    finish(req, error, why, expires_ms);
}

/* A trusted_issuer vouches for any e-mail with its own key; any other root issuer must be a
 * host on the delegation chain of the e-mail's domain (the domain itself, or an authority it
 * delegates to, up to ISSUER_MAX_DELEGATIONS hops), and signs with the key at the chain's end. */
static bool issuer_listed(const struct identity_req *req)
{
    return id_issuer_listed(&req->assertion, req->id->trusted, req->id->cfg->trusted_issuer_count);
}

/* The host whose support document (or key file) holds the key of the first certificate. */
static const char *key_host(const struct identity_req *req)
{
    return issuer_listed(req) ? req->assertion.root_issuer : id_email_domain(&req->assertion);
}

static void key_known(struct identity_req *req, const struct id_key *key)
{
    const struct id_assertion *a = &req->assertion;
    if (!issuer_listed(req) &&
        !issuer_key_chain_has(req->id->keys, id_email_domain(a), a->root_issuer)) {
        finish(req, 34, "untrusted issuer", 0);
        return;
    }
    const char *why = NULL;
    int error = id_signatures_check(a, key, &why);
    finish(req, error, why, id_assertion_expiry(a));
}

static void issuer_key_ready(void *arg, int error, const char *why, const struct id_key *key)
{
    struct identity_req *req = arg;
    req->wait = NULL;
    if (error != 0)
        finish(req, error, why, 0);
    else
        key_known(req, key);
}

static int local_verify(struct identity_req *req)
{
    struct identity *id = req->id;
    struct id_key key;
    const char *why = NULL;
    int rc = issuer_key_get(id->keys, key_host(req), &key, &why, issuer_key_ready, req, &req->wait);
    if (rc == 1) {
        req->async = true;
        return 1;
    }
    if (rc != 0) {
        finish(req, rc, why, 0);
        return 0;
    }
    key_known(req, &key);
    id_key_free(&key);
    return 0;
}

static void remote_answered(void *arg, const struct fetch_result *result)
{
    struct identity_req *req = arg;
    req->fetch = NULL;
    if (!result->transport_ok || result->status >= 500) {
        log_info("identity: verifier %s: %s", req->id->cfg->verifier,
                 result->transport_ok ? "server error" : result->error);
        finish(req, 35, "verifier unavailable, retry later", 0);
        return;
    }
    struct id_remote_answer answer;
    const char *why = NULL;
    int error = id_remote_answer_parse(result->body, result->len, req->assertion.assertion.aud,
                                       &answer, &why);
    if (error == 0 && strcmp(answer.email, req->assertion.email) != 0) {
        error = 34;
        why = "verifier vouched for another e-mail";
    }
    int64_t expires = id_assertion_expiry(&req->assertion);
    if (error == 0 && answer.expires_ms > 0 && answer.expires_ms < expires)
        expires = answer.expires_ms;
    finish(req, error, why, expires);
}

static int remote_verify(struct identity_req *req)
{
    struct identity *id = req->id;
    const struct config *cfg = id->cfg;
    enum id_remote_protocol protocol = cfg->verifier_protocol == 2 ? ID_REMOTE_V2 : ID_REMOTE_V1;
    char *body = id_remote_request(protocol, req->text, req->len, req->assertion.assertion.aud,
                                   id->trusted, cfg->trusted_issuer_count);
    struct fetch_request fr = {
        .url = cfg->verifier,
        .body = body,
        .content_type =
            protocol == ID_REMOTE_V2 ? "application/json" : "application/x-www-form-urlencoded",
        .timeout_ms = cfg->verify_timeout_ms,
        .max_bytes = ID_SUPPORT_DOC_MAX,
    };
    req->fetch = body != NULL ? fetch_start(id->fetcher, &fr, remote_answered, req) : NULL;
    free(body);
    if (req->fetch == NULL) {
        finish(req, 35, "verifier unavailable, retry later", 0);
        return 0;
    }
    req->async = true;
    return 1;
}

struct identity_req *identity_req_new(struct identity *id, const char *text, size_t len,
                                      const unsigned char *hash, identity_cb cb, void *arg,
                                      struct identity_result *out)
{
    struct identity_req *req = calloc(1, sizeof *req);
    char *copy = malloc(len + 1);
    if (req == NULL || copy == NULL) {
        free(req);
        free(copy);
        memset(out, 0, sizeof *out);
        out->error = 35;
        out->why = "out of memory, retry later";
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    *req = (struct identity_req){
        .id = id, .text = copy, .len = len, .cb = cb, .arg = arg, .out = out
    };
    memcpy(req->hash, hash, sizeof req->hash);
    list_push_front(&id->pending, &req->link);
    return req;
}

/* A repeated assertion: accepted again while it lasts, if verified under the same trust
 * settings and its audience is still accepted. */
static bool cache_lookup(struct identity *id, const unsigned char *hash, char *const *audiences,
                         size_t audience_count, struct identity_result *out)
{
    struct shm_assertion rec;
    if (shm_assertion_get(id->store, hash, clock_wall_ms(), &rec) != SHM_OK ||
        rec.trust_id != id->trust_id || !id_audience_allowed(rec.aud, audiences, audience_count))
        return false;
    memset(out, 0, sizeof *out);
    snprintf(out->email, sizeof out->email, "%s", rec.email);
    out->cached = true;
    id->stats.cache_hits++;
    return true;
}

static int refuse_now(struct identity *id, struct identity_result *out, int error, const char *why)
{
    memset(out, 0, sizeof *out);
    out->error = error;
    out->why = why;
    id->stats.refused++;
    return 0;
}

int identity_refuse_now(struct identity *id, struct identity_result *out, int error,
                        const char *why)
{
    return refuse_now(id, out, error, why);
}

int identity_verify(struct identity *id, const char *assertion, size_t len, const char *audience,
                    struct identity_result *out, identity_cb cb, void *arg,
                    struct identity_req **pending)
{
    *pending = NULL;
    char *only[1] = { (char *)audience };
    char *const *audiences = audience ? only : id->cfg->audience;
    size_t audience_count = audience ? 1 : id->cfg->audience_count;
    if (len == 0 || len > ID_ASSERTION_MAX)
        return refuse_now(id, out, 34,
                          len == 0 ? "invalid assertion: empty" : "invalid assertion: too long");
    unsigned char hash[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)assertion, len, hash);
    if (cache_lookup(id, hash, audiences, audience_count, out))
        return 0;
    struct identity_req *req = identity_req_new(id, assertion, len, hash, cb, arg, out);
    if (req == NULL)
        return 0;
    req->cacheable = true;
    const char *why = NULL;
    int error = 0;
    if (id_assertion_parse(req->text, len, &req->assertion, &why) != 0)
        error = 34;
    else
        error = id_claims_check(&req->assertion, audiences, audience_count, clock_wall_ms(),
                                id->cfg->clock_skew_ms, &why);
    if (error != 0) {
        finish(req, error, why, 0);
        return 0;
    }
    int rc = id->cfg->verifier != NULL ? remote_verify(req) : local_verify(req);
    if (rc == 1)
        *pending = req;
    return rc;
}
