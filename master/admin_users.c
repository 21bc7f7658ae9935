/* admin_users: the operator's view of one user on the admin endpoint — GET /users/<email>,
 * POST /users/<email>/notifications and POST /users/<email>/kick (SPEC.md §6). */
#include "admin_users.h"

#include "admin_reply.h"
#include "master.h"

#include "../common/clock.h"
#include "../common/grow.h"
#include "../common/id_assertion.h"
#include "../common/log.h"
#include "../common/notification.h"
#include "../common/wake.h"
#include "../shm/app.h"
#include "../shm/conn.h"
#include "../shm/grant.h"
#include "../shm/mail.h"
#include "../shm/notif.h"
#include "../shm/outbox.h"
#include "../shm/presence.h"
#include "../shm/push_job.h"
#include "../shm/push_sub.h"
#include "../shm/replica.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define RINGS_MAX 256

static const char *const status_names[] = { "offline", "unavailable", "online" };

static const char *status_name(uint8_t status)
{
    return status < 3 ? status_names[status] : "offline";
}

static void device_add(void *arg, const char *device, const struct shm_conn_owner *owner)
{
    struct json_object *d = json_object_new_object();
    if (d == NULL)
        return;
    json_object_object_add(d, "device", json_object_new_string(device));
    json_object_object_add(d, "status", json_object_new_string(status_name(owner->status)));
    json_object_object_add(d, "since", json_object_new_int64(owner->since_ms));
    json_object_object_add(d, "worker", json_object_new_int(owner->worker_pid));
    json_object_array_add(arg, d);
}

/* The apps a user granted, as the operator sees them: appid and name, never the PUID beside the
 * e-mail. */
struct grant_view {
    struct shm_store *store;
    struct json_object *grants;
};

static void grant_add(void *arg, const char *appid, const char *puid)
{
    struct grant_view *view = arg;
    struct json_object *g = json_object_new_object();
    struct shm_app app;
    (void)puid;
    if (g == NULL)
        return;
    json_object_object_add(g, "appid", json_object_new_string(appid));
    json_object_object_add(
        g, "name",
        shm_app_get(view->store, appid, &app) == SHM_OK ? json_object_new_string(app.name) : NULL);
    json_object_array_add(view->grants, g);
}

/* What the store holds of a user besides devices: presence, pending notifications, grants (into
 * grants when not NULL), apps owned. A user it holds nothing of is unknown. */
struct user_facts {
    struct shm_presence presence;
    bool has_presence;
    int pending, grants, apps_owned, push_subscriptions;
};

static void push_device_add(void *arg, const char *device, const struct push_subscription *sub)
{
    (void)sub; /* the endpoint and keys are the device's, not the operator's */
    if (arg != NULL)
        json_object_array_add(arg, json_object_new_string(device));
}

static int user_facts_get(struct shm_store *store, const char *email, struct json_object *grants,
                          struct json_object *subscribed, struct user_facts *f)
{
    struct grant_view view = { store, grants };
    f->push_subscriptions = shm_push_subs(store, email, push_device_add, subscribed);
    int rc = shm_presence_get(store, email, &f->presence);
    f->has_presence = rc == SHM_OK;
    f->pending = shm_notif_pending(store, email, clock_wall_ms(), NULL, NULL);
    f->grants = shm_grant_list_user(store, email, grants ? grant_add : NULL, &view);
    f->apps_owned = shm_app_list_by_owner(store, email, NULL, NULL);
    if ((rc != SHM_OK && rc != SHM_NOT_FOUND) || f->pending < 0 || f->grants < 0 ||
        f->apps_owned < 0 || f->push_subscriptions < 0)
        return -1;
    return 0;
}

static bool user_known(const struct user_facts *f, int devices)
{
    return devices > 0 || f->has_presence || f->pending > 0 || f->grants > 0 ||
           f->apps_owned > 0 || f->push_subscriptions > 0;
}

