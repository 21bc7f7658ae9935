/* libFuzzer target: a device's WebSocket text frame through dev_msg_parse,
 * worker/device/device_msg.c's own parser, compared with the json-c path it replaced
 * (tests/tools/dev_msg_reference.h): the same errno and text for every input, the same fields
 * for every message taken. What it takes is well-formed UTF-8 and carries no U+0000. */
#include "../../common/utf8.h"
#include "../tools/dev_msg_reference.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dev_msg msg;
    const char *error = NULL;
    int rc = dev_msg_parse((const char *)data, size, &msg, &error);
    struct dev_msg_ref ref;
    dev_msg_reference((const char *)data, size, &ref);
    if (!dev_msg_agrees(rc, error, &msg, &ref))
        __builtin_trap(); /* the two parsers disagree */
    if (rc == 0) {
        if (!utf8_valid((const char *)data, size) || memchr(data, '\0', size) != NULL)
            __builtin_trap();
        if (msg.kind == DEV_MSG_STATUS &&
            (strlen(msg.email) == 0 || strlen(msg.device) == 0 ||
             (msg.assertion && memchr(msg.assertion, '\0', msg.assertion_len)) ||
             (msg.token && memchr(msg.token, '\0', msg.token_len))))
            __builtin_trap(); /* a field that carries U+0000 */
        dev_msg_free(&msg);
    } else if ((rc != 10 && rc != 11 && rc != 12) || error == NULL) {
        __builtin_trap(); /* only the errno of SPEC.md §1, always with a text */
    }
    dev_msg_reference_free(&ref);
    return 0;
}
