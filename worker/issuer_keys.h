/* issuer_keys: a worker's cache of identity providers' public keys — static key files, and
 * keys fetched from https://<host>/.well-known/browserid following authority delegation. */
#ifndef PRESENCED_ISSUER_KEYS_H
#define PRESENCED_ISSUER_KEYS_H

#include "fetch.h"

#include "../common/config.h"
#include "../common/id_key.h"

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

#endif
