/* web_signin: the sign-ins of /login beside BrowserID (SPEC.md §3.1) — through an OpenID provider
 * (oidc_login: the authorization code flow with PKCE S256, its ID token verified with aud =
 * CLIENT_ID and the nonce sent) and, with the development issuer on, "Sign in as…".
 *
 * The flow keeps no state on the server, so the provider may send the browser back to any
 * worker: a random secret in a cookie of this browser (presenced_oidc, SameSite=Lax so that it
 * comes back with the provider's redirect) derives the PKCE verifier and the nonce, and the state
 * is a hash of that secret, the provider and where to go next — a callback whose state is not
 * this browser's cookie's is refused. */
#include "web.h"

#include "../fetch.h"
#include "../identity/identity.h"
#include "../identity/issuer_keys.h"
#include "web_page.h"

#include "../../common/b64url.h"
#include "../../common/id_assertion.h"
#include "../../common/log.h"
#include "../../common/oidc_doc.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OIDC_COOKIE "presenced_oidc"
#define OIDC_COOKIE_MAX_AGE 600
#define OIDC_NEXT_MAX 512 /* a longer next is not carried through the provider */
#define DERIVED_LEN 43    /* base64url of a SHA-256 */

/* What the cookie's secret and the flow's provider and next derive. */
struct flow {
    char secret[WEB_TOKEN_LEN + 1];
    unsigned provider;
    char next[OIDC_NEXT_MAX + 1];
    char state[DERIVED_LEN + 1], nonce[DERIVED_LEN + 1], verifier[DERIVED_LEN + 1],
        challenge[DERIVED_LEN + 1];
};

static void derive(const char *label, const struct flow *f, bool with_target, char *out)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char text[64 + WEB_TOKEN_LEN + OIDC_NEXT_MAX];
    int n = snprintf(text, sizeof text, "%s%c%s%c%u%c%s", label, 0, f->secret, 0,
                     with_target ? f->provider : 0, 0, with_target ? f->next : "");
    SHA256((const unsigned char *)text, (size_t)n, digest);
    b64url_encode(digest, sizeof digest, out);
}

static void flow_derive(struct flow *f)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    derive("state", f, true, f->state);
    derive("nonce", f, false, f->nonce);
    derive("pkce", f, false, f->verifier);
    SHA256((const unsigned char *)f->verifier, strlen(f->verifier), digest);
    b64url_encode(digest, sizeof digest, f->challenge);
}

