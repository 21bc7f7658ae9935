/* appservice: the AppService Presence Channel (/myapps/<appid>) — API-key authentication within
 * 10 s, presence events by PUID, missed changes after an absence, snapshots, notify (SPEC.md
 * §5). It runs on the WebSocket session machinery (session/session.h) as its channel table. */
#include "appservice.h"

#include "../backend/backend.h"
#include "../conn_mail.h"
#include "../session/session.h"

#include "../../common/clock.h"
#include "../../common/json_strict.h"
#include "../../common/log.h"
#include "../../common/notification.h"
#include "../../shm/app.h"
#include "../../shm/grant.h"
#include "../../shm/presence.h"

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_DEADLINE_MS 10000
#define SNAPSHOT_CHUNK 100
#define REQUEST_ID_MAX 64

struct app_state;

/* An AppService connection: its session, and its state apart (lws gives every connection's user
 * data the size of the largest, so what only AppServices need is not in it). */
struct app_session {
    struct ws_session ws; /* first: lws's user data is both */
    struct app_state *app;
};

struct app_state {
    struct list_link link; /* in the worker's AppService connections */
    struct app_session *s;
    char appid[SHM_APPID_LEN + 1];
    char name[SHM_APP_NAME_MAX + 1];
    bool authed;
    int64_t opened_ms;
    /* Bulk output, made in pages as the connection takes them (session_out.c). */
    bool replaying;                       /* the changes missed while away */
    int64_t replay_since_ms;              /* ... recorded since then */
    char replay_after[SHM_PUID_LEN + 1];  /* the last PUID replayed ("": none yet) */
    unsigned snapshots;                   /* snapshots asked for and not finished */
    char snapshot_after[SHM_PUID_LEN + 1]; /* the last PUID of the running one */
    /* The request being handled (while app_request runs), and whether it runs again after the
     * backend looked further for what it named (look_further): a second miss is final. */
    const char *request;
    size_t request_len;
    bool looked;
};

/* Notify requests per second of one app, counted on this worker. */
struct app_bucket {
    struct list_link link; /* in the worker's buckets */
    char appid[SHM_APPID_LEN + 1];
    double tokens;
    int64_t refill_ms;
};

static const char *const status_names[] = { "offline", "unavailable", "online" };

static const char *status_name(uint8_t status)
{
    return status < 3 ? status_names[status] : "offline";
}

/* {"action":A,"id":I,"result":"KO","errno":N,"error":T} (action and id when known). */
static void app_error(struct worker *w, struct app_session *s, const char *action, const char *id,
                      int number, const char *text, uint16_t close_code, int retry_after)
{
    meter_error_reply(&w->info.meter, METER_APPSERVICE, number);
    struct json_object *o = json_object_new_object();
    if (o == NULL)
        return;
    if (action != NULL)
        json_object_object_add(o, "action", json_object_new_string(action));
    if (id != NULL)
        json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "result", json_object_new_string("KO"));
    json_object_object_add(o, "errno", json_object_new_int(number));
    json_object_object_add(o, "error", json_object_new_string(text));
    if (retry_after > 0)
        json_object_object_add(o, "retry_after", json_object_new_int(retry_after));
    size_t len;
    const char *json = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    session_send(&s->ws, json, len);
    json_object_put(o);
    /* The server's own failure (60) is not the app's doing: it does not count to abuse_limit. */
    if (close_code != 0 || number != 60)
        session_error_counted(w, &s->ws, close_code);
}

/* errno 61 on a notify the engine cannot take now (a cluster node cut off from it, or its
 * write's budget spent): the app reconnects later, told when, as a device is (SPEC.md §1, §8). */
#define APP_UNAVAILABLE_TEXT "service unavailable, reconnect later"

static void app_unavailable(struct worker *w, struct app_session *s, const char *id)
{
    app_error(w, s, "notify", id, 61, APP_UNAVAILABLE_TEXT, LWS_CLOSE_STATUS_GOINGAWAY,
              session_retry_after_61());
}

