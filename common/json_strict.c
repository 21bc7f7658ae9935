/* json_strict: RFC 8259 parsing of a whole message into a json-c object, nothing accepted around it. */
#include "json_strict.h"

#include <string.h>

/* json-c stops its nesting at this depth; messages here are two levels deep at most. */
#define JSON_STRICT_DEPTH 16

static int only_whitespace(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            return 0;
    return 1;
}

struct json_object *json_strict_object(const char *text, size_t len)
{
    if (len > (size_t)INT32_MAX || memchr(text, '\0', len) != NULL)
        return NULL;
    struct json_tokener *tok = json_tokener_new_ex(JSON_STRICT_DEPTH);
    if (tok == NULL)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (obj == NULL || jerr != json_tokener_success || !only_whitespace(text + used, len - used) ||
        !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

int json_strict_string(struct json_object *obj, const char *key, const char **out, size_t *len)
{
    struct json_object *member;
    if (!json_object_object_get_ex(obj, key, &member))
        return 0;
    if (!json_object_is_type(member, json_type_string))
        return -1;
    *out = json_object_get_string(member);
    if (len != NULL)
        *len = (size_t)json_object_get_string_len(member);
    return 1;
}
