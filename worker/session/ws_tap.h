/* ws_tap: the bytes lws reads from each WebSocket, looked at (never changed) before lws parses
 * them, for what lws 4.1 keeps to itself: whether a client frame was masked, and a frame's
 * announced length before any of its payload arrives. */
#ifndef PRESENCED_WS_TAP_H
#define PRESENCED_WS_TAP_H

#include "../../common/ws_frame.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

/* What the tap keeps of one connection; it lives in the connection's own state. */
struct ws_tap_link {
    struct ws_frame_scan scan;
    uint64_t key; /* in the tap's map of plain sockets or of TLS sessions; 0: not watched */
    bool tls;
};

/* Called, on the thread that started the tap, when a header shows a violation; once per link. */
typedef void (*ws_tap_cb)(struct ws_tap_link *link, enum ws_frame_verdict verdict);

/* Starts the tap in the calling thread (a worker's loop); reads on other threads pass by. */
void ws_tap_start(uint64_t max_message, ws_tap_cb cb);
void ws_tap_stop(void);
/* Watches what lws reads for wsi from here on (link zeroed by the caller). Returns 0, or -1
 * when it cannot be watched (out of memory; an HTTP/2 stream, whose bytes come inside
 * HTTP/2 frames). */
int ws_tap_attach(struct lws *wsi, struct ws_tap_link *link);
/* Stops watching; a link never attached, or already detached, is fine. */
void ws_tap_detach(struct ws_tap_link *link);

#endif
