/* libFuzzer target: a device's push_subscribe message as it arrives (strict JSON, then the
 * subscription object through push_subscription_parse). What is accepted is an https endpoint
 * within its limit, a point on P-256 and a 16-byte secret. */
#include "../../common/json_strict.h"
#include "../../common/push_subscription.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *root = json_strict_object((const char *)data, size), *sub = NULL;
    if (root == NULL)
        return 0;
    struct push_subscription out;
    const char *why = NULL;
    if (!json_object_object_get_ex(root, "subscription", &sub))
        sub = root; /* the bare subscription object too */
    if (push_subscription_parse(sub, &out, &why) == 0) {
        size_t len = strlen(out.endpoint);
        if (len > PUSH_ENDPOINT_MAX || strncmp(out.endpoint, "https://", 8) != 0 ||
            !push_endpoint_valid(out.endpoint, len) || !push_public_key_valid(out.p256dh))
            __builtin_trap();
    } else if (why == NULL) {
        __builtin_trap(); /* every refusal says why */
    }
    json_object_put(root);
    return 0;
}
