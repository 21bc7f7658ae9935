/* libFuzzer target: a device's WebSocket text frame through dev_msg_parse (strict JSON). What it
 * accepts is well-formed UTF-8 and its strings carry no U+0000. */
#include "../../common/utf8.h"
#include "../../worker/device_msg.h"

#include <json-c/json.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dev_msg msg;
    const char *error = NULL;
    int rc = dev_msg_parse((const char *)data, size, &msg, &error);
    if (rc == 0) {
        if (!utf8_valid((const char *)data, size) || memchr(data, '\0', size) != NULL)
            __builtin_trap();
        json_object_object_foreach(msg.root, name, value)
        {
            (void)name;
            if (json_object_is_type(value, json_type_string) &&
                strlen(json_object_get_string(value)) !=
                    (size_t)json_object_get_string_len(value))
                __builtin_trap(); /* a string that carries U+0000 */
        }
        dev_msg_free(&msg);
    } else if ((rc != 10 && rc != 11 && rc != 12) || error == NULL)
        __builtin_trap(); /* only the errno of SPEC.md §1, always with a text */
    return 0;
}
