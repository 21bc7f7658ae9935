/* dev_issuer: the development issuer (SPEC.md §3.1) — an Ed25519 key made in data_dir at the
 * first start, the tokens `presenced token` prints with it, and the key set that verifies them.
 * For trying presenced without an identity provider; never for production (presenced(8)). */
#ifndef PRESENCED_DEV_ISSUER_H
#define PRESENCED_DEV_ISSUER_H

#include "config.h"
#include "jwk.h"

#include <stdint.h>

#define DEV_ISSUER_AUDIENCE "presenced-dev"
#define DEV_ISSUER_KEY_FILE "dev_issuer.pem"
#define DEV_ISSUER_PATH "/dev" /* iss = public_url + this */

struct evp_pkey_st;

/* The iss of the development issuer's tokens: public_url (without a final /) + "/dev". Returns 0,
 * or -1 when out doesn't hold it. */
int dev_issuer_iss(const struct config *cfg, char *out, size_t len);

/* The private key in data_dir, made (mode 0600, written whole before it appears) when it is not
 * there yet. Returns the key, or NULL with err set. */
struct evp_pkey_st *dev_issuer_key(const char *data_dir, char *err, size_t errlen);

/* The key set of the public half: one Ed25519 key, its kid the RFC 7638 thumbprint. */
int dev_issuer_key_set(struct evp_pkey_st *key, struct jwk_set *out);

/* A token for email valid ttl_s seconds from now_s: EdDSA over {iss, sub, aud presenced-dev, exp,
 * iat, email, email_verified true}. A malloc'd string, NULL on failure. */
char *dev_issuer_token(struct evp_pkey_st *key, const struct config *cfg, const char *email,
                       int64_t ttl_s, int64_t now_s);

#endif
