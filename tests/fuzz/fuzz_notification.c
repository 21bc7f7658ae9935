/* libFuzzer target: the body of POST /users/<email>/notifications through notification_parse,
 * and the rendering of what it accepts. */
#include "../../common/notification.h"

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct notification n;
    struct json_object *root = NULL;
    const char *why = NULL;
    if (notification_parse((const char *)data, size, 3600 * 1000, &n, &root, &why) != 0) {
        if (why == NULL || root != NULL)
            __builtin_trap();
        return 0;
    }
    if (n.source == NULL || n.message == NULL || n.ttl_ms < 0 || n.ttl_ms > 3600 * 1000)
        __builtin_trap();
    char out[32768];
    int len = notification_render(&n, "00000000-0000-4000-8000-000000000000", 1, out, sizeof out);
    if (len < 0 || strlen(out) != (size_t)len)
        __builtin_trap(); /* bounded fields always fit: escaping at most sextuples them */
    json_object_put(root);
    return 0;
}
