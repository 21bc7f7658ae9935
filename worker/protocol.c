/* protocol: the one lws protocol of the port, routing HTTP requests and WebSocket channels. */
#include "worker_internal.h"

#include <string.h>

#define APPSERVICE_PREFIX "/myapps/"
#define APPID_LEN 36

bool websocket_is_appservice(struct lws *wsi)
{
    char uri[128];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
        return false;
    return strncmp(uri, APPSERVICE_PREFIX, strlen(APPSERVICE_PREFIX)) == 0 &&
           strlen(uri) == strlen(APPSERVICE_PREFIX) + APPID_LEN &&
           strspn(uri + strlen(APPSERVICE_PREFIX), "0123456789abcdef-") == APPID_LEN;
}

/* Only these paths upgrade to WebSocket; anything else is refused during the handshake. */
static bool websocket_path_allowed(struct lws *wsi)
{
    char uri[128];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
        return false;
    return strcmp(uri, "/presence") == 0 || websocket_is_appservice(wsi);
}

int presence_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                               void *in, size_t len)
{
    /* Ours, not lws's: a draining worker visits every connection (http_drain_idle). */
    if ((int)reason == HTTP_CALLBACK_DRAIN_IDLE)
        return http_callback(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
        return http_callback(wsi, reason, user, in, len);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (websocket_path_allowed(wsi))
            return 0;
        return http_upgrade_refuse(wsi);
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
        return lws_setup_tls_context(user); /* the vhost's SSL_CTX */
    case LWS_CALLBACK_WSI_DESTROY: {
        struct worker *w = worker_of(wsi);
        /* Every adopted connection ends here once, whatever became of it. */
        if (lws_get_network_wsi(wsi) == wsi && lws_get_parent(wsi) == NULL)
            acceptor_connection_closed(w);
        http_destroy(user);
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_RECEIVE_PONG:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    case LWS_CALLBACK_CLOSED:
        return device_callback(wsi, reason, user, in, len);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
