/* json_strict: RFC 8259 parsing of a whole message into a json-c object, nothing accepted around
 * it. */
#ifndef PRESENCED_JSON_STRICT_H
#define PRESENCED_JSON_STRICT_H

#include <json-c/json.h>
#include <stddef.h>

enum json_strict_result {
    JSON_STRICT_OK = 0,
    JSON_STRICT_MALFORMED, /* not exactly one JSON object in well-formed UTF-8 (SPEC errno 10) */
    JSON_STRICT_NUL,       /* well-formed, but a string carries U+0000 (SPEC errno 11) */
};

/* Parses text into *out (the caller json_object_put()s it): one RFC 8259 object, trailing
 * whitespace allowed, in well-formed UTF-8, no escaped lone surrogate, and no string (member
 * name or value) carrying U+0000. With JSON_STRICT_NUL *out is still set, so that an error reply
 * can name the request; a string there is whole only when json_object_get_string_len() equals
 * its strlen(). *out is NULL when JSON_STRICT_MALFORMED. */
enum json_strict_result json_strict_parse(const char *text, size_t len, struct json_object **out);

/* The same, NULL whatever the reason. */
struct json_object *json_strict_object(const char *text, size_t len);

/* The string member key of obj: 1 with *out set, 0 when absent, -1 when not a string. */
int json_strict_string(struct json_object *obj, const char *key, const char **out, size_t *len);

#endif
