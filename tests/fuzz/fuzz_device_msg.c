/* libFuzzer target: a device's WebSocket text frame through dev_msg_parse (strict JSON). */
#include "../../worker/device_msg.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dev_msg msg;
    const char *error = NULL;
    int rc = dev_msg_parse((const char *)data, size, &msg, &error);
    if (rc == 0)
        dev_msg_free(&msg);
    else if ((rc != 10 && rc != 11 && rc != 12) || error == NULL)
        __builtin_trap(); /* only the errno of SPEC.md §1, always with a text */
    return 0;
}
