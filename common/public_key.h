/* public_key: OpenSSL public keys made from their parameters — what BrowserID keys (id_key.c) and
 * JWKs (jwk.c) are read into. */
#ifndef PRESENCED_PUBLIC_KEY_H
#define PRESENCED_PUBLIC_KEY_H

#include <openssl/evp.h>
#include <openssl/param_build.h>

/* A public key of type ("RSA", "DSA", "EC") from the parameters pushed to bld (which the caller
 * frees); NULL when OpenSSL refuses them. */
EVP_PKEY *public_key_from_params(const char *type, OSSL_PARAM_BLD *bld);

/* An RSA public key of modulus n and exponent e, or NULL. */
EVP_PKEY *public_key_rsa(const BIGNUM *n, const BIGNUM *e);

#endif
