/* notification: a live notification as devices receive it, and the request that queues one
 * (SPEC.md §2, §6). */
#include "notification.h"

#include "json_strict.h"
#include "uuid.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

/* A string member of 1 to max bytes without NUL: 1; absent: 0; anything else: -1. */
static int bounded_string(struct json_object *root, const char *key, size_t max, const char **out)
{
    size_t len;
    int has = json_strict_string(root, key, out, &len);
    if (has == 1 && (len == 0 || len > max || strlen(*out) != len))
        return -1;
    return has;
}

static const char *const URGENCIES[] = { "very-low", "low", "normal", "high" };

int notification_urgency_valid(const char *text)
{
    for (size_t i = 0; i < sizeof URGENCIES / sizeof URGENCIES[0]; i++)
        if (strcmp(text, URGENCIES[i]) == 0)
            return 1;
    return 0;
}

const char *notification_urgency_of(const char *json, size_t len)
{
    struct json_object *root = json_strict_object(json, len);
    const char *urgency = NULL, *found = "normal";
    size_t urgency_len;
    if (root != NULL && json_strict_string(root, "urgency", &urgency, &urgency_len) == 1)
        for (size_t i = 0; i < sizeof URGENCIES / sizeof URGENCIES[0]; i++)
            if (strcmp(urgency, URGENCIES[i]) == 0)
                found = URGENCIES[i];
    json_object_put(root);
    return found;
}

int notification_parse(const char *text, size_t len, int64_t max_ttl_ms, struct notification *out,
                       struct json_object **root, const char **why)
{
    memset(out, 0, sizeof *out);
    *root = json_strict_object(text, len);
    if (*root == NULL) {
        *why = "body is not a JSON object";
        return -1;
    }
    struct json_object *ttl;
    if (bounded_string(*root, "source", NOTIFICATION_SOURCE_MAX, &out->source) != 1)
        *why = "source: a string of 1 to 256 bytes is required";
    else if (bounded_string(*root, "message", NOTIFICATION_MESSAGE_MAX, &out->message) != 1)
        *why = "message: a string of 1 to 1024 bytes is required";
    else if (bounded_string(*root, "action", NOTIFICATION_ACTION_MAX, &out->action) < 0)
        *why = "action: a string of 1 to 2048 bytes";
    else if (json_object_object_get_ex(*root, "ttl", &ttl) &&
             (!json_object_is_type(ttl, json_type_int) || json_object_get_int64(ttl) < 1 ||
              json_object_get_int64(ttl) > max_ttl_ms / 1000))
        *why = "ttl: whole seconds from 1 to notification_ttl";
    else if (bounded_string(*root, "urgency", 16, &out->urgency) < 0 ||
             (out->urgency != NULL && !notification_urgency_valid(out->urgency)))
        *why = "urgency: very-low, low, normal or high";
    else {
        if (json_object_object_get_ex(*root, "ttl", &ttl))
            out->ttl_ms = json_object_get_int64(ttl) * 1000;
        return 0;
    }
    json_object_put(*root);
    *root = NULL;
    return -1;
}

int notification_id_make(char out[NOTIFICATION_ID_LEN + 1])
{
    return uuid_make(out);
}

int notification_render(const struct notification *n, const char *id, int64_t ts_s, char *out,
                        size_t cap)
{
    struct json_object *obj = json_object_new_object();
    if (obj == NULL)
        return -1;
    json_object_object_add(obj, "source", json_object_new_string(n->source));
    json_object_object_add(obj, "message", json_object_new_string(n->message));
    if (n->action != NULL)
        json_object_object_add(obj, "action", json_object_new_string(n->action));
    if (n->app != NULL)
        json_object_object_add(obj, "app", json_object_new_string(n->app));
    json_object_object_add(obj, "id", json_object_new_string(id));
    json_object_object_add(obj, "ts", json_object_new_int64(ts_s));
    if (n->urgency != NULL)
        json_object_object_add(obj, "urgency", json_object_new_string(n->urgency));
    size_t len;
    const char *text = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    int rc = -1;
    if (text != NULL && len < cap) {
        memcpy(out, text, len + 1);
        rc = (int)len;
    }
    json_object_put(obj);
    return rc;
}
