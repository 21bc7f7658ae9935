/* libFuzzer target: what identity verification reads from the network — a support document
 * (/.well-known/browserid) when the first byte is even, a remote verifier's answer when odd. */
#include "../../common/id_support.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1, *why = NULL;
    size_t len = size - 1;
    if (data[0] % 2 == 0) {
        struct id_support doc;
        if (id_support_parse(text, len, &doc, &why) == 0)
            id_support_free(&doc);
        else if (why == NULL)
            __builtin_trap();
        return 0;
    }
    struct id_remote_answer answer;
    int rc = id_remote_answer_parse(text, len, "https://presence.example", &answer, &why);
    if (rc != 0 && rc != 32 && rc != 33 && rc != 34 && rc != 35)
        __builtin_trap();
    if (rc == 0 && !id_email_valid(answer.email))
        __builtin_trap();
    return 0;
}
