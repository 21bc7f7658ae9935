/* admin_apps: the operator's apps on the admin endpoint — list, provision (validated and active,
 * the API key shown once), enable, disable, rotate the key, delete (/apps, /apps/<appid>). */
#include "admin_apps.h"

#include "admin_reply.h"
#include "master.h"

#include "../common/app_rules.h"
#include "../common/clock.h"
#include "../common/id_assertion.h"
#include "../common/json_strict.h"
#include "../common/log.h"
#include "../common/uuid.h"
#include "../common/wake.h"
#include "../shm/app.h"
#include "../shm/app_channel.h"
#include "../shm/grant.h"
#include "../shm/mail.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What every answer about an app shows; api_key (or NULL) is shown this once. */
static struct json_object *app_json(struct shm_store *store, const struct shm_app *app,
                                    const char *api_key)
{
    struct json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    struct shm_app_conn *conns;
    size_t conn_count = 0;
    if (shm_app_conns(store, app->appid, &conns, &conn_count) == SHM_OK)
        free(conns);
    int grants = shm_grant_list_app(store, app->appid, NULL, NULL);
    json_object_object_add(o, "appid", json_object_new_string(app->appid));
    json_object_object_add(o, "name", json_object_new_string(app->name));
    json_object_object_add(o, "domain", json_object_new_string(app->domain));
    json_object_object_add(o, "description", json_object_new_string(app->description));
    json_object_object_add(o, "owner", json_object_new_string(app->owner));
    json_object_object_add(o, "validated", json_object_new_boolean(app->validated));
    json_object_object_add(o, "active", json_object_new_boolean(app->active));
    json_object_object_add(o, "has_key", json_object_new_boolean(app->has_key));
    json_object_object_add(o, "created", json_object_new_int64(app->created_ms));
    json_object_object_add(o, "grants", json_object_new_int(grants < 0 ? 0 : grants));
    json_object_object_add(o, "connections", json_object_new_int((int)conn_count));
    if (api_key != NULL)
        json_object_object_add(o, "api_key", json_object_new_string(api_key));
    return o;
}

static void app_reply(struct evhttp_request *req, int code, struct shm_store *store,
                      const struct shm_app *app, const char *api_key)
{
    struct json_object *o = app_json(store, app, api_key);
    if (o == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return;
    }
    admin_reply_json(req, code, o);
    json_object_put(o);
}

struct app_list {
    struct shm_store *store;
    struct json_object *apps;
};

static void app_listed(void *arg, const struct shm_app *app)
{
    struct app_list *list = arg;
    struct json_object *o = app_json(list->store, app, NULL);
    if (o != NULL)
        json_object_array_add(list->apps, o);
}

static void apps_get(struct evhttp_request *req, struct shm_store *store)
{
    struct app_list list = { store, json_object_new_array() };
    struct json_object *obj = json_object_new_object();
    if (list.apps == NULL || obj == NULL || shm_app_list(store, app_listed, &list) < 0) {
        json_object_put(list.apps);
        json_object_put(obj);
        admin_reply_error(req, 503, "the store cannot be read");
        return;
    }
    json_object_object_add(obj, "apps", list.apps);
    admin_reply_json(req, 200, obj);
    json_object_put(obj);
}

/* A string member: 1 with *out, 0 when absent; -1 after answering 400 when not a string. */
static int field(struct evhttp_request *req, struct json_object *body, const char *key,
                 const char **out)
{
    int has = json_strict_string(body, key, out, NULL);
    if (has < 0) {
        char why[80];
        snprintf(why, sizeof why, "%s must be a string", key);
        admin_reply_error(req, 400, why);
    }
    return has;
}

/* The app a POST /apps body describes, owned by the operator unless it names an owner. Returns
 * 0, or -1 after answering 400. */
