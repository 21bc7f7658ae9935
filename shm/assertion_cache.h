/* assertion_cache: verified assertions shared by every worker, so a repeated one costs neither
 * crypto nor network (SPEC.md §3). */
#ifndef PRESENCED_SHM_ASSERTION_CACHE_H
#define PRESENCED_SHM_ASSERTION_CACHE_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define SHM_ASSERTION_HASH_LEN 32 /* SHA-256 of the assertion text */
#define SHM_ASSERTION_EMAIL_MAX 254
#define SHM_ASSERTION_AUD_MAX 299

struct shm_assertion {
    int64_t expires_ms; /* wall clock: the earliest exp of the assertion's parts */
    uint64_t trust_id;  /* which trust settings verified it; others must not reuse it */
    char email[SHM_ASSERTION_EMAIL_MAX + 1];
    char aud[SHM_ASSERTION_AUD_MAX + 1];
};

/* SHM_OK with out filled, or SHM_NOT_FOUND (also when expired by now_ms). */
int shm_assertion_get(struct shm_store *store, const unsigned char *hash, int64_t now_ms,
                      struct shm_assertion *out);

/* Writes rec in the batch. */
int shm_assertion_put(struct shm_store *store, const unsigned char *hash,
                      const struct shm_assertion *rec);

/* Examines up to max records from where sweep stopped and deletes those expired by now_ms;
 * *removed counts them. */
int shm_assertion_expire(struct shm_store *store, int64_t now_ms, size_t max,
                         struct shm_sweep *sweep, size_t *removed);

#endif
