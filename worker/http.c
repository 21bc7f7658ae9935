/* http: the plain HTTP requests of the public port — Dockerflow health and version. */
#include "worker_internal.h"

#include "../common/version.h"

#include <stdio.h>
#include <string.h>

#define HTTP_HEADERS_MAX 1024
#define NOT_FOUND_BODY "{\"error\":\"not found\"}"

/* Sends a complete response. Returns what the lws callback returns. */
static int http_respond(struct lws *wsi, unsigned status, const char *content_type,
                        const char *body)
{
    size_t body_len = strlen(body);
    unsigned char headers[LWS_PRE + HTTP_HEADERS_MAX];
    unsigned char *start = headers + LWS_PRE, *p = start, *end = headers + sizeof headers - 1;
    if (lws_add_http_common_headers(wsi, status, content_type, body_len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
                                    (const unsigned char *)"nosniff", 7, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0) /* HEAD: the headers only */
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    unsigned char out[LWS_PRE + 2048];
    if (body_len > sizeof out - LWS_PRE)
        return 1;
    memcpy(out + LWS_PRE, body, body_len);
    if (lws_write(wsi, out + LWS_PRE, body_len, LWS_WRITE_HTTP_FINAL) != (int)body_len)
        return 1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int heartbeat(struct lws *wsi)
{
    struct worker *w = worker_of(wsi);
    bool store_ok = shm_store_probe(w->store) == SHM_OK;
    if (store_ok)
        return http_respond(wsi, HTTP_STATUS_OK, "application/json",
                            "{\"status\":\"ok\",\"checks\":{\"store\":\"ok\"},\"details\":{}}");
    return http_respond(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, "application/json",
                        "{\"status\":\"error\",\"checks\":{\"store\":\"error\"},"
                        "\"details\":{\"store\":\"the store cannot be read or written\"}}");
}

static int version(struct lws *wsi)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"source\":\"%s\",\"version\":\"%s\",\"commit\":\"%s\",\"build\":\"%s\"}",
             PRESENCED_SOURCE, PRESENCED_VERSION, PRESENCED_COMMIT, PRESENCED_BUILD);
    return http_respond(wsi, HTTP_STATUS_OK, "application/json", body);
}

int http_request(struct lws *wsi, const char *uri)
{
    struct worker *w = worker_of(wsi);
    w->info.http_requests_total++;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0 &&
        lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) <= 0)
        return http_respond(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "application/json",
                            "{\"error\":\"method not allowed\"}");
    if (strcmp(uri, "/__heartbeat__") == 0)
        return heartbeat(wsi);
    if (strcmp(uri, "/__lbheartbeat__") == 0)
        return http_respond(wsi, HTTP_STATUS_OK, "application/json", "{}");
    if (strcmp(uri, "/__version__") == 0)
        return version(wsi);
    if (strcmp(uri, "/presence") == 0)
        return http_respond(wsi, HTTP_STATUS_BAD_REQUEST, "application/json",
                            "{\"error\":\"this is a WebSocket endpoint\"}");
    return http_respond(wsi, HTTP_STATUS_NOT_FOUND, "application/json", NOT_FOUND_BODY);
}

int http_upgrade_refuse(struct lws *wsi)
{
    /* During the handshake lws would answer in HTTP/1.0 with an HTML page; this is the same
     * JSON 404 as any unknown path. */
    unsigned char out[LWS_PRE + 256];
    int n = snprintf((char *)out + LWS_PRE, sizeof out - LWS_PRE,
                     "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                     "content-length: %zu\r\nconnection: close\r\n\r\n%s",
                     sizeof NOT_FOUND_BODY - 1, NOT_FOUND_BODY);
    lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP);
    return 1;
}
