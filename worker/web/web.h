/* web: what the web handlers share — the signed-in user, CSRF checks, random tokens, and the
 * handlers of each part (web.c sign-in and account, web_apps.c registration, web_grant.c
 * consent) (SPEC.md §4). */
#ifndef PRESENCED_WEB_H
#define PRESENCED_WEB_H

#include "http_req.h"

#include "../../common/form.h"

#include <stdbool.h>

#define WEB_SESSION_COOKIE "presenced_session"
#define WEB_LOGIN_COOKIE "presenced_login"
#define WEB_TOKEN_LEN 43 /* 32 random bytes in base64url */

/* 32 random bytes as base64url (WEB_TOKEN_LEN characters) into out. Returns 0 or -1. */
int web_token(char out[WEB_TOKEN_LEN + 1]);
/* Whether the form's csrf field is the session's token (constant time). */
bool web_csrf_ok(const struct http_req *req, const struct form *form);
/* The request's body as a form; a bad one is answered 400 and false returned. */
bool web_form(struct http_req *req, struct form *form);
/* A page that needs a signed-in user: without one, answers a redirect to /login (GET) or 401,
 * and returns false. */
bool web_signed_in(struct http_req *req, const char *next);
/* An HTML page with a short message, for refusals and errors. */
void web_message(struct http_req *req, unsigned status, const char *title, const char *text);

/* web.c, for the other sign-ins: a local path to go to afterwards (anything else: /account); the
 * sign-in page (next: where to go afterwards; NULL: the query's); a session for email, then a
 * redirect to next. */
const char *web_next_local(const char *next);
void web_login_page(struct http_req *req, unsigned status, const char *error, const char *next);
void web_session_start(struct worker *w, struct http_req *req, const char *email,
                       const char *next);

/* web_signin.c: OpenID providers (oidc_login) and the development issuer on /login. */
struct html;
struct config;
void web_signin_options(const struct config *cfg, struct html *page, const char *csrf,
                        const char *next);
void web_signin_oidc_start(struct worker *w, struct http_req *req);
void web_signin_oidc_callback(struct worker *w, struct http_req *req);
void web_signin_dev(struct worker *w, struct http_req *req);

/* web_apps.c */
void web_apps_route(struct worker *w, struct http_req *req, const char *rest);
/* web_grant.c */
void web_grant_route(struct worker *w, struct http_req *req, const char *appid);
void web_revoke(struct worker *w, struct http_req *req, const char *appid);
void web_get_apps(struct worker *w, struct http_req *req);
void web_account(struct worker *w, struct http_req *req);

#endif
