/* fetch: HTTP(S) requests of a worker through libcurl's multi interface on the worker's libuv
 * loop, so that no request ever blocks it. */
#include "fetch.h"

#include "../common/list.h"
#include "../common/log.h"
#include "../common/retry_after.h"
#include "../common/version.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct fetch {
    struct list_link link; /* in the fetcher's active list */
    struct fetcher *owner;
    CURL *easy;
    struct curl_slist *headers;
    fetch_done_cb cb;
    void *arg;
    char *body;
    size_t len, max_bytes;
    bool too_big;
    bool not_public; /* the only addresses were private, loopback or link-local */
    int64_t retry_after_s;
    char error[CURL_ERROR_SIZE];
};

struct fetcher {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    bool timer_ready;
    struct curl_slist *connect_to;
    const char *ca_file;
    struct list_link active; /* the fetches under way */
};

/* One per socket curl watches. */
struct fetch_socket {
    uv_poll_t poll;
    curl_socket_t fd;
    struct fetcher *owner;
};

static void fetch_free(struct fetch *x)
{
    curl_multi_remove_handle(x->owner->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    free(x->body);
    free(x);
}

static void finished(CURL *easy, CURLcode code)
{
    struct fetch *x;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    struct fetch_result result = { .transport_ok = code == CURLE_OK,
                                   .too_large = x->too_big,
                                   .body = x->body ? x->body : "",
                                   .len = x->len,
                                   .not_public = x->not_public,
                                   .retry_after_s = x->retry_after_s };
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &result.status);
    curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &result.content_type);
    if (code != CURLE_OK)
        result.error = x->too_big      ? "answer too large"
                       : x->not_public ? "the address is not public"
                       : x->error[0]   ? x->error
                                       : curl_easy_strerror(code);
    list_remove(&x->link);
    fetch_done_cb cb = x->cb;
    void *arg = x->arg;
    cb(arg, &result);
    fetch_free(x);
}

static void done_collect(struct fetcher *f)
{
    CURLMsg *msg;
    int pending;
    while ((msg = curl_multi_info_read(f->multi, &pending)) != NULL)
        if (msg->msg == CURLMSG_DONE)
            finished(msg->easy_handle, msg->data.result);
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    struct fetch_socket *sock = poll->data;
    int flags = status < 0 ? CURL_CSELECT_ERR
                           : ((events & UV_READABLE) ? CURL_CSELECT_IN : 0) |
                                 ((events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0);
    int running;
    struct fetcher *f = sock->owner;
    curl_multi_socket_action(f->multi, sock->fd, flags, &running);
    done_collect(f);
}

static void on_timer(uv_timer_t *timer)
{
    struct fetcher *f = timer->data;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    done_collect(f);
}

static void socket_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static int socket_watch(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct fetcher *f = userp;
    struct fetch_socket *sock = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sock != NULL) {
            uv_poll_stop(&sock->poll);
            uv_close((uv_handle_t *)&sock->poll, socket_closed);
            curl_multi_assign(f->multi, fd, NULL);
        }
        return 0;
    }
    if (sock == NULL) {
        sock = calloc(1, sizeof *sock);
        if (sock == NULL)
            return -1;
        sock->fd = fd;
        sock->owner = f;
        sock->poll.data = sock;
        if (uv_poll_init_socket(f->loop, &sock->poll, fd) != 0) {
            free(sock);
            return -1;
        }
        curl_multi_assign(f->multi, fd, sock);
    }
    int events =
        ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    return uv_poll_start(&sock->poll, events, on_poll) == 0 ? 0 : -1;
}

static int timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct fetcher *f = userp;
    if (timeout_ms < 0)
        return uv_timer_stop(&f->timer);
    return uv_timer_start(&f->timer, on_timer, (uint64_t)timeout_ms, 0);
}

int fetcher_init(struct fetcher **out, uv_loop_t *loop, const struct config *cfg)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    struct fetcher *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    list_init(&f->active);
    f->loop = loop;
    f->ca_file = cfg->ca_file;
    *out = f;
    for (size_t i = 0; i < cfg->connect_to_count; i++) {
        struct curl_slist *grown = curl_slist_append(f->connect_to, cfg->connect_to[i]);
        if (grown == NULL)
            return -1;
        f->connect_to = grown;
    }
    if ((f->multi = curl_multi_init()) == NULL || uv_timer_init(loop, &f->timer) != 0)
        return -1;
    f->timer.data = f;
    f->timer_ready = true;
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_watch);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_set);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    return 0;
}

void fetcher_stop(struct fetcher *f)
{
    if (f == NULL)
        return;
    struct list_link *first;
    while ((first = list_first(&f->active)) != NULL) {
        list_remove(first);
        /* curl's CURL_POLL_REMOVE closes the socket handles */
        fetch_free(LIST_ENTRY(first, struct fetch, link));
    }
    if (f->timer_ready) {
        uv_close((uv_handle_t *)&f->timer, NULL);
        f->timer_ready = false;
    }
}

