/* agent_shared: the records every node shares beside the users' — apps, grants (PUIDs) and web
 * sessions. Writers on this node (the workers' pages, the master's admin endpoint) change their
 * views in the store as on one machine and leave, in the same batch, an outbox entry
 * (shm/outbox.h); this agent makes each in the engine (pd_apps, pd_grants, pd_sessions, pd_push) and
 * tells the writer, which holds its answer until then. The buckets' changefeeds bring every
 * node's writes into this node's views. One process writes what comes from the engine into
 * the views, so an older change from the feed never undoes a newer local one: a key with an
 * outbox entry, or written here at a later revision than the feed has reached, is skipped.
 *
 * A grant is made once per (user, app): p.<PUID> is created, then g.<hash of user and app> is
 * created; when g. is there already (another node's consent a moment earlier) its PUID wins,
 * ours is deleted and the writer hears SHM_OUTBOX_CONFLICT (its page asks the user to try
 * again, and then finds the winner's PUID). A revoke deletes p. first (notifications to the
 * PUID fail at once on every node that looks it up), then g. Web Push subscriptions (pd_push)
 * go the same way, so that the node queueing a notification knows every subscription of the
 * user, whichever node the device subscribed on. */
#include "agent_internal.h"

#include "inbox.h"
#include "js.h"
#include "member.h"

#include "../common/clock.h"
#include "../common/list.h"
#include "../common/log.h"
#include "../shm/app.h"
#include "../shm/app_away_shared.h"
#include "../shm/app_channel.h"
#include "../shm/grant.h"
#include "../shm/mail.h"
#include "../shm/outbox.h"
#include "../shm/push_sub.h"
#include "../shm/web_session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUTBOX_IN_FLIGHT 64
#define FLOORS_MAX 256
#define RINGS_MAX 64
#define GRANT_RETRIES 3

enum shared_kind {
    SHARED_APPS,
    SHARED_GRANTS,
    SHARED_SESSIONS,
    SHARED_PUSH,
    SHARED_APP_AWAY,
    SHARED_KINDS
};

static const char *const bucket_names[SHARED_KINDS] = { SHM_BUCKET_APPS, SHM_BUCKET_GRANTS,
                                                        SHM_BUCKET_SESSIONS, SHM_BUCKET_PUSH,
                                                        SHM_BUCKET_APP_AWAY };

struct shared_feed {
    struct agent_shared *sh;
    enum shared_kind kind;
    char stream[32];
    struct feed *feed;
};

/* A key this agent wrote at rev: the feed's older changes of it are not applied. */
struct floor {
    char bucket[SHM_OUTBOX_BUCKET_MAX + 1];
    char key[SHM_OUTBOX_KEY_MAX + 1];
    uint64_t rev;
};

struct agent_shared {
    struct agent *agent;
    struct shared_feed feeds[SHARED_KINDS];
    uint64_t in_flight[OUTBOX_IN_FLIGHT];
    size_t in_flight_count;
    struct floor floors[FLOORS_MAX];
    size_t floor_count;
    bool stopping;
    uint64_t made, conflicts, failed;
    /* The operator's notifications (SHM_OUTBOX_NOTIFY) are queued as a worker queues them: a
     * member of the cluster of this agent's own (cluster/member.h), opened at the first. */
    struct cl_member *member;
    struct list_link notifying; /* jobs whose cl_notify is under way */
};

/* One outbox entry being made in the engine. */
struct job {
    struct agent_shared *sh;
    uint64_t seq;
    int32_t reply_pid;
    uint8_t op;
    char bucket[SHM_OUTBOX_BUCKET_MAX + 1];
    char key[SHM_OUTBOX_KEY_MAX + 1];
    unsigned char *value;
    size_t len;
    struct shm_outbox_grant grant;
    char pkey[SHM_OUTBOX_KEY_MAX + 1]; /* a grant's p.<PUID> */
    int tries;
    struct list_link link; /* a notification: in sh->notifying while queued */
};

static enum shared_kind kind_of(const char *bucket)
{
    for (int k = 0; k < SHARED_KINDS; k++)
        if (strcmp(bucket, bucket_names[k]) == 0)
            return (enum shared_kind)k;
    return SHARED_KINDS;
}

/* ---- floors ---- */