/* The cookie's value: secret.provider.base64url(next). */
static int flow_cookie(const struct flow *f, char *out, size_t cap)
{
    char next[B64URL_ENCODED_LEN(OIDC_NEXT_MAX) + 1];
    b64url_encode((const unsigned char *)f->next, strlen(f->next), next);
    int n = snprintf(out, cap, "%s.%u.%s", f->secret, f->provider, next);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static bool flow_from_cookie(struct http_req *req, const struct config *cfg, struct flow *f)
{
    char value[WEB_TOKEN_LEN + 16 + B64URL_ENCODED_LEN(OIDC_NEXT_MAX)];
    memset(f, 0, sizeof *f);
    if (!http_cookie(req, OIDC_COOKIE, value, sizeof value))
        return false;
    char *dot1 = strchr(value, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || dot1 - value != WEB_TOKEN_LEN)
        return false;
    memcpy(f->secret, value, WEB_TOKEN_LEN);
    char *end;
    unsigned long provider = strtoul(dot1 + 1, &end, 10);
    if (end != dot2 || provider >= cfg->oidc_login_count)
        return false;
    f->provider = (unsigned)provider;
    size_t len = strlen(dot2 + 1);
    unsigned char next[B64URL_DECODED_MAX(B64URL_ENCODED_LEN(OIDC_NEXT_MAX)) + 1];
    long n = len <= B64URL_ENCODED_LEN(OIDC_NEXT_MAX) ? b64url_decode(dot2 + 1, len, next) : -1;
    if (n < 0 || (size_t)n > OIDC_NEXT_MAX || memchr(next, '\0', (size_t)n) != NULL)
        return false;
    memcpy(f->next, next, (size_t)n);
    f->next[n] = '\0';
    flow_derive(f);
    return true;
}

static void flow_cookie_clear(struct http_req *req)
{
    char cookie[128];
    snprintf(cookie, sizeof cookie, "%s=; Path=/login/oidc; Max-Age=0; HttpOnly; SameSite=Lax%s",
             OIDC_COOKIE, http_is_tls(req) ? "; Secure" : "");
    http_set_cookie(req, cookie);
}

static void redirect_uri(const struct config *cfg, char *out, size_t cap)
{
    size_t base = strlen(cfg->public_url);
    while (base > 0 && cfg->public_url[base - 1] == '/')
        base--;
    snprintf(out, cap, "%.*s/login/oidc", (int)base, cfg->public_url);
}

void web_signin_options(const struct config *cfg, struct html *page, const char *csrf,
                        const char *next)
{
    for (size_t i = 0; i < cfg->oidc_login_count; i++) {
        html_raw(page, "<form method=\"post\" action=\"/login/oidc/start\" class=\"provider\">");
        web_page_csrf(page, csrf);
        html_rawf(page, "<input type=\"hidden\" name=\"provider\" value=\"%zu\">", i);
        html_raw(page, "<input type=\"hidden\" name=\"next\" value=\"");
        html_text(page, next);
        html_rawf(page, "\"><button type=\"submit\" id=\"provider-%zu\">Sign in with ", i);
        html_text(page, cfg->oidc_login[i].label);
        html_raw(page, "</button></form>");
    }
    if (!cfg->dev_issuer)
        return;
    html_raw(page, "<form method=\"post\" action=\"/login/dev\" class=\"dev\">"
                   "<label for=\"dev-email\">Sign in as…</label>"
                   "<input type=\"email\" id=\"dev-email\" name=\"email\" required>");
    web_page_csrf(page, csrf);
    html_raw(page, "<input type=\"hidden\" name=\"next\" value=\"");
    html_text(page, next);
    html_raw(page, "\"><button type=\"submit\" id=\"dev-signin\">Sign in</button>"
                   "<p class=\"note\">The development issuer is on: anyone can sign in as "
                   "anyone here. It must be off in production.</p></form>");
}

/* The form's csrf against the login cookie (the form was the login page's). */
static bool login_form_ok(struct http_req *req, const struct form *form)
{
    char cookie[WEB_TOKEN_LEN + 8];
    const char *csrf = form_get(form, "csrf");
    return http_cookie(req, WEB_LOGIN_COOKIE, cookie, sizeof cookie) && csrf != NULL &&
           strlen(csrf) == strlen(cookie) && strlen(csrf) > 0 &&
           CRYPTO_memcmp(csrf, cookie, strlen(csrf)) == 0;
}

void web_signin_dev(struct worker *w, struct http_req *req)
{
    struct form form;
    if (!w->cfg->dev_issuer) {
        http_reply_error(req, HTTP_STATUS_NOT_FOUND, "not found");
        return;
    }
    if (!web_form(req, &form))
        return;
    const char *email = form_get(&form, "email");
    char next[1600];
    snprintf(next, sizeof next, "%s", web_next_local(form_get(&form, "next")));
    if (!login_form_ok(req, &form))
        web_message(req, HTTP_STATUS_FORBIDDEN, "Sign in", "The form expired: sign in again.");
    else if (email == NULL || !id_email_valid(email))
        web_login_page(req, HTTP_STATUS_BAD_REQUEST, "That is not an e-mail address.", next);
    else
        web_session_start(w, req, email, next);
    form_free(&form);
}

/* A sign-in through a provider, between two of its steps. */
struct signin {
    struct worker *w;
    struct http_req *req;
    struct flow flow;
    char code[1024];
    struct issuer_wait *wait;
    struct fetch *fetch;
    struct identity_req *verifying;
};

static void signin_free(struct signin *s)
{
    if (s->wait != NULL)
        issuer_key_cancel(s->wait);
    if (s->fetch != NULL)
        fetch_cancel(s->fetch);
    if (s->verifying != NULL)
        identity_cancel(s->verifying);
    OPENSSL_cleanse(&s->flow, sizeof s->flow);
    free(s);
}

static void signin_cancel(struct http_async *async)
{
    signin_free((struct signin *)async);
}

/* Ends the sign-in with a page (a refusal or an error) and frees it. */
static void signin_fail(struct signin *s, unsigned status, const char *text)
{
    if (s->req->async != NULL)
        http_undefer(s->req);
    flow_cookie_clear(s->req);
    web_login_page(s->req, status, text, s->flow.next);
    s->wait = NULL;
    signin_free(s);
}

static const struct config_oidc_login *signin_login(const struct signin *s)
{
    return &s->w->cfg->oidc_login[s->flow.provider];
}

/* ?a=b&c=d with each value escaped, appended to out. Returns -1 when out is too small. */
static int query_add(char *out, size_t cap, const char *name, const char *value)
{
    char escaped[2048];
    size_t len = strlen(out);
    if (form_escape(value, escaped, sizeof escaped) < 0)
        return -1;
    int n = snprintf(out + len, cap - len, "%s%s=%s", strchr(out, '?') ? "&" : "?", name, escaped);
    return n < 0 || (size_t)n >= cap - len ? -1 : 0;
}

static void to_provider(struct signin *s, const struct issuer_oidc *oidc)
{
    const struct config_oidc_login *login = signin_login(s);
    char location[sizeof s->req->response.location], uri[1200], cookie[1024], value[900];
    if (oidc->authorization_endpoint == NULL || oidc->token_endpoint == NULL) {
        signin_fail(s, HTTP_STATUS_BAD_GATEWAY, "The provider publishes no sign-in endpoints.");
        return;
    }
    redirect_uri(s->w->cfg, uri, sizeof uri);
    snprintf(location, sizeof location, "%s", oidc->authorization_endpoint);
    if (strlen(location) != strlen(oidc->authorization_endpoint) ||
        query_add(location, sizeof location, "response_type", "code") != 0 ||
        query_add(location, sizeof location, "client_id", login->client_id) != 0 ||
        query_add(location, sizeof location, "redirect_uri", uri) != 0 ||
        query_add(location, sizeof location, "scope", "openid email") != 0 ||
        query_add(location, sizeof location, "state", s->flow.state) != 0 ||
        query_add(location, sizeof location, "nonce", s->flow.nonce) != 0 ||
        query_add(location, sizeof location, "code_challenge", s->flow.challenge) != 0 ||
        query_add(location, sizeof location, "code_challenge_method", "S256") != 0 ||
        flow_cookie(&s->flow, value, sizeof value) != 0) {
        signin_fail(s, HTTP_STATUS_INTERNAL_SERVER_ERROR, "The sign-in address is too long.");
        return;
    }
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/login/oidc; Max-Age=%d; HttpOnly; SameSite=Lax%s",
             OIDC_COOKIE, value, OIDC_COOKIE_MAX_AGE, http_is_tls(s->req) ? "; Secure" : "");
    if (s->req->async != NULL)
        http_undefer(s->req);
    http_set_cookie(s->req, cookie);
    http_redirect(s->req, location);
    s->wait = NULL;
    signin_free(s);
}

