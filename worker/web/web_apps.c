/* web_apps: app registration for developers — create, prove the domain, activate with an API
 * key shown once, deactivate, rotate, delete — and the polling endpoint (SPEC.md §4). */
#include "web.h"

#include "../backend/backend.h"
#include "../fetch.h"
#include "web_page.h"

#include "../../common/app_rules.h"
#include "../../common/clock.h"
#include "../../common/log.h"
#include "../../common/uuid.h"
#include "../../shm/app.h"
#include "../../shm/grant.h"
#include "../../shm/presence.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOMAIN_PROOF_MAX 4096 /* bytes of https://domain/__presence */

static const char *const status_names[] = { "offline", "unavailable", "online" };

static void app_row(void *arg, const struct shm_app *app)
{
    struct html *page = arg;
    html_raw(page, "<tr><td><a href=\"/myapps/");
    html_text(page, app->appid);
    html_raw(page, "\">");
    html_text(page, app->name);
    html_raw(page, "</a></td><td>");
    html_text(page, app->domain);
    html_rawf(page, "</td><td>%s</td></tr>",
              app->active      ? "active"
              : app->validated ? "validated"
                               : "not validated");
}

static void apps_page(struct worker *w, struct http_req *req, const char *error)
{
    struct html page = { 0 };
    web_page_begin(&page, "My apps", req->session.email, req->session.csrf);
    if (error != NULL) {
        html_raw(&page, "<p class=\"error\">");
        html_text(&page, error);
        html_raw(&page, "</p>");
    }
    html_raw(&page, "<table><tr><th>App</th><th>Domain</th><th>State</th></tr>");
    if (w->backend->app_list_by_owner(w, req->session.email, app_row, &page) < 0)
        page.failed = true;
    html_raw(&page, "</table><h2>Register an app</h2><form method=\"post\" action=\"/myapps\">"
                    "<label>Name <input type=\"text\" name=\"name\" maxlength=\"64\"></label>"
                    "<label>Domain <input type=\"text\" name=\"domain\" "
                    "placeholder=\"chat.example.com\"></label>"
                    "<label>Description <textarea name=\"description\" rows=\"3\">"
                    "</textarea></label>");
    web_page_csrf(&page, req->session.csrf);
    html_raw(&page, "<button type=\"submit\">Register</button></form>");
    web_page_end(&page);
    http_reply_html(req, error ? HTTP_STATUS_BAD_REQUEST : HTTP_STATUS_OK, &page);
}

static void app_create(struct worker *w, struct http_req *req, const struct form *form)
{
    const char *name = form_get(form, "name"), *domain = form_get(form, "domain");
    const char *description = form_get(form, "description");
    struct shm_app app = { .created_ms = clock_wall_ms() };
    if (!app_name_valid(name) || !app_description_valid(description)) {
        apps_page(w, req, "A name (1 to 64 characters) is needed; descriptions stop at 512.");
        return;
    }
    if (!app_domain_valid(domain, true)) {
        apps_page(w, req, "The domain must be a host name such as chat.example.com.");
        return;
    }
    if (uuid_make(app.appid) != 0 || app_key_make(app.domain_key) != 0) {
        apps_page(w, req, "No randomness: try again.");
        return;
    }
    snprintf(app.owner, sizeof app.owner, "%s", req->session.email);
    snprintf(app.name, sizeof app.name, "%s", name);
    snprintf(app.description, sizeof app.description, "%s", description ? description : "");
    app_domain_lower(domain, app.domain, sizeof app.domain);
    if (w->backend->app_put(w, &app, NULL) != SHM_OK) {
        web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "My apps", "Please try again.");
        return;
    }
    char location[64];
    snprintf(location, sizeof location, "/myapps/%s", app.appid);
    http_redirect(req, location);
}

static void action_form(struct html *page, const struct shm_app *app, const char *csrf,
                        const char *action, const char *label)
{
    html_raw(page, "<form class=\"inline\" method=\"post\" action=\"/myapps/");
    html_text(page, app->appid);
    html_rawf(page, "/%s\">", action);
    web_page_csrf(page, csrf);
    html_rawf(page, "<button type=\"submit\" id=\"%s\">%s</button></form>", action, label);
}

