/* dev_issuer: the development issuer (SPEC.md §3.1) — an Ed25519 key made in data_dir at the
 * first start, the tokens `presenced token` prints with it, and the key set that verifies them.
 * For trying presenced without an identity provider; never for production (presenced(8)). */
#include "dev_issuer.h"

#include "b64url.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dev_issuer_iss(const struct config *cfg, char *out, size_t len)
{
    size_t base = strlen(cfg->public_url);
    while (base > 0 && cfg->public_url[base - 1] == '/')
        base--;
    int n = snprintf(out, len, "%.*s%s", (int)base, cfg->public_url, DEV_ISSUER_PATH);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static EVP_PKEY *key_read(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL || !EVP_PKEY_is_a(key, "ED25519")) {
        EVP_PKEY_free(key);
        snprintf(err, errlen, "%s: not an Ed25519 private key in PEM", path);
        return NULL;
    }
    return key;
}

/* Written to a temporary file, then linked in place: a reader never sees half a key, and of
 * two processes making one at once, one key wins and both use it. */
static int key_make(const char *path, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char tmp[4096 + 32];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = key ? open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    bool written = f != NULL && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    written = f != NULL && fflush(f) == 0 && fsync(fileno(f)) == 0 && written;
    if (f != NULL)
        fclose(f);
    else if (fd >= 0)
        close(fd);
    EVP_PKEY_free(key);
    int rc = written && (link(tmp, path) == 0 || errno == EEXIST) ? 0 : -1;
    if (rc != 0)
        snprintf(err, errlen, "%s: cannot write the development issuer's key: %s", path,
                 strerror(errno));
    unlink(tmp);
    return rc;
}

EVP_PKEY *dev_issuer_key(const char *data_dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, DEV_ISSUER_KEY_FILE);
    if (access(path, F_OK) != 0 && key_make(path, err, errlen) != 0)
        return NULL;
    return key_read(path, err, errlen);
}

int dev_issuer_key_set(EVP_PKEY *key, struct jwk_set *out)
{
    unsigned char x[32];
    size_t len = sizeof x;
    memset(out, 0, sizeof *out);
    if (EVP_PKEY_get_raw_public_key(key, x, &len) != 1 || len != sizeof x)
        return -1;
    out->keys = calloc(1, sizeof *out->keys);
    if (out->keys == NULL)
        return -1;
    struct jwk *k = &out->keys[0];
    k->type = JWK_ED25519;
    k->has_alg = true;
    k->alg = JWT_EDDSA;
    jwk_ed25519_thumbprint(x, k->kid);
    k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, sizeof x);
    if (k->pkey == NULL) {
        jwk_set_free(out);
        return -1;
    }
    out->count = 1;
    return 0;
}

/* base64url(JSON text of obj) into a malloc'd string. */
static char *json_b64(struct json_object *obj)
{
    const char *text =
        json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t len = strlen(text);
    char *out = malloc(B64URL_ENCODED_LEN(len) + 1);
    if (out != NULL)
        b64url_encode((const unsigned char *)text, len, out);
    return out;
}

static char *signing_input(EVP_PKEY *key, const struct config *cfg, const char *email,
                           int64_t ttl_s, int64_t now_s)
{
    struct jwk_set set;
    char iss[512];
    if (dev_issuer_key_set(key, &set) != 0 || dev_issuer_iss(cfg, iss, sizeof iss) != 0)
        return NULL;
    struct json_object *header = json_object_new_object(), *payload = json_object_new_object();
    json_object_object_add(header, "alg", json_object_new_string("EdDSA"));
    json_object_object_add(header, "kid", json_object_new_string(set.keys[0].kid));
    json_object_object_add(header, "typ", json_object_new_string("JWT"));
    jwk_set_free(&set);
    json_object_object_add(payload, "iss", json_object_new_string(iss));
    json_object_object_add(payload, "sub", json_object_new_string(email));
    json_object_object_add(payload, "aud", json_object_new_string(DEV_ISSUER_AUDIENCE));
    json_object_object_add(payload, "iat", json_object_new_int64(now_s));
    json_object_object_add(payload, "exp", json_object_new_int64(now_s + ttl_s));
    json_object_object_add(payload, "email", json_object_new_string(email));
    json_object_object_add(payload, "email_verified", json_object_new_boolean(1));
    char *h = json_b64(header), *p = json_b64(payload), *out = NULL;
    json_object_put(header);
    json_object_put(payload);
    if (h != NULL && p != NULL && asprintf(&out, "%s.%s", h, p) < 0)
        out = NULL;
    free(h);
    free(p);
    return out;
}

char *dev_issuer_token(EVP_PKEY *key, const struct config *cfg, const char *email, int64_t ttl_s,
                       int64_t now_s)
{
    char *input = signing_input(key, cfg, email, ttl_s, now_s), *token = NULL;
    unsigned char sig[64];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool signed_ok = input != NULL && ctx != NULL &&
                     EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
                     EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)input,
                                    strlen(input)) == 1;
    EVP_MD_CTX_free(ctx);
    if (signed_ok) {
        char s[B64URL_ENCODED_LEN(64) + 1];
        b64url_encode(sig, sig_len, s);
        if (asprintf(&token, "%s.%s", input, s) < 0)
            token = NULL;
    }
    free(input);
    return token;
}