/* The provider's endpoints: 0 (the step ran), or 1 (s waits for them). */
static int provider_get(struct signin *s, issuer_oidc_cb ready)
{
    const struct issuer_oidc *oidc;
    const char *why;
    int rc = issuer_oidc_get(identity_keys(s->w->identity), signin_login(s)->issuer, NULL, &oidc,
                             &why, ready, s, &s->wait);
    if (rc == 1)
        return 1;
    if (rc != 0) {
        log_info("sign-in: provider %s: %s", signin_login(s)->issuer, why);
        signin_fail(s, HTTP_STATUS_SERVICE_UNAVAILABLE,
                    "The provider cannot be reached; try again later.");
        return 0;
    }
    ready(s, 0, NULL, oidc);
    return 0;
}

static void start_ready(void *arg, int error, const char *why, const struct issuer_oidc *oidc)
{
    struct signin *s = arg;
    s->wait = NULL;
    if (error != 0) {
        log_info("sign-in: provider %s: %s", signin_login(s)->issuer, why);
        signin_fail(s, HTTP_STATUS_SERVICE_UNAVAILABLE,
                    "The provider cannot be reached; try again later.");
        return;
    }
    to_provider(s, oidc);
}

static struct signin *signin_new(struct worker *w, struct http_req *req)
{
    struct signin *s = calloc(1, sizeof *s);
    if (s != NULL) {
        s->w = w;
        s->req = req;
    }
    return s;
}

static void defer_if_waiting(struct signin *s, int rc)
{
    if (rc == 1)
        http_defer(s->req, (struct http_async *)s, signin_cancel);
}

