/* device_msg: parsing and validation of the JSON messages a device sends on /presence. */
#ifndef PRESENCED_DEVICE_MSG_H
#define PRESENCED_DEVICE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dev_msg_kind { DEV_MSG_PING, DEV_MSG_STATUS };

struct dev_msg {
    enum dev_msg_kind kind;
    const char *email;     /* points into root; valid until dev_msg_free */
    const char *assertion; /* NULL when absent */
    const char *token;     /* an OpenID Connect or OAuth 2 JWT (SPEC.md §3.1); NULL when absent;
                              never both */
    const char *device;    /* "default" when absent */
    bool device_given;
    uint8_t status; /* enum shm_status */
    struct json_object *root;
};

/* Parses one text frame. Returns 0, or the errno of SPEC.md §1 (10, 11, 12) with *error set to
 * the short English text for the reply. */
int dev_msg_parse(const char *text, size_t len, struct dev_msg *out, const char **error);
void dev_msg_free(struct dev_msg *msg);

#endif
