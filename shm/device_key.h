/* device_key: the key "email\0device" of a device's records in the store (its connection, its
 * held status, its push subscription): a prefix scan on "email\0" lists a user's devices.
 * Internal to shm/. */
#ifndef PRESENCED_SHM_DEVICE_KEY_H
#define PRESENCED_SHM_DEVICE_KEY_H

#include "conn.h"

#include <lmdb.h>

#define SHM_DEVICE_KEY_MAX (SHM_EMAIL_MAX + 1 + SHM_DEVICE_MAX)

/* Writes the key into buf (SHM_DEVICE_KEY_MAX bytes) and points key at it: SHM_OK, or
 * SHM_ERROR for an empty or too long e-mail, or too long a device. */
int shm_device_key(const char *email, const char *device, unsigned char *buf, MDB_val *key);

#endif