/* The app's page; api_key, when not NULL, is shown this once. */
static void app_page(struct http_req *req, const struct shm_app *app, unsigned status,
                     const char *api_key, const char *error)
{
    struct html page = { 0 };
    web_page_begin(&page, app->name, req->session.email, req->session.csrf);
    if (error != NULL) {
        html_raw(&page, "<p class=\"error\">");
        html_text(&page, error);
        html_raw(&page, "</p>");
    }
    html_raw(&page, "<p>App id <code id=\"appid\">");
    html_text(&page, app->appid);
    html_raw(&page, "</code></p><p>Domain <code>");
    html_text(&page, app->domain);
    html_rawf(&page, "</code> — %s, %s.</p>", app->validated ? "validated" : "not validated",
              app->active ? "active" : "inactive");
    html_raw(&page, "<p>To prove the domain is yours, publish exactly this text (no newline) at "
                    "<code>https://");
    html_text(&page, app->domain);
    html_raw(&page, "/__presence</code>: <code id=\"domain-key\">");
    html_text(&page, app->domain_key);
    html_raw(&page, "</code></p>");
    if (api_key != NULL) {
        html_raw(&page, "<p>API key, shown this once: <code id=\"api-key\">");
        html_text(&page, api_key);
        html_raw(&page, "</code></p>");
    }
    const char *csrf = req->session.csrf;
    action_form(&page, app, csrf, "validate", "Validate the domain");
    if (app->validated && !app->active)
        action_form(&page, app, csrf, "activate", "Activate");
    if (app->active) {
        action_form(&page, app, csrf, "rotate-key", "New API key");
        action_form(&page, app, csrf, "deactivate", "Deactivate");
    }
    action_form(&page, app, csrf, "delete", "Delete");
    web_page_end(&page);
    http_reply_html(req, status, &page);
}

/* A new API key: its hash is stored, the key itself only shown. */
static bool key_issue(struct shm_app *app, char key[APP_RULES_KEY_LEN + 1])
{
    if (app_api_key_issue(key, app->key_hash) != 0)
        return false;
    app->has_key = true;
    return true;
}

/* A domain proof being fetched. */
struct validation {
    struct worker *w;
    struct http_req *req;
    struct fetch *fetch;
    char appid[SHM_APPID_LEN + 1];
};

static void validation_cancel(struct http_async *async)
{
    struct validation *v = (struct validation *)async;
    if (v->fetch != NULL)
        fetch_cancel(v->fetch);
    free(v);
}

static void validation_done(void *arg, const struct fetch_result *result)
{
    struct validation *v = arg;
    struct http_req *req = v->req;
    struct shm_app app;
    http_undefer(req);
    if (v->w->backend->app_get(v->w, v->appid, &app) != SHM_OK) {
        web_message(req, HTTP_STATUS_NOT_FOUND, "Validate", "The app is gone.");
    } else if (!result->transport_ok || result->status != 200) {
        char why[600];
        snprintf(why, sizeof why, "https://%.253s/__presence could not be read: %.300s", app.domain,
                 result->transport_ok ? "it did not answer 200" : result->error);
        app_page(req, &app, HTTP_STATUS_BAD_GATEWAY, NULL, why);
    } else if (result->len != strlen(app.domain_key) ||
               CRYPTO_memcmp(result->body, app.domain_key, result->len) != 0) {
        app_page(req, &app, (unsigned)422, NULL,
                 "The text at /__presence is not this app's domain key.");
    } else {
        app.validated = true;
        char location[64];
        snprintf(location, sizeof location, "/myapps/%s", app.appid);
        if (v->w->backend->app_put(v->w, &app, NULL) == SHM_OK)
            http_redirect(req, location);
        else
            web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "Validate", "Please try again.");
    }
    free(v);
}

static void app_validate(struct worker *w, struct http_req *req, const struct shm_app *app)
{
    char url[SHM_APP_DOMAIN_MAX + 32];
    snprintf(url, sizeof url, "https://%s/__presence", app->domain);
    struct fetch_request fr = {
        .url = url,
        .timeout_ms = w->cfg->verify_timeout_ms,
        .max_bytes = DOMAIN_PROOF_MAX,
        .https_only = true,
        .public_only = !w->cfg->validate_private_addresses,
    };
    struct validation *v = calloc(1, sizeof *v);
    if (v == NULL) {
        web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "Validate", "Please try again.");
        return;
    }
    *v = (struct validation){ .w = w, .req = req };
    snprintf(v->appid, sizeof v->appid, "%s", app->appid);
    if ((v->fetch = fetch_start(w->fetcher, &fr, validation_done, v)) == NULL) {
        free(v);
        web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "Validate", "Please try again.");
        return;
    }
    http_defer(req, (struct http_async *)v, validation_cancel);
}

