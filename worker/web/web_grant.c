/* web_grant: a user's consent — the grant page an app sends them to, the redirect back with
 * their PUID, their account page with revocation, and /getApps (SPEC.md §4). */
#include "web.h"

#include "../backend/backend.h"
#include "web_page.h"

#include "../../common/clock.h"
#include "../../common/origin.h"
#include "../../common/uuid.h"
#include "../../shm/app.h"
#include "../../shm/grant.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REDIRECT_MAX 1500
#define USERSTRING_MAX 256

/* Whether the app's domain names this machine's loopback interface: "localhost" or 127.x.y.z.
 * Only an operator provisions such an app: a developer's domain proof is not fetched from a
 * loopback address (unless validate_private_addresses, for tests). */
static bool loopback_domain(const char *domain)
{
    unsigned a, b, c, d;
    char end;
    return strcmp(domain, "localhost") == 0 ||
           (sscanf(domain, "%3u.%3u.%3u.%3u%c", &a, &b, &c, &d, &end) == 4 && a == 127 && b < 256 &&
            c < 256 && d < 256);
}

/* The canonical origin of the authority of url after its scheme (up to the path, query or
 * fragment, or a backslash, which browsers read as a slash) into out. Returns 0 or -1. */
static int authority_origin(const char *scheme, const char *rest, char *out, size_t cap)
{
    char given[ORIGIN_MAX];
    size_t authority_len = strcspn(rest, "/?#\\");
    int len = snprintf(given, sizeof given, "%s%.*s", scheme, (int)authority_len, rest);
    return len > 0 && (size_t)len < sizeof given ? origin_normalize(given, out, cap) : -1;
}

/* Whether url is an https URL whose origin is exactly the app's (validated) domain: its
 * authority compares as an origin, so an explicit :443 is the same; another port, a user part
 * or a host that only ends with the domain is not. An app on a loopback domain may also be sent
 * back over http and to any port of that host, as OAuth allows loopback redirects (RFC 8252
 * §7.3): nothing but this machine listens there, and a web app on a developer's machine (the
 * chat demo) has no certificate. */
static bool redirect_allowed(const struct shm_app *app, const char *url)
{
    if (url == NULL || strlen(url) > REDIRECT_MAX || strpbrk(url, "\r\n\t ") != NULL)
        return false;
    bool https = strncasecmp(url, "https://", 8) == 0;
    bool loopback = loopback_domain(app->domain);
    if (!https && !(loopback && strncasecmp(url, "http://", 7) == 0))
        return false;
    char given[ORIGIN_MAX], wanted[ORIGIN_MAX], wanted_url[ORIGIN_MAX];
    int wanted_len = snprintf(wanted_url, sizeof wanted_url, "%s%s", https ? "https://" : "http://",
                              app->domain);
    if (authority_origin(https ? "https://" : "http://", url + (https ? 8 : 7), given,
                         sizeof given) != 0 ||
        wanted_len <= 0 || (size_t)wanted_len >= sizeof wanted_url ||
        origin_normalize(wanted_url, wanted, sizeof wanted) != 0)
        return false;
    if (strcmp(given, wanted) == 0)
        return true;
    /* On loopback, wanted plus any port: "http://localhost" and "http://localhost:8290". */
    size_t n = strlen(wanted);
    return loopback && strncmp(given, wanted, n) == 0 && given[n] == ':';
}

/* url with Presence-UID=<puid> added to its query, before any fragment. */
static void redirect_with_puid(const char *url, const char *puid, char *out, size_t cap)
{
    const char *hash = strchr(url, '#');
    size_t base = hash ? (size_t)(hash - url) : strlen(url);
    const char *query = memchr(url, '?', base);
    char sep = query == NULL                                                  ? '?'
               : (base > 0 && (url[base - 1] == '?' || url[base - 1] == '&')) ? '\0'
                                                                              : '&';
    if (sep)
        snprintf(out, cap, "%.*s%cPresence-UID=%s%s", (int)base, url, sep, puid, hash ? hash : "");
    else
        snprintf(out, cap, "%.*sPresence-UID=%s%s", (int)base, url, puid, hash ? hash : "");
}

