/* oidc_doc: the OpenID Connect documents a worker reads from an issuer — its discovery document
 * (OpenID Connect Discovery 1.0 §3) and its token endpoint's answer (RFC 6749 §5). */
#ifndef PRESENCED_OIDC_DOC_H
#define PRESENCED_OIDC_DOC_H

#include <stdbool.h>
#include <stddef.h>

#define OIDC_DOC_MAX 65536 /* bytes of a discovery document or a token answer */
#define OIDC_URL_MAX 1024

struct oidc_discovery {
    char *jwks_uri;
    char *authorization_endpoint; /* NULL when the document has none */
    char *token_endpoint;         /* NULL when the document has none */
    bool secret_post; /* the token endpoint takes client_secret_post only, not HTTP Basic */
};

/* Parses the document of issuer: its "issuer" must be exactly issuer (§4.3), jwks_uri and the
 * endpoints https URLs. Returns 0, or -1 with *why set. */
int oidc_discovery_parse(const char *text, size_t len, const char *issuer,
                         struct oidc_discovery *out, const char **why);
void oidc_discovery_free(struct oidc_discovery *doc);

struct oidc_token_answer {
    char *id_token;  /* malloc'd; NULL when the answer is a refusal */
    char error[64];  /* the refusal's "error" code (RFC 6749 §5.2), or "" */
};

/* Reads a token endpoint's answer: {"id_token":…} (with access_token and more), or
 * {"error":…}. Returns 0 (either, *out set), or -1 with *why set when it is neither. */
int oidc_token_answer_parse(const char *text, size_t len, struct oidc_token_answer *out,
                            const char **why);
void oidc_token_answer_free(struct oidc_token_answer *answer);

/* Whether text is an https URL of at most OIDC_URL_MAX bytes, with a host, without a fragment or
 * white space. */
bool oidc_https_url(const char *text);

#endif