static struct floor *floor_find(struct agent_shared *sh, const char *bucket, const char *key)
{
    for (size_t i = 0; i < sh->floor_count; i++)
        if (strcmp(sh->floors[i].key, key) == 0 && strcmp(sh->floors[i].bucket, bucket) == 0)
            return &sh->floors[i];
    return NULL;
}

static void floor_raise(struct agent_shared *sh, const char *bucket, const char *key, uint64_t rev)
{
    struct floor *f = floor_find(sh, bucket, key);
    if (f == NULL && sh->floor_count == FLOORS_MAX)
        f = &sh->floors[0]; /* the oldest: its feed has long passed it */
    else if (f == NULL)
        f = &sh->floors[sh->floor_count++];
    else if (f->rev >= rev)
        return;
    snprintf(f->bucket, sizeof f->bucket, "%s", bucket);
    snprintf(f->key, sizeof f->key, "%s", key);
    f->rev = rev;
}

/* Whether the feed's change at seq of bucket.key is older than what this node has. */
static bool superseded(struct agent_shared *sh, const char *bucket, const char *key, uint64_t seq)
{
    struct floor *f = floor_find(sh, bucket, key);
    if (f != NULL && seq >= f->rev) {
        *f = sh->floors[--sh->floor_count]; /* the feed has reached our write */
        f = NULL;
    }
    return f != NULL || shm_outbox_pending(sh->agent->store, bucket, key);
}

/* ---- the views ---- */

static void ring_later(struct agent_shared *sh, int32_t pid)
{
    agent_ring_later(sh->agent, pid); /* rung once the batch is committed */
}

/* The AppService connections of an app on this node, closed with errno (40, 41, 42) when the
 * app they authenticated as went, was deactivated or got a new key on another node. */
static void app_conns_close(struct agent_shared *sh, const char *appid, int number)
{
    struct shm_store *store = sh->agent->store;
    struct shm_app_conn *conns;
    size_t count;
    if (shm_app_conns(store, appid, &conns, &count) != SHM_OK)
        return;
    unsigned char payload[9];
    payload[8] = (unsigned char)number;
    for (size_t i = 0; i < count; i++) {
        shm_mail_put_conn_id(payload, conns[i].conn_id);
        if (shm_mail_post(store, conns[i].pid, SHM_MAIL_APP_CLOSE, payload, sizeof payload) ==
            SHM_OK)
            ring_later(sh, conns[i].pid);
    }
    free(conns);
}

static void app_apply(struct agent_shared *sh, const char *appid, bool deleted, const void *data,
                      size_t len)
{
    struct shm_store *store = sh->agent->store;
    struct shm_app before, after;
    bool had = shm_app_get(store, appid, &before) == SHM_OK;
    if (deleted) {
        if (had) {
            app_conns_close(sh, appid, 40);
            shm_app_delete(store, appid);
        }
        return;
    }
    if (shm_app_decode(appid, data, len, &after) != SHM_OK) {
        log_warning("engine: app %s unreadable: ignored", appid);
        return;
    }
    if (had && before.active && !after.active)
        app_conns_close(sh, appid, 41);
    else if (had && before.active && before.has_key &&
             memcmp(before.key_hash, after.key_hash, sizeof before.key_hash) != 0)
        app_conns_close(sh, appid, 42);
    shm_app_put(store, &after);
}

/* A grant's views from its g. record: one PUID per (user, app), the one the engine holds. */
static void grant_view_put(struct agent_shared *sh, const struct shm_outbox_grant *g)
{
    struct shm_store *store = sh->agent->store;
    char puid[SHM_PUID_LEN + 1];
    int rc = shm_grant_get(store, g->email, g->appid, puid);
    if (rc == SHM_OK && strcmp(puid, g->puid) == 0)
        return;
    if (rc == SHM_OK)
        shm_grant_revoke(store, g->email, g->appid, NULL);
    shm_grant_put(store, g->email, g->appid, g->puid, g->granted_ms);
}

/* A PUID deleted (a revoke): its app's connections here hear "offline" once, then nothing. */
static void grant_view_revoke(struct agent_shared *sh, const char *puid)
{
    struct shm_store *store = sh->agent->store;
    char appid[SHM_APPID_LEN + 1], email[SHM_EMAIL_MAX + 1];
    if (shm_grant_by_puid(store, puid, appid, email) != SHM_OK)
        return;
    int32_t rings[RINGS_MAX];
    size_t ring_count = 0;
    int64_t now = clock_wall_ms();
    shm_app_event_publish(store, email, SHM_STATUS_OFFLINE, now, appid, now, rings, RINGS_MAX,
                          &ring_count);
    for (size_t i = 0; i < ring_count; i++)
        ring_later(sh, rings[i]);
    shm_grant_revoke(store, email, appid, NULL);
}