/* The open AppService session with conn_id on this worker, or NULL. */
static struct app_session *app_find(struct worker *w, uint64_t conn_id)
{
    struct ws_session *s = session_find(w, conn_id);
    return s != NULL && s->channel == &appservice_channel ? SESSION_OF(s, struct app_session)
                                                          : NULL;
}

static void app_request(struct worker *w, struct app_session *s, const char *text, size_t len);

/* A request that waits while the backend looks further for what it names: the connection reads
 * nothing meanwhile, so that the replies keep the order of the requests, and the request runs
 * again once the backend answered. */
struct app_retry {
    struct worker *w;
    size_t len;
    char text[];
};

static void retry_answered(void *arg, const struct backend_done *d, int result)
{
    struct app_retry *r = arg;
    struct app_session *s = app_find(r->w, d->conn_id);
    (void)result; /* read again either way: the request answers what it then finds */
    if (s != NULL && s->app != NULL) {
        lws_rx_flow_control(s->ws.wsi, 1);
        s->app->looked = true;
        app_request(r->w, s, r->text, r->len);
        if (s->app != NULL)
            s->app->looked = false;
    }
    free(r);
}

/* key (kind) was not found here: whether the backend looks further for it (never on one
 * machine), the request then waiting for its answer. */
static bool look_further(struct worker *w, struct app_session *s, enum backend_record kind,
                         const char *key)
{
    struct app_state *a = s->app;
    if (a->looked || a->request == NULL)
        return false;
    struct app_retry *r = malloc(sizeof *r + a->request_len);
    if (r == NULL)
        return false;
    r->w = w;
    r->len = a->request_len;
    memcpy(r->text, a->request, a->request_len);
    struct backend_done done = { .fn = retry_answered, .arg = r, .conn_id = s->ws.conn_id };
    if (w->backend->look_further(w, kind, key, &done) != BACKEND_LATER) {
        free(r);
        return false;
    }
    lws_rx_flow_control(s->ws.wsi, 0);
    return true;
}

static void app_deadlines(uv_timer_t *timer);

