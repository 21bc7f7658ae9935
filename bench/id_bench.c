/* id_bench: assertion and token verifications per second on one core, through the worker's real
 * paths (identity_verify and identity_verify_token: shared cache, parse, claims, issuer keys,
 * signatures, cache write), for the Firefox shape (RS256 certificate over a DS128 assertion),
 * RS256 over RS256, OpenID Connect ID tokens signed RS256 (2048 bits), ES256 and EdDSA, and cache
 * hits of each kind. Prints one JSON object. Usage: id_bench DIR [COUNT] */
#include "../tests/tools/id_forge.h"

#include "../common/clock.h"
#include "../common/config.h"
#include "../shm/store.h"
#include "../worker/fetch.h"
#include "../worker/identity/identity.h"

#include <stdlib.h>
#include <time.h>

#define AUDIENCE "https://bench.example"
#define TOKEN_ISSUER "https://op.bench.example"
#define TOKEN_AUDIENCE "presenced-bench"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* count assertions for bench@example.com, each different, under one certificate. */
static char **assertions_make(EVP_PKEY *issuer, EVP_PKEY *user, const char *alg, int count)
{
    char json[8000], payload[9000], body[200];
    int64_t exp = clock_wall_ms() + 3600 * 1000;
    snprintf(payload, sizeof payload,
             "{\"iss\":\"issuer.example\",\"exp\":%lld,\"public-key\":%s,"
             "\"principal\":{\"email\":\"bench@example.com\"}}",
             (long long)exp, key_json(user, json, sizeof json));
    char *cert = strdup(jws_make(issuer, "RS256", payload));
    char **out = calloc((size_t)count, sizeof *out);
    for (int i = 0; i < count; i++) {
        snprintf(body, sizeof body, "{\"aud\":\"%s\",\"exp\":%lld,\"n\":%d}", AUDIENCE,
                 (long long)exp, i);
        const char *signed_part = jws_make(user, alg, body);
        size_t len = strlen(cert) + 1 + strlen(signed_part) + 1;
        out[i] = malloc(len);
        snprintf(out[i], len, "%s~%s", cert, signed_part);
    }
    free(cert);
    return out;
}

/* Verifies every assertion once; returns verifications per second, or -1 on a refusal. */
static double verify_all(struct identity *id, struct shm_store *store, char **list, int count,
                         bool want_cached)
{
    struct identity_result result;
    struct identity_req *pending;
    double start = now_s();
    for (int i = 0; i < count; i++) {
        int rc = identity_verify(id, list[i], strlen(list[i]), NULL, &result, NULL, NULL, &pending);
        if (rc != 0 || result.error != 0 || result.cached != want_cached) {
            fprintf(stderr, "assertion %d: rc %d errno %d (%s)\n", i, rc, result.error,
                    result.why ? result.why : "");
            return -1;
        }
        if (i % 64 == 63) /* a worker commits once per loop turn */
            shm_batch_commit(store);
    }
    shm_batch_commit(store);
    return count / (now_s() - start);
}

/* count ID tokens for bench@example.com, each different (its jti), signed with key. */
static char **tokens_make(EVP_PKEY *key, const char *alg, const char *kid, int count)
{
    char payload[512];
    int64_t now = clock_wall_ms() / 1000;
    char **out = calloc((size_t)count, sizeof *out);
    for (int i = 0; i < count; i++) {
        snprintf(payload, sizeof payload,
                 "{\"iss\":\"" TOKEN_ISSUER "\",\"sub\":\"u1\",\"aud\":\"" TOKEN_AUDIENCE "\","
                 "\"exp\":%lld,\"iat\":%lld,\"jti\":\"t%d\",\"email\":\"bench@example.com\","
                 "\"email_verified\":true}",
                 (long long)now + 3600, (long long)now, i);
        out[i] = strdup(jwt_make(key, alg, kid, payload));
    }
    return out;
}

static double verify_tokens(struct identity *id, struct shm_store *store, char **list, int count,
                            bool want_cached)
{
    struct identity_result result;
    struct identity_req *pending;
    double start = now_s();
    for (int i = 0; i < count; i++) {
        int rc = identity_verify_token(id, list[i], strlen(list[i]), NULL, &result, NULL, NULL,
                                       &pending);
        if (rc != 0 || result.error != 0 || result.cached != want_cached) {
            fprintf(stderr, "token %d: rc %d errno %d (%s)\n", i, rc, result.error,
                    result.why ? result.why : "");
            return -1;
        }
        if (i % 64 == 63)
            shm_batch_commit(store);
    }
    shm_batch_commit(store);
    return count / (now_s() - start);
}

