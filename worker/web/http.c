/* http: the plain HTTP requests of the public port — request state, bodies, the response
 * writer with the security headers every answer carries, and the Dockerflow endpoints. */
#include "http_req.h"

#include "web_page.h"

#include "../backend/backend.h"

#include "../../common/clock.h"
#include "../../common/tcp_bytes.h"
#include "../../common/version.h"

#include <json-c/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_HEADERS_MAX 4096

/* The lws user data of an HTTP connection. The request in progress lives on the heap, so an
 * idle keep-alive connection costs only this, and so does the allocation every WebSocket gets
 * (lws sizes the user data of all connections alike). */
struct http_conn {
    enum conn_kind kind; /* CONN_HTTP */
    struct http_req *req;
    /* Between two requests of a keep-alive connection: what TCP had received when the last
     * answer went, so a draining worker can tell a next request is on its way. */
    bool kept_alive;
    uint64_t bytes_in;
};

size_t http_req_size(void)
{
    return sizeof(struct http_conn);
}

void http_reply(struct http_req *req, unsigned status, const char *content_type, char *body,
                size_t len)
{
    free(req->response.body);
    req->response.status = status;
    req->response.content_type = content_type;
    req->response.body = body;
    req->response.len = len;
    req->responding = true;
    if (web_shared_hold(worker_of(req->wsi), req))
        return; /* web_shared.c asks for the writable callback once the engine has the writes */
    lws_callback_on_writable(req->wsi);
}

void http_reply_json(struct http_req *req, unsigned status, const char *json)
{
    char *body = strdup(json);
    http_reply(req, body ? status : HTTP_STATUS_INTERNAL_SERVER_ERROR, "application/json", body,
               body ? strlen(body) : 0);
}

void http_reply_error(struct http_req *req, unsigned status, const char *text)
{
    char json[512];
    snprintf(json, sizeof json, "{\"error\":\"%s\"}", text);
    http_reply_json(req, status, json);
}

