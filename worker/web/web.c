/* web: the HTTP API and pages of SPEC.md §4 — routing, sign-in with an assertion, sessions in
 * the store, CSRF tokens, sign-out. */
#include "web.h"

#include "../backend/backend.h"

#include "../identity/identity.h"
#include "web_page.h"

#include "../../common/b64url.h"
#include "../../common/clock.h"
#include "../../common/log.h"
#include "../../common/next_path.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int web_token(char out[WEB_TOKEN_LEN + 1])
{
    return b64url_random(32, out);
}

static bool token_equal(const char *a, const char *b)
{
    size_t len = strlen(a);
    return len > 0 && len == strlen(b) && CRYPTO_memcmp(a, b, len) == 0;
}

bool web_csrf_ok(const struct http_req *req, const struct form *form)
{
    const char *token = form_get(form, "csrf");
    return req->has_session && token != NULL && token_equal(token, req->session.csrf);
}

bool web_form(struct http_req *req, struct form *form)
{
    if (form_parse(req->body ? req->body : "", req->body_len, form) == 0)
        return true;
    web_message(req, HTTP_STATUS_BAD_REQUEST, "Bad request", "The form could not be read.");
    return false;
}

void web_message(struct http_req *req, unsigned status, const char *title, const char *text)
{
    struct html page = { 0 };
    web_page_begin(&page, title, req->has_session ? req->session.email : NULL, req->session.csrf);
    html_raw(&page, "<p class=\"error\">");
    html_text(&page, text);
    html_raw(&page, "</p>");
    web_page_end(&page);
    http_reply_html(req, status, &page);
}

bool web_signed_in(struct http_req *req, const char *next)
{
    if (req->has_session)
        return true;
    if (req->method == HTTP_GET || req->method == HTTP_HEAD) {
        char escaped[8192 * 3], location[8192 * 3 + 32];
        if (form_escape(next, escaped, sizeof escaped) < 0)
            snprintf(escaped, sizeof escaped, "%%2F");
        snprintf(location, sizeof location, "/login?next=%s", escaped);
        http_redirect(req, location);
    } else {
        web_message(req, HTTP_STATUS_UNAUTHORIZED, "Sign in first", "This needs a signed-in user.");
    }
    return false;
}

static void session_hash(const char *token, unsigned char *hash)
{
    SHA256((const unsigned char *)token, strlen(token), hash);
}

/* The signed-in user of the request's cookie, when there is one and it has not expired. On a
 * node of a cluster, a cookie this node does not know yet (a session made on another node a
 * moment ago) is fetched from the engine first: true when the request waits for that. */
static bool session_load(struct worker *w, struct http_req *req)
{
    char token[WEB_TOKEN_LEN + 8];
    if (!http_cookie(req, WEB_SESSION_COOKIE, token, sizeof token) ||
        strlen(token) != WEB_TOKEN_LEN)
        return false;
    session_hash(token, req->session_hash);
    req->has_session =
        w->backend->web_session_get(w, req->session_hash, &req->session) == SHM_OK;
    if (req->has_session)
        return false;
    char key[2 * SHM_WEB_HASH_LEN + 1];
    shm_web_session_key(req->session_hash, key);
    return web_shared_fetch(w, req, SHM_BUCKET_SESSIONS, key);
}

/* A path on this site to go back to after signing in; anything else becomes /account. */
static const char *next_local(const char *next)
{
    return next_path_local(next) ? next : NEXT_PATH_DEFAULT;
}

const char *web_next_local(const char *next)
{
    return next_local(next);
}

/* BrowserID's form is shown where BrowserID is set up: with audience lines, trusted issuers or a
 * verifier, or when nothing else signs users in. */
static bool browserid_offered(const struct config *cfg)
{
    return cfg->audience_given || cfg->trusted_issuer_count > 0 || cfg->verifier != NULL ||
           (cfg->oidc_login_count == 0 && !cfg->dev_issuer);
}