/* The app a user may grant: known, validated, active. Answers 400 otherwise. */
static bool grantable(struct worker *w, struct http_req *req, const char *appid,
                      struct shm_app *app)
{
    if (w->backend->app_get(w, appid, app) != SHM_OK) {
        if (!web_shared_fetch(w, req, SHM_BUCKET_APPS, appid)) /* made on another node? */
            web_message(req, HTTP_STATUS_BAD_REQUEST, "Grant", "Unknown app.");
        return false;
    }
    if (!app->validated || !app->active) {
        web_message(req, HTTP_STATUS_BAD_REQUEST, "Grant",
                    "This app is not validated or not active.");
        return false;
    }
    return true;
}

static void consent_page(struct http_req *req, const struct shm_app *app, const char *redirect,
                         const char *userstring)
{
    struct html page = { 0 };
    web_page_begin(&page, "Allow an app", req->session.email, req->session.csrf);
    html_raw(&page, "<p id=\"question\">Allow <strong>");
    html_text(&page, app->name);
    html_raw(&page, "</strong> (");
    html_text(&page, app->domain);
    html_raw(&page, ")");
    if (userstring[0] != '\0') {
        html_raw(&page, ", where you are <strong>");
        html_text(&page, userstring);
        html_raw(&page, "</strong>,");
    }
    html_raw(&page, " to see when you are present?</p><p>");
    html_text(&page, app->description);
    html_raw(&page, "</p><p>It will know you by a random id, never by your e-mail, and may "
                    "send short notifications to your devices.</p>"
                    "<form method=\"post\" action=\"/grant/");
    html_text(&page, app->appid);
    html_raw(&page, "\">");
    web_page_csrf(&page, req->session.csrf);
    html_raw(&page, "<input type=\"hidden\" name=\"redirect\" value=\"");
    html_text(&page, redirect);
    html_raw(&page, "\"><input type=\"hidden\" name=\"id\" value=\"");
    html_text(&page, userstring);
    html_raw(&page, "\"><button class=\"allow\" type=\"submit\" name=\"decision\" "
                    "value=\"allow\" id=\"allow\">Allow</button>"
                    "<button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">"
                    "Deny</button></form>");
    web_page_end(&page);
    http_reply_html(req, HTTP_STATUS_OK, &page);
}

static void grant_get(struct worker *w, struct http_req *req, const char *appid)
{
    char redirect[REDIRECT_MAX + 1] = "", userstring[USERSTRING_MAX + 1] = "";
    char next[8192], escaped[3 * REDIRECT_MAX], escaped_id[3 * USERSTRING_MAX + 1];
    http_query(req, "redirect", redirect, sizeof redirect);
    http_query(req, "id", userstring, sizeof userstring);
    if (form_escape(redirect, escaped, sizeof escaped) < 0 ||
        form_escape(userstring, escaped_id, sizeof escaped_id) < 0)
        escaped[0] = escaped_id[0] = '\0';
    snprintf(next, sizeof next, "/grant/%s?redirect=%s&id=%s", appid, escaped, escaped_id);
    if (!web_signed_in(req, next))
        return;
    struct shm_app app;
    if (!grantable(w, req, appid, &app))
        return;
    if (!redirect_allowed(&app, redirect)) {
        web_message(req, HTTP_STATUS_BAD_REQUEST, "Grant",
                    "The redirect must be an https address on the app's domain.");
        return;
    }
    consent_page(req, &app, redirect, userstring);
}

/* The user's PUID for the app: the same on a re-grant, a new random one otherwise. */
static int puid_for(struct worker *w, const char *email, const char *appid, char *puid)
{
    int rc = w->backend->grant_get(w, email, appid, puid);
    if (rc != SHM_NOT_FOUND)
        return rc;
    if (uuid_make(puid) != 0)
        return SHM_ERROR;
    return w->backend->grant_put(w, email, appid, puid, NULL);
}

static void grant_post(struct worker *w, struct http_req *req, const char *appid)
{
    struct form form;
    if (!web_signed_in(req, "/account") || !web_form(req, &form))
        return;
    const char *redirect = form_get(&form, "redirect"), *decision = form_get(&form, "decision");
    struct shm_app app;
    char puid[SHM_PUID_LEN + 1], location[REDIRECT_MAX + 64];
    if (!web_csrf_ok(req, &form))
        web_message(req, HTTP_STATUS_FORBIDDEN, "Grant", "Missing or wrong CSRF token.");
    else if (!grantable(w, req, appid, &app))
        ;
    else if (!redirect_allowed(&app, redirect))
        web_message(req, HTTP_STATUS_BAD_REQUEST, "Grant",
                    "The redirect must be an https address on the app's domain.");
    else if (decision == NULL || strcmp(decision, "allow") != 0)
        http_redirect(req, redirect);
    else if (puid_for(w, req->session.email, appid, puid) != SHM_OK)
        web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "Grant", "Please try again.");
    else {
        redirect_with_puid(redirect, puid, location, sizeof location);
        http_redirect(req, location);
    }
    form_free(&form);
}

