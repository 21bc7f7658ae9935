/* device_command: the commands a device sends on /presence — a message with "action" (SPEC.md
 * §7): push_subscribe stores the connection's Web Push subscription for its (e-mail, device),
 * push_unsubscribe removes it. Each gets one reply, OK once stored. */
#include "device_session.h"

#include "../../common/clock.h"
#include "../../common/json_strict.h"
#include "../../common/push_subscription.h"
#include "../../shm/outbox.h"
#include "../../shm/push_sub.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {"action":A,"result":"KO","errno":N,"error":T}; counts towards abuse_limit. */
static void command_error(struct worker *w, struct device_session *s, const char *action,
                          int number, const char *text)
{
    struct json_object *o = json_object_new_object();
    if (o == NULL)
        return;
    if (action != NULL)
        json_object_object_add(o, "action", json_object_new_string(action));
    json_object_object_add(o, "result", json_object_new_string("KO"));
    json_object_object_add(o, "errno", json_object_new_int(number));
    json_object_object_add(o, "error", json_object_new_string(text));
    size_t len;
    const char *json = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    session_send(&s->ws, json, len);
    json_object_put(o);
    session_error_counted(w, &s->ws, 0);
}

/* The reply waits for the commit of the batch holding the change: OK only once stored. */
struct command_reply {
    struct worker *w;
    uint64_t conn_id;
    struct out_msg *held;
    char ok[96], failed[160];
};

static void command_committed(void *arg, int result)
{
    struct command_reply *r = arg;
    struct device_session *s = device_find(r->w, r->conn_id);
    if (s != NULL) {
        const char *text = result == SHM_OK ? r->ok : r->failed;
        session_release(&s->ws, r->held, text, strlen(text));
    }
    free(r);
}

static void reply_after_commit(struct worker *w, struct device_session *s, const char *action)
{
    struct command_reply *r = calloc(1, sizeof *r);
    if (r == NULL || (r->held = session_hold(&s->ws, sizeof r->failed)) == NULL ||
        shm_batch_on_commit(w->store, command_committed, r) != SHM_OK) {
        if (r != NULL && r->held != NULL)
            session_drop(&s->ws, r->held);
        free(r);
        command_error(w, s, action, 60, "internal error");
        return;
    }
    r->w = w;
    r->conn_id = s->ws.conn_id;
    snprintf(r->ok, sizeof r->ok, "{\"action\":\"%s\",\"result\":\"OK\"}", action);
    snprintf(r->failed, sizeof r->failed,
             "{\"action\":\"%s\",\"result\":\"KO\",\"errno\":60,"
             "\"error\":\"internal error: not stored\"}",
             action);
}

/* On a node of a cluster the change also went to the outbox (shm/push_sub.h: every node
 * learns the subscription from the engine); the reply does not wait for it, as a page waits for
 * its writes, so the entries are no HTTP answer's to wait for either. */
static void shared_not_waited(struct worker *w)
{
    uint64_t first, last;
    if (shm_outbox_enabled(w->store))
        shm_outbox_take_new(w->store, &first, &last);
}

static void push_subscribe(struct worker *w, struct device_session *s, const struct dev_msg *msg)
{
    /* dev_msg_parse checked the text: strict JSON, one object. */
    struct json_object *root = json_strict_object(msg->text, msg->text_len), *sub_obj = NULL;
    struct push_subscription sub;
    const char *why = "missing field: subscription";
    int rc = root != NULL && json_object_object_get_ex(root, "subscription", &sub_obj)
                 ? push_subscription_parse(sub_obj, &sub, &why)
                 : -1;
    json_object_put(root);
    if (rc != 0) {
        command_error(w, s, msg->action, 11, why);
        return;
    }
    /* A user keeps as many subscriptions as devices may be connected at once; a new device's
     * replaces the oldest. */
    if (shm_push_sub_put(w->store, s->email, s->device, &sub, clock_wall_ms(),
                         (size_t)w->cfg->max_devices_per_user) != SHM_OK) {
        command_error(w, s, msg->action, 60, "internal error");
        return;
    }
    shared_not_waited(w);
    reply_after_commit(w, s, msg->action);
}

static void push_unsubscribe(struct worker *w, struct device_session *s, const struct dev_msg *msg)
{
    int rc = shm_push_sub_delete(w->store, s->email, s->device);
    if (rc != SHM_OK && rc != SHM_NOT_FOUND) {
        command_error(w, s, msg->action, 60, "internal error");
        return;
    }
    shared_not_waited(w);
    reply_after_commit(w, s, msg->action);
}

void device_command_handle(struct worker *w, struct device_session *s, const struct dev_msg *msg)
{
    bool known = msg->action_len <= DEV_MSG_ACTION_MAX;
    bool subscribe = known && strcmp(msg->action, "push_subscribe") == 0;
    bool unsubscribe = known && strcmp(msg->action, "push_unsubscribe") == 0;
    /* Only a known action is named in the reply: the text is the client's. */
    const char *action = subscribe || unsubscribe ? msg->action : NULL;
    if (!subscribe && !unsubscribe) {
        command_error(w, s, NULL, 13, "unknown action");
        return;
    }
    if (s->email == NULL) {
        command_error(w, s, action, 30, "authentication required");
        return;
    }
    if (!s->owner) {
        session_error(w, &s->ws, 52, "superseded by a newer connection", 4001);
        return;
    }
    if (!push_enabled(w)) {
        command_error(w, s, action, 13, "Web Push is not enabled on this server (no vapid_key)");
        return;
    }
    int retry_after = device_rate_take(w, s);
    if (retry_after > 0) {
        session_slow_down(w, &s->ws, retry_after);
        return;
    }
    if (subscribe)
        push_subscribe(w, s, msg);
    else
        push_unsubscribe(w, s, msg);
}