/* The sign-in form; next is where to go afterwards (NULL: the query's next). */
static void login_page(struct http_req *req, unsigned status, const char *error,
                       const char *next_given)
{
    char token[WEB_TOKEN_LEN + 1], cookie[200], next[NEXT_PATH_MAX + 100] = NEXT_PATH_DEFAULT;
    if (web_token(token) != 0) {
        http_reply_error(req, HTTP_STATUS_INTERNAL_SERVER_ERROR, "no randomness");
        return;
    }
    if (next_given != NULL)
        snprintf(next, sizeof next, "%s", next_given);
    else
        http_query(req, "next", next, sizeof next);
    /* Before a session there is no session token: the form's token is also a cookie. */
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/login; HttpOnly; SameSite=Strict%s",
             WEB_LOGIN_COOKIE, token, http_is_tls(req) ? "; Secure" : "");
    http_set_cookie(req, cookie);
    struct html page = { 0 };
    web_page_begin(&page, "Sign in", NULL, NULL);
    if (error != NULL) {
        html_raw(&page, "<p class=\"error\">");
        html_text(&page, error);
        html_raw(&page, "</p>");
    }
    const struct config *cfg = worker_of(req->wsi)->cfg;
    web_signin_options(cfg, &page, token, next_local(next));
    if (browserid_offered(cfg)) {
        html_raw(&page, "<p>Sign in with a BrowserID assertion made for this site.</p>"
                        "<form method=\"post\" action=\"/login\">"
                        "<label for=\"assertion\">Assertion</label>"
                        "<textarea id=\"assertion\" name=\"assertion\" rows=\"6\"></textarea>");
        web_page_csrf(&page, token);
        html_raw(&page, "<input type=\"hidden\" name=\"next\" value=\"");
        html_text(&page, next_local(next));
        html_raw(&page, "\"><button type=\"submit\" id=\"signin\">Sign in</button></form>");
    }
    web_page_end(&page);
    http_reply_html(req, status, &page);
}

void web_login_page(struct http_req *req, unsigned status, const char *error, const char *next)
{
    login_page(req, status, error, next);
}

/* A sign-in waiting for its assertion's verification. */
struct login {
    struct worker *w;
    struct http_req *req;
    struct identity_req *verifying;
    char next[NEXT_PATH_MAX + 1];
};

static void login_cancel(struct http_async *async)
{
    struct login *login = (struct login *)async;
    if (login->verifying != NULL)
        identity_cancel(login->verifying);
    free(login);
}

static void session_start(struct worker *w, struct http_req *req, const char *email,
                          const char *next)
{
    char token[WEB_TOKEN_LEN + 1], cookie[256];
    struct shm_web_session session = { .expires_ms = clock_wall_ms() + w->cfg->session_ttl_ms };
    unsigned char hash[SHM_WEB_HASH_LEN];
    char csrf[WEB_TOKEN_LEN + 1];
    if (web_token(token) != 0 || web_token(csrf) != 0) {
        web_message(req, HTTP_STATUS_INTERNAL_SERVER_ERROR, "Sign in", "No randomness.");
        return;
    }
    memcpy(session.csrf, csrf, SHM_CSRF_LEN);
    session.csrf[SHM_CSRF_LEN] = '\0';
    snprintf(session.email, sizeof session.email, "%s", email);
    session_hash(token, hash);
    if (w->backend->web_session_put(w, hash, &session, NULL) != SHM_OK) {
        web_message(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "Sign in", "Please try again.");
        return;
    }
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Lax%s",
             WEB_SESSION_COOKIE, token, (long long)(w->cfg->session_ttl_ms / 1000),
             http_is_tls(req) ? "; Secure" : "");
    http_set_cookie(req, cookie);
    http_redirect(req, next);
}

void web_session_start(struct worker *w, struct http_req *req, const char *email,
                       const char *next)
{
    session_start(w, req, email, next);
}

static void login_verified(void *arg, const struct identity_result *r)
{
    struct login *login = arg;
    struct http_req *req = login->req;
    login->verifying = NULL;
    http_undefer(req);
    if (r->error != 0)
        login_page(req, HTTP_STATUS_FORBIDDEN, r->why, login->next);
    else
        session_start(login->w, req, r->email, login->next);
    free(login);
}

