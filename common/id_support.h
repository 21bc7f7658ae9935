/* id_support: the documents identity verification reads from the network — a domain's
 * /.well-known/browserid and a remote verifier's answer — and the verifier's request. */
#ifndef PRESENCED_ID_SUPPORT_H
#define PRESENCED_ID_SUPPORT_H

#include "id_assertion.h"
#include "id_key.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_SUPPORT_DOC_MAX 65536 /* bytes of a support document or a verifier answer */

enum id_support_kind { ID_SUPPORT_KEY, ID_SUPPORT_AUTHORITY, ID_SUPPORT_DISABLED };

struct id_support {
    enum id_support_kind kind;
    struct id_key key;               /* ID_SUPPORT_KEY */
    char authority[ID_HOST_MAX + 1]; /* ID_SUPPORT_AUTHORITY */
};

/* Parses a support document as a domain serves it: {"public-key":…,"authentication":"/…",
 * "provisioning":"/…"}, {"authority":"host"} (other members ignored) or {"disabled":true}.
 * Returns 0, or -1 with *why set. */
int id_support_parse(const char *text, size_t len, struct id_support *out, const char **why);
void id_support_free(struct id_support *doc);

/* Whether a support document's Content-Type is application/json (any case, parameters allowed),
 * the only type the BrowserID protocol and Mozilla's verifier take. NULL (none) is not. */
bool id_support_media_type_ok(const char *content_type);

/* Reads a trusted_issuer key file: a public key, or a support document holding one (its
 * authentication and provisioning paths not needed). On error writes "path: reason" into err. */
int id_key_file_load(const char *path, struct id_key *out, char *err, size_t errlen);

enum id_remote_protocol { ID_REMOTE_V1, ID_REMOTE_V2 };

/* The body a verifier is sent: v1 a form (assertion, audience), v2 JSON with trustedIssuers.
 * Returns a malloc'd NUL-terminated string, NULL when out of memory. */
char *id_remote_request(enum id_remote_protocol protocol, const char *assertion, size_t len,
                        const char *audience, char *const *trusted, size_t trusted_count);

struct id_remote_answer {
    char email[ID_EMAIL_MAX + 1];
    int64_t expires_ms; /* 0 when the answer did not say */
};

/* Reads a verifier's answer to an assertion sent with audience. Returns 0 (okay, out filled),
 * 32, 33 or 34 for a refusal, or 35 when the answer makes no sense; *why is set unless 0. */
int id_remote_answer_parse(const char *text, size_t len, const char *audience,
                           struct id_remote_answer *out, const char **why);

#endif
