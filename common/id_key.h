/* id_key: BrowserID public keys (RS and DS in JSON) and the JWS signature algorithms over them. */
#ifndef PRESENCED_ID_KEY_H
#define PRESENCED_ID_KEY_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

enum id_alg { ID_ALG_RS256, ID_ALG_DS128, ID_ALG_DS256 };

struct evp_pkey_st;

struct id_key {
    char type;                /* 'R' (RS) or 'D' (DS) */
    int bits;                 /* of n (RS) or p (DS) */
    int qbits;                /* DS only */
    struct evp_pkey_st *pkey; /* OpenSSL's EVP_PKEY */
};

/* "RS256" (and "RS128", jwcrypto's name for it with a 1024-bit key), "DS128", "DS256" → 0 with
 * *alg set; -1 for anything else. */
int id_alg_parse(const char *name, enum id_alg *alg);

/* Builds a key from {"algorithm":"RS","n":"<decimal>","e":"<decimal>"} or
 * {"algorithm":"DS","p","q","g","y"} (hex). Refuses RSA below 1024 or above 8192 bits and DSA
 * other than 1024/160 or 2048/256. Returns 0, or -1 with *why set. */
int id_key_from_json(struct json_object *obj, struct id_key *out, const char **why);

/* Another reference to the same key (EVP_PKEY is reference-counted). */
void id_key_copy(struct id_key *dst, const struct id_key *src);
void id_key_free(struct id_key *key);

/* Whether sig is alg's signature of data by key; false too when alg does not fit the key. */
bool id_key_verify(const struct id_key *key, enum id_alg alg, const unsigned char *data, size_t len,
                   const unsigned char *sig, size_t sig_len);

#endif
