/* http_req: one HTTP request on the public port — its state while its body arrives or an answer
 * is awaited (an assertion, a domain's key), and the response helpers the web handlers use. */
#ifndef PRESENCED_HTTP_REQ_H
#define PRESENCED_HTTP_REQ_H

#include "../worker_internal.h"

#include "../../common/html.h"
#include "../../shm/web_session.h"

#include <stdbool.h>
#include <stddef.h>

#define HTTP_URI_MAX 512
#define HTTP_BODY_MAX 32768

enum http_method { HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_DELETE, HTTP_OTHER };

struct http_response {
    unsigned status;
    const char *content_type;
    char *body; /* malloc'd */
    size_t len;
    char location[2048]; /* "" or the Location of a redirect */
    char set_cookie[2][256];
    bool any_origin; /* Access-Control-Allow-Origin: * (a public resource any page may read) */
};

struct http_async; /* a handler's pending work; cancelled when the connection goes */

struct http_req {
    enum http_method method;
    char uri[HTTP_URI_MAX];
    char *body;
    size_t body_len;
    bool body_too_big;
    bool has_session;
    unsigned char session_hash[SHM_WEB_HASH_LEN];
    struct shm_web_session session;
    struct http_async *async;
    void (*async_cancel)(struct http_async *);
    struct shared_wait *held; /* a cluster node: the answer waits for the engine (web_shared.c) */
    bool fetched;             /* and a record the views missed was fetched for it */
    bool responding;        /* a response is prepared and waits for the socket */
    enum meter_route route; /* for the meter: what the path serves, and when it was read */
    int64_t started_us;
    struct http_response response;
    struct lws *wsi;
};

/* Prepares the response (taking body), then asks lws for a chance to write it. */
void http_reply(struct http_req *req, unsigned status, const char *content_type, char *body,
                size_t len);
void http_reply_html(struct http_req *req, unsigned status, struct html *page);
/* {"error":"text"} with status. */
void http_reply_error(struct http_req *req, unsigned status, const char *text);
void http_reply_json(struct http_req *req, unsigned status, const char *json);
/* 303 See Other to location. */
void http_redirect(struct http_req *req, const char *location);
/* Adds a Set-Cookie header to the response being prepared (call before http_reply*). */
void http_set_cookie(struct http_req *req, const char *cookie);

/* Lets a page of any origin read the response (CORS), for what is public and needs no
 * credentials. */
void http_allow_any_origin(struct http_req *req);

/* A handler that answers later registers its pending work and how to cancel it. */
void http_defer(struct http_req *req, struct http_async *async,
                void (*cancel)(struct http_async *));
/* The work is done (its handler replied, or is about to). */
void http_undefer(struct http_req *req);

/* web_shared.c (a node of a cluster): an answer prepared after writes of shared records waits
 * for the engine to have them (true: held; it goes once they are in, or becomes a 409/503
 * page); a request whose record the views miss is routed again once it is fetched (true:
 * deferred; false: not a cluster, or fetched already). */
struct shared_wait;
bool web_shared_hold(struct worker *w, struct http_req *req);
void web_shared_cancel(struct http_req *req);
bool web_shared_fetch(struct worker *w, struct http_req *req, const char *bucket, const char *key);
/* The same for several records: ask for each (false: not a cluster, or fetched already), then
 * wait once (true: deferred). */
bool web_shared_fetch_ask(struct worker *w, struct http_req *req, const char *bucket,
                          const char *key);
bool web_shared_fetch_wait(struct worker *w, struct http_req *req);

/* The value of cookie name into out; false when absent. */
bool http_cookie(struct http_req *req, const char *name, char *out, size_t cap);
/* The query parameter name (lws decoded it) into out; false when absent. */
bool http_query(struct http_req *req, const char *name, char *out, size_t cap);
bool http_is_tls(struct http_req *req);

/* web.c: every request that is not a health check. */
void web_route(struct worker *w, struct http_req *req);

#endif