void web_grant_route(struct worker *w, struct http_req *req, const char *appid)
{
    if (req->method == HTTP_POST)
        grant_post(w, req, appid);
    else
        grant_get(w, req, appid);
}

void web_revoke(struct worker *w, struct http_req *req, const char *appid)
{
    struct form form;
    if (!web_signed_in(req, "/account") || !web_form(req, &form))
        return;
    bool allowed = web_csrf_ok(req, &form);
    form_free(&form);
    if (!allowed) {
        web_message(req, HTTP_STATUS_FORBIDDEN, "Revoke", "Missing or wrong CSRF token.");
        return;
    }
    char puid[SHM_PUID_LEN + 1];
    /* The app hears "offline" once, then nothing more about this user. */
    if (w->backend->grant_get(w, req->session.email, appid, puid) == SHM_OK)
        w->backend->app_event(w, req->session.email, SHM_STATUS_OFFLINE, clock_wall_ms(), appid);
    int rc = w->backend->grant_revoke(w, req->session.email, appid, puid, NULL);
    if (rc == SHM_OK || rc == SHM_NOT_FOUND)
        http_redirect(req, "/account");
    else
        web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "Revoke", "Please try again.");
}

struct grants_out {
    struct worker *w;
    struct html *page;
    struct json_object *apps;
    const char *csrf;
};

static void grant_row(void *arg, const char *appid, const char *puid)
{
    struct grants_out *out = arg;
    struct shm_app app;
    const char *name = out->w->backend->app_get(out->w, appid, &app) == SHM_OK ? app.name : appid;
    if (out->apps != NULL) {
        struct json_object *entry = json_object_new_object();
        json_object_object_add(entry, "name", json_object_new_string(name));
        json_object_object_add(entry, "appid", json_object_new_string(appid));
        json_object_object_add(entry, "uid", json_object_new_string(puid));
        json_object_array_add(out->apps, entry);
        return;
    }
    html_raw(out->page, "<tr><td>");
    html_text(out->page, name);
    html_raw(out->page, "</td><td><form class=\"inline\" method=\"post\" action=\"/revoke/");
    html_text(out->page, appid);
    html_raw(out->page, "\">");
    web_page_csrf(out->page, out->csrf);
    html_raw(out->page, "<button type=\"submit\" class=\"revoke\">Revoke</button></form></td>"
                        "</tr>");
}

void web_account(struct worker *w, struct http_req *req)
{
    if (!web_signed_in(req, "/account"))
        return;
    struct html page = { 0 };
    web_page_begin(&page, "Your account", req->session.email, req->session.csrf);
    html_raw(&page, "<h2>Apps that may see when you are present</h2><table id=\"grants\">");
    struct grants_out out = { w, &page, NULL, req->session.csrf };
    int count = w->backend->grant_list_user(w, req->session.email, grant_row, &out);
    html_raw(&page, "</table>");
    if (count == 0)
        html_raw(&page, "<p>None.</p>");
    web_page_end(&page);
    http_reply_html(req, count < 0 ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_OK, &page);
}

void web_get_apps(struct worker *w, struct http_req *req)
{
    if (!req->has_session) {
        http_reply_error(req, HTTP_STATUS_UNAUTHORIZED, "sign in first");
        return;
    }
    struct json_object *root = json_object_new_object(), *apps = json_object_new_array();
    struct grants_out out = { w, NULL, apps, NULL };
    if (root == NULL || apps == NULL ||
        w->backend->grant_list_user(w, req->session.email, grant_row, &out) < 0) {
        json_object_put(root);
        json_object_put(apps);
        http_reply_error(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "the store cannot be read");
        return;
    }
    json_object_object_add(root, "apps", apps);
    http_reply_json(req, HTTP_STATUS_OK,
                    json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
}