static void user_get(struct master *m, struct evhttp_request *req, const char *email)
{
    struct shm_store *store = master_store_visit(m);
    if (store == NULL) {
        admin_reply_error(req, 503, "the store cannot be read");
        return;
    }
    struct user_facts f;
    struct json_object *obj = json_object_new_object(), *devices = json_object_new_array();
    struct json_object *grants = json_object_new_array(), *subscribed = json_object_new_array();
    /* A node of a cluster shows every node's devices, as the engine's record of the user has
     * them; a single node its own connections. */
    int count = m->cfg.cluster != NULL ? admin_cluster_devices(store, email, devices)
                                       : shm_conn_devices(store, email, device_add, devices);
    int rc = obj && devices && grants && subscribed && count >= 0
                 ? user_facts_get(store, email, grants, subscribed, &f)
                 : -1;
    shm_store_close(store);
    if (rc != 0) {
        json_object_put(obj);
        json_object_put(devices);
        json_object_put(grants);
        json_object_put(subscribed);
        admin_reply_error(req, 503, "the store cannot be read");
        return;
    }
    /* Every address has a presence (offline when nothing is known): 200 either way. */
    json_object_object_add(obj, "email", json_object_new_string(email));
    json_object_object_add(obj, "known", json_object_new_boolean(user_known(&f, count)));
    /* The operator sees the devices as they are; apps see the published presence (held for
     * offline_grace after a departure, "last seen" once offline). */
    struct json_object *published = json_object_new_object();
    json_object_object_add(published, "status",
                           json_object_new_string(status_name(f.presence.status)));
    json_object_object_add(published, "since", f.presence.since_ms > 0
                                                   ? json_object_new_int64(f.presence.since_ms)
                                                   : NULL);
    json_object_object_add(obj, "status", json_object_new_string(status_name(f.presence.live)));
    json_object_object_add(obj, "since", f.presence.live_since_ms > 0
                                             ? json_object_new_int64(f.presence.live_since_ms)
                                             : NULL);
    json_object_object_add(obj, "published", published);
    json_object_object_add(obj, "devices", devices);
    json_object_object_add(obj, "push_subscriptions", subscribed);
    /* A cluster's queues are the engine's, which the master does not read. */
    json_object_object_add(obj, "pending_notifications",
                           m->cfg.cluster != NULL ? NULL : json_object_new_int(f.pending));
    json_object_object_add(obj, "grants", grants);
    json_object_object_add(obj, "apps_owned", json_object_new_int(f.apps_owned));
    admin_reply_json(req, 200, obj);
    json_object_put(obj);
}

/* The connections of a user's devices, gathered before any mail is written. */
struct device_owners {
    struct shm_conn_owner *items;
    size_t count, cap;
    bool failed;
};

static void owner_add(void *arg, const char *device, const struct shm_conn_owner *owner)
{
    struct device_owners *list = arg;
    (void)device;
    if (grow_for((void **)&list->items, &list->cap, list->count, sizeof *list->items, 4) != 0) {
        list->failed = true;
        return;
    }
    list->items[list->count++] = *owner;
}

/* Mails a kick to the worker of each device; returns how many were told, or -1. */
static int devices_kick(struct master *m, struct shm_store *store, const struct device_owners *list)
{
    int rc = SHM_OK;
    for (size_t i = 0; rc == SHM_OK && i < list->count; i++) {
        unsigned char payload[8];
        shm_mail_put_conn_id(payload, list->items[i].conn_id);
        rc = shm_mail_post(store, list->items[i].worker_pid, SHM_MAIL_KICK_CONN, payload,
                           sizeof payload);
    }
    if (rc == SHM_OK && list->count > 0)
        rc = shm_batch_commit(store);
    if (rc != SHM_OK)
        return -1;
    struct wake_bells bells;
    if (list->count > 0 && wake_init(&bells, m->cfg.data_dir) == 0)
        for (size_t i = 0; i < list->count; i++)
            wake_ring(&bells, list->items[i].worker_pid); /* a second ring of one bell is free */
    return (int)list->count;
}

/* On a node of a cluster the user's devices are on any node: the node's agent closes them
 * (the outbox's kick), from the replica of the user's record; answers how many it holds live.
 * Returns that count, or -1. */
static int cluster_kick(struct master *m, struct shm_store *store, const char *email)
{
    struct json_object *devices = json_object_new_array();
    int live = devices != NULL ? admin_cluster_devices(store, email, devices) : -1;
    json_object_put(devices);
    if (live <= 0)
        return live;
    struct shm_cl_self self;
    if (shm_outbox_add(store, SHM_OUTBOX_KICK, "pd_u", "kick", email, strlen(email), NULL) !=
            SHM_OK ||
        shm_batch_commit(store) != SHM_OK)
        return -1;
    struct wake_bells bells;
    if (shm_cl_self_get(store, &self) == SHM_OK && self.agent_pid > 0 &&
        wake_init(&bells, m->cfg.data_dir) == 0)
        wake_ring(&bells, self.agent_pid);
    return live;
}