void fetcher_free(struct fetcher *f)
{
    if (f == NULL)
        return;
    if (f->multi != NULL)
        curl_multi_cleanup(f->multi);
    curl_slist_free_all(f->connect_to);
    free(f);
    curl_global_cleanup();
}

static size_t body_write(char *data, size_t size, size_t count, void *userp)
{
    struct fetch *x = userp;
    size_t n = size * count;
    if (x->len + n > x->max_bytes) {
        x->too_big = true;
        return 0;
    }
    char *grown = realloc(x->body, x->len + n + 1);
    if (grown == NULL)
        return 0;
    x->body = grown;
    memcpy(x->body + x->len, data, n);
    x->len += n;
    x->body[x->len] = '\0';
    return n;
}

/* Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as seconds from now. */
static size_t header_seen(char *data, size_t size, size_t count, void *userp)
{
    struct fetch *x = userp;
    size_t n = size * count;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        int64_t seconds = retry_after_parse(data + sizeof name - 1, n - (sizeof name - 1),
                                            time(NULL));
        if (seconds >= 0)
            x->retry_after_s = seconds;
    }
    return n;
}

/* Whether addr is one a public service may be at: not loopback, private, link-local, CGNAT,
 * multicast or unspecified. */
static bool address_public(const struct sockaddr *addr)
{
    if (addr->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr);
        return !((a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xa9fe ||
                 (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 || (a >> 22) == (100u << 2 | 1) ||
                 (a >> 28) == 0xe || a == 0xffffffffu);
    }
    if (addr->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            struct sockaddr_in v4 = { .sin_family = AF_INET };
            memcpy(&v4.sin_addr, a->s6_addr + 12, 4);
            return address_public((struct sockaddr *)&v4);
        }
        return !(IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) ||
                 IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_SITELOCAL(a) || IN6_IS_ADDR_MULTICAST(a) ||
                 (a->s6_addr[0] & 0xfe) == 0xfc);
    }
    return false;
}

static curl_socket_t socket_open(void *arg, curlsocktype purpose, struct curl_sockaddr *address)
{
    struct fetch *x = arg;
    (void)purpose;
    if (!address_public(&address->addr)) {
        x->not_public = true;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

static bool easy_setup(struct fetcher *f, struct fetch *x, const struct fetch_request *req)
{
    CURL *e = x->easy;
    bool ok = curl_easy_setopt(e, CURLOPT_URL, req->url) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PRIVATE, x) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_write) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEDATA, x) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_seen) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HEADERDATA, x) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->error) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR,
                               req->https_only ? "https" : "http,https") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_USERAGENT, "presenced/" PRESENCED_VERSION) == CURLE_OK;
    if (ok && req->public_only)
        ok = curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, socket_open) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x) == CURLE_OK;
    if (ok && f->ca_file != NULL)
        ok = curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file) == CURLE_OK;
    if (ok && f->connect_to != NULL)
        ok = curl_easy_setopt(e, CURLOPT_CONNECT_TO, f->connect_to) == CURLE_OK;
    x->headers = curl_slist_append(NULL, "Accept: application/json");
    if (ok && req->authorization != NULL && x->headers != NULL) {
        char *header = NULL;
        struct curl_slist *grown = NULL;
        if (asprintf(&header, "Authorization: %s", req->authorization) >= 0)
            grown = curl_slist_append(x->headers, header);
        free(header);
        if (grown != NULL)
            x->headers = grown;
        ok = grown != NULL;
    }
    for (size_t i = 0; ok && x->headers != NULL && req->headers && req->headers[i]; i++) {
        struct curl_slist *grown = curl_slist_append(x->headers, req->headers[i]);
        ok = grown != NULL;
        if (grown != NULL)
            x->headers = grown;
    }
    if (ok && req->bytes != NULL) {
        /* Binary, so its length is given: curl must not look for a NUL. */
        ok = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)req->bytes_len) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->bytes_len ? req->bytes : "") ==
                 CURLE_OK;
    } else if (ok && req->body != NULL) {
        char header[128];
        snprintf(header, sizeof header, "Content-Type: %s", req->content_type);
        struct curl_slist *grown = x->headers ? curl_slist_append(x->headers, header) : NULL;
        if (grown != NULL)
            x->headers = grown;
        ok = grown != NULL && curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body) == CURLE_OK;
    }
    return ok && x->headers != NULL &&
           curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers) == CURLE_OK;
}

struct fetch *fetch_start(struct fetcher *f, const struct fetch_request *req, fetch_done_cb cb,
                          void *arg)
{
    struct fetch *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->owner = f;
    x->cb = cb;
    x->arg = arg;
    x->max_bytes = req->max_bytes;
    x->retry_after_s = -1;
    x->easy = curl_easy_init();
    if (x->easy == NULL || !easy_setup(f, x, req) ||
        curl_multi_add_handle(f->multi, x->easy) != CURLM_OK) {
        log_warning("cannot start a request to %s", req->url);
        fetch_free(x);
        return NULL;
    }
    list_push_front(&f->active, &x->link);
    return x;
}

void fetch_cancel(struct fetch *x)
{
    list_remove(&x->link);
    fetch_free(x);
}
