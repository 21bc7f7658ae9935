/* ws_client: a minimal non-blocking WebSocket client for the load generator — connect from a
 * chosen source address, TLS when asked (OpenSSL), handshake, masked text frames out, frames
 * in, pongs. */
#ifndef PRESENCED_WS_CLIENT_H
#define PRESENCED_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_state { WS_CONNECTING, WS_TLS, WS_HANDSHAKE, WS_OPEN, WS_CLOSED };

struct ssl_st;

struct ws_conn {
    int fd;
    enum ws_state state;
    struct ssl_st *ssl;  /* wss: the TLS connection; NULL for ws */
    bool tls_wants_write; /* the TLS handshake waits for the socket to take more */
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
    uint16_t close_code;
    bool watching_out; /* EPOLLOUT is asked for (kept by the caller, to skip unchanged masks) */
    void *user;
};

/* Where connections come from: an IPv4 address, and the next source port to try. Ports are
 * handed out in turn because letting connect() pick one costs a search through every
 * connection already made from that address. */
struct ws_source {
    const char *addr;
    uint16_t next_port;
};

/* Connections made from now on use TLS (wss), without checking the server's certificate (a
 * load generator for a test server). Returns 0 or -1. */
int ws_tls_enable(void);

/* Starts a non-blocking connection from src (NULL: any address and port) to dst:port and queues
 * the handshake for path. Returns 0 or -1 (errno set). */
int ws_connect(struct ws_conn *c, struct ws_source *src, const char *dst, int port,
               const char *path);
/* The same, asking for a subprotocol (Sec-WebSocket-Protocol), such as "mqtt". */
int ws_connect_protocol(struct ws_conn *c, struct ws_source *src, const char *dst, int port,
                        const char *path, const char *protocol);
/* Sends a masked text (or binary) frame: what the socket does not take now stays queued.
 * Returns 0 or -1. */
int ws_send_text(struct ws_conn *c, const char *text, size_t len);
int ws_send_binary(struct ws_conn *c, const void *data, size_t len);
/* Writes what is queued; returns 0, or -1 when the connection failed. */
int ws_flush(struct ws_conn *c);
bool ws_wants_write(const struct ws_conn *c);
/* Reads what the socket has; calls on_text for each complete text or binary message (pings are
 * answered, a close frame ends the connection). Returns 0, or -1 when the connection ended. */
typedef void (*ws_text_cb)(struct ws_conn *c, const char *text, size_t len);
int ws_read(struct ws_conn *c, ws_text_cb on_text);
void ws_close(struct ws_conn *c);

#endif