static int app_open(struct worker *w, struct ws_session *ws)
{
    struct app_session *s = SESSION_OF(ws, struct app_session);
    char uri[128];
    struct app_state *a = calloc(1, sizeof *a);
    if (a == NULL || lws_hdr_copy(s->ws.wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0 ||
        strlen(uri) != 8 + SHM_APPID_LEN) {
        free(a);
        return -1;
    }
    memcpy(a->appid, uri + 8, SHM_APPID_LEN + 1);
    a->s = s;
    a->opened_ms = clock_mono_ms();
    list_push_front(&w->apps, &a->link);
    s->app = a;
    /* The deadline's timer runs only while a connection waits for its auth. */
    if (!uv_is_active((uv_handle_t *)&w->auth_timer) &&
        uv_timer_start(&w->auth_timer, app_deadlines, 1000, 1000) != 0)
        log_warning("cannot arm the AppService auth deadline timer");
    return 0;
}

static void app_close(struct worker *w, struct ws_session *ws)
{
    struct app_session *s = SESSION_OF(ws, struct app_session);
    struct app_state *a = s->app;
    if (a == NULL)
        return;
    /* The app is away (when this was its last connection) from the first change it was not
     * given: a slow consumer's dropped events, a replay cut short, come again on its return. */
    int64_t away_ms = session_missed_since(&s->ws);
    if (a->replaying && (away_ms == 0 || a->replay_since_ms < away_ms))
        away_ms = a->replay_since_ms;
    if (away_ms == 0)
        away_ms = clock_wall_ms();
    if (a->authed)
        w->backend->app_closed(w, a->appid, s->ws.conn_id, away_ms);
    list_remove(&a->link);
    free(a);
    s->app = NULL;
}

/* "since": ms since the epoch when the status began, null when not known (SPEC.md §7). */
static struct json_object *since_value(int64_t since_ms)
{
    return since_ms > 0 ? json_object_new_int64(since_ms) : NULL;
}

/* changed_ms: when the change was recorded (for a replayed one, the start of the replay), so
 * that a connection that does not write it has it replayed from there. */
static void event_send(struct app_session *s, const char *puid, uint8_t status, int64_t since_ms,
                       int64_t changed_ms)
{
    char json[160], since[24] = "null";
    if (since_ms > 0)
        snprintf(since, sizeof since, "%lld", (long long)since_ms);
    int n = snprintf(json, sizeof json, "{\"uid\":\"%s\",\"status\":\"%s\",\"since\":%s}", puid,
                     status_name(status), since);
    worker_of(s->ws.wsi)->info.meter.appservice_events++;
    session_send_event(&s->ws, json, (size_t)n, changed_ms);
}

static void missed_change(void *arg, const char *puid, uint8_t status, int64_t since_ms)
{
    struct app_session *s = arg;
    event_send(s, puid, status, since_ms, s->app->replay_since_ms);
}

static void auth(struct worker *w, struct app_session *s, struct json_object *msg, const char *id)
{
    struct app_state *a = s->app;
    const char *token = NULL;
    struct shm_app app;
    unsigned char hash[SHM_APP_KEY_HASH_LEN];
    if (json_strict_string(msg, "token", &token, NULL) != 1 &&
        json_strict_string(msg, "key", &token, NULL) != 1) {
        app_error(w, s, "auth", id, 11, "missing or invalid field: token", 0, 0);
        return;
    }
    if (w->backend->app_get(w, a->appid, &app) != SHM_OK) {
        if (look_further(w, s, BACKEND_RECORD_APP, a->appid))
            return;
        app_error(w, s, "auth", id, 40, "unknown appid", LWS_CLOSE_STATUS_POLICY_VIOLATION, 0);
        return;
    }
    if (!app.validated || !app.active) {
        app_error(w, s, "auth", id, 41, "app not validated or not active",
                  LWS_CLOSE_STATUS_POLICY_VIOLATION, 0);
        return;
    }
    SHA256((const unsigned char *)token, strlen(token), hash);
    if (!app.has_key || CRYPTO_memcmp(hash, app.key_hash, sizeof hash) != 0) {
        w->info.app_key_failures_total++;
        app_error(w, s, "auth", id, 42, "bad API key", LWS_CLOSE_STATUS_POLICY_VIOLATION, 0);
        return;
    }
    struct backend_app_return back;
    if (w->backend->app_connected(w, a->appid, s->ws.conn_id, &back) != 0) {
        app_error(w, s, "auth", id, 60, "internal error", 0, 0);
        return;
    }
    a->authed = true;
    w->info.meter.appservice_auths++;
    snprintf(a->name, sizeof a->name, "%s", app.name);
    static const char ok[] = "{\"action\":\"auth\",\"result\":\"OK\"}";
    session_send(&s->ws, ok, sizeof ok - 1);
    /* Back from an absence: the latest change of each user since, in pages after the OK. */
    a->replaying = back.replay;
    a->replay_since_ms = back.since_ms;
    a->replay_after[0] = '\0';
}

#define REPLAY_PAGE 64

/* One page of the missed changes; false when there was none left. */
static bool replay_page(struct worker *w, struct app_session *s)
{
    struct app_state *a = s->app;
    bool done;
    int count = w->backend->app_changes_page(w, a->appid, a->replay_since_ms, a->replay_after,
                                             REPLAY_PAGE, missed_change, s, &done);
    if (count < 0 || done)
        a->replaying = false;
    return count > 0;
}

struct snapshot {
    struct worker *w;
    struct json_object *chunk;
};

static void snapshot_add(void *arg, const char *puid, const char *email)
{
    struct snapshot *snap = arg;
    struct shm_presence presence;
    snap->w->backend->presence_get(snap->w, email, &presence);
    struct json_object *entry = json_object_new_object();
    json_object_object_add(entry, "uid", json_object_new_string(puid));
    json_object_object_add(entry, "status", json_object_new_string(status_name(presence.status)));
    json_object_object_add(entry, "since", since_value(presence.since_ms));
    json_object_array_add(snap->chunk, entry);
}

/* One chunk of the running snapshot: the current status of the next SNAPSHOT_CHUNK granted
 * PUIDs, "last" on the final one. */
static void snapshot_chunk(struct worker *w, struct app_session *s)
{
    struct app_state *a = s->app;
    struct snapshot snap = { w, json_object_new_array() };
    bool done;
    if (w->backend->grant_page_app(w, a->appid, a->snapshot_after, SNAPSHOT_CHUNK, snapshot_add,
                                   &snap, &done) < 0) {
        w->info.store_failures_total++;
        done = true;
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "action", json_object_new_string("snapshot"));
    json_object_object_add(o, "presence", snap.chunk);
    json_object_object_add(o, "last", json_object_new_boolean(done));
    size_t len;
    const char *json = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    session_send(&s->ws, json, len);
    json_object_put(o);
    if (done) {
        a->snapshots--;
        a->snapshot_after[0] = '\0';
    }
}

/* The first chunk answers at once, like any reply; the others follow as the connection takes
 * them. A snapshot asked for while one is being sent follows it. */
static void snapshot(struct worker *w, struct app_session *s)
{
    struct app_state *a = s->app;
    if (a->snapshots++ > 0)
        return;
    a->snapshot_after[0] = '\0';
    snapshot_chunk(w, s);
}

/* More of a snapshot or of the missed changes; whether anything was queued. */
static bool app_drain(struct worker *w, struct ws_session *ws)
{
    struct app_session *s = SESSION_OF(ws, struct app_session);
    struct app_state *a = s->app;
    if (!a->authed)
        return false;
    while (a->replaying)
        if (replay_page(w, s))
            return true;
    if (a->snapshots > 0) {
        snapshot_chunk(w, s);
        return true;
    }
    return false;
}

static struct app_bucket *bucket_find(struct worker *w, const char *appid)
{
    struct list_link *pos;
    LIST_EACH(pos, &w->app_buckets) {
        struct app_bucket *b = LIST_ENTRY(pos, struct app_bucket, link);
        if (strcmp(b->appid, appid) == 0)
            return b;
    }
    return NULL;
}

/* Token bucket of notify per app (app_rate per second, app_burst). 0, or seconds to wait. */
static int app_rate_take(struct worker *w, const char *appid)
{
    struct app_bucket *b = bucket_find(w, appid);
    int64_t now = clock_mono_ms();
    if (b == NULL) {
        if ((b = calloc(1, sizeof *b)) == NULL)
            return 1;
        snprintf(b->appid, sizeof b->appid, "%s", appid);
        b->tokens = (double)w->cfg->app_burst;
        b->refill_ms = now;
        list_push_front(&w->app_buckets, &b->link);
    }
    b->tokens += (double)(now - b->refill_ms) * (double)w->cfg->app_rate / 1000.0;
    if (b->tokens > (double)w->cfg->app_burst)
        b->tokens = (double)w->cfg->app_burst;
    b->refill_ms = now;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    int wait = (int)((1.0 - b->tokens) / (double)w->cfg->app_rate) + 1;
    return wait;
}

/* A notify reply waits for the backend to say the notification is queued (on one machine,
 * the commit of the batch holding it); its room in the queue fits the longest, a 61's. */
#define NOTIFY_REPLY_CAP 200

struct notify_reply {
    struct worker *w;
    struct out_msg *held;
    char id_field[REQUEST_ID_MAX + 16]; /* ,"id":"..." or "" */
};

/* The reply's text for result: OK, 61 (not taken now: reconnect later, close 1001) or 60. */
static void notify_reply_text(const struct notify_reply *r, int result, char *text, size_t size)
{
    if (result == 0)
        snprintf(text, size, "{\"action\":\"notify\",\"result\":\"OK\"%s}", r->id_field);
    else if (result == 61)
        snprintf(text, size,
                 "{\"action\":\"notify\",\"result\":\"KO\",\"errno\":61,"
                 "\"error\":\"" APP_UNAVAILABLE_TEXT "\",\"retry_after\":%d%s}",
                 session_retry_after_61(), r->id_field);
    else
        snprintf(text, size,
                 "{\"action\":\"notify\",\"result\":\"KO\",\"errno\":60,"
                 "\"error\":\"internal error: not stored\"%s}",
                 r->id_field);
}

static void notify_answered(void *arg, const struct backend_done *d, int result)
{
    struct notify_reply *r = arg;
    struct app_session *s = app_find(r->w, d->conn_id);
    if (result == 0)
        r->w->info.meter.notifications_queued[METER_FROM_APP]++;
    if (s != NULL) {
        int number = result == 0 || result == 61 ? result : 60;
        char text[NOTIFY_REPLY_CAP];
        notify_reply_text(r, number, text, sizeof text);
        if (number != 0)
            meter_error_reply(&r->w->info.meter, METER_APPSERVICE, number);
        session_release(&s->ws, r->held, text, strlen(text));
        if (number == 61)
            session_error_counted(r->w, &s->ws, LWS_CLOSE_STATUS_GOINGAWAY);
    }
    free(r);
}

/* The reply to a notify, held until the backend answers; NULL (and the error sent) when out
 * of memory. */
static struct notify_reply *notify_reply_hold(struct worker *w, struct app_session *s,
                                              const char *id)
{
    struct notify_reply *r = calloc(1, sizeof *r);
    if (r == NULL || (r->held = session_hold(&s->ws, NOTIFY_REPLY_CAP)) == NULL) {
        free(r);
        app_error(w, s, "notify", id, 60, "internal error", 0, 0);
        return NULL;
    }
    r->w = w;
    if (id != NULL)
        snprintf(r->id_field, sizeof r->id_field, ",\"id\":\"%s\"", id);
    return r;
}

static int notify_fields(struct json_object *msg, int64_t max_ttl_ms, struct notification *n,
                         const char **target, const char **why)
{
    struct json_object *ttl;
    size_t len;
    memset(n, 0, sizeof *n);
    if (json_strict_string(msg, "target", target, &len) != 1 || len == 0) {
        *why = "missing or invalid field: target";
        return 11;
    }
    if (json_strict_string(msg, "source", &n->source, &len) != 1 || len == 0 ||
        len > NOTIFICATION_SOURCE_MAX || strlen(n->source) != len) {
        *why = "missing or invalid field: source";
        return 11;
    }
    if (json_strict_string(msg, "message", &n->message, &len) != 1 || len == 0 ||
        len > NOTIFICATION_MESSAGE_MAX || strlen(n->message) != len) {
        *why = "missing or invalid field: message";
        return 11;
    }
    int has = json_strict_string(msg, "url", &n->action, &len);
    if (has < 0 ||
        (has == 1 && (len == 0 || len > NOTIFICATION_ACTION_MAX || strlen(n->action) != len))) {
        *why = "invalid field: url";
        return 11;
    }
    if (json_object_object_get_ex(msg, "ttl", &ttl)) {
        if (!json_object_is_type(ttl, json_type_int) || json_object_get_int64(ttl) < 1 ||
            json_object_get_int64(ttl) > max_ttl_ms / 1000) {
            *why = "invalid field: ttl (whole seconds up to the configured maximum)";
            return 11;
        }
        n->ttl_ms = json_object_get_int64(ttl) * 1000;
    }
    if ((has = json_strict_string(msg, "urgency", &n->urgency, &len)) < 0 ||
        (has == 1 && (strlen(n->urgency) != len || !notification_urgency_valid(n->urgency)))) {
        *why = "invalid field: urgency (very-low, low, normal or high)";
        return 11;
    }
    return 0;
}

static void notify(struct worker *w, struct app_session *s, struct json_object *msg, const char *id)
{
    struct app_state *a = s->app;
    struct notification n;
    const char *target, *why;
    char appid[SHM_APPID_LEN + 1], email[SHM_EMAIL_MAX + 1];
    int number = notify_fields(msg, w->cfg->notification_ttl_ms, &n, &target, &why);
    if (number != 0) {
        app_error(w, s, "notify", id, number, why, 0, 0);
        return;
    }
    int found = w->backend->grant_by_puid(w, target, appid, email);
    if (found == SHM_NOT_FOUND && look_further(w, s, BACKEND_RECORD_PUID, target))
        return;
    if (found != SHM_OK || strcmp(appid, a->appid) != 0) {
        app_error(w, s, "notify", id, 43, "target PUID unknown, revoked, or not granted", 0, 0);
        return;
    }
    int retry_after = app_rate_take(w, a->appid);
    if (retry_after > 0) {
        app_error(w, s, "notify", id, 50, "slow down", 0, retry_after);
        return;
    }
    n.app = a->name;
    char note_id[NOTIFICATION_ID_LEN + 1], json[SHM_NOTIF_JSON_MAX];
    int len = notification_id_make(note_id) == 0
                  ? notification_render(&n, note_id, clock_wall_ms() / 1000, json, sizeof json)
                  : -1;
    if (len < 0) {
        app_error(w, s, "notify", id, 14, "notification too large", 0, 0);
        return;
    }
    int64_t now = clock_wall_ms(), ttl = n.ttl_ms ? n.ttl_ms : w->cfg->notification_ttl_ms;
    struct notify_reply *r = notify_reply_hold(w, s, id);
    if (r == NULL)
        return;
    struct backend_done done = {
        .fn = notify_answered, .arg = r, .conn_id = s->ws.conn_id, .held = { r->held, NULL }
    };
    int rc = w->backend->notify(w, email, json, (size_t)len, now + ttl, &done);
    if (rc != BACKEND_LATER) {
        session_drop(&s->ws, r->held);
        free(r);
        if (rc == 61)
            app_unavailable(w, s, id);
        else
            app_error(w, s, "notify", id, 60, "internal error", 0, 0);
        return;
    }
    push_notification_queued(w, email, json, (size_t)len, now, now + ttl);
}

/* The action of a request whose strings are not all whole (one carries U+0000), when it names
 * a verb of the channel and is itself whole; or NULL. */
static const char *known_action(struct json_object *msg)
{
    static const char *const verbs[] = { "auth", "snapshot", "notify" };
    const char *text;
    size_t len;
    if (json_strict_string(msg, "action", &text, &len) != 1 || strlen(text) != len)
        return NULL;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(text, verbs[i]) == 0)
            return verbs[i];
    return NULL;
}

