/* libFuzzer target: presenced.conf text through config_parse (common/config.c). */
#include "../../common/config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    char err[512];
    if (config_defaults(&cfg) != 0)
        return 0;
    int rc = config_parse(&cfg, "fuzz.conf", (const char *)data, size, err, sizeof err);
    /* An error always names the file and a line. */
    if (rc != 0 && strncmp(err, "fuzz.conf:", 10) != 0)
        __builtin_trap();
    config_free(&cfg);
    return 0;
}
