/* oidc_doc: the OpenID Connect documents a worker reads from an issuer — its discovery document
 * (OpenID Connect Discovery 1.0 §3) and its token endpoint's answer (RFC 6749 §5). */
#include "oidc_doc.h"

#include "json_strict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char **why, const char *text)
{
    *why = text;
    return -1;
}

bool oidc_https_url(const char *text)
{
    size_t len = strlen(text);
    if (strncmp(text, "https://", 8) != 0 || len <= 8 || len > OIDC_URL_MAX || text[8] == '/')
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] <= ' ' || text[i] == '#' || (unsigned char)text[i] >= 0x7f)
            return false;
    return true;
}

/* An optional https URL member: 0 (absent: *out NULL), 1 (a malloc'd copy), -1 invalid. */
static int url_member(struct json_object *root, const char *key, char **out)
{
    const char *text;
    size_t len;
    *out = NULL;
    int has = json_strict_string(root, key, &text, &len);
    if (has <= 0)
        return has;
    if (strlen(text) != len || !oidc_https_url(text))
        return -1;
    *out = strdup(text);
    return *out == NULL ? -1 : 1;
}

/* RFC 8414 §2: client_secret_basic when listed or when the list is absent. */
static bool secret_post_only(struct json_object *root)
{
    struct json_object *methods;
    if (!json_object_object_get_ex(root, "token_endpoint_auth_methods_supported", &methods) ||
        !json_object_is_type(methods, json_type_array))
        return false;
    bool basic = false, post = false;
    for (size_t i = 0; i < json_object_array_length(methods); i++) {
        const char *m = json_object_get_string(json_object_array_get_idx(methods, i));
        basic = basic || (m != NULL && strcmp(m, "client_secret_basic") == 0);
        post = post || (m != NULL && strcmp(m, "client_secret_post") == 0);
    }
    return post && !basic;
}

int oidc_discovery_parse(const char *text, size_t len, const char *issuer,
                         struct oidc_discovery *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (len > OIDC_DOC_MAX)
        return fail(why, "discovery document too large");
    struct json_object *root = json_strict_object(text, len);
    if (root == NULL)
        return fail(why, "discovery document is not a JSON object");
    const char *named;
    int rc = 0;
    if (json_strict_string(root, "issuer", &named, NULL) != 1 || strcmp(named, issuer) != 0)
        rc = fail(why, "discovery document names another issuer");
    else if (url_member(root, "jwks_uri", &out->jwks_uri) != 1)
        rc = fail(why, "discovery document has no https jwks_uri");
    else if (url_member(root, "authorization_endpoint", &out->authorization_endpoint) < 0 ||
             url_member(root, "token_endpoint", &out->token_endpoint) < 0)
        rc = fail(why, "discovery document has an endpoint that is not an https URL");
    else
        out->secret_post = secret_post_only(root);
    json_object_put(root);
    if (rc != 0)
        oidc_discovery_free(out);
    return rc;
}

void oidc_discovery_free(struct oidc_discovery *doc)
{
    free(doc->jwks_uri);
    free(doc->authorization_endpoint);
    free(doc->token_endpoint);
    memset(doc, 0, sizeof *doc);
}

int oidc_token_answer_parse(const char *text, size_t len, struct oidc_token_answer *out,
                            const char **why)
{
    memset(out, 0, sizeof *out);
    if (len > OIDC_DOC_MAX)
        return fail(why, "token answer too large");
    struct json_object *root = json_strict_object(text, len);
    if (root == NULL)
        return fail(why, "token answer is not a JSON object");
    const char *value;
    size_t value_len;
    int rc = 0;
    if (json_strict_string(root, "error", &value, &value_len) == 1) {
        /* The code is a short ASCII word; anything else is not worth repeating. */
        size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyz_");
        snprintf(out->error, sizeof out->error, "%.*s", (int)(n < 63 ? n : 63), value);
        if (out->error[0] == '\0')
            snprintf(out->error, sizeof out->error, "error");
    } else if (json_strict_string(root, "id_token", &value, &value_len) != 1 || value_len == 0 ||
               strlen(value) != value_len) {
        rc = fail(why, "token answer has no id_token");
    } else if ((out->id_token = strdup(value)) == NULL) {
        rc = fail(why, "out of memory");
    }
    json_object_put(root);
    return rc;
}

void oidc_token_answer_free(struct oidc_token_answer *answer)
{
    free(answer->id_token);
    memset(answer, 0, sizeof *answer);
}