static void app_action(struct worker *w, struct http_req *req, struct shm_app *app,
                       const char *action)
{
    char key[APP_RULES_KEY_LEN + 1], location[64];
    snprintf(location, sizeof location, "/myapps/%s", app->appid);
    if (strcmp(action, "validate") == 0) {
        app_validate(w, req, app);
        return;
    }
    if (strcmp(action, "delete") == 0) {
        w->backend->app_close_all(w, app->appid, 40);
        if (w->backend->app_delete(w, app->appid, NULL) == SHM_OK)
            http_redirect(req, "/myapps");
        else
            web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "Delete", "Please try again.");
        return;
    }
    bool show_key = false;
    if (strcmp(action, "activate") == 0 || strcmp(action, "rotate-key") == 0) {
        if (!app->validated) {
            app_page(req, app, HTTP_STATUS_CONFLICT, NULL, "Validate the domain first.");
            return;
        }
        if (!key_issue(app, key)) {
            web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "API key", "Please try again.");
            return;
        }
        /* Connections authenticated with the previous key do not outlive it. */
        if (app->active)
            w->backend->app_close_all(w, app->appid, 42);
        app->active = true;
        show_key = true;
    } else if (strcmp(action, "deactivate") == 0) {
        w->backend->app_close_all(w, app->appid, 41);
        app->active = false;
    } else {
        http_reply_error(req, HTTP_STATUS_NOT_FOUND, "not found");
        return;
    }
    if (w->backend->app_put(w, app, NULL) != SHM_OK)
        web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "My apps", "Please try again.");
    else if (show_key)
        app_page(req, app, HTTP_STATUS_OK, key, NULL);
    else
        http_redirect(req, location);
}

/* On a node of a cluster: the PUIDs asked for that this node's views do not hold (granted on
 * another node a moment ago) are fetched from the engine first. True when the request waits. */
static bool puids_fetch(struct worker *w, struct http_req *req)
{
    char fragment[128], appid[SHM_APPID_LEN + 1], email[SHM_EMAIL_MAX + 1], key[48];
    bool asked = false;
    for (int i = 0;
         lws_hdr_copy_fragment(req->wsi, fragment, sizeof fragment, WSI_TOKEN_HTTP_URI_ARGS, i) > 0;
         i++)
        if (strncmp(fragment, "uid=", 4) == 0 && strlen(fragment + 4) == SHM_PUID_LEN &&
            w->backend->grant_by_puid(w, fragment + 4, appid, email) == SHM_NOT_FOUND) {
            snprintf(key, sizeof key, "p.%.36s", fragment + 4);
            if (!web_shared_fetch_ask(w, req, SHM_BUCKET_GRANTS, key))
                return false;
            asked = true;
        }
    return asked && web_shared_fetch_wait(w, req);
}

