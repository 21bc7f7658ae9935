/* issuer_keys: a worker's cache of identity providers' public keys — BrowserID's (static key
 * files, and keys fetched from https://<host>/.well-known/browserid following authority
 * delegation) and OpenID issuers' key sets (JWKS files, or OpenID discovery → jwks_uri). One
 * cache for both: the same entries, waiters, failure caching and lifetimes. */
#include "issuer_keys.h"

#include "../../common/clock.h"
#include "../../common/id_assertion.h"
#include "../../common/id_support.h"
#include "../../common/jwt.h"
#include "../../common/list.h"
#include "../../common/log.h"
#include "../../common/oidc_doc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ISSUER_CACHE_MAX 1024

enum entry_state { ENTRY_FETCHING, ENTRY_READY, ENTRY_FAILED };

struct issuer_wait {
    struct list_link link; /* in its entry's waiters */
    issuer_key_cb cb;
    issuer_oidc_cb oidc_cb; /* instead of cb, for an OpenID issuer */
    void *arg;
};

struct oidc_state;

struct issuer_entry {
    struct list_link link; /* in the cache's entries */
    struct issuer_keys *keys;
    char host[ID_HOST_MAX + 1];
    enum entry_state state;
    bool fixed;    /* from a key file: never expires */
    bool settling; /* telling its waiters */
    struct id_key key;
    int error;
    const char *why;
    int64_t expires_ms;            /* monotonic */
    char current[ID_HOST_MAX + 1]; /* the host whose document is being fetched */
    int delegations;
    char *chain; /* the authorities delegated to, in order, each NUL-terminated */
    size_t chain_len;
    struct fetch *fetch;
    struct list_link waiters; /* told the outcome, the newest first */
    struct oidc_state *oidc;  /* OpenID issuers only; such entries are never evicted */
};

static void oidc_state_free(struct oidc_state *st);

struct issuer_keys {
    struct fetcher *fetcher;
    const struct config *cfg;
    struct list_link entries; /* the most recently added first */
    size_t count;
};

static struct issuer_entry *entry_of(struct list_link *link)
{
    return link != NULL ? LIST_ENTRY(link, struct issuer_entry, link) : NULL;
}

static void entry_free(struct issuer_keys *keys, struct issuer_entry *e)
{
    list_remove(&e->link);
    keys->count--;
    if (e->fetch != NULL)
        fetch_cancel(e->fetch);
    struct list_link *pos, *tmp;
    LIST_EACH_SAFE(pos, tmp, &e->waiters)
        free(LIST_ENTRY(pos, struct issuer_wait, link));
    id_key_free(&e->key);
    oidc_state_free(e->oidc);
    free(e->chain);
    free(e);
}

static struct issuer_entry *entry_add(struct issuer_keys *keys, const char *host)
{
    /* Past the cap, the oldest settled entry makes room; one still fetching is kept. */
    if (keys->count >= ISSUER_CACHE_MAX) {
        struct issuer_entry *victim = NULL;
        for (struct issuer_entry *e = entry_of(list_last(&keys->entries));
             e != NULL && victim == NULL; e = entry_of(list_prev(&keys->entries, &e->link)))
            if (!e->fixed && !e->settling && e->state != ENTRY_FETCHING && e->oidc == NULL)
                victim = e;
        if (victim == NULL)
            return NULL;
        entry_free(keys, victim);
    }
    struct issuer_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    snprintf(e->host, sizeof e->host, "%s", host);
    e->keys = keys;
    list_init(&e->waiters);
    list_push_front(&keys->entries, &e->link);
    keys->count++;
    return e;
}

static struct issuer_entry *entry_find(struct issuer_keys *keys, const char *host)
{
    struct list_link *pos;
    LIST_EACH(pos, &keys->entries) {
        struct issuer_entry *e = entry_of(pos);
        if (e->oidc == NULL && strcmp(e->host, host) == 0)
            return e;
    }
    return NULL;
}

