/* conn: which worker connection owns each (e-mail, device) — one owner across all workers. */
#ifndef PRESENCED_SHM_CONN_H
#define PRESENCED_SHM_CONN_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define SHM_EMAIL_MAX 254
#define SHM_DEVICE_MAX 64

enum shm_status { SHM_STATUS_OFFLINE = 0, SHM_STATUS_UNAVAILABLE = 1, SHM_STATUS_ONLINE = 2 };

struct shm_conn_owner {
    int32_t worker_pid;
    uint64_t conn_id; /* never reused: each worker takes a block of the store's sequence */
    uint8_t status;   /* enum shm_status */
    int64_t since_ms;
};

/* Makes owner the holder of (email, device). When another connection held it, *previous gets
 * that owner and the function returns SHM_OK with *had_previous set: the caller tells that
 * worker to close it (errno 52). */
int shm_conn_claim(struct shm_store *store, const char *email, const char *device,
                   const struct shm_conn_owner *owner, struct shm_conn_owner *previous,
                   int *had_previous);

/* What a walk of a user's devices hands each one to. */
typedef void (*shm_device_cb)(void *arg, const char *device, const struct shm_conn_owner *owner);

/* Changes the status, only while (pid, conn_id) still owns the record: SHM_NOT_FOUND (nothing
 * written) otherwise. *was (may be NULL) gets the status it had. In the batch. The user's
 * presence record counts the devices at each status (presence.h): shm_presence_device_status
 * changes both; a bare call leaves that count behind until the user's next recompute. */
int shm_conn_set_status(struct shm_store *store, const char *email, const char *device, int32_t pid,
                        uint64_t conn_id, uint8_t status, uint8_t *was);

/* Removes the record if (pid, conn_id) still owns it; a superseded connection removes nothing. */
int shm_conn_release(struct shm_store *store, const char *email, const char *device, int32_t pid,
                     uint64_t conn_id);

/* Removes every record a (dead) worker owned; *released counts them, and cb (when not NULL)
 * hears the e-mail, device and last state of each. shm_presence_release_worker also refreshes
 * their presence. */
typedef void (*shm_conn_released_cb)(void *arg, const char *email, const char *device,
                                     const struct shm_conn_owner *owner);
int shm_conn_release_worker(struct shm_store *store, int32_t pid, size_t *released,
                            shm_conn_released_cb cb, void *arg);

/* Calls cb with every connection record of every user (the master, at start, for those of the
 * previous run). Returns the count, or < 0. */
int shm_conn_walk_all(struct shm_store *store, shm_conn_released_cb cb, void *arg);

int shm_conn_get(struct shm_store *store, const char *email, const char *device,
                 struct shm_conn_owner *out);

/* Calls cb for each connected device of email. Returns the number of devices, or < 0. */
int shm_conn_devices(struct shm_store *store, const char *email, shm_device_cb cb, void *arg);

/* The user's presence: the highest status over the connected devices, offline when none. */
int shm_conn_presence(struct shm_store *store, const char *email, uint8_t *status);

#endif