/* POST /users/<email>/kick: every connected device of the user gets errno 61 and close 1001,
 * from the worker that holds it. */
static void user_kick(struct master *m, struct evhttp_request *req, const char *email)
{
    struct shm_store *store = master_store_visit(m);
    if (store == NULL) {
        admin_reply_error(req, 503, "the store cannot be read");
        return;
    }
    if (m->cfg.cluster != NULL) {
        int kicked = cluster_kick(m, store, email);
        struct user_facts cf;
        bool known = kicked > 0 || (kicked == 0 && user_facts_get(store, email, NULL, NULL,
                                                                    &cf) == 0 &&
                                    user_known(&cf, 0));
        shm_store_close(store);
        if (kicked < 0) {
            admin_reply_error(req, 503, "the store cannot be used");
            return;
        }
        if (!known) {
            admin_reply_error(req, 404, "unknown user: the store holds nothing of this e-mail");
            return;
        }
        struct json_object *obj = json_object_new_object();
        json_object_object_add(obj, "email", json_object_new_string(email));
        json_object_object_add(obj, "devices", json_object_new_int(kicked));
        admin_reply_json(req, 200, obj);
        json_object_put(obj);
        return;
    }
    struct device_owners list = { 0 };
    struct user_facts f;
    int count = shm_conn_devices(store, email, owner_add, &list);
    int rc = count < 0 || list.failed ? -1 : user_facts_get(store, email, NULL, NULL, &f);
    bool known = rc == 0 && user_known(&f, count);
    int kicked = known ? devices_kick(m, store, &list) : 0;
    shm_store_close(store);
    free(list.items);
    if (rc != 0 || kicked < 0) {
        admin_reply_error(req, 503, "the store cannot be used");
        return;
    }
    if (!known) {
        admin_reply_error(req, 404, "unknown user: the store holds nothing of this e-mail");
        return;
    }
    if (kicked > 0)
        log_notice("admin: closing %d device connection(s) of a user", kicked);
    struct json_object *obj = json_object_new_object();
    json_object_object_add(obj, "email", json_object_new_string(email));
    json_object_object_add(obj, "devices", json_object_new_int(kicked));
    admin_reply_json(req, 200, obj);
    json_object_put(obj);
}

/* On a node of a cluster the user's queue is the engine's (PD_Q), which the master does not
 * reach: the notification goes into the node's outbox, in the store, and the agent queues it
 * there (as a worker's notify does: delivered live to the user's devices on every node), made
 * again until the engine takes it. The Web Push wake-ups are this node's to send, as a
 * worker's notify's are its node's: every subscription of the user is in the node's store
 * (pd_push), and the sending worker skips a device connected on any node. Rings the agent (and
 * the worker told of the pushes) once committed. 0, or -1. */
static int notification_outbox(struct master *m, struct shm_store *store, const char *email,
                               const char *json, size_t len, int64_t expires_ms)
{
    unsigned char value[SHM_OUTBOX_VALUE_MAX];
    long n = shm_outbox_notify_encode(email, expires_ms, json, len, value, sizeof value);
    struct shm_cl_self self;
    size_t pushes = 0;
    int32_t pusher = 0;
    if (n < 0 ||
        shm_outbox_add(store, SHM_OUTBOX_NOTIFY, "PD_Q", "operator", value, (size_t)n, NULL) !=
            SHM_OK)
        return -1;
    if (m->cfg.vapid_key != NULL &&
        shm_push_queue(store, email, json, len, clock_wall_ms(), expires_ms, &pushes) != SHM_OK)
        return -1;
    if (pushes > 0)
        pusher = master_push_wake(m, store);
    if (shm_batch_commit(store) != SHM_OK)
        return -1;
    struct wake_bells bells;
    if (wake_init(&bells, m->cfg.data_dir) == 0) {
        if (shm_cl_self_get(store, &self) == SHM_OK && self.agent_pid > 0)
            wake_ring(&bells, self.agent_pid);
        if (pusher != 0)
            wake_ring(&bells, pusher);
    }
    m->meter.notifications_queued[METER_FROM_OPERATOR]++;
    return 0;
}

/* Queues the notification and mails it to the workers holding the user's devices; rings them
 * once it is committed. Returns 0, or -1 (nothing queued). */
