/* libFuzzer target: what identity verification reads from the network — the first byte picks:
 * a support document (/.well-known/browserid), a remote verifier's answer, or a support
 * document's Content-Type (the first line) and the document after it, as a worker takes them. */
#include "../../common/id_support.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void support_document(const char *text, size_t len)
{
    struct id_support doc;
    const char *why = NULL;
    if (id_support_parse(text, len, &doc, &why) != 0) {
        if (why == NULL)
            __builtin_trap();
        return;
    }
    if (doc.kind == ID_SUPPORT_KEY && doc.key.pkey == NULL)
        __builtin_trap();
    if (doc.kind == ID_SUPPORT_AUTHORITY && !id_host_valid(doc.authority))
        __builtin_trap();
    id_support_free(&doc);
}

static void remote_answer(const char *text, size_t len)
{
    struct id_remote_answer answer;
    const char *why = NULL;
    int rc = id_remote_answer_parse(text, len, "https://presence.example", &answer, &why);
    if (rc != 0 && rc != 32 && rc != 33 && rc != 34 && rc != 35)
        __builtin_trap();
    if (rc == 0 && !id_email_valid(answer.email))
        __builtin_trap();
}

/* "<Content-Type>\n<document>": the document is read only when the type is JSON. */
static void typed_document(const char *text, size_t len)
{
    const char *newline = memchr(text, '\n', len);
    size_t type_len = newline ? (size_t)(newline - text) : len;
    char *type = malloc(type_len + 1);
    if (type == NULL)
        return;
    memcpy(type, text, type_len);
    type[type_len] = '\0';
    bool json = id_support_media_type_ok(type);
    if (json && strncasecmp(type, "application/json", 16) != 0)
        __builtin_trap();
    free(type);
    if (json && newline != NULL)
        support_document(newline + 1, len - type_len - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 3) { /* '0', '1', '2' */
    case 0:
        support_document(text, len);
        break;
    case 1:
        remote_answer(text, len);
        break;
    default:
        typed_document(text, len);
    }
    return 0;
}
