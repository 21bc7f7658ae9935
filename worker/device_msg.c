/* device_msg: parsing and validation of the JSON messages a device sends on /presence. */
#include "device_msg.h"

#include "../common/json_strict.h"
#include "../shm/conn.h"

#include <string.h>

static int status_parse(const char *text, uint8_t *out)
{
    static const struct {
        const char *name;
        uint8_t status;
    } table[] = {
        { "online", SHM_STATUS_ONLINE },
        { "unavailable", SHM_STATUS_UNAVAILABLE },
        { "offline", SHM_STATUS_OFFLINE },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(text, table[i].name) == 0) {
            *out = table[i].status;
            return 0;
        }
    return -1;
}

static int fail(struct dev_msg *msg, const char **error, int number, const char *text)
{
    dev_msg_free(msg);
    *error = text;
    return number;
}

int dev_msg_parse(const char *text, size_t len, struct dev_msg *out, const char **error)
{
    memset(out, 0, sizeof *out);
    enum json_strict_result parsed = json_strict_parse(text, len, &out->root);
    if (parsed == JSON_STRICT_NUL)
        return fail(out, error, 11, "a string carries U+0000");
    if (parsed != JSON_STRICT_OK)
        return fail(out, error, 10, "malformed JSON, or not an object");
    if (json_object_object_length(out->root) == 0) {
        out->kind = DEV_MSG_PING;
        return 0;
    }
    out->kind = DEV_MSG_STATUS;
    const char *status_text;
    size_t email_len, device_len = 0;
    if (json_strict_string(out->root, "email", &out->email, &email_len) != 1 || email_len == 0 ||
        email_len > SHM_EMAIL_MAX || strlen(out->email) != email_len)
        return fail(out, error, 11, "missing or invalid field: email");
    if (json_strict_string(out->root, "status", &status_text, NULL) != 1)
        return fail(out, error, 11, "missing or invalid field: status");
    int has = json_strict_string(out->root, "device", &out->device, &device_len);
    if (has < 0 || (has == 1 && (device_len == 0 || device_len > SHM_DEVICE_MAX ||
                                 strlen(out->device) != device_len)))
        return fail(out, error, 11, "invalid field: device (a string of 1 to 64 bytes)");
    out->device_given = has == 1;
    if (has == 0)
        out->device = "default";
    size_t assertion_len;
    has = json_strict_string(out->root, "assertion", &out->assertion, &assertion_len);
    if (has < 0 || (has == 1 && strlen(out->assertion) != assertion_len))
        return fail(out, error, 11, "invalid field: assertion");
    if (has == 0)
        out->assertion = NULL;
    size_t token_len;
    has = json_strict_string(out->root, "token", &out->token, &token_len);
    if (has < 0 || (has == 1 && strlen(out->token) != token_len))
        return fail(out, error, 11, "invalid field: token");
    if (has == 0)
        out->token = NULL;
    if (out->token != NULL && out->assertion != NULL)
        return fail(out, error, 11, "invalid fields: token and assertion together");
    if (status_parse(status_text, &out->status) != 0)
        return fail(out, error, 12, "unknown status value");
    return 0;
}

void dev_msg_free(struct dev_msg *msg)
{
    if (msg->root != NULL)
        json_object_put(msg->root);
    memset(msg, 0, sizeof *msg);
}
