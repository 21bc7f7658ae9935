/* local_apps: the local backend's AppService side and data — which AppService connections of an
 * app are open on the node and since when an app is away (shm/app_channel.h), the events its
 * granted users' presence changes make (mailed to the connections' workers, rung after the
 * commit), and the apps, grants, web sessions and presence as the node's store holds them. */
#include "local.h"

#include "../conn_mail.h"

#include "../../common/clock.h"
#include "../../shm/app_channel.h"
#include "../../shm/grant.h"
#include "../../shm/mail.h"

#include <stdlib.h>

#define RINGS_MAX 64

int local_app_connected(struct worker *w, const char *appid, uint64_t conn_id,
                        struct backend_app_return *back)
{
    size_t others = 0;
    back->replay = false;
    back->since_ms = 0;
    if (shm_app_conn_add(w->store, appid, w->info.pid, conn_id, &others) != SHM_OK)
        return 60;
    /* Back from an absence: the latest change of each user since, in pages after the OK. */
    int away =
        others == 0 ? shm_app_away_take(w->store, appid, clock_wall_ms(), &back->since_ms) : 0;
    if (away < 0)
        w->info.store_failures_total++;
    back->replay = away == 1;
    return 0;
}

void local_app_closed(struct worker *w, const char *appid, uint64_t conn_id, int64_t away_ms)
{
    if (shm_app_conn_remove(w->store, appid, w->info.pid, conn_id, away_ms) != SHM_OK)
        w->info.store_failures_total++;
}

int local_app_changes_page(struct worker *w, const char *appid, int64_t since_ms, char *after_puid,
                           size_t max, backend_change_cb cb, void *arg, bool *done)
{
    int count = shm_app_changes_page(w->store, appid, since_ms, after_puid, max, cb, arg, done);
    if (count < 0)
        w->info.store_failures_total++;
    return count;
}

void local_app_close_all(struct worker *w, const char *appid, int number)
{
    struct shm_app_conn *conns;
    size_t count;
    if (shm_app_conns(w->store, appid, &conns, &count) != SHM_OK) {
        w->info.store_failures_total++;
        return;
    }
    unsigned char payload[9];
    payload[8] = (unsigned char)number;
    for (size_t i = 0; i < count; i++) {
        if (conns[i].pid == w->info.pid) {
            backend_inbound(w, conns[i].conn_id,
                            &(struct conn_mail){ .kind = CONN_MAIL_APP_CLOSED, .number = number });
            continue;
        }
        shm_mail_put_conn_id(payload, conns[i].conn_id);
        if (mailbox_post(w, conns[i].pid, SHM_MAIL_APP_CLOSE, payload, sizeof payload) != 0)
            w->info.store_failures_total++;
    }
    free(conns);
}

void local_app_event(struct worker *w, const char *email, uint8_t status, int64_t since_ms,
                     const char *only_appid)
{
    int32_t rings[RINGS_MAX];
    size_t ring_count = 0;
    if (shm_app_event_publish(w->store, email, status, since_ms, only_appid, clock_wall_ms(), rings,
                              RINGS_MAX, &ring_count) != SHM_OK)
        w->info.store_failures_total++;
    for (size_t i = 0; i < ring_count; i++)
        mailbox_ring_later(w, rings[i]);
}

/* Reads: the store's answer as it is. */

int local_presence_get(struct worker *w, const char *email, struct shm_presence *out)
{
    return shm_presence_get(w->store, email, out);
}

int local_look_further(struct worker *w, enum backend_record kind, const char *key,
                       const struct backend_done *done)
{
    (void)w, (void)kind, (void)key, (void)done;
    return SHM_NOT_FOUND; /* the node's store is all there is */
}

int local_app_get(struct worker *w, const char *appid, struct shm_app *out)
{
    return shm_app_get(w->store, appid, out);
}

int local_app_list_by_owner(struct worker *w, const char *owner, backend_app_cb cb, void *arg)
{
    return shm_app_list_by_owner(w->store, owner, cb, arg);
}

int local_grant_get(struct worker *w, const char *email, const char *appid, char *puid)
{
    return shm_grant_get(w->store, email, appid, puid);
}

int local_grant_by_puid(struct worker *w, const char *puid, char *appid, char *email)
{
    return shm_grant_by_puid(w->store, puid, appid, email);
}

int local_grant_list_user(struct worker *w, const char *email, backend_grant_user_cb cb, void *arg)
{
    return shm_grant_list_user(w->store, email, cb, arg);
}

int local_grant_page_app(struct worker *w, const char *appid, char *after_puid, size_t max,
                         backend_grant_app_cb cb, void *arg, bool *done)
{
    return shm_grant_page_app(w->store, appid, after_puid, max, cb, arg, done);
}

int local_web_session_get(struct worker *w, const unsigned char *hash, struct shm_web_session *out)
{
    return shm_web_session_get(w->store, hash, clock_wall_ms(), out);
}

/* Writes: in the store's batch at once (the pages read their own writes, and the page commits
 * before it answers); done is not needed. */

int local_app_put(struct worker *w, const struct shm_app *app, const struct backend_done *done)
{
    (void)done;
    return shm_app_put(w->store, app) == SHM_OK ? 0 : 60;
}

int local_app_delete(struct worker *w, const char *appid, const struct backend_done *done)
{
    (void)done;
    return shm_app_delete(w->store, appid) == SHM_OK ? 0 : 60;
}

int local_grant_put(struct worker *w, const char *email, const char *appid, const char *puid,
                    const struct backend_done *done)
{
    (void)done;
    return shm_grant_put(w->store, email, appid, puid, clock_wall_ms()) == SHM_OK ? 0 : 60;
}

int local_grant_revoke(struct worker *w, const char *email, const char *appid, char *puid,
                       const struct backend_done *done)
{
    (void)done;
    int rc = shm_grant_revoke(w->store, email, appid, puid);
    return rc == SHM_OK || rc == SHM_NOT_FOUND ? rc : 60;
}

int local_web_session_put(struct worker *w, const unsigned char *hash,
                          const struct shm_web_session *session, const struct backend_done *done)
{
    (void)done;
    return shm_web_session_put(w->store, hash, session) == SHM_OK ? 0 : 60;
}

int local_web_session_delete(struct worker *w, const unsigned char *hash,
                             const struct backend_done *done)
{
    (void)done;
    return shm_web_session_delete(w->store, hash) == SHM_OK ? 0 : 60;
}