static int app_from_body(struct evhttp_request *req, struct json_object *body, struct shm_app *app)
{
    const char *name = NULL, *domain = NULL, *description = "", *owner = SHM_APP_OWNER_OPERATOR;
    if (field(req, body, "name", &name) < 0 || field(req, body, "domain", &domain) < 0 ||
        field(req, body, "description", &description) < 0 || field(req, body, "owner", &owner) < 0)
        return -1;
    const char *why = NULL;
    if (!app_name_valid(name))
        why = "name: 1 to 64 characters, no control characters";
    else if (!app_domain_valid(domain, false))
        why = "domain: a host name such as chat.example.com";
    else if (!app_description_valid(description))
        why = "description: at most 512 characters";
    else if (strcmp(owner, SHM_APP_OWNER_OPERATOR) != 0 && !id_email_valid(owner))
        why = "owner: the e-mail of a developer, or \"" SHM_APP_OWNER_OPERATOR "\"";
    if (why != NULL) {
        admin_reply_error(req, 400, why);
        return -1;
    }
    memset(app, 0, sizeof *app);
    app->created_ms = clock_wall_ms();
    snprintf(app->name, sizeof app->name, "%s", name);
    snprintf(app->description, sizeof app->description, "%s", description);
    snprintf(app->owner, sizeof app->owner, "%s", owner);
    app_domain_lower(domain, app->domain, sizeof app->domain);
    /* The operator vouches for the domain: no proof is fetched. */
    app->validated = app->active = true;
    return 0;
}

static void apps_post(struct evhttp_request *req, struct shm_store *store)
{
    struct json_object *body = admin_body_object(req);
    struct shm_app app;
    char key[APP_RULES_KEY_LEN + 1];
    if (body == NULL)
        return;
    int rc = app_from_body(req, body, &app);
    json_object_put(body);
    if (rc != 0)
        return;
    if (uuid_make(app.appid) != 0 || app_key_make(app.domain_key) != 0 ||
        app_api_key_issue(key, app.key_hash) != 0) {
        admin_reply_error(req, 500, "no randomness");
        return;
    }
    app.has_key = true;
    if (shm_app_put(store, &app) != SHM_OK || shm_batch_commit(store) != SHM_OK) {
        admin_reply_error(req, 503, "the store cannot be written");
        return;
    }
    log_notice("admin: app %s provisioned for %s", app.appid, app.domain);
    char location[64];
    snprintf(location, sizeof location, "/apps/%s", app.appid);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", location);
    app_reply(req, 201, store, &app, key);
}

/* The open AppService connections of an app being closed: mailed in the batch, their workers
 * rung once it is committed. */
struct closing {
    struct shm_app_conn *conns;
    size_t count;
};

/* Mails a close (errno number, then 1008) to each open connection of appid, in the batch. */
static int connections_close(struct shm_store *store, const char *appid, int number,
                             struct closing *closing)
{
    if (shm_app_conns(store, appid, &closing->conns, &closing->count) != SHM_OK)
        return SHM_ERROR;
    int rc = SHM_OK;
    for (size_t i = 0; rc == SHM_OK && i < closing->count; i++) {
        unsigned char payload[9];
        shm_mail_put_conn_id(payload, closing->conns[i].conn_id);
        payload[8] = (unsigned char)number;
        rc = shm_mail_post(store, closing->conns[i].pid, SHM_MAIL_APP_CLOSE, payload,
                           sizeof payload);
    }
    return rc;
}

static void connections_ring(struct master *m, struct closing *closing)
{
    struct wake_bells bells;
    if (closing->count > 0 && wake_init(&bells, m->cfg.data_dir) == 0)
        for (size_t i = 0; i < closing->count; i++)
            wake_ring(&bells, closing->conns[i].pid);
    free(closing->conns);
    closing->conns = NULL;
}

