/* web: what the web handlers share — the signed-in user, CSRF checks, random tokens, and the
 * handlers of each part (web.c sign-in and account, web_apps.c registration, web_grant.c
 * consent) (SPEC.md §4). */
#ifndef PRESENCED_WEB_H
#define PRESENCED_WEB_H

#include "http_req.h"

#include "../common/form.h"

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

/* web_apps.c */
void web_apps_route(struct worker *w, struct http_req *req, const char *rest);
/* web_grant.c */
void web_grant_route(struct worker *w, struct http_req *req, const char *appid);
void web_revoke(struct worker *w, struct http_req *req, const char *appid);
void web_get_apps(struct worker *w, struct http_req *req);
void web_account(struct worker *w, struct http_req *req);

#endif
