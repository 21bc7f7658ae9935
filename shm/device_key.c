/* device_key: the key "email\0device" of a device's records in the store (its connection, its
 * held status, its push subscription): a prefix scan on "email\0" lists a user's devices. */
#include "device_key.h"

#include <string.h>

int shm_device_key(const char *email, const char *device, unsigned char *buf, MDB_val *key)
{
    size_t email_len = strlen(email), device_len = strlen(device);
    if (email_len == 0 || email_len > SHM_EMAIL_MAX || device_len > SHM_DEVICE_MAX)
        return SHM_ERROR;
    memcpy(buf, email, email_len + 1);
    memcpy(buf + email_len + 1, device, device_len);
    key->mv_size = email_len + 1 + device_len;
    key->mv_data = buf;
    return SHM_OK;
}