static void grant_apply(struct agent_shared *sh, const char *key, bool deleted, const void *data,
                        size_t len)
{
    if (strncmp(key, "p.", 2) == 0) {
        if (deleted)
            grant_view_revoke(sh, key + 2);
        return; /* a p. record only serves lookups of a PUID the views do not have yet */
    }
    if (strncmp(key, "g.", 2) != 0 || deleted)
        return; /* a g. deletion follows its p. deletion, which did the work */
    struct shm_outbox_grant g;
    char expected[SHM_GRANT_KEY_MAX + 1];
    if (shm_outbox_grant_decode(data, len, &g) != 0) {
        log_warning("engine: grant %s unreadable: ignored", key);
        return;
    }
    shm_grant_engine_key(g.email, g.appid, expected);
    if (strcmp(expected, key) != 0) {
        log_warning("engine: grant %s names another user or app: ignored", key);
        return;
    }
    grant_view_put(sh, &g);
}

static int hex_decode(const char *hex, unsigned char *out, size_t n)
{
    if (strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
            return -1;
        out[i] = (unsigned char)byte;
    }
    return 0;
}

static void session_apply(struct agent_shared *sh, const char *key, bool deleted, const void *data,
                          size_t len)
{
    unsigned char hash[SHM_WEB_HASH_LEN];
    if (hex_decode(key, hash, sizeof hash) != 0)
        return;
    if (deleted) {
        shm_web_session_delete(sh->agent->store, hash);
        return;
    }
    struct shm_web_session session;
    if (shm_web_session_decode(data, len, &session) != SHM_OK) {
        log_warning("engine: a web session unreadable: ignored");
        return;
    }
    if (session.expires_ms > clock_wall_ms())
        shm_web_session_put(sh->agent->store, hash, &session);
}

static void view_apply(struct agent_shared *sh, enum shared_kind kind, const char *key,
                       bool deleted, const void *data, size_t len)
{
    switch (kind) {
    case SHARED_APPS:
        if (strlen(key) == SHM_APPID_LEN)
            app_apply(sh, key, deleted, data, len);
        break;
    case SHARED_GRANTS:
        grant_apply(sh, key, deleted, data, len);
        break;
    case SHARED_SESSIONS:
        session_apply(sh, key, deleted, data, len);
        break;
    case SHARED_PUSH:
        /* A removal is a record of its own (it names the e-mail and device the key hides). */
        if (!deleted && shm_push_sub_apply(sh->agent->store, data, len,
                                           (size_t)sh->agent->cfg->max_devices_per_user) != SHM_OK)
            log_warning("engine: a push subscription unreadable: ignored");
        break;
    case SHARED_APP_AWAY:
        if (!deleted && shm_app_away_apply(sh->agent->store, key, data, len) != SHM_OK)
            log_warning("engine: an app's absence record unreadable: ignored");
        break;
    case SHARED_KINDS:
        break;
    }
}

static void shared_applied(void *arg, const char *subject, uint64_t seq, bool deleted,
                         const void *data, size_t len, int64_t time_ms)
{
    struct shared_feed *sf = arg;
    struct agent_shared *sh = sf->sh;
    (void)time_ms;
    /* $KV.<bucket>.<key>: the key may hold dots (g.…, p.…). */
    size_t prefix = 4 + strlen(bucket_names[sf->kind]) + 1;
    if (strlen(subject) > prefix && strlen(subject + prefix) <= SHM_OUTBOX_KEY_MAX) {
        const char *key = subject + prefix;
        if (!superseded(sh, bucket_names[sf->kind], key, seq))
            view_apply(sh, sf->kind, key, deleted, data, len);
    }
    shm_cl_cursor_put(sh->agent->store, sf->stream, seq);
}

/* ---- the outbox ---- */

static bool in_flight(struct agent_shared *sh, uint64_t seq)
{
    for (size_t i = 0; i < sh->in_flight_count; i++)
        if (sh->in_flight[i] == seq)
            return true;
    return false;
}