void http_reply_html(struct http_req *req, unsigned status, struct html *page)
{
    if (page->failed) {
        html_free(page);
        http_reply_error(req, HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    http_reply(req, status, "text/html; charset=utf-8", page->text, page->len);
    page->text = NULL;
    html_free(page);
}

void http_redirect(struct http_req *req, const char *location)
{
    snprintf(req->response.location, sizeof req->response.location, "%s", location);
    http_reply(req, HTTP_STATUS_SEE_OTHER, "text/plain", NULL, 0);
}

void http_set_cookie(struct http_req *req, const char *cookie)
{
    for (size_t i = 0; i < 2; i++)
        if (req->response.set_cookie[i][0] == '\0') {
            snprintf(req->response.set_cookie[i], sizeof req->response.set_cookie[i], "%s", cookie);
            return;
        }
}

void http_defer(struct http_req *req, struct http_async *async, void (*cancel)(struct http_async *))
{
    req->async = async;
    req->async_cancel = cancel;
}

void http_undefer(struct http_req *req)
{
    req->async = NULL;
    req->async_cancel = NULL;
}

void http_allow_any_origin(struct http_req *req)
{
    req->response.any_origin = true;
}

bool http_cookie(struct http_req *req, const char *name, char *out, size_t cap)
{
    char header[2048];
    if (lws_hdr_copy(req->wsi, header, sizeof header, WSI_TOKEN_HTTP_COOKIE) <= 0)
        return false;
    size_t name_len = strlen(name);
    for (char *p = header; p != NULL && *p != '\0';) {
        while (*p == ' ')
            p++;
        char *next = strchr(p, ';');
        if (next != NULL)
            *next++ = '\0';
        if (strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            snprintf(out, cap, "%s", p + name_len + 1);
            return true;
        }
        p = next;
    }
    return false;
}

bool http_query(struct http_req *req, const char *name, char *out, size_t cap)
{
    char fragment[2048];
    size_t name_len = strlen(name);
    for (int i = 0;
         lws_hdr_copy_fragment(req->wsi, fragment, sizeof fragment, WSI_TOKEN_HTTP_URI_ARGS, i) > 0;
         i++)
        if (strncmp(fragment, name, name_len) == 0 && fragment[name_len] == '=') {
            snprintf(out, cap, "%s", fragment + name_len + 1);
            return true;
        }
    return false;
}

bool http_is_tls(struct http_req *req)
{
    return lws_is_ssl(req->wsi) != 0;
}

static int header_add(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* What every answer carries: no sniffing, no caching, no framing, no referrer, no scripts. */
static int security_headers(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    return header_add(wsi, "x-content-type-options:", "nosniff", p, end) ||
           header_add(wsi, "cache-control:", "no-store", p, end) ||
           header_add(wsi, "x-frame-options:", "DENY", p, end) ||
           header_add(wsi, "referrer-policy:", "no-referrer", p, end) ||
           header_add(wsi, "content-security-policy:", web_page_csp(), p, end);
}

/* Status, type and length. A draining worker also says "connection: close" (lws writes it, and
 * closes once the answer is out, when it is given no length; the length follows apart). */
static int common_headers(struct worker *w, struct http_req *req, unsigned char **p,
                          unsigned char *end)
{
    struct http_response *r = &req->response;
    if (!w->draining)
        return lws_add_http_common_headers(req->wsi, r->status, r->content_type, r->len, p, end);
    return lws_add_http_common_headers(req->wsi, r->status, r->content_type,
                                       LWS_ILLEGAL_HTTP_CONTENT_LEN, p, end) ||
           lws_add_http_header_content_length(req->wsi, r->len, p, end);
}

/* Writes the prepared response: headers, then the body (lws keeps what the socket does not take
 * at once). Returns what the lws callback returns. */
static int response_write(struct worker *w, struct http_req *req)
{
    struct http_response *r = &req->response;
    unsigned char headers[LWS_PRE + HTTP_HEADERS_MAX];
    unsigned char *start = headers + LWS_PRE, *p = start, *end = headers + sizeof headers - 1;
    req->responding = false;
    if (common_headers(w, req, &p, end) || security_headers(req->wsi, &p, end) ||
        (r->location[0] && header_add(req->wsi, "location:", r->location, &p, end)) ||
        (r->any_origin && header_add(req->wsi, "access-control-allow-origin:", "*", &p, end)))
        return -1;
    for (size_t i = 0; i < 2; i++)
        if (r->set_cookie[i][0] && header_add(req->wsi, "set-cookie:", r->set_cookie[i], &p, end))
            return -1;
    if (lws_finalize_write_http_header(req->wsi, start, &p, end))
        return -1;
    if (req->method != HTTP_HEAD && r->len > 0) {
        unsigned char *out = malloc(LWS_PRE + r->len);
        if (out == NULL)
            return -1;
        memcpy(out + LWS_PRE, r->body, r->len);
        int n = lws_write(req->wsi, out + LWS_PRE, r->len, LWS_WRITE_HTTP_FINAL);
        free(out);
        if (n < 0)
            return -1;
    }
    return 0;
}

static void check_add(struct json_object *checks, struct json_object *details, const char *name,
                      int result, const char *why)
{
    json_object_object_add(checks, name, json_object_new_string(result == SHM_OK ? "ok" : "error"));
    if (result != SHM_OK)
        json_object_object_add(details, name, json_object_new_string(why));
}

/* Dockerflow's /__heartbeat__: 503 naming the failing check while the store cannot be read or
 * refuses writes (map or disk full), or while the backend does not serve (a cluster node cut
 * off from the engine, SPEC.md §8: the "cluster" check, only then). */
static void heartbeat(struct worker *w, struct http_req *req)
{
    /* The probe writes in a batch of its own: this turn's writes are committed (and their
     * targets rung) first, as at the end of the turn. */
    if (shm_batch_pending(w->store)) {
        if (shm_batch_commit(w->store) != SHM_OK)
            w->info.store_failures_total++;
        w->backend->after_commit(w);
    }
    struct shm_store_health health;
    int rc = shm_store_health(w->store, clock_wall_ms(), &health);
    bool serving = w->backend->serving(w);
    if (rc == SHM_OK && !serving)
        rc = SHM_ERROR;
    struct json_object *obj = json_object_new_object(), *checks = json_object_new_object(),
                       *details = json_object_new_object();
    const char *text = NULL;
    if (obj != NULL && checks != NULL && details != NULL) {
        check_add(checks, details, "store", health.read, health.read_error);
        check_add(checks, details, "store_writes", health.write, health.write_error);
        if (!serving)
            check_add(checks, details, "cluster", SHM_ERROR,
                      "not serving: this node cannot vouch for the cluster's state");
        json_object_object_add(obj, "status", json_object_new_string(rc == SHM_OK ? "ok" : "error"));
        json_object_object_add(obj, "checks", json_object_get(checks));
        json_object_object_add(obj, "details", json_object_get(details));
        text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE);
    }
    if (text == NULL)
        http_reply_error(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "out of memory");
    else
        http_reply_json(req, rc == SHM_OK ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE, text);
    json_object_put(checks);
    json_object_put(details);
    json_object_put(obj);
}

/* Dockerflow's /__lbheartbeat__: liveness only, except that a node draining for QUIT says 503
 * so that balancers stop sending to it (a reload's replaced workers accept nothing: the new
 * ones answer). */
static void lbheartbeat(struct worker *w, struct http_req *req)
{
    if (w->quitting)
        http_reply_json(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "{\"status\":\"draining\"}");
    else
        http_reply_json(req, HTTP_STATUS_OK, "{}");
}

/* Dockerflow's /__version__: source_url (the build's SOURCE_URL unless configured), and what
 * this build is. */
static void version(struct worker *w, struct http_req *req)
{
    struct json_object *obj = json_object_new_object();
    const char *text = NULL;
    if (obj != NULL &&
        json_object_object_add(obj, "source", json_object_new_string(w->cfg->source_url)) == 0 &&
        json_object_object_add(obj, "version", json_object_new_string(PRESENCED_VERSION)) == 0 &&
        json_object_object_add(obj, "commit", json_object_new_string(PRESENCED_COMMIT)) == 0 &&
        json_object_object_add(obj, "build", json_object_new_string(PRESENCED_BUILD)) == 0)
        text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE);
    if (text == NULL)
        http_reply_error(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "out of memory");
    else
        http_reply_json(req, HTTP_STATUS_OK, text);
    json_object_put(obj);
}

/* GET /vapid: the VAPID public key, the applicationServerKey browsers subscribe with (SPEC.md
 * §7) — read by the app's pages, on their own origin, before they subscribe (and a public key:
 * any origin may read it). */
static void vapid(struct worker *w, struct http_req *req)
{
    const char *key = push_public_key(w);
    http_allow_any_origin(req);
    if (key == NULL) {
        http_reply_error(req, HTTP_STATUS_NOT_FOUND, "Web Push is not enabled (no vapid_key)");
        return;
    }
    char body[160];
    snprintf(body, sizeof body, "{\"publicKey\":\"%s\"}", key);
    http_reply_json(req, HTTP_STATUS_OK, body);
}

/* Health checks answer any method that reads; the rest goes to the web handlers. */
static void request_route(struct worker *w, struct http_req *req)
{
    bool reads = req->method == HTTP_GET || req->method == HTTP_HEAD;
    if (reads && strcmp(req->uri, "/__heartbeat__") == 0)
        heartbeat(w, req);
    else if (reads && strcmp(req->uri, "/__lbheartbeat__") == 0)
        lbheartbeat(w, req);
    else if (reads && strcmp(req->uri, "/__version__") == 0)
        version(w, req);
    else if (reads && strcmp(req->uri, "/vapid") == 0)
        vapid(w, req);
    else if (strcmp(req->uri, "/__heartbeat__") == 0 || strcmp(req->uri, "/__lbheartbeat__") == 0 ||
             strcmp(req->uri, "/__version__") == 0 || strcmp(req->uri, "/vapid") == 0)
        http_reply_error(req, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed");
    else if (strcmp(req->uri, "/presence") == 0)
        http_reply_error(req, HTTP_STATUS_BAD_REQUEST, "this is a WebSocket endpoint");
    else if (req->method == HTTP_OTHER)
        http_reply_error(req, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed");
    else
        web_route(w, req);
}

static enum http_method method_of(struct lws *wsi)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
        return HTTP_GET;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0)
        return HTTP_HEAD;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0)
        return HTTP_POST;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI) > 0)
        return HTTP_DELETE;
    return HTTP_OTHER;
}

