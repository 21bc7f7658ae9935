/* acceptor: accepts on the slot's SO_REUSEPORT socket and hands each connection to lws. */
#include "worker_internal.h"

#include "../common/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* At the file limit the kernel keeps the connection queued; we look again after this pause
 * instead of spinning on EMFILE (nginx does the same). */
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_BATCH 64

static void accept_ready(uv_poll_t *poll, int status, int events);

static void polling_set(struct worker *w, bool on)
{
    struct acceptor *a = &w->acceptor;
    if (a->fd < 0 || a->polling == on)
        return;
    if (on)
        uv_poll_start(&a->poll, UV_READABLE, accept_ready);
    else
        uv_poll_stop(&a->poll);
    a->polling = on;
}

static void pause_over(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    w->acceptor.paused = false;
    if (!w->draining)
        polling_set(w, true);
}

static void accept_pause(struct worker *w, int err)
{
    struct acceptor *a = &w->acceptor;
    if (!a->paused)
        log_warning("accept paused for %d ms: %s (%llu connections open)", ACCEPT_PAUSE_MS,
                    strerror(err), (unsigned long long)w->info.connections);
    a->paused = true;
    w->info.accept_pauses_total++;
    polling_set(w, false);
    uv_timer_start(&a->pause_timer, pause_over, ACCEPT_PAUSE_MS, 0);
}

static bool at_connection_limit(const struct worker *w)
{
    return w->cfg->max_connections > 0 && w->info.connections >= (uint64_t)w->cfg->max_connections;
}

/* lws sets its socket options only on what its own listener accepts; an adopted descriptor
 * keeps the kernel's defaults, Nagle's algorithm among them: a small frame written while the
 * previous one is not yet acknowledged waits for that ACK, which a client with nothing to send
 * delays up to 40 ms (measured: the first notification to a device that had sent nothing since
 * its last reply took 41-50 ms, the next ones 0.3-0.5 ms). Every frame here is a message that
 * should go now. */
int acceptor_socket_setup(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void connection_adopt(struct worker *w, int fd)
{
    if (acceptor_socket_setup(fd) != 0)
        log_debug("TCP_NODELAY on an accepted connection: %s", strerror(errno));
    lws_adoption_type type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP;
    if (w->cfg->tls_cert != NULL)
        type |= LWS_ADOPT_ALLOW_SSL;
    lws_sock_file_fd_type desc = { .sockfd = fd };
    struct lws *wsi = lws_adopt_descriptor_vhost(w->vhost, type, desc, NULL, NULL);
    if (wsi == NULL) {
        /* lws closes the descriptor itself when adoption fails. */
        log_warning("cannot adopt an accepted connection");
        return;
    }
    w->info.connections++;
    w->info.accepted_total++;
}

/* Accepts up to `batch` connections; returns false once the queue is empty or accepting
 * must wait (the file or connection limit). */
static bool accept_some(struct worker *w, int batch)
{
    for (int i = 0; i < batch; i++) {
        if (at_connection_limit(w)) {
            polling_set(w, false);
            return false;
        }
        int fd = accept4(w->acceptor.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            connection_adopt(w, fd);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return false;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            accept_pause(w, errno);
            return false;
        }
        /* ECONNABORTED, EINTR, EPROTO...: that one connection is gone; go on. */
    }
    return true;
}

static void accept_ready(uv_poll_t *poll, int status, int events)
{
    struct worker *w = poll->data;
    (void)events;
    if (status < 0)
        return;
    accept_some(w, ACCEPT_BATCH);
}

int acceptor_start(struct worker *w, int fd, void (*closed)(struct worker *w))
{
    struct acceptor *a = &w->acceptor;
    a->fd = fd;
    a->closed = closed;
    if (uv_poll_init(&w->loop, &a->poll, fd) != 0 ||
        uv_timer_init(&w->loop, &a->pause_timer) != 0) {
        log_error("cannot watch the listening socket");
        a->fd = -1;
        return -1;
    }
    a->poll.data = a->pause_timer.data = w;
    polling_set(w, true);
    return 0;
}

void acceptor_stop(struct worker *w)
{
    struct acceptor *a = &w->acceptor;
    if (a->fd < 0)
        return;
    polling_set(w, false);
    uv_timer_stop(&a->pause_timer);
    uv_close((uv_handle_t *)&a->poll, NULL);
    uv_close((uv_handle_t *)&a->pause_timer, NULL);
    /* Only our copy: the master keeps the socket and its queue for the next worker. */
    close(a->fd);
    a->fd = -1;
}

/* The kernel handed these connections to this worker's socket: it answers them. On a socket
 * the next worker of the slot shares, that one takes the rest; on a socket being retired (a
 * reload that changed the address or lowered the worker count) the master has already
 * steered new connections away, so emptying the queue here leaves nothing to reset. The
 * rounds are bounded: a busy shared socket never empties. */
#define RETIRE_ROUNDS 16

void acceptor_retire(struct worker *w)
{
    if (w->acceptor.fd < 0)
        return;
    for (int round = 0; round < RETIRE_ROUNDS && accept_some(w, ACCEPT_BATCH); round++)
        ;
    acceptor_stop(w);
}

void acceptor_connection_closed(struct worker *w)
{
    if (w->info.connections > 0)
        w->info.connections--;
    if (!w->draining && !w->acceptor.paused && !at_connection_limit(w))
        polling_set(w, true);
    if (w->acceptor.closed != NULL)
        w->acceptor.closed(w);
}
