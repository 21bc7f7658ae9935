/* presence: each user's aggregate status (the highest of their devices'), kept so that a change
 * can be told from a repeat and read without scanning devices. */
#ifndef PRESENCED_SHM_PRESENCE_H
#define PRESENCED_SHM_PRESENCE_H

#include "store.h"

#include <stdbool.h>
#include <stdint.h>

struct shm_presence {
    uint8_t status;   /* enum shm_status; offline when the user has no record */
    int64_t since_ms; /* wall clock of the last change */
    int devices;      /* connected devices (only from shm_presence_refresh) */
};

/* Recomputes email's aggregate from its connected devices (in the batch, so it sees the batch's
 * writes) and stores it when it changed; a user without devices has no record. *before and
 * *after (either may be NULL) get the old and new aggregate; returns SHM_OK. */
int shm_presence_refresh(struct shm_store *store, const char *email, int64_t now_ms,
                         struct shm_presence *before, struct shm_presence *after);

/* The stored aggregate; SHM_NOT_FOUND (and offline in *out) for a user without devices. */
int shm_presence_get(struct shm_store *store, const char *email, struct shm_presence *out);

/* Releases every connection a (dead or exiting) worker held and refreshes the presence of their
 * users; cb (when not NULL) hears each user whose aggregate changed. */
typedef void (*shm_presence_cb)(void *arg, const char *email, const struct shm_presence *before,
                                const struct shm_presence *after, struct shm_store *store);
int shm_presence_release_worker(struct shm_store *store, int32_t pid, int64_t now_ms,
                                size_t *released, shm_presence_cb cb, void *arg);

#endif