static void in_flight_drop(struct agent_shared *sh, uint64_t seq)
{
    for (size_t i = 0; i < sh->in_flight_count; i++)
        if (sh->in_flight[i] == seq) {
            sh->in_flight[i] = sh->in_flight[--sh->in_flight_count];
            return;
        }
}

static void job_free(struct job *j)
{
    if (list_linked(&j->link))
        list_remove(&j->link);
    in_flight_drop(j->sh, j->seq);
    free(j->value);
    free(j);
}

/* The entry is made (or refused for good): out of the outbox, and its writer told. */
static void job_done(struct job *j, uint8_t outcome)
{
    struct agent_shared *sh = j->sh;
    struct shm_store *store = sh->agent->store;
    if (!sh->stopping) {
        shm_outbox_remove(store, j->seq);
        if (outcome == SHM_OUTBOX_DONE)
            sh->made++;
        else if (outcome == SHM_OUTBOX_CONFLICT)
            sh->conflicts++;
        else
            sh->failed++;
        if (j->reply_pid > 0) {
            unsigned char payload[9];
            shm_mail_put_conn_id(payload, j->seq); /* a be64, as a connection id is */
            payload[8] = outcome;
            if (shm_mail_post(store, j->reply_pid, SHM_MAIL_CL_DONE, payload, sizeof payload) ==
                SHM_OK)
                ring_later(sh, j->reply_pid);
        }
    }
    job_free(j);
}

/* The engine could not be reached: the entry stays for the next round; the writer's own wait
 * times out meanwhile (a fetch is answered now: its reader should not wait for the engine). */
static void job_later(struct job *j)
{
    if (j->op == SHM_OUTBOX_FETCH) {
        job_done(j, SHM_OUTBOX_FAILED);
        return;
    }
    job_free(j);
}

static bool job_stopped(struct job *j)
{
    if (!j->sh->stopping)
        return false;
    job_free(j);
    return true;
}

static void job_result(struct job *j, const struct js_result *r)
{
    if (r->outcome == JS_OK) {
        floor_raise(j->sh, j->bucket, j->key, r->seq);
        job_done(j, SHM_OUTBOX_DONE);
    } else if (r->outcome == JS_UNAVAILABLE) {
        job_later(j);
    } else {
        log_warning("engine: %s.%s refused (%s %d)", j->bucket, j->key, r->err.description,
                    r->err.err_code);
        job_done(j, SHM_OUTBOX_FAILED);
    }
}

static void written(void *arg, const struct js_result *r)
{
    struct job *j = arg;
    if (!job_stopped(j))
        job_result(j, r);
}

/* A revoke: p. went; now g. */
static void revoke_p_removed(void *arg, const struct js_result *r)
{
    struct job *j = arg;
    if (job_stopped(j))
        return;
    if (r->outcome != JS_OK) {
        job_result(j, r);
        return;
    }
    floor_raise(j->sh, j->bucket, j->pkey, r->seq);
    if (js_kv_remove(j->sh->agent->engine, j->bucket, j->key, written, j) != 0)
        job_later(j);
}

static void grant_g_write(struct job *j, uint64_t expected);

static void ignored(void *arg, const struct js_result *r)
{
    (void)arg;
    (void)r;
}

/* g. was taken: a delete marker (a revoke before) is written over; a live grant wins. */
static void grant_g_read(void *arg, const struct js_result *r)
{
    struct job *j = arg;
    if (job_stopped(j))
        return;
    if (r->outcome == JS_NOT_FOUND || (r->outcome == JS_OK && r->deleted)) {
        if (++j->tries > GRANT_RETRIES) {
            job_done(j, SHM_OUTBOX_FAILED);
            return;
        }
        grant_g_write(j, r->outcome == JS_OK ? r->seq : 0);
        return;
    }
    if (r->outcome != JS_OK) {
        job_result(j, r);
        return;
    }
    struct shm_outbox_grant winner;
    if (shm_outbox_grant_decode(r->value, r->len, &winner) != 0) {
        job_done(j, SHM_OUTBOX_FAILED);
        return;
    }
    if (strcmp(winner.puid, j->grant.puid) == 0) {
        job_done(j, SHM_OUTBOX_DONE); /* ours, made before (the agent restarted meanwhile) */
        return;
    }
    /* Another node's consent came first: its PUID is the user's for this app. Our p. goes,
     * and this node's views take the winner's now rather than when the feed brings it. */
    js_kv_remove(j->sh->agent->engine, j->bucket, j->pkey, ignored, NULL);
    floor_raise(j->sh, j->bucket, j->key, r->seq);
    grant_view_put(j->sh, &winner);
    job_done(j, SHM_OUTBOX_CONFLICT);
}