/* GET /myapps/<appid>/status?uid=…: Authorization: Bearer <API key>. */
static void app_status_poll(struct worker *w, struct http_req *req, const struct shm_app *app)
{
    char auth[256];
    unsigned char hash[SHM_APP_KEY_HASH_LEN];
    if (lws_hdr_copy(req->wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION) <= 0 ||
        strncmp(auth, "Bearer ", 7) != 0) {
        http_reply_error(req, HTTP_STATUS_UNAUTHORIZED, "a Bearer API key is required");
        return;
    }
    SHA256((const unsigned char *)auth + 7, strlen(auth + 7), hash);
    if (!app->has_key || CRYPTO_memcmp(hash, app->key_hash, sizeof hash) != 0) {
        w->info.app_key_failures_total++;
        http_reply_error(req, HTTP_STATUS_UNAUTHORIZED, "bad API key");
        return;
    }
    if (!app->validated || !app->active) {
        http_reply_error(req, HTTP_STATUS_FORBIDDEN, "app not validated or not active");
        return;
    }
    char fragment[128];
    if (puids_fetch(w, req))
        return; /* asked again once the engine told this node of the PUIDs it did not know */
    struct html json = { 0 };
    html_raw(&json, "{\"statuses\":[");
    bool first = true;
    for (int i = 0;
         lws_hdr_copy_fragment(req->wsi, fragment, sizeof fragment, WSI_TOKEN_HTTP_URI_ARGS, i) > 0;
         i++) {
        char appid[SHM_APPID_LEN + 1], email[SHM_EMAIL_MAX + 1];
        struct shm_presence presence;
        const char *puid = fragment + 4;
        if (strncmp(fragment, "uid=", 4) != 0 ||
            w->backend->grant_by_puid(w, puid, appid, email) != SHM_OK ||
            strcmp(appid, app->appid) != 0)
            continue; /* only this app's granted PUIDs */
        w->backend->presence_get(w, email, &presence);
        char since[24] = "null";
        if (presence.since_ms > 0)
            snprintf(since, sizeof since, "%lld", (long long)presence.since_ms);
        html_rawf(&json, "%s{\"uid\":\"%s\",\"status\":\"%s\",\"since\":%s}", first ? "" : ",",
                  puid, status_names[presence.status < 3 ? presence.status : 0], since);
        first = false;
    }
    html_raw(&json, "]}");
    if (json.failed) {
        html_free(&json);
        http_reply_error(req, HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    http_reply(req, HTTP_STATUS_OK, "application/json", json.text, json.len);
}

/* The owner's app named by the path, or an answer (404, 403) and false. */
static bool owned_app(struct worker *w, struct http_req *req, const char *appid,
                      struct shm_app *app)
{
    if (w->backend->app_get(w, appid, app) != SHM_OK) {
        if (!web_shared_fetch(w, req, SHM_BUCKET_APPS, appid))
            web_message(req, HTTP_STATUS_NOT_FOUND, "My apps", "No such app.");
        return false;
    }
    if (strcmp(app->owner, req->session.email) != 0) {
        web_message(req, HTTP_STATUS_FORBIDDEN, "My apps", "Only the app's owner may manage it.");
        return false;
    }
    return true;
}

/* DELETE carries its CSRF token in X-CSRF-Token. */
static bool delete_csrf_ok(struct http_req *req)
{
    char token[64];
    int n = lws_hdr_custom_copy(req->wsi, token, sizeof token, "x-csrf-token:", 13);
    return n > 0 && req->has_session && strlen(req->session.csrf) == (size_t)n &&
           CRYPTO_memcmp(token, req->session.csrf, (size_t)n) == 0;
}

void web_apps_route(struct worker *w, struct http_req *req, const char *rest)
{
    char appid[SHM_APPID_LEN + 1] = "", action[32] = "";
    bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
    if (*rest == '/') {
        const char *slash = strchr(rest + 1, '/');
        size_t len = slash ? (size_t)(slash - rest - 1) : strlen(rest + 1);
        if (len != SHM_APPID_LEN || (slash && strlen(slash + 1) >= sizeof action)) {
            http_reply_error(req, HTTP_STATUS_NOT_FOUND, "not found");
            return;
        }
        memcpy(appid, rest + 1, len);
        if (slash != NULL)
            snprintf(action, sizeof action, "%s", slash + 1);
    }
    struct shm_app app;
    /* On a node of a cluster an owner's page or action reads the app as the engine has it
     * (changed on another node a moment ago, the views may not show it yet); polling reads
     * the views. */
    bool polling = appid[0] && strcmp(action, "status") == 0 && get;
    if (appid[0] && !polling && web_shared_fetch(w, req, SHM_BUCKET_APPS, appid))
        return;
    if (polling) {
        if (w->backend->app_get(w, appid, &app) != SHM_OK) {
            if (!web_shared_fetch(w, req, SHM_BUCKET_APPS, appid))
                http_reply_error(req, HTTP_STATUS_NOT_FOUND, "unknown appid");
        } else
            app_status_poll(w, req, &app);
        return;
    }
    if (!web_signed_in(req, "/myapps"))
        return;
    if (!appid[0] && get) {
        apps_page(w, req, NULL);
        return;
    }
    if (appid[0] && !action[0] && get) {
        if (owned_app(w, req, appid, &app))
            app_page(req, &app, HTTP_STATUS_OK, NULL, NULL);
        return;
    }
    if (appid[0] && !action[0] && req->method == HTTP_DELETE) {
        if (!delete_csrf_ok(req))
            web_message(req, HTTP_STATUS_FORBIDDEN, "Delete", "Missing or wrong CSRF token.");
        else if (owned_app(w, req, appid, &app))
            app_action(w, req, &app, "delete");
        return;
    }
    if (req->method != HTTP_POST || (appid[0] && !action[0])) {
        http_reply_error(req, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed");
        return;
    }
    struct form form;
    if (!web_form(req, &form))
        return;
    if (!web_csrf_ok(req, &form))
        web_message(req, HTTP_STATUS_FORBIDDEN, "My apps", "Missing or wrong CSRF token.");
    else if (!appid[0])
        app_create(w, req, &form);
    else if (owned_app(w, req, appid, &app))
        app_action(w, req, &app, action);
    form_free(&form);
}
