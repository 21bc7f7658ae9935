/* app: registered applications — owner, domain and its proof, API key hash, state
 * (SPEC.md §4). */
#ifndef PRESENCED_SHM_APP_H
#define PRESENCED_SHM_APP_H

#include "conn.h"
#include "store.h"

#include "../common/app_rules.h"

#include <stdbool.h>
#include <stdint.h>

#define SHM_APPID_LEN 36 /* a UUID */
#define SHM_APP_NAME_MAX APP_RULES_NAME_MAX
#define SHM_APP_DOMAIN_MAX 253
#define SHM_APP_DESCRIPTION_MAX APP_RULES_DESCRIPTION_MAX
#define SHM_APP_KEY_LEN APP_RULES_KEY_LEN           /* 32 random bytes, base64url */
#define SHM_APP_KEY_HASH_LEN APP_RULES_KEY_HASH_LEN /* SHA-256 of the API key */
/* The owner of an app the operator provisioned on the admin endpoint: not an e-mail, so no
 * signed-in developer can manage it on /myapps. */
#define SHM_APP_OWNER_OPERATOR "operator"

struct shm_app {
    char appid[SHM_APPID_LEN + 1];
    char owner[SHM_EMAIL_MAX + 1];
    char name[SHM_APP_NAME_MAX + 1];
    char domain[SHM_APP_DOMAIN_MAX + 1];
    char description[SHM_APP_DESCRIPTION_MAX + 1];
    char domain_key[SHM_APP_KEY_LEN + 1]; /* to publish at https://domain/__presence */
    unsigned char key_hash[SHM_APP_KEY_HASH_LEN];
    bool has_key;
    bool validated;
    bool active;
    int64_t created_ms;
};

/* The engine's bucket of apps in a cluster (the value: shm_app_encode's JSON). */
#define SHM_BUCKET_APPS "pd_apps"
#define SHM_APP_JSON_MAX 4096

/* The app as JSON (malloc'd; NULL when out of memory): what the store and the engine hold. */
char *shm_app_encode(const struct shm_app *app);
/* Reads such JSON into out for appid. SHM_OK or SHM_ERROR. */
int shm_app_decode(const char *appid, const void *data, size_t len, struct shm_app *out);

/* Creates or replaces app (and its owner index) in the batch. */
int shm_app_put(struct shm_store *store, const struct shm_app *app);
int shm_app_get(struct shm_store *store, const char *appid, struct shm_app *out);
/* Deletes the app, its owner index and every grant of it. */
int shm_app_delete(struct shm_store *store, const char *appid);
/* Calls cb with each app of owner, oldest appid first. Returns the count or < 0. */
typedef void (*shm_app_cb)(void *arg, const struct shm_app *app);
int shm_app_list_by_owner(struct shm_store *store, const char *owner, shm_app_cb cb, void *arg);
/* Calls cb with every app, in appid order. Returns the count or < 0. */
int shm_app_list(struct shm_store *store, shm_app_cb cb, void *arg);

#endif