static void grant_g_written(void *arg, const struct js_result *r)
{
    struct job *j = arg;
    if (job_stopped(j))
        return;
    if (r->outcome == JS_CONFLICT) {
        if (js_kv_get_leader(j->sh->agent->engine, j->bucket, j->key, grant_g_read, j) != 0)
            job_later(j);
        return;
    }
    job_result(j, r);
}

static void grant_g_write(struct job *j, uint64_t expected)
{
    if (js_kv_update(j->sh->agent->engine, j->bucket, j->key, j->value, j->len, expected,
                     grant_g_written, j) != 0)
        job_later(j);
}

static void grant_p_created(void *arg, const struct js_result *r)
{
    struct job *j = arg;
    if (job_stopped(j))
        return;
    /* A conflict on p.: made before by this entry (PUIDs are 122 random bits). */
    if (r->outcome != JS_OK && r->outcome != JS_CONFLICT) {
        job_result(j, r);
        return;
    }
    grant_g_write(j, 0);
}

/* ---- fetches: a record this node's views miss, read from the stream's leader ---- */

static void fetched(void *arg, const struct js_result *r)
{
    struct job *j = arg;
    if (job_stopped(j))
        return;
    if (r->outcome == JS_OK && !r->deleted &&
        !superseded(j->sh, j->bucket, j->key, r->seq))
        view_apply(j->sh, kind_of(j->bucket), j->key, false, r->value, r->len);
    job_done(j, r->outcome == JS_OK || r->outcome == JS_NOT_FOUND ? SHM_OUTBOX_DONE
                                                                   : SHM_OUTBOX_FAILED);
}

/* A PUID: p.<PUID> names the user and app, whose g. record is the grant. */
static void fetched_puid(void *arg, const struct js_result *r)
{
    struct job *j = arg;
    if (job_stopped(j))
        return;
    struct shm_outbox_grant g;
    if (r->outcome != JS_OK || r->deleted || shm_outbox_grant_decode(r->value, r->len, &g) != 0) {
        job_done(j, r->outcome == JS_OK || r->outcome == JS_NOT_FOUND ? SHM_OUTBOX_DONE
                                                                       : SHM_OUTBOX_FAILED);
        return;
    }
    shm_grant_engine_key(g.email, g.appid, j->key);
    if (js_kv_get_leader(j->sh->agent->engine, j->bucket, j->key, fetched, j) != 0)
        job_done(j, SHM_OUTBOX_FAILED);
}

/* ---- the operator's notifications ---- */

static void member_close_conn(void *arg, uint64_t conn, int number)
{
    (void)arg, (void)conn, (void)number; /* the agent holds no connection */
}

static void member_deliver(void *arg, const struct cl_inbox_msg *msg)
{
    (void)arg, (void)msg;
}

static void member_quiet(void *arg)
{
    (void)arg;
}

static struct cl_member *member_of(struct agent_shared *sh)
{
    if (sh->member != NULL)
        return sh->member;
    struct agent *a = sh->agent;
    char err[256];
    struct cl_member_options opt = {
        .loop = &a->loop,
        .cfg = a->cfg,
        .store = a->store,
        .pid = (uint32_t)getpid(),
        .on = { .close = member_close_conn, .deliver = member_deliver, .resync = member_quiet,
                .fenced = member_quiet, .arg = sh },
    };
    if (cl_member_open(&sh->member, &opt, err, sizeof err) != 0) {
        log_warning("outbox: cannot open the agent's member of the cluster: %s", err);
        sh->member = NULL;
    }
    return sh->member;
}

static void notified(void *arg, const struct cl_notify_result *r)
{
    struct job *j = arg;
    list_remove(&j->link);
    if (job_stopped(j))
        return;
    if (r->number != 0) {
        job_later(j); /* the engine did not take it: again at the next round */
        return;
    }
    if (r->dropped > 0)
        log_info("notification queue full: %zu oldest dropped", r->dropped);
    job_done(j, SHM_OUTBOX_DONE);
}