static int notification_queue(struct master *m, const char *email, const char *json, size_t len,
                              int64_t ttl_ms)
{
    struct shm_store *store = master_store_visit(m);
    if (store == NULL)
        return -1;
    if (m->cfg.cluster != NULL) {
        int rc = notification_outbox(m, store, email, json, len, clock_wall_ms() + ttl_ms);
        shm_store_close(store);
        return rc;
    }
    int32_t rings[RINGS_MAX];
    size_t ring_count = 0, dropped = 0;
    int64_t now = clock_wall_ms();
    int rc = shm_notif_send(store, email, json, len, now, now + ttl_ms,
                            (size_t)m->cfg.max_pending_notifications, rings, RINGS_MAX, &ring_count,
                            &dropped);
    /* Devices not connected get it through their push service: a worker sends it. */
    size_t pushes = 0;
    if (rc == SHM_OK && m->cfg.vapid_key != NULL)
        rc = shm_push_queue(store, email, json, len, now, now + ttl_ms, &pushes);
    if (rc == SHM_OK && pushes > 0) {
        int32_t pid = master_push_wake(m, store);
        if (pid != 0 && ring_count < RINGS_MAX)
            rings[ring_count++] = pid;
    }
    if (rc == SHM_OK)
        rc = shm_batch_commit(store);
    shm_store_close(store);
    if (rc != SHM_OK)
        return -1;
    m->meter.notifications_queued[METER_FROM_OPERATOR]++;
    if (dropped > 0)
        log_info("notification queue full: %zu oldest dropped", dropped);
    struct wake_bells bells;
    if (wake_init(&bells, m->cfg.data_dir) == 0)
        for (size_t i = 0; i < ring_count; i++)
            wake_ring(&bells, rings[i]);
    return 0;
}

static void notification_post(struct master *m, struct evhttp_request *req, const char *email)
{
    size_t len;
    char *text = admin_body(req, &len);
    struct notification n;
    struct json_object *root = NULL;
    const char *why = "out of memory";
    if (text == NULL ||
        notification_parse(text, len, m->cfg.notification_ttl_ms, &n, &root, &why) != 0) {
        free(text);
        admin_reply_error(req, 400, why);
        return;
    }
    char id[NOTIFICATION_ID_LEN + 1], json[SHM_NOTIF_JSON_MAX];
    int json_len = notification_id_make(id) == 0
                       ? notification_render(&n, id, clock_wall_ms() / 1000, json, sizeof json)
                       : -1;
    int64_t ttl = n.ttl_ms ? n.ttl_ms : m->cfg.notification_ttl_ms;
    json_object_put(root);
    free(text);
    if (json_len < 0) {
        admin_reply_error(req, 400, "notification too large");
        return;
    }
    if (notification_queue(m, email, json, (size_t)json_len, ttl) != 0) {
        admin_reply_error(req, 503, "the store cannot be written");
        return;
    }
    struct json_object *obj = json_object_new_object();
    json_object_object_add(obj, "id", json_object_new_string(id));
    admin_reply_json(req, 201, obj);
    json_object_put(obj);
}

void admin_users_route(struct master *m, struct evhttp_request *req, const char *path)
{
    const char *rest = path + strlen("/users/");
    const char *slash = strchr(rest, '/');
    size_t encoded_len = slash ? (size_t)(slash - rest) : strlen(rest);
    char encoded[3 * ID_EMAIL_MAX + 1];
    if (encoded_len == 0 || encoded_len >= sizeof encoded) {
        admin_reply_error(req, 400, "an e-mail address is expected after /users/");
        return;
    }
    memcpy(encoded, rest, encoded_len);
    encoded[encoded_len] = '\0';
    char *email = evhttp_uridecode(encoded, 0, NULL);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (email == NULL || !id_email_valid(email))
        admin_reply_error(req, 400, "not an e-mail address");
    else if (slash == NULL && method == EVHTTP_REQ_GET)
        user_get(m, req, email);
    else if (slash != NULL && strcmp(slash, "/notifications") == 0 && method == EVHTTP_REQ_POST)
        notification_post(m, req, email);
    else if (slash != NULL && strcmp(slash, "/kick") == 0 && method == EVHTTP_REQ_POST)
        user_kick(m, req, email);
    else if (slash == NULL || strcmp(slash, "/notifications") == 0 || strcmp(slash, "/kick") == 0)
        admin_reply_error(req, 405, "method not allowed");
    else
        admin_reply_error(req, 404, "not found");
    free(email);
}