/* enable, disable, rotate-key: the app changed (and its connections closed) in one commit. */
static void app_action(struct master *m, struct evhttp_request *req, struct shm_store *store,
                       struct shm_app *app, const char *action)
{
    char key[APP_RULES_KEY_LEN + 1];
    bool key_shown = false;
    int close_errno = 0;
    if (strcmp(action, "disable") == 0) {
        app->active = false;
        close_errno = 41;
    } else if (strcmp(action, "enable") == 0 || strcmp(action, "rotate-key") == 0) {
        if (!app->validated) {
            admin_reply_error(req, 409,
                              "the app's domain is not validated: its owner validates "
                              "it on /myapps first");
            return;
        }
        bool rotate = strcmp(action, "rotate-key") == 0;
        if (rotate || !app->has_key) {
            if (app_api_key_issue(key, app->key_hash) != 0) {
                admin_reply_error(req, 500, "no randomness");
                return;
            }
            key_shown = app->has_key = true;
            close_errno = rotate ? 42 : 0;
        }
        if (!rotate)
            app->active = true;
    } else {
        admin_reply_error(req, 404, "not found: the actions are enable, disable and rotate-key");
        return;
    }
    struct closing closing = { 0 };
    int rc = shm_app_put(store, app);
    if (rc == SHM_OK && close_errno != 0)
        rc = connections_close(store, app->appid, close_errno, &closing);
    if (rc == SHM_OK)
        rc = shm_batch_commit(store);
    if (rc != SHM_OK) {
        free(closing.conns);
        admin_reply_error(req, 503, "the store cannot be written");
        return;
    }
    connections_ring(m, &closing);
    log_notice("admin: app %s %s", app->appid,
               strcmp(action, "disable") == 0  ? "disabled"
               : strcmp(action, "enable") == 0 ? "enabled"
                                               : "given a new API key");
    app_reply(req, 200, store, app, key_shown ? key : NULL);
}

static void app_delete(struct master *m, struct evhttp_request *req, struct shm_store *store,
                       const struct shm_app *app)
{
    struct closing closing = { 0 };
    int rc = connections_close(store, app->appid, 40, &closing);
    if (rc == SHM_OK)
        rc = shm_app_delete(store, app->appid);
    if (rc == SHM_OK)
        rc = shm_batch_commit(store);
    if (rc != SHM_OK) {
        free(closing.conns);
        admin_reply_error(req, 503, "the store cannot be written");
        return;
    }
    connections_ring(m, &closing);
    log_notice("admin: app %s deleted", app->appid);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "appid", json_object_new_string(app->appid));
    json_object_object_add(o, "deleted", json_object_new_boolean(true));
    admin_reply_json(req, 200, o);
    json_object_put(o);
}

/* An appid as presenced makes them: a UUID in lower-case hex. */
static bool appid_shaped(const char *text, size_t len)
{
    if (len != SHM_APPID_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (i == 8 || i == 13 || i == 18 || i == 23 ? text[i] != '-'
                                                    : !isxdigit((unsigned char)text[i]))
            return false;
    return true;
}

static void app_route(struct master *m, struct evhttp_request *req, struct shm_store *store,
                      const char *rest)
{
    const char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    char appid[SHM_APPID_LEN + 1];
    struct shm_app app;
    if (!appid_shaped(rest, len)) {
        admin_reply_error(req, 400, "not an appid: a UUID is expected after /apps/");
        return;
    }
    memcpy(appid, rest, len);
    appid[len] = '\0';
    int rc = shm_app_get(store, appid, &app);
    if (rc == SHM_NOT_FOUND)
        admin_reply_error(req, 404, "unknown appid");
    else if (rc != SHM_OK)
        admin_reply_error(req, 503, "the store cannot be read");
    else if (slash == NULL && method == EVHTTP_REQ_GET)
        app_reply(req, 200, store, &app, NULL);
    else if (slash == NULL && method == EVHTTP_REQ_DELETE)
        app_delete(m, req, store, &app);
    else if (slash != NULL && method == EVHTTP_REQ_POST)
        app_action(m, req, store, &app, slash + 1);
    else
        admin_reply_error(req, 405, "method not allowed");
}

void admin_apps_route(struct master *m, struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool collection = strcmp(path, "/apps") == 0 || strcmp(path, "/apps/") == 0;
    if (collection && method != EVHTTP_REQ_GET && method != EVHTTP_REQ_POST) {
        admin_reply_error(req, 405, "method not allowed");
        return;
    }
    struct shm_store *store = master_store_visit(m);
    if (store == NULL) {
        admin_reply_error(req, 503, "the store cannot be read");
        return;
    }
    if (collection && method == EVHTTP_REQ_GET)
        apps_get(req, store);
    else if (collection)
        apps_post(req, store);
    else
        app_route(m, req, store, path + strlen("/apps/"));
    shm_store_close(store);
}
