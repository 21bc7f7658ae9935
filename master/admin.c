/* admin: the master's HTTP endpoint on admin_listen — /status (JSON), /metrics (Prometheus),
 * /drain, and the routes of admin_users.c and admin_apps.c. Loopback only by default. */
#include "admin.h"

#include "admin_apps.h"
#include "admin_reply.h"
#include "admin_users.h"

#include "master.h"
#include "metrics.h"

#include "../common/addr.h"
#include "../common/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct admin {
    struct master *m;
    struct evhttp *http;
};

static void reply(struct evhttp_request *req, int code, const char *type, struct evbuffer *body)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", type);
    evhttp_add_header(headers, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", body);
}

static void drain_answered(struct evhttp_request *req, void *arg)
{
    (void)req;
    master_quit(arg);
}

/* POST /drain: a graceful stop, as QUIT — begun once the answer is written, so that the caller
 * hears it before the master goes (at most drain_grace + drain_timeout later). */
static void drain(struct master *m, struct evhttp_request *req)
{
    bool already = m->state != MASTER_RUNNING;
    struct json_object *o = json_object_new_object();
    if (o == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    json_object_object_add(o, "state", json_object_new_string(already ? "stopping" : "draining"));
    json_object_object_add(o, "already", json_object_new_boolean(already));
    json_object_object_add(o, "workers", json_object_new_int((int)workers_alive(m)));
    json_object_object_add(o, "drain_grace_ms", json_object_new_int64(m->cfg.drain_grace_ms));
    json_object_object_add(o, "drain_timeout_ms", json_object_new_int64(m->cfg.drain_timeout_ms));
    if (!already) {
        log_notice("admin: drain requested");
        evhttp_request_set_on_complete_cb(req, drain_answered, m);
    }
    admin_reply_json(req, 202, o);
    json_object_put(o);
}

static void route(struct evhttp_request *req, void *arg)
{
    struct admin *admin = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL) {
        admin_reply_error(req, 400, "bad request");
        return;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (strncmp(path, "/users/", 7) == 0) {
        admin_users_route(admin->m, req, path);
        return;
    }
    if (strcmp(path, "/apps") == 0 || strncmp(path, "/apps/", 6) == 0) {
        admin_apps_route(admin->m, req, path);
        return;
    }
    if (strcmp(path, "/drain") == 0) {
        if (method == EVHTTP_REQ_POST)
            drain(admin->m, req);
        else
            admin_reply_error(req, 405, "method not allowed: POST /drain");
        return;
    }
    bool known = strcmp(path, "/status") == 0 || strcmp(path, "/metrics") == 0;
    if (!known) {
        admin_reply_error(req, 404, "not found");
        return;
    }
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        admin_reply_error(req, 405, "method not allowed");
        return;
    }
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (strcmp(path, "/status") == 0 && metrics_status_json(admin->m, body) == 0)
        reply(req, 200, "application/json", body);
    else if (strcmp(path, "/metrics") == 0 && metrics_prometheus(admin->m, body) == 0)
        reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", body);
    else
        admin_reply_error(req, 500, "the store cannot be read");
    evbuffer_free(body);
}

static int admin_bind(struct admin *admin, const char *listen)
{
    struct listen_addr addr;
    const char *reason;
    if (addr_parse(listen, &addr, &reason) != 0) {
        log_error("admin_listen %s: %s", listen, reason);
        return -1;
    }
    struct evhttp *http = evhttp_new(admin->m->base);
    if (http == NULL)
        return -1;
    char host[80];
    addr_format(&addr, host, sizeof host);
    /* evhttp wants the host without brackets or port. */
    char *colon = strrchr(host, ':');
    *colon = '\0';
    const char *bare = host[0] == '[' ? host + 1 : host;
    if (host[0] == '[')
        host[strlen(host) - 1] = '\0';
    uint16_t port =
        ntohs(addr.ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr.ss)->sin6_port
                                            : ((struct sockaddr_in *)&addr.ss)->sin_port);
    if (evhttp_bind_socket(http, bare, port) != 0) {
        log_error("admin_listen %s: cannot listen", listen);
        evhttp_free(http);
        return -1;
    }
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_PUT);
    evhttp_set_max_body_size(http, 64 * 1024);
    evhttp_set_max_headers_size(http, 16 * 1024); /* else libevent buffers any amount */
    evhttp_set_timeout(http, 10);
    evhttp_set_gencb(http, route, admin);
    if (admin->http != NULL)
        evhttp_free(admin->http);
    admin->http = http;
    return 0;
}

int admin_open(struct admin **out, struct master *m)
{
    struct admin *admin = calloc(1, sizeof *admin);
    if (admin == NULL)
        return -1;
    admin->m = m;
    if (strcmp(m->cfg.admin_listen, "off") != 0 && admin_bind(admin, m->cfg.admin_listen) != 0) {
        free(admin);
        return -1;
    }
    *out = admin;
    return 0;
}

int admin_reconfigure(struct admin *admin, const struct config *old, const struct config *next)
{
    if (strcmp(old->admin_listen, next->admin_listen) == 0)
        return 0;
    if (strcmp(next->admin_listen, "off") == 0) {
        if (admin->http != NULL)
            evhttp_free(admin->http);
        admin->http = NULL;
        return 0;
    }
    if (admin->http != NULL) {
        /* The same port may be requested on another address: free the old socket first. */
        evhttp_free(admin->http);
        admin->http = NULL;
    }
    if (admin_bind(admin, next->admin_listen) == 0)
        return 0;
    if (strcmp(old->admin_listen, "off") != 0)
        admin_bind(admin, old->admin_listen);
    return -1;
}

void admin_free(struct admin *admin)
{
    if (admin == NULL)
        return;
    if (admin->http != NULL)
        evhttp_free(admin->http);
    free(admin);
}