/* The request's id, when it has one of the form presence(7) gives (a string of up to 64 of
 * A-Za-z0-9-_.:); an id of another form is ignored, and the request served without it. */
static const char *request_id(struct json_object *msg, char *buf, size_t cap)
{
    struct json_object *id;
    if (!json_object_object_get_ex(msg, "id", &id))
        return NULL;
    if (json_object_is_type(id, json_type_string) &&
        (size_t)json_object_get_string_len(id) <= REQUEST_ID_MAX &&
        strspn(json_object_get_string(id),
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") ==
            (size_t)json_object_get_string_len(id)) {
        snprintf(buf, cap, "%s", json_object_get_string(id));
        return buf;
    }
    return NULL;
}

static void app_message(struct worker *w, struct ws_session *ws, const char *text, size_t len)
{
    w->info.ws_messages_total++;
    app_request(w, SESSION_OF(ws, struct app_session), text, len);
}

static void app_request(struct worker *w, struct app_session *s, const char *text, size_t len)
{
    struct json_object *msg;
    enum json_strict_result parsed = json_strict_parse(text, len, &msg);
    if (parsed == JSON_STRICT_MALFORMED) {
        app_error(w, s, NULL, NULL, 10, "malformed JSON, or not an object", 0, 0);
        return;
    }
    char id_buf[REQUEST_ID_MAX + 1];
    const char *action = NULL, *id = request_id(msg, id_buf, sizeof id_buf);
    s->app->request = text; /* for look_further */
    s->app->request_len = len;
    if (parsed == JSON_STRICT_NUL)
        app_error(w, s, known_action(msg), id, 11, "a string carries U+0000", 0, 0);
    else if (json_strict_string(msg, "action", &action, NULL) != 1)
        app_error(w, s, NULL, id, 11, "missing or invalid field: action", 0, 0);
    else if (strcmp(action, "auth") == 0)
        s->app->authed ? app_error(w, s, "auth", id, 13, "already authenticated", 0, 0)
                       : auth(w, s, msg, id);
    else if (strcmp(action, "snapshot") != 0 && strcmp(action, "notify") != 0)
        app_error(w, s, NULL, id, 13, "unknown action", 0, 0);
    else if (!s->app->authed)
        app_error(w, s, action, id, 30, "authentication required", 0, 0);
    else if (strcmp(action, "snapshot") == 0)
        snapshot(w, s);
    else
        notify(w, s, msg, id);
    json_object_put(msg);
    if (s->app != NULL)
        s->app->request = NULL;
}

/* A presence event for this connection. */
static void app_event(struct app_session *s, const struct conn_mail *mail)
{
    if (s->app == NULL || !s->app->authed)
        return;
    if (s->ws.close_code != 0) {
        /* Closing: not written, so replayed on the app's return. */
        if (s->ws.missed_ms == 0 || mail->changed_ms < s->ws.missed_ms)
            s->ws.missed_ms = mail->changed_ms;
        return;
    }
    event_send(s, mail->puid, mail->status, mail->since_ms, mail->changed_ms);
    session_write_now(&s->ws);
}

static const char *app_closed_text(int number)
{
    return number == 40   ? "unknown appid: the app was deleted"
           : number == 42 ? "bad API key: the app has a new one"
                          : "app not validated or not active";
}

static void app_mail(struct worker *w, struct ws_session *ws, const struct conn_mail *mail)
{
    struct app_session *s = SESSION_OF(ws, struct app_session);
    if (mail->kind == CONN_MAIL_APP_EVENT)
        app_event(s, mail);
    else if (mail->kind == CONN_MAIL_APP_CLOSED && s->app != NULL && s->ws.close_code == 0)
        app_error(w, s, NULL, NULL, mail->number, app_closed_text(mail->number),
                  LWS_CLOSE_STATUS_POLICY_VIOLATION, 0);
}

/* Connections that have not authenticated within 10 s are closed (every second, while any
 * connection is yet to authenticate: an idle worker has no timer). */
static void app_deadlines(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    int64_t now = clock_mono_ms();
    struct list_link *pos;
    bool waiting = false;
    LIST_EACH(pos, &w->apps) {
        struct app_state *a = LIST_ENTRY(pos, struct app_state, link);
        if (a->authed || a->s->ws.close_code != 0)
            continue;
        if (now - a->opened_ms >= AUTH_DEADLINE_MS)
            app_error(w, a->s, "auth", NULL, 30, "authentication required within 10 seconds",
                      LWS_CLOSE_STATUS_POLICY_VIOLATION, 0);
        else
            waiting = true;
    }
    if (!waiting)
        uv_timer_stop(timer);
}

static int app_start(struct worker *w)
{
    if (uv_timer_init(&w->loop, &w->auth_timer) != 0)
        return -1;
    w->auth_timer.data = w;
    return 0;
}

static void app_stop(struct worker *w)
{
    uv_close((uv_handle_t *)&w->auth_timer, NULL);
}

static void app_free(struct worker *w)
{
    struct list_link *pos, *tmp;
    LIST_EACH_SAFE(pos, tmp, &w->app_buckets) {
        list_remove(pos);
        free(LIST_ENTRY(pos, struct app_bucket, link));
    }
}

const struct channel appservice_channel = {
    .name = "AppService",
    .meter = METER_APPSERVICE,
    .session_size = sizeof(struct app_session),
    .on_open = app_open,
    .on_message = app_message,
    .on_close = app_close,
    .on_drain = app_drain,
    .on_mail = app_mail,
    .start = app_start,
    .stop = app_stop,
    .free = app_free,
};
