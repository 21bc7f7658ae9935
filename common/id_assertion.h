/* id_assertion: parsing of a BrowserID backed assertion (cert~…~assertion, each part a JWS). */
#ifndef PRESENCED_ID_ASSERTION_H
#define PRESENCED_ID_ASSERTION_H

#include "id_key.h"

#include <stddef.h>
#include <stdint.h>

/* Bytes of a whole backed assertion; its parts have no limit of their own (presence(7)). */
#define ID_ASSERTION_MAX 16384
#define ID_MAX_CERTS 4
#define ID_EMAIL_MAX 254
#define ID_HOST_MAX 253

struct id_part {
    enum id_alg alg;
    size_t signed_len;  /* "header.payload" starts the part's text */
    const char *text;   /* the part inside the assertion (not NUL-terminated) */
    unsigned char *sig; /* decoded signature */
    size_t sig_len;
    int64_t exp_ms;
    int64_t iat_ms;                 /* -1 when absent */
    const char *iss;                /* certificates: the issuer */
    struct json_object *public_key; /* certificates: the key this one certifies */
    const char *email;              /* the last certificate: principal.email */
    const char *aud;                /* the assertion: its audience */
    struct json_object *payload;    /* owns the strings above */
};

struct id_assertion {
    struct id_part certs[ID_MAX_CERTS];
    size_t cert_count;
    struct id_part assertion;
    const char *email;       /* principal of the last certificate */
    const char *root_issuer; /* iss of the first certificate */
};

/* Parses text (len bytes) without any signature check. Returns 0, or -1 with *why set to a short
 * English reason (the caller answers errno 34). */
int id_assertion_parse(const char *text, size_t len, struct id_assertion *out, const char **why);
void id_assertion_free(struct id_assertion *a);

/* The earliest exp over the assertion and its certificates. */
int64_t id_assertion_expiry(const struct id_assertion *a);

/* Whether text is an e-mail address presenced accepts: local@domain, ASCII, a dotted host. */
bool id_email_valid(const char *text);
/* Whether text is a DNS host name (letters, digits, '-' and '.'; labels of 1 to 63). */
bool id_host_valid(const char *text);

#endif
