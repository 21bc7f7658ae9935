/* identity: verification of BrowserID assertions for a worker — the shared cache, then local
 * checks with fetched issuer keys or a remote verifier, never blocking the loop (SPEC.md §3). */
#ifndef PRESENCED_IDENTITY_H
#define PRESENCED_IDENTITY_H

#include "../common/config.h"
#include "../common/id_assertion.h"
#include "../shm/store.h"

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

const struct identity_stats *identity_stats(const struct identity *id);

#endif
