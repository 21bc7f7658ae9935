/* lws_setup: the libwebsockets context of a worker, on the worker's libuv loop. */
#include "worker_internal.h"

#include "../common/clock.h"
#include "../common/log.h"

#include <openssl/ssl.h>
#include <string.h>

/* Small buffers keep an idle WebSocket near 2 KB (each connection keeps one this size): a status
 * update fits (about 60 bytes); longer messages, such as the first with its assertion, come in
 * pieces the device channel reassembles, up to max_message_size. 128 rather than 256 took 146 B
 * off each idle connection. */
#define RX_BUFFER_SIZE 128
/* Without it lws sends at most RX_BUFFER_SIZE per send() and waits a loop turn for the rest. */
#define TX_PACKET_SIZE 65536

static struct lws_protocols protocols[] = {
    { "presence", presence_protocol_callback, 0, RX_BUFFER_SIZE, 0, NULL, TX_PACKET_SIZE },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* lws reports some client mistakes (oversized headers) as errors: a client could flood the
 * log, so at most LWS_LOG_PER_SECOND of its lines pass each second. */
#define LWS_LOG_PER_SECOND 10

static struct {
    int64_t second;
    unsigned lines, dropped;
} lws_log_budget;

static void lws_log_to_ours(int level, const char *line)
{
    int64_t second = clock_mono_ms() / 1000;
    if (second != lws_log_budget.second) {
        if (lws_log_budget.dropped > 0)
            log_warning("lws: %u more messages were not logged", lws_log_budget.dropped);
        lws_log_budget.second = second;
        lws_log_budget.lines = lws_log_budget.dropped = 0;
    }
    if (++lws_log_budget.lines > LWS_LOG_PER_SECOND) {
        lws_log_budget.dropped++;
        return;
    }
    size_t len = strlen(line);
    while (len > 0 && line[len - 1] == '\n')
        len--;
    log_msg(level == LLL_ERR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING, "lws: %.*s", (int)len, line);
}

/* lws's own keep-alive ("validity") timers sit in one sorted list per thread: each insertion
 * walks it, so 30,000 WebSockets cost 30,000 steps per connection and per pong. They are off
 * (a zero hang-up time) and worker/session/keepalive.c pings instead. */
static const lws_retry_bo_t no_validity_timers = { .secs_since_valid_hangup = 0 };

/* What an idle TLS connection keeps (OpenSSL 3.0, measured by bench/tls_probe): lws already sets
 * SSL_MODE_RELEASE_BUFFERS, so the record buffers go back once a record is read or written.
 * Left are the SSL object itself (7.6 KB, OpenSSL's fixed per-connection structure), the record
 * ciphers of both directions (1.9 KB), the session (0.9 KB), the certificate's copy and some
 * thirty small pieces: 13.9 KB, 14.4 KB with malloc's headers, that no setting takes back while
 * the connection is open. A server session cache would also keep each TLS 1.2 client's session
 * after it left (up to 20,480 a worker): it is off, and resumption is by session ticket, which
 * holds nothing on the server; one ticket, not OpenSSL's two, since a device reconnects once at
 * a time (each ticket is an encryption in the handshake). */
int lws_setup_tls_context(void *ssl_ctx)
{
    SSL_CTX *ctx = ssl_ctx;
    if (ctx == NULL)
        return 0;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_num_tickets(ctx, 1) != 1) {
        log_error("cannot set the number of TLS session tickets");
        return -1;
    }
    return 0;
}

static int vhost_create(struct worker *w)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.vhost_name = "presenced";
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.retry_and_idle_policy = &no_validity_timers;
    info.keepalive_timeout = 5;
    info.timeout_secs = 10;
    info.server_string = "presenced";
    if (w->cfg->tls_cert != NULL) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = w->cfg->tls_cert;
        info.ssl_private_key_filepath = w->cfg->tls_key;
    }
    w->vhost = lws_create_vhost(w->lws, &info);
    if (w->vhost == NULL) {
        log_error("cannot create the server%s",
                  w->cfg->tls_cert ? " (check tls_cert and tls_key)" : "");
        return -1;
    }
    return 0;
}

int lws_setup(struct worker *w)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_ours);
    /* One allocation per connection serves its HTTP requests or its WebSocket session. */
    protocols[0].per_session_data_size = protocol_session_size();
    struct lws_context_creation_info info;
    void *loops[1] = { &w->loop };
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    /* EXPLICIT_VHOSTS: the vhost is created apart, so its failure (a bad certificate) shows;
     * with libuv the context itself can come back non-NULL after one. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (w->cfg->tls_cert != NULL)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = loops;
    info.user = w;
    info.count_threads = 1;
    w->lws = lws_create_context(&info);
    if (w->lws == NULL) {
        log_error("cannot create the libwebsockets context");
        return -1;
    }
    return vhost_create(w);
}

void lws_teardown(struct worker *w)
{
    if (w->lws != NULL)
        lws_context_destroy(w->lws);
    w->vhost = NULL;
}

void lws_teardown_finish(struct worker *w)
{
    /* On a foreign loop the first destroy only closes lws's handles; once the loop has run
     * their close callbacks, a second call frees the context. */
    if (w->lws != NULL)
        lws_context_destroy(w->lws);
    w->lws = NULL;
}