static int notify_start(struct job *j)
{
    char email[SHM_EMAIL_MAX + 1];
    int64_t expires;
    const char *json;
    size_t len;
    if (shm_outbox_notify_decode(j->value, j->len, email, &expires, &json, &len) != 0)
        return -1;
    if (expires <= clock_wall_ms()) {
        job_done(j, SHM_OUTBOX_DONE); /* expired while it waited: as the queue would drop it */
        return 0;
    }
    struct cl_member *m = member_of(j->sh);
    if (m == NULL || !cl_member_serving(m)) {
        job_later(j);
        return 0;
    }
    list_push_back(&j->sh->notifying, &j->link);
    if (cl_notify(m, email, json, len, expires, notified, j) == NULL) {
        list_remove(&j->link);
        job_later(j);
    }
    return 0;
}

/* The operator's kick: every live device of the user, on every node, closes with 61 and 1001
 * — this node's by local mail, the others' by a CLOSE on their worker's inbox. */
static void kick(struct job *j)
{
    struct agent *a = j->sh->agent;
    char email[SHM_EMAIL_MAX + 1], uk[CL_USER_KEY_LEN + 1];
    if (j->len == 0 || j->len > SHM_EMAIL_MAX) {
        job_done(j, SHM_OUTBOX_FAILED);
        return;
    }
    memcpy(email, j->value, j->len);
    email[j->len] = '\0';
    cl_user_key(email, uk);
    uint64_t rev;
    const void *value;
    size_t len;
    struct cl_record rec;
    const char *why;
    if (shm_cl_user_get(a->store, uk, &rev, &value, &len) != SHM_OK ||
        cl_record_decode(&rec, value, len, &why) != 0) {
        job_done(j, SHM_OUTBOX_DONE); /* no device anywhere */
        return;
    }
    size_t told = 0;
    for (size_t i = 0; i < rec.count; i++) {
        const struct cl_owner *o = &rec.entries[i].owner;
        if (!agent_owner_live(a, o))
            continue;
        if (strcmp(o->node, a->cfg->node_name) == 0) {
            unsigned char payload[8];
            shm_mail_put_conn_id(payload, o->conn);
            if (shm_mail_post(a->store, (int32_t)o->pid, SHM_MAIL_KICK_CONN, payload,
                              sizeof payload) == SHM_OK)
                agent_ring_later(a, (int32_t)o->pid);
        } else {
            char subject[CL_INBOX_SUBJECT_MAX], body[64];
            cl_inbox_subject(o->node, o->pid, subject, sizeof subject);
            long n = cl_inbox_close_encode(o->conn, 61, body, sizeof body);
            if (n > 0)
                engine_publish(a->engine, subject, NULL, NULL, 0, body, (size_t)n);
        }
        told++;
    }
    cl_record_free(&rec);
    if (told > 0)
        log_notice("admin: closing %zu device connection(s) of a user on the cluster's nodes",
                   told);
    job_done(j, SHM_OUTBOX_DONE);
}

static int job_start(struct job *j)
{
    struct engine *e = j->sh->agent->engine;
    switch (j->op) {
    case SHM_OUTBOX_PUT:
        return js_kv_put(e, j->bucket, j->key, j->value, j->len, written, j);
    case SHM_OUTBOX_DELETE:
        return js_kv_remove(e, j->bucket, j->key, written, j);
    case SHM_OUTBOX_GRANT:
    case SHM_OUTBOX_REVOKE:
        if (shm_outbox_grant_decode(j->value, j->len, &j->grant) != 0)
            return -1;
        snprintf(j->pkey, sizeof j->pkey, "p.%s", j->grant.puid);
        if (j->op == SHM_OUTBOX_REVOKE)
            return js_kv_remove(e, j->bucket, j->pkey, revoke_p_removed, j);
        return js_kv_update(e, j->bucket, j->pkey, j->value, j->len, 0, grant_p_created, j);
    case SHM_OUTBOX_NOTIFY:
        return notify_start(j);
    case SHM_OUTBOX_KICK:
        kick(j);
        return 0;
    case SHM_OUTBOX_FETCH:
        if (kind_of(j->bucket) == SHARED_GRANTS && strncmp(j->key, "p.", 2) == 0)
            return js_kv_get_leader(e, j->bucket, j->key, fetched_puid, j);
        return js_kv_get_leader(e, j->bucket, j->key, fetched, j);
    default:
        return -1;
    }
}

