/* libFuzzer target: a backed assertion through id_assertion_parse, the claims checks, the
 * parsing of the keys its certificates carry, and the signature checks over them. */
#include "../../common/id_assertion.h"
#include "../../common/id_verify.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct id_assertion a;
    const char *why = NULL;
    if (id_assertion_parse((const char *)data, size, &a, &why) != 0) {
        if (why == NULL)
            __builtin_trap(); /* a refusal always says why */
        id_assertion_free(&a);
        return 0;
    }
    if (a.email == NULL || a.root_issuer == NULL || a.assertion.aud == NULL)
        __builtin_trap();
    char *audiences[] = { "https://presence.example" };
    int rc = id_claims_check(&a, audiences, 1, 1700000000000, 60000, &why);
    if (rc != 0 && rc != 32 && rc != 33)
        __builtin_trap();
    for (size_t i = 0; i < a.cert_count; i++) {
        struct id_key key;
        if (id_key_from_json(a.certs[i].public_key, &key, &why) == 0)
            id_key_free(&key);
    }
    /* The signature checks, with the key the first certificate certifies standing in for its
     * issuer's: signatures of any length (short RS ones are padded) against real keys. */
    struct id_key stand_in;
    if (id_key_from_json(a.certs[0].public_key, &stand_in, &why) == 0) {
        rc = id_signatures_check(&a, &stand_in, &why);
        if (rc != 0 && rc != 34)
            __builtin_trap();
        id_key_free(&stand_in);
    }
    id_assertion_free(&a);
    return 0;
}
