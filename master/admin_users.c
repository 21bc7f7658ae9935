/* admin_users: the operator's view of one user on the admin endpoint — GET /users/<email> and
 * POST /users/<email>/notifications (SPEC.md §6). */
#include "admin_users.h"

#include "master.h"

#include "../common/clock.h"
#include "../common/id_assertion.h"
#include "../common/log.h"
#include "../common/notification.h"
#include "../common/wake.h"
#include "../shm/conn.h"
#include "../shm/notif.h"
#include "../shm/presence.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define RINGS_MAX 256

static const char *const status_names[] = { "offline", "unavailable", "online" };

static const char *status_name(uint8_t status)
{
    return status < 3 ? status_names[status] : "offline";
}

static void json_reply(struct evhttp_request *req, int code, struct json_object *obj)
{
    struct evbuffer *body = evbuffer_new();
    const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
    if (body == NULL || text == NULL) {
        evbuffer_free(body);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add_printf(body, "%s\n", text);
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "application/json");
    evhttp_add_header(headers, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, code < 300 ? "OK" : "Error", body);
    evbuffer_free(body);
}

static void error_reply(struct evhttp_request *req, int code, const char *text)
{
    struct json_object *obj = json_object_new_object();
    if (obj == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    json_object_object_add(obj, "error", json_object_new_string(text));
    json_reply(req, code, obj);
    json_object_put(obj);
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

static void user_get(struct master *m, struct evhttp_request *req, const char *email)
{
    struct shm_store *store = master_store_visit(m);
    if (store == NULL) {
        error_reply(req, 503, "the store cannot be read");
        return;
    }
    struct shm_presence presence;
    struct json_object *obj = json_object_new_object(), *devices = json_object_new_array();
    int rc = shm_presence_get(store, email, &presence);
    int count = shm_conn_devices(store, email, device_add, devices);
    int pending = shm_notif_pending(store, email, clock_wall_ms(), NULL, NULL);
    shm_store_close(store);
    if (obj == NULL || devices == NULL || (rc != SHM_OK && rc != SHM_NOT_FOUND) || count < 0 ||
        pending < 0) {
        json_object_put(obj);
        json_object_put(devices);
        error_reply(req, 503, "the store cannot be read");
        return;
    }
    json_object_object_add(obj, "email", json_object_new_string(email));
    json_object_object_add(obj, "status", json_object_new_string(status_name(presence.status)));
    json_object_object_add(obj, "since",
                           rc == SHM_OK ? json_object_new_int64(presence.since_ms) : NULL);
    json_object_object_add(obj, "devices", devices);
    json_object_object_add(obj, "pending_notifications", json_object_new_int(pending));
    json_reply(req, 200, obj);
    json_object_put(obj);
}

/* The request body as a NUL-terminated string (evhttp already capped its size). */
static char *body_text(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    *len = evbuffer_get_length(in);
    char *text = malloc(*len + 1);
    if (text == NULL)
        return NULL;
    evbuffer_copyout(in, text, *len);
    text[*len] = '\0';
    return text;
}

/* Queues the notification and mails it to the workers holding the user's devices; rings them
 * once it is committed. Returns 0, or -1 (nothing queued). */
static int notification_queue(struct master *m, const char *email, const char *json, size_t len,
                              int64_t ttl_ms)
{
    struct shm_store *store = master_store_visit(m);
    if (store == NULL)
        return -1;
    int32_t rings[RINGS_MAX];
    size_t ring_count = 0, dropped = 0;
    int64_t now = clock_wall_ms();
    int rc = shm_notif_send(store, email, json, len, now, now + ttl_ms,
                            (size_t)m->cfg.max_pending_notifications, rings, RINGS_MAX, &ring_count,
                            &dropped);
    if (rc == SHM_OK)
        rc = shm_batch_commit(store);
    shm_store_close(store);
    if (rc != SHM_OK)
        return -1;
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
    char *text = body_text(req, &len);
    struct notification n;
    struct json_object *root = NULL;
    const char *why = "out of memory";
    if (text == NULL ||
        notification_parse(text, len, m->cfg.notification_ttl_ms, &n, &root, &why) != 0) {
        free(text);
        error_reply(req, 400, why);
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
        error_reply(req, 400, "notification too large");
        return;
    }
    if (notification_queue(m, email, json, (size_t)json_len, ttl) != 0) {
        error_reply(req, 503, "the store cannot be written");
        return;
    }
    struct json_object *obj = json_object_new_object();
    json_object_object_add(obj, "id", json_object_new_string(id));
    json_reply(req, 201, obj);
    json_object_put(obj);
}

void admin_users_route(struct master *m, struct evhttp_request *req, const char *path)
{
    const char *rest = path + strlen("/users/");
    const char *slash = strchr(rest, '/');
    size_t encoded_len = slash ? (size_t)(slash - rest) : strlen(rest);
    char encoded[3 * ID_EMAIL_MAX + 1];
    if (encoded_len == 0 || encoded_len >= sizeof encoded) {
        error_reply(req, 400, "an e-mail address is expected after /users/");
        return;
    }
    memcpy(encoded, rest, encoded_len);
    encoded[encoded_len] = '\0';
    char *email = evhttp_uridecode(encoded, 0, NULL);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (email == NULL || !id_email_valid(email))
        error_reply(req, 400, "not an e-mail address");
    else if (slash == NULL && method == EVHTTP_REQ_GET)
        user_get(m, req, email);
    else if (slash != NULL && strcmp(slash, "/notifications") == 0 && method == EVHTTP_REQ_POST)
        notification_post(m, req, email);
    else if (slash == NULL || strcmp(slash, "/notifications") == 0)
        error_reply(req, 405, "method not allowed");
    else
        error_reply(req, 404, "not found");
    free(email);
}
