/* ws_client: a minimal non-blocking WebSocket client for the load generator — connect from a
 * chosen source address, handshake, masked text frames out, frames in, pongs. */
#include "ws_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int buf_add(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n > *cap) {
        size_t grown = *cap ? *cap : 256;
        while (grown < *len + n)
            grown *= 2;
        char *p = realloc(*buf, grown);
        if (p == NULL)
            return -1;
        *buf = p;
        *cap = grown;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

static int out_add(struct ws_conn *c, const void *data, size_t n)
{
    return buf_add(&c->out, &c->out_len, &c->out_cap, data, n);
}

/* The client context of wss connections; NULL for ws. */
static SSL_CTX *tls_ctx;

int ws_tls_enable(void)
{
    if (tls_ctx != NULL)
        return 0;
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (tls_ctx == NULL)
        return -1;
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    /* A load generator's own memory matters too: buffers go when idle, no session cache. */
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
    return 0;
}

/* send() or SSL_write(): bytes taken, 0 when the socket takes nothing now, -1 on failure. */
static ssize_t io_send(struct ws_conn *c, const char *data, size_t len)
{
    if (c->ssl == NULL) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        return n >= 0 ? n : errno == EAGAIN ? 0 : -1;
    }
    int n = SSL_write(c->ssl, data, (int)len);
    if (n > 0)
        return n;
    int err = SSL_get_error(c->ssl, n);
    return err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ ? 0 : -1;
}