static void login_post(struct worker *w, struct http_req *req)
{
    struct form form;
    char cookie[WEB_TOKEN_LEN + 8];
    if (!web_form(req, &form))
        return;
    const char *assertion = form_get(&form, "assertion"), *csrf = form_get(&form, "csrf");
    if (!http_cookie(req, WEB_LOGIN_COOKIE, cookie, sizeof cookie) || csrf == NULL ||
        !token_equal(csrf, cookie)) {
        form_free(&form);
        web_message(req, HTTP_STATUS_FORBIDDEN, "Sign in", "The form expired: sign in again.");
        return;
    }
    struct login *login = calloc(1, sizeof *login);
    if (login == NULL || assertion == NULL) {
        free(login);
        form_free(&form);
        login_page(req, HTTP_STATUS_BAD_REQUEST, "An assertion is needed.", NULL);
        return;
    }
    login->w = w;
    login->req = req;
    snprintf(login->next, sizeof login->next, "%s", next_local(form_get(&form, "next")));
    struct identity_result result;
    int rc = identity_verify(w->identity, assertion, strlen(assertion), w->cfg->public_origin,
                             &result, login_verified, login, &login->verifying);
    form_free(&form);
    if (rc == 1) {
        http_defer(req, (struct http_async *)login, login_cancel);
        return;
    }
    login_verified(login, &result);
}

static void logout(struct worker *w, struct http_req *req)
{
    struct form form;
    if (!web_form(req, &form))
        return;
    bool allowed = web_csrf_ok(req, &form);
    form_free(&form);
    if (!allowed) {
        web_message(req, HTTP_STATUS_FORBIDDEN, "Sign out", "Missing or wrong CSRF token.");
        return;
    }
    w->backend->web_session_delete(w, req->session_hash, NULL);
    char cookie[128];
    snprintf(cookie, sizeof cookie, "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax%s",
             WEB_SESSION_COOKIE, http_is_tls(req) ? "; Secure" : "");
    http_set_cookie(req, cookie);
    http_redirect(req, "/login");
}

/* "/prefix/<id>" → the id when the path has exactly that shape. */
static const char *path_id(const char *uri, const char *prefix)
{
    size_t len = strlen(prefix);
    if (strncmp(uri, prefix, len) != 0 || uri[len] == '\0' || strchr(uri + len, '/') != NULL)
        return NULL;
    return uri + len;
}

void web_route(struct worker *w, struct http_req *req)
{
    if (session_load(w, req))
        return; /* routed again once the engine answered */
    const char *uri = req->uri, *id;
    bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
    bool post = req->method == HTTP_POST;
    if (strcmp(uri, "/") == 0 && get)
        http_redirect(req, req->has_session ? "/account" : "/login");
    else if (strcmp(uri, "/login") == 0 && get)
        login_page(req, HTTP_STATUS_OK, NULL, NULL);
    else if (strcmp(uri, "/login") == 0 && post)
        login_post(w, req);
    else if (strcmp(uri, "/login/oidc/start") == 0 && post)
        web_signin_oidc_start(w, req);
    else if (strcmp(uri, "/login/oidc") == 0 && get)
        web_signin_oidc_callback(w, req);
    else if (strcmp(uri, "/login/dev") == 0 && post)
        web_signin_dev(w, req);
    else if (strcmp(uri, "/logout") == 0 && post)
        logout(w, req);
    else if (strcmp(uri, "/account") == 0 && get)
        web_account(w, req);
    else if (strcmp(uri, "/getApps") == 0 && get)
        web_get_apps(w, req);
    else if (strcmp(uri, "/myapps") == 0 || strncmp(uri, "/myapps/", 8) == 0)
        web_apps_route(w, req, uri + 7);
    else if ((id = path_id(uri, "/grant/")) != NULL && (get || post))
        web_grant_route(w, req, id);
    else if ((id = path_id(uri, "/revoke/")) != NULL && post)
        web_revoke(w, req, id);
    else if (strcmp(uri, "/login") == 0 || strcmp(uri, "/logout") == 0 ||
             strcmp(uri, "/login/oidc/start") == 0 || strcmp(uri, "/login/oidc") == 0 ||
             strcmp(uri, "/login/dev") == 0 ||
             strcmp(uri, "/account") == 0 || strcmp(uri, "/getApps") == 0 ||
             strncmp(uri, "/grant/", 7) == 0 || strncmp(uri, "/revoke/", 8) == 0)
        http_reply_error(req, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed");
    else
        http_reply_error(req, HTTP_STATUS_NOT_FOUND, "not found");
}
