/* dev_msg_reference: a device message parsed the json-c way (common/json_strict.c, then json-c's
 * tree), as worker/device/device_msg.c parsed it before its own parser: what that parser must agree
 * with on every input (tests/fuzz/fuzz_device_msg.c, tests/unit/test_device_msg.c). */
#ifndef PRESENCED_TESTS_DEV_MSG_REFERENCE_H
#define PRESENCED_TESTS_DEV_MSG_REFERENCE_H

#include "../../common/json_strict.h"
#include "../../worker/device/device_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dev_msg_ref {
    int rc;
    const char *error;
    enum dev_msg_kind kind;
    uint8_t status;
    bool device_given;
    char email[SHM_EMAIL_MAX + 1], device[SHM_DEVICE_MAX + 1];
    char *assertion, *token; /* NULL when absent; the caller frees them */
    size_t assertion_len, token_len;
    char *action; /* a command's; the caller frees it */
    size_t action_len;
};

static int ref_status(const char *text, uint8_t *out)
{
    static const char *const names[] = { "offline", "unavailable", "online" };
    static const uint8_t values[] = { SHM_STATUS_OFFLINE, SHM_STATUS_UNAVAILABLE,
                                      SHM_STATUS_ONLINE };
    for (size_t i = 0; i < 3; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = values[i];
            return 0;
        }
    return -1;
}

static char *ref_copy(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy != NULL) {
        memcpy(copy, text, len);
        copy[len] = '\0';
    }
    return copy;
}

static int ref_fail(struct dev_msg_ref *out, int number, const char *text)
{
    out->rc = number;
    out->error = text;
    return number;
}

/* The fields of a status update from the tree, checked in the order of the errors. */
static int ref_fields(struct json_object *root, struct dev_msg_ref *out)
{
    const char *email, *status_text, *device, *assertion, *token;
    size_t email_len, device_len = 0, assertion_len, token_len;
    out->kind = DEV_MSG_STATUS;
    if (json_strict_string(root, "email", &email, &email_len) != 1 || email_len == 0 ||
        email_len > SHM_EMAIL_MAX || strlen(email) != email_len)
        return ref_fail(out, 11, "missing or invalid field: email");
    snprintf(out->email, sizeof out->email, "%s", email);
    if (json_strict_string(root, "status", &status_text, NULL) != 1)
        return ref_fail(out, 11, "missing or invalid field: status");
    int has = json_strict_string(root, "device", &device, &device_len);
    if (has < 0 || (has == 1 && (device_len == 0 || device_len > SHM_DEVICE_MAX ||
                                 strlen(device) != device_len)))
        return ref_fail(out, 11, "invalid field: device (a string of 1 to 64 bytes)");
    out->device_given = has == 1;
    snprintf(out->device, sizeof out->device, "%s", has == 1 ? device : "default");
    has = json_strict_string(root, "assertion", &assertion, &assertion_len);
    if (has < 0 || (has == 1 && strlen(assertion) != assertion_len))
        return ref_fail(out, 11, "invalid field: assertion");
    bool has_assertion = has == 1;
    has = json_strict_string(root, "token", &token, &token_len);
    if (has < 0 || (has == 1 && strlen(token) != token_len))
        return ref_fail(out, 11, "invalid field: token");
    if (has == 1 && has_assertion)
        return ref_fail(out, 11, "invalid fields: token and assertion together");
    if (ref_status(status_text, &out->status) != 0)
        return ref_fail(out, 12, "unknown status value");
    if (has_assertion) {
        out->assertion = ref_copy(assertion, assertion_len);
        out->assertion_len = assertion_len;
    }
    if (has == 1) {
        out->token = ref_copy(token, token_len);
        out->token_len = token_len;
    }
    return 0;
}

/* A message with "action" is a command: its action must be a string. */
static int ref_command(struct json_object *root, struct dev_msg_ref *out)
{
    const char *action;
    size_t action_len;
    if (json_strict_string(root, "action", &action, &action_len) != 1)
        return ref_fail(out, 11, "invalid field: action");
    out->kind = DEV_MSG_COMMAND;
    out->action = ref_copy(action, action_len);
    out->action_len = action_len;
    return 0;
}

static int dev_msg_reference(const char *text, size_t len, struct dev_msg_ref *out)
{
    memset(out, 0, sizeof *out);
    struct json_object *root;
    enum json_strict_result parsed = json_strict_parse(text, len, &root);
    int rc;
    if (parsed == JSON_STRICT_NUL)
        rc = ref_fail(out, 11, "a string carries U+0000");
    else if (parsed != JSON_STRICT_OK)
        rc = ref_fail(out, 10, "malformed JSON, or not an object");
    else if (json_object_object_length(root) == 0)
        rc = 0;
    else if (json_object_object_get_ex(root, "action", NULL))
        rc = ref_command(root, out);
    else
        rc = ref_fields(root, out);
    json_object_put(root);
    return rc;
}

static void dev_msg_reference_free(struct dev_msg_ref *ref)
{
    free(ref->assertion);
    free(ref->token);
    free(ref->action);
    ref->assertion = ref->token = ref->action = NULL;
}

static bool ref_same_text(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a == NULL || b == NULL)
        return a == b;
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

/* Whether the message parser said what the reference says: the same errno and text, and on
 * success the same fields. */
static bool dev_msg_agrees(int rc, const char *error, const struct dev_msg *msg,
                           const struct dev_msg_ref *ref)
{
    if (rc != ref->rc)
        return false;
    if (rc != 0)
        return error != NULL && strcmp(error, ref->error) == 0;
    if (msg->kind != ref->kind)
        return false;
    if (msg->kind == DEV_MSG_PING)
        return true;
    if (msg->kind == DEV_MSG_COMMAND) {
        size_t kept = ref->action_len < DEV_MSG_ACTION_MAX ? ref->action_len : DEV_MSG_ACTION_MAX;
        return msg->action_len == ref->action_len && strlen(msg->action) == kept &&
               memcmp(msg->action, ref->action, kept) == 0;
    }
    return msg->status == ref->status && msg->device_given == ref->device_given &&
           strcmp(msg->email, ref->email) == 0 && strcmp(msg->device, ref->device) == 0 &&
           ref_same_text(msg->assertion, msg->assertion_len, ref->assertion,
                         ref->assertion_len) &&
           ref_same_text(msg->token, msg->token_len, ref->token, ref->token_len);
}

#endif
