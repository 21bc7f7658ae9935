/* grant: which apps a user allowed, under which PUID — random per (user, app), kept on
 * re-grant, new after a revoke (SPEC.md §4). */
#ifndef PRESENCED_SHM_GRANT_H
#define PRESENCED_SHM_GRANT_H

#include "conn.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_PUID_LEN 36 /* a UUID */

/* In a cluster, the engine's bucket of grants: g.<first 16 bytes of SHA-256(e-mail \0 appid) in
 * hex> holds a grant (one per user and app, made by create), p.<PUID> names its user and app. */
#define SHM_BUCKET_GRANTS "pd_grants"
#define SHM_GRANT_KEY_MAX 34
void shm_grant_engine_key(const char *email, const char *appid, char out[SHM_GRANT_KEY_MAX + 1]);

/* The PUID under which email granted appid: SHM_OK, or SHM_NOT_FOUND. */
int shm_grant_get(struct shm_store *store, const char *email, const char *appid, char *puid);
/* Records the grant with puid (the caller makes it random) in the batch. */
int shm_grant_put(struct shm_store *store, const char *email, const char *appid, const char *puid,
                  int64_t now_ms);
/* Removes the grant; *puid (may be NULL) gets the PUID it had. SHM_NOT_FOUND when none. */
int shm_grant_revoke(struct shm_store *store, const char *email, const char *appid, char *puid);
/* Removes every grant of an app (the app is being deleted). */
int shm_grant_revoke_app(struct shm_store *store, const char *appid);
/* Who a PUID stands for: the app it belongs to and the user. SHM_NOT_FOUND for an unknown or
 * revoked one. */
int shm_grant_by_puid(struct shm_store *store, const char *puid, char *appid, char *email);

/* Calls cb for each app email granted. Returns the count, or < 0. */
typedef void (*shm_grant_user_cb)(void *arg, const char *appid, const char *puid);
int shm_grant_list_user(struct shm_store *store, const char *email, shm_grant_user_cb cb,
                        void *arg);
/* Calls cb for each user who granted appid (their PUID and e-mail). Returns the count, or < 0. */
typedef void (*shm_grant_app_cb)(void *arg, const char *puid, const char *email);
int shm_grant_list_app(struct shm_store *store, const char *appid, shm_grant_app_cb cb, void *arg);
/* The same in pages: at most max, in PUID order after after_puid ("" for the first page; it is
 * advanced to the last one given). *done says the end was reached. Returns the count, or < 0. */
int shm_grant_page_app(struct shm_store *store, const char *appid, char *after_puid, size_t max,
                       shm_grant_app_cb cb, void *arg, bool *done);

#endif