/* recv() or SSL_read(): bytes read, 0 when nothing is there now, -1 at the end or on failure. */
static ssize_t io_recv(struct ws_conn *c, char *buf, size_t len)
{
    if (c->ssl == NULL) {
        ssize_t n = recv(c->fd, buf, len, 0);
        return n > 0 ? n : n < 0 && errno == EAGAIN ? 0 : -1;
    }
    int n = SSL_read(c->ssl, buf, (int)len);
    if (n > 0)
        return n;
    int err = SSL_get_error(c->ssl, n);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* One step of the TLS handshake: 0 (done, or waiting for the socket), -1 when it failed. */
static int tls_step(struct ws_conn *c)
{
    ERR_clear_error();
    int n = SSL_do_handshake(c->ssl);
    if (n == 1) {
        c->state = WS_HANDSHAKE;
        c->tls_wants_write = false;
        return 0;
    }
    int err = SSL_get_error(c->ssl, n);
    c->tls_wants_write = err == SSL_ERROR_WANT_WRITE;
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

int ws_connect(struct ws_conn *c, struct ws_source *src, const char *dst, int port,
               const char *path)
{
    return ws_connect_protocol(c, src, dst, port, path, NULL);
}

#define SOURCE_PORT_FIRST 10000
#define SOURCE_PORT_LAST 60999

/* Binds to the source's next free port (connections close with a reset, so ports come free at
 * once and the cursor can wrap). */
static int source_bind(int fd, struct ws_source *src)
{
    struct sockaddr_in from = { .sin_family = AF_INET };
    if (inet_pton(AF_INET, src->addr, &from.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    for (int tries = 0; tries <= SOURCE_PORT_LAST - SOURCE_PORT_FIRST; tries++) {
        if (src->next_port < SOURCE_PORT_FIRST || src->next_port > SOURCE_PORT_LAST)
            src->next_port = SOURCE_PORT_FIRST;
        from.sin_port = htons(src->next_port++);
        if (bind(fd, (struct sockaddr *)&from, sizeof from) == 0)
            return 0;
        if (errno != EADDRINUSE)
            return -1;
    }
    return -1;
}

int ws_connect_protocol(struct ws_conn *c, struct ws_source *src, const char *dst, int port,
                        const char *path, const char *protocol)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (src != NULL && source_bind(c->fd, src) != 0)
        goto fail;
    inet_pton(AF_INET, dst, &addr.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0 && errno != EINPROGRESS)
        goto fail;
    char request[512];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     path, dst, port, protocol ? "Sec-WebSocket-Protocol: " : "",
                     protocol ? protocol : "", protocol ? "\r\n" : "");
    if (out_add(c, request, (size_t)n) != 0)
        goto fail;
    if (tls_ctx != NULL) {
        c->ssl = SSL_new(tls_ctx);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
            goto fail;
        SSL_set_connect_state(c->ssl);
    }
    c->state = WS_CONNECTING;
    return 0;
fail:
    SSL_free(c->ssl);
    c->ssl = NULL;
    free(c->out);
    c->out = NULL;
    close(c->fd);
    c->fd = -1;
    return -1;
}

static int frame_queue(struct ws_conn *c, unsigned opcode, const char *data, size_t len)
{
    unsigned char head[14];
    size_t h = 0;
    head[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        head[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        head[h++] = 0x80 | 126;
        head[h++] = (unsigned char)(len >> 8);
        head[h++] = (unsigned char)len;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            head[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    /* A zero mask: the frame is masked as the protocol requires, at no cost. */
    memset(head + h, 0, 4);
    h += 4;
    return out_add(c, head, h) == 0 && out_add(c, data, len) == 0 ? 0 : -1;
}

/* Writes at once what the socket takes: waiting for the next epoll turn would add its timeout
 * to every latency measured. A failure shows at the next read or flush. */
static int frame_send(struct ws_conn *c, int opcode, const void *data, size_t len)
{
    if (frame_queue(c, opcode, data, len) != 0)
        return -1;
    if (c->state == WS_OPEN)
        (void)ws_flush(c);
    return 0;
}

int ws_send_text(struct ws_conn *c, const char *text, size_t len)
{
    return frame_send(c, 1, text, len);
}

int ws_send_binary(struct ws_conn *c, const void *data, size_t len)
{
    return frame_send(c, 2, data, len);
}

bool ws_wants_write(const struct ws_conn *c)
{
    if (c->state == WS_TLS)
        return c->tls_wants_write;
    return c->out_off < c->out_len || c->state == WS_CONNECTING;
}

int ws_flush(struct ws_conn *c)
{
    if (c->state == WS_CONNECTING)
        c->state = c->ssl != NULL ? WS_TLS : WS_HANDSHAKE;
    if (c->state == WS_TLS) {
        if (tls_step(c) != 0)
            return -1;
        if (c->state == WS_TLS)
            return 0; /* the request goes once the handshake is done */
    }
    while (c->out_off < c->out_len) {
        ssize_t n = io_send(c, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Consumes the handshake answer: 101 and the end of the headers. */
static int handshake_take(struct ws_conn *c)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    if (c->in_len < 12 || memcmp(c->in + 9, "101", 3) != 0)
        return -1;
    size_t used = (size_t)(end + 4 - c->in);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    c->state = WS_OPEN;
    return 1;
}

/* Takes one whole frame from the input; 1 when one was taken, 0 when more is needed. */
static int frame_take(struct ws_conn *c, ws_text_cb on_text)
{
    const unsigned char *p = (const unsigned char *)c->in;
    if (c->in_len < 2)
        return 0;
    unsigned opcode = p[0] & 0x0f;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (c->in_len < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        if (c->in_len < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
    }
    if (c->in_len < h + len)
        return 0;
    const char *payload = c->in + h;
    if ((opcode == 1 || opcode == 2) && on_text != NULL)
        on_text(c, payload, (size_t)len);
    else if (opcode == 9)
        frame_queue(c, 10, payload, (size_t)len);
    else if (opcode == 8) {
        c->close_code = len >= 2
                            ? (uint16_t)((unsigned char)payload[0] << 8 | (unsigned char)payload[1])
                            : 1005;
        c->state = WS_CLOSED;
    }
    memmove(c->in, c->in + h + len, c->in_len - h - len);
    c->in_len -= h + (size_t)len;
    return 1;
}

int ws_read(struct ws_conn *c, ws_text_cb on_text)
{
    char buf[16384];
    if (c->state == WS_TLS) {
        if (tls_step(c) != 0)
            return -1;
        if (c->state == WS_TLS)
            return 0;
        /* Done: the upgrade request waits to be written. */
        if (ws_flush(c) != 0)
            return -1;
    }
    for (;;) {
        ssize_t n = io_recv(c, buf, sizeof buf);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        if (buf_add(&c->in, &c->in_len, &c->in_cap, buf, (size_t)n) != 0)
            return -1;
    }
    if (c->state == WS_HANDSHAKE && handshake_take(c) < 0)
        return -1;
    while (c->state == WS_OPEN && frame_take(c, on_text) == 1) {
    }
    return c->state == WS_CLOSED ? -1 : 0;
}

void ws_close(struct ws_conn *c)
{
    if (c->fd >= 0) {
        /* A reset, as a network drop would: no TIME_WAIT left behind by thousands of clients. */
        struct linger reset = { 1, 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(c->fd);
    }
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->fd = -1;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->in_cap = c->out_len = c->out_cap = c->out_off = 0;
    c->state = WS_CLOSED;
}
