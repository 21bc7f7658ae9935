/* app_seed: puts a validated, active app and its grants straight into a presenced store, so the
 * benchmark needs no web flow. Prints {"appid","key","puids":[...]}.
 *   app_seed DATA_DIR USERS   (users are user<i>@bench.example, i < USERS) */
#include "../common/b64url.h"
#include "../common/clock.h"
#include "../common/uuid.h"
#include "../shm/app.h"
#include "../shm/grant.h"
#include "../shm/store.h"

#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: app_seed DATA_DIR USERS\n");
        return 2;
    }
    int users = atoi(argv[2]);
    char err[512];
    struct shm_store *store;
    struct shm_store_options opt = { argv[1], 256LL << 20, 16LL << 30, false };
    if (shm_store_open(&store, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "app_seed: %s\n", err);
        return 1;
    }
    struct shm_app app = { .validated = true, .active = true, .has_key = true };
    unsigned char raw[32];
    char key[64];
    if (uuid_make(app.appid) != 0 || RAND_bytes(raw, sizeof raw) != 1)
        return 1;
    b64url_encode(raw, sizeof raw, key);
    SHA256((const unsigned char *)key, strlen(key), app.key_hash);
    snprintf(app.owner, sizeof app.owner, "bench@bench.example");
    snprintf(app.name, sizeof app.name, "Bench");
    snprintf(app.domain, sizeof app.domain, "bench.example");
    snprintf(app.domain_key, sizeof app.domain_key, "%s", key);
    int rc = shm_app_put(store, &app);
    printf("{\"appid\":\"%s\",\"key\":\"%s\",\"puids\":[", app.appid, key);
    for (int i = 0; rc == SHM_OK && i < users; i++) {
        char email[64], puid[UUID_LEN + 1];
        snprintf(email, sizeof email, "user%d@bench.example", i);
        if (uuid_make(puid) != 0 ||
            (rc = shm_grant_put(store, email, app.appid, puid, clock_wall_ms())) != SHM_OK)
            break;
        printf("%s\"%s\"", i ? "," : "", puid);
        /* A batch of its own every so many users: the map grows between batches. */
        if (i % 10000 == 9999)
            rc = shm_batch_commit(store);
    }
    printf("]}\n");
    if (rc == SHM_OK)
        rc = shm_batch_commit(store);
    shm_store_close(store);
    return rc == SHM_OK ? 0 : 1;
}