static void request_reset(struct http_conn *conn)
{
    struct http_req *req = conn->req;
    if (req == NULL)
        return;
    if (req->async != NULL && req->async_cancel != NULL)
        req->async_cancel(req->async);
    web_shared_cancel(req);
    free(req->body);
    free(req->response.body);
    free(req);
    conn->req = NULL;
}

static int request_start(struct worker *w, struct http_conn *conn, struct lws *wsi, const char *uri)
{
    request_reset(conn);
    conn->kind = CONN_HTTP;
    struct http_req *req = conn->req = calloc(1, sizeof *req);
    if (req == NULL)
        return -1;
    req->wsi = wsi;
    req->method = method_of(wsi);
    req->route = meter_route_of(uri);
    req->started_us = histogram_now_us();
    w->info.http_requests_total++;
    if (strlen(uri) >= sizeof req->uri) {
        http_reply_error(req, HTTP_STATUS_REQ_URI_TOO_LONG, "URI too long");
        return 0;
    }
    snprintf(req->uri, sizeof req->uri, "%s", uri);
    if (req->method != HTTP_POST) /* a POST is routed once its body is in */
        request_route(w, req);
    return 0;
}

static void body_add(struct http_req *req, const char *in, size_t len)
{
    if (len == 0)
        return;
    if (req->body_too_big || req->body_len + len > HTTP_BODY_MAX) {
        req->body_too_big = true;
        return;
    }
    char *grown = realloc(req->body, req->body_len + len + 1);
    if (grown == NULL) {
        req->body_too_big = true;
        return;
    }
    req->body = grown;
    memcpy(req->body + req->body_len, in, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
}

void http_destroy(void *user)
{
    struct http_conn *conn = user;
    if (conn != NULL && conn->kind == CONN_HTTP)
        request_reset(conn);
}

/* Writes the response and ends the request; the connection may carry the next one. */
static int request_finish(struct worker *w, struct http_conn *conn)
{
    struct lws *wsi = conn->req->wsi;
    /* Counted before the answer goes: a client that waits for it cannot have sent a byte of
     * its next request yet. (One that pipelines may have: lws takes that request up on its
     * next turn, and only a drain falling in between would take the connection for idle.) */
    uint64_t bytes_in = tcp_bytes_received(lws_get_socket_fd(wsi));
    int rc = response_write(w, conn->req);
    meter_http_done(&w->info.meter, conn->req->route, conn->req->response.status,
                    conn->req->started_us);
    request_reset(conn);
    if (rc != 0 || lws_http_transaction_completed(wsi))
        return -1;
    /* lws gives the connection fresh user data for its next request, unless the answer is
     * still going out (it completes the transaction later: that connection is never taken
     * for idle). */
    struct http_conn *next = lws_wsi_user(wsi);
    if (next != NULL && next->kind == CONN_NONE) {
        next->kind = CONN_HTTP;
        next->kept_alive = true;
        next->bytes_in = bytes_in;
    }
    return 0;
}

/* Idle: between two requests, nothing left to send, not a byte received since the last
 * answer. A request still on the wire as it closes is the keep-alive race every HTTP server
 * has; the client retries it (RFC 9112 9.3.1), as it would after an idle timeout. */
static bool keepalive_idle(struct lws *wsi, const struct http_conn *conn)
{
    return conn != NULL && conn->kind == CONN_HTTP && conn->kept_alive && conn->req == NULL &&
           conn->bytes_in != 0 && tcp_bytes_received(lws_get_socket_fd(wsi)) == conn->bytes_in &&
           !lws_send_pipe_choked(wsi);
}

void http_drain_idle(struct worker *w)
{
    const struct lws_protocols *protocol =
        w->vhost ? lws_vhost_name_to_protocol(w->vhost, "presence") : NULL;
    if (protocol != NULL)
        lws_callback_all_protocol_vhost_args(w->vhost, protocol, HTTP_CALLBACK_DRAIN_IDLE, NULL, 0);
    /* The closes are lws timers due now; called outside its service, lws runs them once woken
     * (on libuv it looks at its timers only after some I/O of its own). */
    lws_cancel_service(w->lws);
}

static void drain_visit(struct lws *wsi, const struct http_conn *conn)
{
    if (keepalive_idle(wsi, conn))
        lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_KEEPALIVE_IDLE, LWS_TO_KILL_ASYNC);
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct worker *w = worker_of(wsi);
    struct http_conn *conn = user;
    if ((int)reason == HTTP_CALLBACK_DRAIN_IDLE) {
        drain_visit(wsi, conn);
        return 0;
    }
    /* A connection closed before its first request (browsers open spare ones) has no user
     * data yet. */
    if (conn == NULL)
        return reason == LWS_CALLBACK_HTTP ? -1 : 0;
    if (reason == LWS_CALLBACK_HTTP)
        return request_start(w, conn, wsi, in);
    if (reason == LWS_CALLBACK_CLOSED_HTTP) {
        request_reset(conn);
        return 0;
    }
    struct http_req *req = conn->req;
    if (req == NULL)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_HTTP_BODY:
        body_add(req, in, len);
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (req->body_too_big)
            http_reply_error(req, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "request body too large");
        else
            request_route(w, req);
        /* Handlers copy what they keep: the body can go now. */
        free(req->body);
        req->body = NULL;
        req->body_len = 0;
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return req->responding && req->held == NULL ? request_finish(w, conn) : 0;
    default:
        return 0;
    }
}

int http_upgrade_refuse(struct lws *wsi)
{
    /* During the handshake lws would answer in HTTP/1.0 with an HTML page; this is the same
     * JSON 404 as any unknown path. */
    static const char body[] = "{\"error\":\"not found\"}";
    unsigned char out[LWS_PRE + 256];
    int n = snprintf((char *)out + LWS_PRE, sizeof out - LWS_PRE,
                     "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                     "content-length: %zu\r\nconnection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP);
    return 1;
}
