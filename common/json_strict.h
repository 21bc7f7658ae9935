/* json_strict: RFC 8259 parsing of a whole message into a json-c object, nothing accepted around
 * it. */
#ifndef PRESENCED_JSON_STRICT_H
#define PRESENCED_JSON_STRICT_H

#include <json-c/json.h>
#include <stddef.h>

/* Returns the parsed object, or NULL when text is not exactly one valid UTF-8 JSON object
 * (trailing whitespace allowed). The caller json_object_put()s it. */
struct json_object *json_strict_object(const char *text, size_t len);

/* The string member key of obj: 1 with *out set, 0 when absent, -1 when not a string. */
int json_strict_string(struct json_object *obj, const char *key, const char **out, size_t *len);

#endif
