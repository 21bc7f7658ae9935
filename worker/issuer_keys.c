/* issuer_keys: a worker's cache of identity providers' public keys — static key files, and
 * keys fetched from https://<host>/.well-known/browserid following authority delegation. */
#include "issuer_keys.h"

#include "../common/clock.h"
#include "../common/id_assertion.h"
#include "../common/id_support.h"
#include "../common/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISSUER_CACHE_MAX 1024

enum entry_state { ENTRY_FETCHING, ENTRY_READY, ENTRY_FAILED };

struct issuer_wait {
    struct issuer_wait *next, *prev;
    struct issuer_entry *entry;
    issuer_key_cb cb;
    void *arg;
};

struct issuer_entry {
    struct issuer_entry *next, *prev;
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
    struct fetch *fetch;
    struct issuer_wait *waiters;
};

struct issuer_keys {
    struct fetcher *fetcher;
    const struct config *cfg;
    struct issuer_entry *entries; /* most recently added first */
    size_t count;
};

static void entry_unlink(struct issuer_keys *keys, struct issuer_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        keys->entries = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    keys->count--;
}

static void entry_free(struct issuer_keys *keys, struct issuer_entry *e)
{
    entry_unlink(keys, e);
    if (e->fetch != NULL)
        fetch_cancel(e->fetch);
    for (struct issuer_wait *w = e->waiters, *next; w != NULL; w = next) {
        next = w->next;
        free(w);
    }
    id_key_free(&e->key);
    free(e);
}

static struct issuer_entry *entry_add(struct issuer_keys *keys, const char *host)
{
    /* Past the cap, the oldest settled entry makes room; one still fetching is kept. */
    if (keys->count >= ISSUER_CACHE_MAX) {
        struct issuer_entry *last = keys->entries, *victim = NULL;
        while (last != NULL && last->next != NULL)
            last = last->next;
        for (struct issuer_entry *e = last; e != NULL && victim == NULL; e = e->prev)
            if (!e->fixed && !e->settling && e->state != ENTRY_FETCHING)
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
    e->next = keys->entries;
    if (keys->entries != NULL)
        keys->entries->prev = e;
    keys->entries = e;
    keys->count++;
    return e;
}

static struct issuer_entry *entry_find(struct issuer_keys *keys, const char *host)
{
    for (struct issuer_entry *e = keys->entries; e != NULL; e = e->next)
        if (strcmp(e->host, host) == 0)
            return e;
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
    return 0;
}

void issuer_keys_free(struct issuer_keys *keys)
{
    if (keys == NULL)
        return;
    while (keys->entries != NULL)
        entry_free(keys, keys->entries);
    free(keys);
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
    /* A callback may cancel other waiters or look keys up: the list stays consistent and the
     * entry cannot be evicted meanwhile. */
    e->settling = true;
    struct issuer_wait *w;
    while ((w = e->waiters) != NULL) {
        e->waiters = w->next;
        if (e->waiters != NULL)
            e->waiters->prev = NULL;
        w->cb(w->arg, error, why, error == 0 ? &e->key : NULL);
        free(w);
    }
    e->settling = false;
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
    w->entry = e;
    w->cb = cb;
    w->arg = arg;
    w->next = e->waiters;
    if (e->waiters != NULL)
        e->waiters->prev = w;
    e->waiters = w;
    *wait = w;
    return 1;
}

int issuer_key_get(struct issuer_keys *keys, const char *host, struct id_key *key, const char **why,
                   issuer_key_cb cb, void *arg, struct issuer_wait **wait)
{
    char lower[ID_HOST_MAX + 1];
    size_t len = strnlen(host, ID_HOST_MAX + 1);
    if (len > ID_HOST_MAX) {
        *why = "untrusted issuer";
        return 34;
    }
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)tolower((unsigned char)host[i]);
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
        memcpy(e->current, lower, len + 1);
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

void issuer_key_cancel(struct issuer_wait *w)
{
    struct issuer_entry *e = w->entry;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    free(w);
}
