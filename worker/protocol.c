/* protocol: the one lws protocol of the port, routing HTTP requests and WebSocket channels — and
 * the one place that says which channel serves which path (SPEC.md §2, §5). */
#include "worker_internal.h"

#include "appservice/appservice.h"
#include "device/device_session.h"
#include "session/session.h"

#include <string.h>

#define APPSERVICE_PREFIX "/myapps/"
#define APPID_LEN 36

/* Every channel, for their per-worker start and stop and the size of their sessions. */
static const struct channel *const channels[] = { &device_channel, &appservice_channel };
#define CHANNEL_COUNT (sizeof channels / sizeof channels[0])

static bool path_is_appservice(const char *uri)
{
    return strncmp(uri, APPSERVICE_PREFIX, strlen(APPSERVICE_PREFIX)) == 0 &&
           strlen(uri) == strlen(APPSERVICE_PREFIX) + APPID_LEN &&
           strspn(uri + strlen(APPSERVICE_PREFIX), "0123456789abcdef-") == APPID_LEN;
}

/* The channel of a WebSocket's path; NULL for a path that has none (refused during the
 * handshake). */
static const struct channel *channel_of(struct lws *wsi)
{
    char uri[128];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
        return NULL;
    if (strcmp(uri, "/presence") == 0)
        return &device_channel;
    if (path_is_appservice(uri))
        return &appservice_channel;
    return NULL;
}

size_t protocol_session_size(void)
{
    size_t size = http_req_size();
    for (size_t i = 0; i < CHANNEL_COUNT; i++)
        if (channels[i]->session_size > size)
            size = channels[i]->session_size;
    return size;
}

int protocol_channels_start(struct worker *w)
{
    for (size_t i = 0; i < CHANNEL_COUNT; i++)
        if (channels[i]->start != NULL && channels[i]->start(w) != 0)
            return -1;
    return 0;
}

void protocol_channels_before_commit(struct worker *w)
{
    for (size_t i = 0; i < CHANNEL_COUNT; i++)
        if (channels[i]->before_commit != NULL)
            channels[i]->before_commit(w);
}

void protocol_channels_stop(struct worker *w)
{
    for (size_t i = 0; i < CHANNEL_COUNT; i++)
        if (channels[i]->stop != NULL)
            channels[i]->stop(w);
}

void protocol_channels_free(struct worker *w)
{
    for (size_t i = 0; i < CHANNEL_COUNT; i++)
        if (channels[i]->free != NULL)
            channels[i]->free(w);
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
        /* Only these paths upgrade to WebSocket; anything else is refused here. */
        if (channel_of(wsi) != NULL)
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
    case LWS_CALLBACK_ESTABLISHED: {
        const struct channel *channel = channel_of(wsi);
        if (channel == NULL)
            return -1; /* the path was checked at the handshake: headers gone */
        return session_established(worker_of(wsi), user, wsi, channel);
    }
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_RECEIVE_PONG:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    case LWS_CALLBACK_CLOSED:
        return session_callback(wsi, reason, user, in, len);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
