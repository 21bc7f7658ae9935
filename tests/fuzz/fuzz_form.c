/* libFuzzer target: an application/x-www-form-urlencoded body (the web pages' forms) through
 * form_parse, the lookups the handlers make on it, and the sign-in's check of next. */
#include "../../common/form.h"
#include "../../common/next_path.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct form form;
    if (form_parse((const char *)data, size, &form) != 0)
        return 0;
    if (form.count > FORM_FIELDS_MAX)
        __builtin_trap();
    const char *values[4];
    for (size_t i = 0; i < form.count; i++)
        if (form.fields[i].name == NULL || form.fields[i].value == NULL ||
            form_get(&form, form.fields[i].name) == NULL ||
            form_get_all(&form, form.fields[i].name, values, 4) == 0)
            __builtin_trap();
    /* A value taken for a local path starts with one '/' and holds no tab, LF or CR. */
    for (size_t i = 0; i < form.count; i++)
        if (next_path_local(form.fields[i].value) &&
            (form.fields[i].value[0] != '/' || form.fields[i].value[1] == '/' ||
             strpbrk(form.fields[i].value, "\t\r\n") != NULL))
            __builtin_trap();
    char out[64];
    if (form.count > 0)
        form_escape(form.fields[0].value, out, sizeof out);
    form_free(&form);
    return 0;
}