static void outbox_visit(void *arg, const struct shm_outbox_entry *entry)
{
    struct agent_shared *sh = arg;
    if (in_flight(sh, entry->seq) || sh->in_flight_count == OUTBOX_IN_FLIGHT)
        return;
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->sh = sh;
    j->seq = entry->seq;
    j->reply_pid = entry->reply_pid;
    j->op = entry->op;
    snprintf(j->bucket, sizeof j->bucket, "%s", entry->bucket);
    snprintf(j->key, sizeof j->key, "%s", entry->key);
    if (entry->len > 0 && (j->value = malloc(entry->len)) == NULL) {
        free(j);
        return;
    }
    if (entry->len > 0)
        memcpy(j->value, entry->value, entry->len);
    j->len = entry->len;
    sh->in_flight[sh->in_flight_count++] = j->seq;
    if (kind_of(j->bucket) == SHARED_KINDS && j->op != SHM_OUTBOX_NOTIFY &&
        j->op != SHM_OUTBOX_KICK) {
        log_warning("outbox: entry for an unknown bucket %s dropped", j->bucket);
        job_done(j, SHM_OUTBOX_FAILED);
    } else if (job_start(j) != 0) {
        log_warning("outbox: entry %" PRIu64 " for %s.%s cannot be made: dropped", j->seq,
                    j->bucket, j->key);
        job_done(j, SHM_OUTBOX_FAILED);
    }
}

void agent_shared_take(struct agent *a)
{
    struct agent_shared *sh = a->shared;
    if (sh == NULL || sh->stopping || a->phase != AGENT_SERVING || !engine_connected(a->engine))
        return;
    shm_outbox_walk(a->store, OUTBOX_IN_FLIGHT, outbox_visit, sh);
}

/* ---- the process ---- */

int agent_shared_start(struct agent *a)
{
    struct agent_shared *sh = calloc(1, sizeof *sh);
    if (sh == NULL)
        return -1;
    sh->agent = a;
    list_init(&sh->notifying);
    a->shared = sh;
    for (int k = 0; k < SHARED_KINDS; k++) {
        struct shared_feed *sf = &sh->feeds[k];
        sf->sh = sh;
        sf->kind = (enum shared_kind)k;
        js_kv_stream(bucket_names[k], sf->stream, sizeof sf->stream);
        char filter[48];
        snprintf(filter, sizeof filter, "$KV.%s.>", bucket_names[k]);
        uint64_t applied = 0;
        shm_cl_cursor_get(a->store, sf->stream, &applied);
        struct feed_options opt = { .engine = a->engine, .stream = sf->stream, .filter = filter,
                                    .applied = applied, .apply = shared_applied, .arg = sf };
        if (feed_start(&sf->feed, &opt) != 0)
            return -1;
    }
    return 0;
}

void agent_shared_tick(struct agent *a, int64_t now_mono)
{
    struct agent_shared *sh = a->shared;
    if (sh == NULL)
        return;
    for (int k = 0; k < SHARED_KINDS; k++)
        if (sh->feeds[k].feed != NULL)
            feed_tick(sh->feeds[k].feed, now_mono);
    agent_shared_take(a); /* also what the master wrote: it rings no one */
}

void agent_shared_reconnected(struct agent *a)
{
    for (int k = 0; a->shared != NULL && k < SHARED_KINDS; k++)
        if (a->shared->feeds[k].feed != NULL)
            feed_reconnected(a->shared->feeds[k].feed);
}

void agent_shared_stop(struct agent *a)
{
    struct agent_shared *sh = a->shared;
    if (sh == NULL)
        return;
    sh->stopping = true;
    for (int k = 0; k < SHARED_KINDS; k++)
        if (sh->feeds[k].feed != NULL)
            feed_stop(sh->feeds[k].feed);
    if (sh->member != NULL)
        cl_member_close(sh->member); /* no callback runs after this: the jobs go here */
    sh->member = NULL;
    while (!list_empty(&sh->notifying))
        job_free(LIST_ENTRY(list_first(&sh->notifying), struct job, link));
}

void agent_shared_free(struct agent *a)
{
    free(a->shared);
    a->shared = NULL;
}

void agent_shared_buckets(struct agent *a, const char **names, int64_t *max_age_ms, size_t *count)
{
    for (int k = 0; k < SHARED_KINDS; k++) {
        names[k] = bucket_names[k];
        max_age_ms[k] = k == SHARED_SESSIONS ? a->cfg->session_ttl_ms : 0;
    }
    *count = SHARED_KINDS;
}