void web_signin_oidc_start(struct worker *w, struct http_req *req)
{
    struct form form;
    if (!web_form(req, &form))
        return;
    const char *provider = form_get(&form, "provider");
    const char *next = web_next_local(form_get(&form, "next"));
    char *end = NULL;
    unsigned long index = provider ? strtoul(provider, &end, 10) : 0;
    struct signin *s = NULL;
    if (!login_form_ok(req, &form))
        web_message(req, HTTP_STATUS_FORBIDDEN, "Sign in", "The form expired: sign in again.");
    else if (provider == NULL || end == provider || *end != '\0' ||
             index >= w->cfg->oidc_login_count)
        web_login_page(req, HTTP_STATUS_BAD_REQUEST, "No such provider.", next);
    else if ((s = signin_new(w, req)) == NULL || web_token(s->flow.secret) != 0)
        web_message(req, HTTP_STATUS_INTERNAL_SERVER_ERROR, "Sign in", "Please try again.");
    if (s != NULL && s->flow.secret[0] != '\0') {
        s->flow.provider = (unsigned)index;
        snprintf(s->flow.next, sizeof s->flow.next, "%s",
                 strlen(next) <= OIDC_NEXT_MAX ? next : "/account");
        flow_derive(&s->flow);
        form_free(&form);
        defer_if_waiting(s, provider_get(s, start_ready));
        return;
    }
    free(s);
    form_free(&form);
}

static void token_verified(void *arg, const struct identity_result *r)
{
    struct signin *s = arg;
    s->verifying = NULL;
    if (r->error != 0) {
        log_info("sign-in: the ID token of %s refused (%d): %s", signin_login(s)->issuer,
                 r->error, r->why);
        signin_fail(s, HTTP_STATUS_FORBIDDEN, "The provider's answer could not be verified.");
        return;
    }
    if (s->req->async != NULL)
        http_undefer(s->req);
    flow_cookie_clear(s->req);
    web_session_start(s->w, s->req, r->email, web_next_local(s->flow.next));
    signin_free(s);
}

static void token_answered(void *arg, const struct fetch_result *result)
{
    struct signin *s = arg;
    const struct config_oidc_login *login = signin_login(s);
    s->fetch = NULL;
    if (!result->transport_ok || result->status >= 500) {
        log_info("sign-in: token endpoint of %s: %s", login->issuer,
                 result->transport_ok ? "server error" : result->error);
        signin_fail(s, HTTP_STATUS_SERVICE_UNAVAILABLE,
                    "The provider cannot be reached; try again later.");
        return;
    }
    struct oidc_token_answer answer;
    const char *why = NULL;
    if (oidc_token_answer_parse(result->body, result->len, &answer, &why) != 0 ||
        answer.id_token == NULL) {
        log_info("sign-in: token endpoint of %s answered %ld: %s", login->issuer, result->status,
                 why ? why : answer.error);
        oidc_token_answer_free(&answer);
        signin_fail(s, HTTP_STATUS_BAD_GATEWAY, "The provider refused the sign-in.");
        return;
    }
    struct identity_token_expect expect = { login->issuer, login->client_id, s->flow.nonce };
    struct identity_result verdict;
    int rc = identity_verify_token(s->w->identity, answer.id_token, strlen(answer.id_token),
                                   &expect, &verdict, token_verified, s, &s->verifying);
    oidc_token_answer_free(&answer);
    if (rc == 0)
        token_verified(s, &verdict);
}

/* RFC 6749 §2.3.1: Basic over the form-encoded id and secret. */
static char *basic_credentials(const struct config_oidc_login *login)
{
    char id[1024], secret[2048], *pair = NULL, *out = NULL;
    if (form_escape(login->client_id, id, sizeof id) < 0 ||
        form_escape(login->secret, secret, sizeof secret) < 0 ||
        asprintf(&pair, "%s:%s", id, secret) < 0)
        return NULL;
    size_t len = strlen(pair);
    out = malloc(8 + 4 * (len / 3 + 1) + 1);
    if (out != NULL) {
        memcpy(out, "Basic ", 6);
        EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)pair, (int)len);
    }
    OPENSSL_clear_free(pair, len);
    return out;
}

