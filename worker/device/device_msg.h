/* device_msg: parsing and validation of the JSON messages a device sends on /presence. */
#ifndef PRESENCED_DEVICE_MSG_H
#define PRESENCED_DEVICE_MSG_H

#include "../../shm/conn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A message with "action" is a command (push_subscribe...; SPEC.md §7), one without a status
 * update, {} a keep-alive. */
enum dev_msg_kind { DEV_MSG_PING, DEV_MSG_STATUS, DEV_MSG_COMMAND };

#define DEV_MSG_ACTION_MAX 32 /* a longer action is no command presenced knows */

struct dev_msg {
    enum dev_msg_kind kind;
    uint8_t status; /* enum shm_status */
    bool device_given;
    char email[SHM_EMAIL_MAX + 1];
    char device[SHM_DEVICE_MAX + 1]; /* "default" when absent */
    /* The credential, at most one of them (NULL when absent): in the text parsed, or in a copy
     * owned by the message when the JSON string carried escapes. Not NUL-terminated. */
    const char *assertion;
    size_t assertion_len;
    const char *token; /* an OpenID Connect or OAuth 2 JWT (SPEC.md §3.1) */
    size_t token_len;
    char *decoded; /* that copy, or NULL */
    /* DEV_MSG_COMMAND: its action (cut at DEV_MSG_ACTION_MAX; action_len is the whole length),
     * and the text parsed, which its handler reads for the rest. */
    char action[DEV_MSG_ACTION_MAX + 1];
    size_t action_len;
    const char *text;
    size_t text_len;
};

/* Parses one text frame, which must outlive the message. Returns 0, or the errno of SPEC.md §1
 * (10, 11, 12; 60 when out of memory) with *error set to the short English text for the reply.
 * Nothing to free after an error. */
int dev_msg_parse(const char *text, size_t len, struct dev_msg *out, const char **error);
void dev_msg_free(struct dev_msg *msg);

#endif
