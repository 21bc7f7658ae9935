/* web_session: signed-in users of the web pages, by a hash of their cookie (SPEC.md §4). */
#ifndef PRESENCED_SHM_WEB_SESSION_H
#define PRESENCED_SHM_WEB_SESSION_H

#include "conn.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define SHM_WEB_HASH_LEN 32 /* SHA-256 of the cookie's token */
#define SHM_CSRF_LEN 32     /* the session's CSRF token, base64url */

struct shm_web_session {
    int64_t expires_ms;
    char csrf[SHM_CSRF_LEN + 1];
    char email[SHM_EMAIL_MAX + 1];
};

/* In a cluster, the engine's bucket of sessions: the key is the hash in hex, the value what
 * the store holds (be64 expiry, CSRF token, e-mail), the bucket's max age session_ttl. */
#define SHM_BUCKET_SESSIONS "pd_sessions"
void shm_web_session_key(const unsigned char *hash, char out[2 * SHM_WEB_HASH_LEN + 1]);
/* Reads that value into out: SHM_OK or SHM_ERROR. */
int shm_web_session_decode(const void *data, size_t len, struct shm_web_session *out);

int shm_web_session_put(struct shm_store *store, const unsigned char *hash,
                        const struct shm_web_session *session);
/* SHM_OK, or SHM_NOT_FOUND (also when expired by now_ms). */
int shm_web_session_get(struct shm_store *store, const unsigned char *hash, int64_t now_ms,
                        struct shm_web_session *out);
int shm_web_session_delete(struct shm_store *store, const unsigned char *hash);
/* Examines up to max sessions from where sweep stopped and deletes the expired ones. */
int shm_web_session_expire(struct shm_store *store, int64_t now_ms, size_t max,
                           struct shm_sweep *sweep, size_t *removed);

#endif
