/* id_support: the documents identity verification reads from the network — a domain's
 * /.well-known/browserid and a remote verifier's answer — and the verifier's request. */
#include "id_support.h"

#include "file_read.h"
#include "json_strict.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(const char **why, const char *text)
{
    *why = text;
    return -1;
}

/* authentication and provisioning: paths on the provider's host, as Mozilla's verifier wants. */
static bool path_member(struct json_object *root, const char *key)
{
    const char *path;
    size_t len;
    return json_strict_string(root, key, &path, &len) == 1 && len > 0 && path[0] == '/' &&
           strlen(path) == len;
}

/* A document from the network (strict) must be a whole BrowserID support document; a key file
 * may also be a bare key, or a document without its sign-in paths. */
static int support_from_object(struct json_object *root, bool strict, struct id_support *out,
                               const char **why)
{
    struct json_object *member;
    const char *authority;
    size_t len;
    if (json_object_object_get_ex(root, "disabled", &member) &&
        json_object_is_type(member, json_type_boolean) && json_object_get_boolean(member)) {
        out->kind = ID_SUPPORT_DISABLED;
        return 0;
    }
    int has = json_strict_string(root, "authority", &authority, &len);
    if (has == 1) {
        if (strlen(authority) != len || !id_host_valid(authority))
            return fail(why, "support document names an invalid authority");
        out->kind = ID_SUPPORT_AUTHORITY;
        memcpy(out->authority, authority, len + 1);
        return 0;
    }
    if (has < 0)
        return fail(why, "support document authority is not a string");
    if (json_object_object_get_ex(root, "public-key", &member)) {
        if (strict && !(path_member(root, "authentication") && path_member(root, "provisioning")))
            return fail(why, "support document needs authentication and provisioning paths");
        root = member;
    } else if (strict || !json_object_object_get_ex(root, "algorithm", &member)) {
        return fail(why, "support document has no public-key");
    }
    if (id_key_from_json(root, &out->key, why) != 0)
        return -1;
    out->kind = ID_SUPPORT_KEY;
    return 0;
}

static int support_parse(const char *text, size_t len, bool strict, struct id_support *out,
                         const char **why)
{
    memset(out, 0, sizeof *out);
    if (len > ID_SUPPORT_DOC_MAX)
        return fail(why, "support document too large");
    struct json_object *root = json_strict_object(text, len);
    if (root == NULL)
        return fail(why, "support document is not a JSON object");
    int rc = support_from_object(root, strict, out, why);
    json_object_put(root);
    return rc;
}

int id_support_parse(const char *text, size_t len, struct id_support *out, const char **why)
{
    return support_parse(text, len, true, out, why);
}

bool id_support_media_type_ok(const char *content_type)
{
    static const char json[] = "application/json";
    if (content_type == NULL || strncasecmp(content_type, json, sizeof json - 1) != 0)
        return false;
    char next = content_type[sizeof json - 1];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

void id_support_free(struct id_support *doc)
{
    id_key_free(&doc->key);
}

int id_key_file_load(const char *path, struct id_key *out, char *err, size_t errlen)
{
    size_t len;
    enum file_read_error error;
    char *text = file_read(path, ID_SUPPORT_DOC_MAX, &len, &error);
    if (text == NULL && error == FILE_READ_OPEN) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct id_support doc;
    const char *why = text != NULL              ? NULL
                      : error == FILE_READ_MEMORY ? "out of memory"
                                                  : "read error";
    int rc = text != NULL ? support_parse(text, len, false, &doc, &why) : -1;
    free(text);
    if (rc == 0 && doc.kind != ID_SUPPORT_KEY) {
        id_support_free(&doc);
        why = "needs a public key, not a delegation";
        rc = -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    *out = doc.key;
    return 0;
}

/* application/x-www-form-urlencoded value. */
static char *form_escape(const char *text, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(len * 3 + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

static char *form_request(const char *assertion, size_t len, const char *audience)
{
    char *a = form_escape(assertion, len), *b = form_escape(audience, strlen(audience));
    char *body = NULL;
    if (a != NULL && b != NULL && asprintf(&body, "assertion=%s&audience=%s", a, b) < 0)
        body = NULL;
    free(a);
    free(b);
    return body;
}

static char *json_request(const char *assertion, size_t len, const char *audience,
                          char *const *trusted, size_t trusted_count)
{
    struct json_object *root = json_object_new_object(), *issuers = json_object_new_array();
    char *body = NULL;
    if (root == NULL || issuers == NULL) {
        json_object_put(root);
        json_object_put(issuers);
        return NULL;
    }
    json_object_object_add(root, "assertion", json_object_new_string_len(assertion, (int)len));
    json_object_object_add(root, "audience", json_object_new_string(audience));
    for (size_t i = 0; i < trusted_count; i++)
        json_object_array_add(issuers, json_object_new_string(trusted[i]));
    json_object_object_add(root, "trustedIssuers", issuers);
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text != NULL)
        body = strdup(text);
    json_object_put(root);
    return body;
}

char *id_remote_request(enum id_remote_protocol protocol, const char *assertion, size_t len,
                        const char *audience, char *const *trusted, size_t trusted_count)
{
    if (protocol == ID_REMOTE_V1)
        return form_request(assertion, len, audience);
    return json_request(assertion, len, audience, trusted, trusted_count);
}

/* The errno a verifier's failure reason stands for; PyBrowserID and the Persona verifiers word
 * them like "assertion has expired" or "audience mismatch". */
static int reason_errno(const char *reason)
{
    if (reason != NULL && strstr(reason, "expired") != NULL)
        return 33;
    if (reason != NULL && strstr(reason, "audience") != NULL)
        return 32;
    return 34;
}

static int answer_okay(struct json_object *root, const char *audience, struct id_remote_answer *out,
                       const char **why)
{
    const char *email, *aud;
    size_t email_len;
    if (json_strict_string(root, "audience", &aud, NULL) != 1 || strcmp(aud, audience) != 0) {
        *why = "verifier answered for another audience";
        return 32;
    }
    if (json_strict_string(root, "email", &email, &email_len) != 1 || strlen(email) != email_len ||
        !id_email_valid(email)) {
        *why = "verifier answered without a valid e-mail";
        return 35;
    }
    memcpy(out->email, email, email_len + 1);
    struct json_object *expires;
    if (json_object_object_get_ex(root, "expires", &expires) &&
        json_object_is_type(expires, json_type_int))
        out->expires_ms = json_object_get_int64(expires);
    return 0;
}

int id_remote_answer_parse(const char *text, size_t len, const char *audience,
                           struct id_remote_answer *out, const char **why)
{
    memset(out, 0, sizeof *out);
    struct json_object *root = len <= ID_SUPPORT_DOC_MAX ? json_strict_object(text, len) : NULL;
    const char *status, *reason = NULL;
    int rc;
    if (root == NULL || json_strict_string(root, "status", &status, NULL) != 1) {
        *why = "verifier answer is not understood";
        rc = 35;
    } else if (strcmp(status, "okay") == 0) {
        rc = answer_okay(root, audience, out, why);
    } else {
        json_strict_string(root, "reason", &reason, NULL);
        rc = reason_errno(reason);
        *why = rc == 33   ? "assertion expired"
               : rc == 32 ? "assertion audience not accepted"
                          : "invalid assertion";
    }
    json_object_put(root);
    return rc;
}