static void list_free(char **list, int count)
{
    for (int i = 0; i < count; i++)
        free(list[i]);
    free(list);
}

static int setup(const char *dir, EVP_PKEY *issuer, EVP_PKEY **token_keys, struct config *cfg,
                 struct shm_store **store)
{
    char key_path[512], jwks_path[512], text[2048], json[8000], err[512], a[4000], b[600], c[300];
    snprintf(key_path, sizeof key_path, "%s/issuer.json", dir);
    FILE *f = fopen(key_path, "w");
    if (f == NULL)
        return -1;
    fputs(key_json(issuer, json, sizeof json), f);
    fclose(f);
    snprintf(jwks_path, sizeof jwks_path, "%s/op.jwks", dir);
    if ((f = fopen(jwks_path, "w")) == NULL)
        return -1;
    fprintf(f, "{\"keys\":[%s,%s,%s]}", jwk_json(token_keys[0], "rs", a, sizeof a),
            jwk_json(token_keys[1], "es", b, sizeof b), jwk_json(token_keys[2], "ed", c, sizeof c));
    fclose(f);
    snprintf(text, sizeof text,
             "audience %s\ntrusted_issuer issuer.example %s\noidc_issuer " TOKEN_ISSUER
             " %s\noidc_audience " TOKEN_AUDIENCE "\n",
             AUDIENCE, key_path, jwks_path);
    config_defaults(cfg);
    if (config_parse(cfg, "bench", text, strlen(text), err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct shm_store_options opt = { dir, 256LL << 20, 1LL << 30, false };
    if (shm_store_open(store, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: id_bench DIR [COUNT]\n");
        return 2;
    }
    int count = argc > 2 ? atoi(argv[2]) : 2000;
    EVP_PKEY *issuer = key_generate("RSA", 2048), *user_ds = key_generate("DSA", 1024),
             *user_rs = key_generate("RSA", 2048);
    EVP_PKEY *token_keys[3] = { key_generate("RSA", 2048), key_generate_named("P-256"),
                                key_generate_named("ED25519") };
    struct config cfg;
    struct shm_store *store;
    if (setup(argv[1], issuer, token_keys, &cfg, &store) != 0)
        return 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct identity *id;
    struct fetcher *fetcher;
    char err[512];
    if (fetcher_init(&fetcher, &loop, &cfg) != 0 ||
        identity_init(&id, fetcher, store, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char **ds = assertions_make(issuer, user_ds, "DS128", count);
    char **rs = assertions_make(issuer, user_rs, "RS256", count);
    double ds_rate = verify_all(id, store, ds, count, false);
    double rs_rate = verify_all(id, store, rs, count, false);
    double hit_rate = verify_all(id, store, ds, count, true);
    char **t_rs = tokens_make(token_keys[0], "RS256", "rs", count);
    char **t_es = tokens_make(token_keys[1], "ES256", "es", count);
    char **t_ed = tokens_make(token_keys[2], "EdDSA", "ed", count);
    double t_rs_rate = verify_tokens(id, store, t_rs, count, false);
    double t_es_rate = verify_tokens(id, store, t_es, count, false);
    double t_ed_rate = verify_tokens(id, store, t_ed, count, false);
    double t_hit_rate = verify_tokens(id, store, t_ed, count, true);
    printf("{\"count\":%d,\"ds128_per_s\":%.0f,\"rs256_per_s\":%.0f,\"cache_hit_per_s\":%.0f,"
           "\"token_rs256_per_s\":%.0f,\"token_es256_per_s\":%.0f,\"token_eddsa_per_s\":%.0f,"
           "\"token_cache_hit_per_s\":%.0f}\n",
           count, ds_rate, rs_rate, hit_rate, t_rs_rate, t_es_rate, t_ed_rate, t_hit_rate);
    list_free(t_rs, count);
    list_free(t_es, count);
    list_free(t_ed, count);
    identity_stop(id);
    fetcher_stop(fetcher);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    identity_free(id);
    fetcher_free(fetcher);
    shm_store_close(store);
    for (int i = 0; i < count; i++) {
        free(ds[i]);
        free(rs[i]);
    }
    free(ds);
    free(rs);
    config_free(&cfg);
    EVP_PKEY_free(issuer);
    EVP_PKEY_free(user_ds);
    EVP_PKEY_free(user_rs);
    for (int i = 0; i < 3; i++)
        EVP_PKEY_free(token_keys[i]);
    return ds_rate > 0 && rs_rate > 0 && hit_rate > 0 && t_rs_rate > 0 && t_es_rate > 0 &&
                   t_ed_rate > 0 && t_hit_rate > 0
               ? 0
               : 1;
}