static void callback_ready(void *arg, int error, const char *why, const struct issuer_oidc *oidc)
{
    struct signin *s = arg;
    const struct config_oidc_login *login = signin_login(s);
    s->wait = NULL;
    if (error != 0 || oidc->token_endpoint == NULL) {
        log_info("sign-in: provider %s: %s", login->issuer, why ? why : "no token endpoint");
        signin_fail(s, HTTP_STATUS_SERVICE_UNAVAILABLE,
                    "The provider cannot be reached; try again later.");
        return;
    }
    char uri[1200], *body = NULL, code[3100], verifier[200], target[3700];
    redirect_uri(s->w->cfg, uri, sizeof uri);
    char id[1024], secret[2048];
    bool post = oidc->secret_post;
    if (form_escape(s->code, code, sizeof code) < 0 || form_escape(uri, target, sizeof target) < 0 ||
        form_escape(s->flow.verifier, verifier, sizeof verifier) < 0 ||
        form_escape(login->client_id, id, sizeof id) < 0 ||
        form_escape(login->secret, secret, sizeof secret) < 0 ||
        asprintf(&body, "grant_type=authorization_code&code=%s&redirect_uri=%s&code_verifier=%s%s%s%s%s",
                 code, target, verifier, post ? "&client_id=" : "", post ? id : "",
                 post ? "&client_secret=" : "", post ? secret : "") < 0)
        body = NULL;
    OPENSSL_cleanse(secret, sizeof secret);
    char *authorization = post ? NULL : basic_credentials(login);
    struct fetch_request req = {
        .url = oidc->token_endpoint,
        .body = body,
        .content_type = "application/x-www-form-urlencoded",
        .authorization = authorization,
        .timeout_ms = s->w->cfg->verify_timeout_ms,
        .max_bytes = OIDC_DOC_MAX,
        .https_only = true,
    };
    if (body != NULL && (post || authorization != NULL))
        s->fetch = fetch_start(s->w->fetcher, &req, token_answered, s);
    if (body != NULL)
        OPENSSL_clear_free(body, strlen(body));
    if (authorization != NULL)
        OPENSSL_clear_free(authorization, strlen(authorization));
    if (s->fetch == NULL) {
        signin_fail(s, HTTP_STATUS_SERVICE_UNAVAILABLE, "The sign-in could not go on; try again.");
        return;
    }
    if (s->req->async == NULL)
        http_defer(s->req, (struct http_async *)s, signin_cancel);
}

/* GET /login/oidc?code=…&state=… (or ?error=…): the provider sends the browser back. */
void web_signin_oidc_callback(struct worker *w, struct http_req *req)
{
    struct signin *s = signin_new(w, req);
    char state[DERIVED_LEN + 8], error[64], iss[300];
    if (s == NULL) {
        web_message(req, HTTP_STATUS_INTERNAL_SERVER_ERROR, "Sign in", "Please try again.");
        return;
    }
    if (!flow_from_cookie(req, w->cfg, &s->flow)) {
        snprintf(s->flow.next, sizeof s->flow.next, "/account");
        signin_fail(s, HTTP_STATUS_BAD_REQUEST,
                    "This sign-in expired or began in another browser: sign in again.");
        return;
    }
    /* The state is this browser's: a callback another browser's flow made is refused. */
    if (!http_query(req, "state", state, sizeof state) || strlen(state) != DERIVED_LEN ||
        CRYPTO_memcmp(state, s->flow.state, DERIVED_LEN) != 0) {
        signin_fail(s, HTTP_STATUS_FORBIDDEN, "This sign-in does not belong to this browser.");
        return;
    }
    /* RFC 9207: when the provider names itself, it must be the one the flow went to. */
    if (http_query(req, "iss", iss, sizeof iss) && strcmp(iss, signin_login(s)->issuer) != 0) {
        signin_fail(s, HTTP_STATUS_FORBIDDEN, "The answer came from another provider.");
        return;
    }
    if (http_query(req, "error", error, sizeof error)) {
        char text[128];
        snprintf(text, sizeof text, "The provider did not sign you in (%s).", error);
        signin_fail(s, HTTP_STATUS_FORBIDDEN, text);
        return;
    }
    if (!http_query(req, "code", s->code, sizeof s->code) || s->code[0] == '\0') {
        signin_fail(s, HTTP_STATUS_BAD_REQUEST, "The provider's answer has no code.");
        return;
    }
    defer_if_waiting(s, provider_get(s, callback_ready));
}