int issuer_keys_init(struct issuer_keys **out, struct fetcher *fetcher, const struct config *cfg,
                     char *err, size_t errlen)
{
    struct issuer_keys *keys = calloc(1, sizeof *keys);
    if ((*out = keys) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    list_init(&keys->entries);
    keys->fetcher = fetcher;
    keys->cfg = cfg;
    for (size_t i = 0; i < cfg->trusted_issuer_count; i++) {
        const struct config_issuer *issuer = &cfg->trusted_issuer[i];
        if (issuer->key_file == NULL)
            continue;
        struct issuer_entry *e = entry_add(keys, issuer->host);
        if (e == NULL || id_key_file_load(issuer->key_file, &e->key, err, errlen) != 0)
            return -1;
        for (char *p = e->host; *p != '\0'; p++)
            *p = (char)tolower((unsigned char)*p);
        e->state = ENTRY_READY;
        e->fixed = true;
    }
    for (size_t i = 0; i < cfg->oidc_issuer_count; i++) {
        const struct config_oidc_issuer *issuer = &cfg->oidc_issuer[i];
        struct jwk_set set;
        if (issuer->jwks_file == NULL)
            continue;
        if (jwk_set_file_load(issuer->jwks_file, &set, err, errlen) != 0)
            return -1;
        if (issuer_oidc_fixed(keys, issuer->issuer, &set) != 0) {
            jwk_set_free(&set);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

void issuer_keys_free(struct issuer_keys *keys)
{
    if (keys == NULL)
        return;
    struct list_link *first;
    while ((first = list_first(&keys->entries)) != NULL)
        entry_free(keys, entry_of(first));
    free(keys);
}

static const struct issuer_oidc *oidc_published(const struct issuer_entry *e);

/* Tells every waiter the outcome, once. */
static void waiters_tell(struct issuer_entry *e, int error, const char *why)
{
    /* A callback may cancel other waiters or look keys up: the list stays consistent and the
     * entry cannot be evicted meanwhile. */
    e->settling = true;
    struct list_link *first;
    while ((first = list_first(&e->waiters)) != NULL) {
        struct issuer_wait *w = LIST_ENTRY(first, struct issuer_wait, link);
        list_remove(first);
        if (w->oidc_cb != NULL)
            w->oidc_cb(w->arg, error, why, error == 0 ? oidc_published(e) : NULL);
        else
            w->cb(w->arg, error, why, error == 0 ? &e->key : NULL);
        free(w);
    }
    e->settling = false;
}

/* Tells every waiter the outcome, once, and leaves the entry settled. */
static void entry_settle(struct issuer_keys *keys, struct issuer_entry *e, int error,
                         const char *why)
{
    int64_t ttl = error == 0 ? keys->cfg->issuer_cache_ttl_ms : keys->cfg->issuer_failure_ttl_ms;
    e->state = error == 0 ? ENTRY_READY : ENTRY_FAILED;
    e->error = error;
    e->why = why;
    e->expires_ms = clock_mono_ms() + ttl;
    e->fetch = NULL;
    if (error != 0)
        log_info("identity: no key for issuer %s: %s", e->host, why);
    waiters_tell(e, error, why);
}

static void document_received(void *arg, const struct fetch_result *result);

static void document_fetch(struct issuer_entry *e)
{
    char url[ID_HOST_MAX + 64];
    snprintf(url, sizeof url, "https://%s/.well-known/browserid", e->current);
    struct fetch_request req = {
        .url = url,
        .timeout_ms = e->keys->cfg->verify_timeout_ms,
        .max_bytes = ID_SUPPORT_DOC_MAX,
        .https_only = true,
    };
    e->fetch = fetch_start(e->keys->fetcher, &req, document_received, e);
    if (e->fetch == NULL)
        entry_settle(e->keys, e, 35, "cannot start fetching the support document");
}

/* Remembers host as the next authority on e's delegation chain. */
static bool chain_append(struct issuer_entry *e, const char *host)
{
    size_t len = strlen(host) + 1;
    char *grown = realloc(e->chain, e->chain_len + len);
    if (grown == NULL)
        return false;
    memcpy(grown + e->chain_len, host, len);
    e->chain = grown;
    e->chain_len += len;
    return true;
}

/* Transport failures and server errors may pass (35); a document that is missing, disabled or
 * unusable is the domain's answer (34). */
static void document_received(void *arg, const struct fetch_result *result)
{
    struct issuer_entry *e = arg;
    e->fetch = NULL;
    if (result->too_large) {
        entry_settle(e->keys, e, 34, "untrusted issuer: support document too large");
        return;
    }
    if (!result->transport_ok || result->status >= 500) {
        log_info("identity: https://%s/.well-known/browserid: %s", e->current,
                 result->transport_ok ? "server error" : result->error);
        entry_settle(e->keys, e, 35, "identity provider unreachable, retry later");
        return;
    }
    struct id_support doc;
    const char *why;
    if (result->status != 200) {
        entry_settle(e->keys, e, 34, "untrusted issuer: no BrowserID support document");
        return;
    }
    if (!id_support_media_type_ok(result->content_type)) {
        log_info("identity: https://%s/.well-known/browserid: not served as application/json",
                 e->current);
        entry_settle(e->keys, e, 34, "untrusted issuer: support document not application/json");
        return;
    }
    if (id_support_parse(result->body, result->len, &doc, &why) != 0) {
        log_info("identity: https://%s/.well-known/browserid: %s", e->current, why);
        entry_settle(e->keys, e, 34, "untrusted issuer: unusable support document");
        return;
    }
    if (doc.kind == ID_SUPPORT_KEY) {
        e->key = doc.key;
        entry_settle(e->keys, e, 0, NULL);
    } else if (doc.kind == ID_SUPPORT_DISABLED) {
        entry_settle(e->keys, e, 34, "untrusted issuer: BrowserID disabled for the domain");
    } else if (++e->delegations > ISSUER_MAX_DELEGATIONS) {
        entry_settle(e->keys, e, 34, "untrusted issuer: too many authority delegations");
    } else if (!chain_append(e, doc.authority)) {
        entry_settle(e->keys, e, 35, "out of memory, retry later");
    } else {
        memcpy(e->current, doc.authority, sizeof e->current);
        document_fetch(e);
    }
}

static int entry_wait(struct issuer_entry *e, issuer_key_cb cb, void *arg,
                      struct issuer_wait **wait)
{
    struct issuer_wait *w = calloc(1, sizeof *w);
    if (w == NULL)
        return 35;
    w->cb = cb;
    w->arg = arg;
    list_push_front(&e->waiters, &w->link);
    *wait = w;
    return 1;
}

/* host in lower case into lower (ID_HOST_MAX + 1 bytes); its length, or -1 when too long. */
static long host_lower(const char *host, char *lower)
{
    size_t len = strnlen(host, ID_HOST_MAX + 1);
    if (len > ID_HOST_MAX)
        return -1;
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)tolower((unsigned char)host[i]);
    return (long)len;
}

int issuer_key_get(struct issuer_keys *keys, const char *host, struct id_key *key, const char **why,
                   issuer_key_cb cb, void *arg, struct issuer_wait **wait)
{
    char lower[ID_HOST_MAX + 1];
    long len = host_lower(host, lower);
    if (len < 0) {
        *why = "untrusted issuer";
        return 34;
    }
    struct issuer_entry *e = entry_find(keys, lower);
    if (e != NULL && !e->fixed && !e->settling && e->state != ENTRY_FETCHING &&
        clock_mono_ms() >= e->expires_ms) {
        entry_free(keys, e);
        e = NULL;
    }
    if (e == NULL) {
        if ((e = entry_add(keys, lower)) == NULL) {
            *why = "too many identity providers being fetched";
            return 35;
        }
        e->state = ENTRY_FETCHING;
        memcpy(e->current, lower, (size_t)len + 1);
        document_fetch(e);
    }
    if (e->state == ENTRY_FETCHING) {
        *why = "out of memory";
        return entry_wait(e, cb, arg, wait);
    }
    if (e->state == ENTRY_FAILED) {
        *why = e->why;
        return e->error;
    }
    id_key_copy(key, &e->key);
    return 0;
}

bool issuer_key_chain_has(struct issuer_keys *keys, const char *host, const char *issuer)
{
    char lower[ID_HOST_MAX + 1];
    struct issuer_entry *e = host_lower(host, lower) < 0 ? NULL : entry_find(keys, lower);
    if (e == NULL || e->state != ENTRY_READY)
        return false;
    if (strcasecmp(issuer, e->host) == 0)
        return true;
    for (const char *p = e->chain; p != NULL && p < e->chain + e->chain_len; p += strlen(p) + 1)
        if (strcasecmp(issuer, p) == 0)
            return true;
    return false;
}

void issuer_key_cancel(struct issuer_wait *w)
{
    list_remove(&w->link);
    free(w);
}

/* OpenID issuers: their discovery document, then the key set its jwks_uri names. */
struct oidc_state {
    char issuer[JWT_VALUE_MAX + 1];
    struct issuer_oidc published; /* what the last successful fetch gave */
    bool has_keys;
    bool refreshing;           /* a fetch while the keys we have keep serving */
    struct oidc_discovery doc; /* of the fetch under way, between its two steps */
    int64_t fetched_ms;        /* monotonic: when the last fetch ended, well or not */
};

static void published_free(struct issuer_oidc *p)
{
    jwk_set_free(&p->keys);
    free(p->authorization_endpoint);
    free(p->token_endpoint);
    memset(p, 0, sizeof *p);
}

static void oidc_state_free(struct oidc_state *st)
{
    if (st == NULL)
        return;
    published_free(&st->published);
    oidc_discovery_free(&st->doc);
    free(st);
}

static const struct issuer_oidc *oidc_published(const struct issuer_entry *e)
{
    return &e->oidc->published;
}

static struct issuer_entry *oidc_find(struct issuer_keys *keys, const char *issuer)
{
    struct list_link *pos;
    LIST_EACH(pos, &keys->entries) {
        struct issuer_entry *e = entry_of(pos);
        if (e->oidc != NULL && strcmp(e->oidc->issuer, issuer) == 0)
            return e;
    }
    return NULL;
}

static struct issuer_entry *oidc_add(struct issuer_keys *keys, const char *issuer)
{
    struct oidc_state *st = calloc(1, sizeof *st);
    struct issuer_entry *e = st ? entry_add(keys, "") : NULL;
    if (e == NULL) {
        free(st);
        return NULL;
    }
    snprintf(st->issuer, sizeof st->issuer, "%s", issuer);
    e->oidc = st;
    return e;
}

int issuer_oidc_fixed(struct issuer_keys *keys, const char *issuer, struct jwk_set *set)
{
    struct issuer_entry *e = strlen(issuer) <= JWT_VALUE_MAX ? oidc_add(keys, issuer) : NULL;
    if (e == NULL)
        return -1;
    e->oidc->published.keys = *set;
    memset(set, 0, sizeof *set);
    e->oidc->has_keys = true;
    e->state = ENTRY_READY;
    e->fixed = true;
    return 0;
}

/* The end of a fetch. A failed one leaves the keys we had serving (tried again after
 * issuer_failure_ttl); without keys, the failure itself is cached as long. */
static void oidc_done(struct issuer_entry *e, int error, const char *why, struct jwk_set *set)
{
    struct oidc_state *st = e->oidc;
    const struct config *cfg = e->keys->cfg;
    int64_t now = clock_mono_ms();
    e->fetch = NULL;
    st->fetched_ms = now;
    st->refreshing = false;
    if (error == 0) {
        published_free(&st->published);
        st->published = (struct issuer_oidc){ .keys = *set,
                                              .authorization_endpoint =
                                                  st->doc.authorization_endpoint,
                                              .token_endpoint = st->doc.token_endpoint,
                                              .secret_post = st->doc.secret_post };
        st->doc.authorization_endpoint = st->doc.token_endpoint = NULL;
        st->has_keys = true;
        e->state = ENTRY_READY;
        e->expires_ms = now + cfg->issuer_cache_ttl_ms;
    } else {
        log_info("identity: no keys from OpenID issuer %s: %s", st->issuer, why);
        e->expires_ms = now + cfg->issuer_failure_ttl_ms;
        if (!st->has_keys) {
            e->state = ENTRY_FAILED;
            e->error = error;
            e->why = why;
        }
    }
    oidc_discovery_free(&st->doc);
    waiters_tell(e, error, why);
}

/* Transport failures and server errors may pass (35); anything else is the issuer's answer
 * (34). Returns true when result is a usable 200. */
static bool oidc_answer_usable(struct issuer_entry *e, const struct fetch_result *result,
                               const char *what)
{
    if (result->too_large) {
        oidc_done(e, 34, "untrusted issuer: answer too large", NULL);
        return false;
    }
    if (!result->transport_ok || result->status >= 500) {
        log_info("identity: %s of %s: %s", what, e->oidc->issuer,
                 result->transport_ok ? "server error" : result->error);
        oidc_done(e, 35, "identity provider unreachable, retry later", NULL);
        return false;
    }
    if (result->status != 200) {
        oidc_done(e, 34, "untrusted issuer: no OpenID keys", NULL);
        return false;
    }
    return true;
}

static void oidc_keys_received(void *arg, const struct fetch_result *result)
{
    struct issuer_entry *e = arg;
    e->fetch = NULL;
    if (!oidc_answer_usable(e, result, "the key set"))
        return;
    struct jwk_set set;
    size_t skipped;
    const char *why;
    if (jwk_set_parse(result->body, result->len, &set, &skipped, &why) != 0) {
        log_info("identity: key set of %s: %s", e->oidc->issuer, why);
        oidc_done(e, 34, "untrusted issuer: unusable key set", NULL);
        return;
    }
    oidc_done(e, 0, NULL, &set);
}

static void oidc_discovered(void *arg, const struct fetch_result *result)
{
    struct issuer_entry *e = arg;
    struct oidc_state *st = e->oidc;
    e->fetch = NULL;
    if (!oidc_answer_usable(e, result, "the discovery document"))
        return;
    const char *why;
    if (oidc_discovery_parse(result->body, result->len, st->issuer, &st->doc, &why) != 0) {
        log_info("identity: discovery document of %s: %s", st->issuer, why);
        oidc_done(e, 34, "untrusted issuer: unusable discovery document", NULL);
        return;
    }
    struct fetch_request req = {
        .url = st->doc.jwks_uri,
        .timeout_ms = e->keys->cfg->verify_timeout_ms,
        .max_bytes = JWKS_DOC_MAX,
        .https_only = true,
    };
    e->fetch = fetch_start(e->keys->fetcher, &req, oidc_keys_received, e);
    if (e->fetch == NULL)
        oidc_done(e, 35, "cannot start fetching the key set", NULL);
}

/* OpenID Connect Discovery §4: ISSUER (without a final /) + /.well-known/openid-configuration. */
static void oidc_fetch_start(struct issuer_entry *e)
{
    struct oidc_state *st = e->oidc;
    char url[JWT_VALUE_MAX + 64];
    size_t len = strlen(st->issuer);
    if (len > 0 && st->issuer[len - 1] == '/')
        len--;
    snprintf(url, sizeof url, "%.*s/.well-known/openid-configuration", (int)len, st->issuer);
    struct fetch_request req = {
        .url = url,
        .timeout_ms = e->keys->cfg->verify_timeout_ms,
        .max_bytes = OIDC_DOC_MAX,
        .https_only = true,
    };
    e->fetch = fetch_start(e->keys->fetcher, &req, oidc_discovered, e);
    if (e->fetch == NULL)
        oidc_done(e, 35, "cannot start fetching the discovery document", NULL);
}

static int oidc_wait(struct issuer_entry *e, issuer_oidc_cb cb, void *arg,
                     struct issuer_wait **wait)
{
    int rc = entry_wait(e, NULL, arg, wait);
    if (rc == 1)
        (*wait)->oidc_cb = cb;
    return rc;
}

int issuer_oidc_get(struct issuer_keys *keys, const char *issuer, const char *kid,
                    const struct issuer_oidc **oidc, const char **why, issuer_oidc_cb cb, void *arg,
                    struct issuer_wait **wait)
{
    int64_t now = clock_mono_ms();
    *oidc = NULL;
    struct issuer_entry *e = oidc_find(keys, issuer);
    if (e != NULL && e->state == ENTRY_FAILED && !e->settling && now >= e->expires_ms) {
        entry_free(keys, e);
        e = NULL;
    }
    if (e == NULL) {
        if (strlen(issuer) > JWT_VALUE_MAX || (e = oidc_add(keys, issuer)) == NULL) {
            *why = "out of memory";
            return 35;
        }
        e->state = ENTRY_FETCHING;
        oidc_fetch_start(e);
    }
    *why = "out of memory";
    if (e->state == ENTRY_FETCHING)
        return oidc_wait(e, cb, arg, wait);
    if (e->state == ENTRY_FAILED) {
        *why = e->why;
        return e->error;
    }
    struct oidc_state *st = e->oidc;
    bool kid_missing = kid != NULL && kid[0] != '\0' && !jwk_set_has_kid(&st->published.keys, kid);
    if (!e->fixed && !st->refreshing && e->fetch == NULL &&
        (now >= e->expires_ms ||
         (kid_missing && now - st->fetched_ms >= ISSUER_KID_REFETCH_MS))) {
        st->refreshing = true;
        oidc_fetch_start(e);
    }
    if (kid_missing && st->refreshing)
        return oidc_wait(e, cb, arg, wait);
    *oidc = &st->published;
    return 0;
}
