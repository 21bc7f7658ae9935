/* ws_tap: the bytes lws reads from each WebSocket, looked at before lws parses them.
 *
 * Why: RFC 6455 §5.1 requires closing a connection whose client sends an unmasked frame, and
 * SPEC.md requires answering a frame that announces more than max_message_size from its header
 * alone. lws 4.1.6 (and lws up to 4.4) parses the header into private fields and calls nothing
 * until payload arrives: a header announcing 2^62 bytes and then silence produces no callback,
 * and no API says whether a frame was masked. The only place where the stream passes through a
 * public interface before lws parses it is the function lws reads it with: recv() on a plain
 * socket, SSL_read() under TLS (lws calls both through the PLT of libwebsockets.so). This
 * executable defines both, so ELF symbol lookup binds lws's calls (and every other library's) to
 * them first; each calls the real function, and, for a socket a WebSocket session attached, on
 * the tap's own thread, scans what was read (common/ws_frame.c). The bytes are never changed.
 * Reads of anything not attached (HTTP, libcurl, the store's bells) pass straight through. */
#include "ws_tap.h"

#include "../../common/u64map.h"

#include <dlfcn.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/types.h>

static struct {
    atomic_bool started; /* set last, after thread: other threads read it first */
    pthread_t thread;    /* the only one that touches what follows */
    uint64_t max_message;
    ws_tap_cb cb;
    struct u64map sockets; /* fd + 1 -> link, for plain connections */
    struct u64map tls;     /* SSL * -> link */
    pthread_once_t resolve_once;
    int (*real_ssl_read)(SSL *, void *, int);
} tap = { .resolve_once = PTHREAD_ONCE_INIT };

static bool on_tap_thread(void)
{
    return atomic_load_explicit(&tap.started, memory_order_acquire) &&
           pthread_equal(pthread_self(), tap.thread);
}

void ws_tap_start(uint64_t max_message, ws_tap_cb cb)
{
    tap.thread = pthread_self();
    tap.max_message = max_message;
    tap.cb = cb;
    atomic_store_explicit(&tap.started, true, memory_order_release);
}

void ws_tap_stop(void)
{
    if (!on_tap_thread())
        return;
    atomic_store_explicit(&tap.started, false, memory_order_release);
    u64map_free(&tap.sockets);
    u64map_free(&tap.tls);
}

int ws_tap_attach(struct lws *wsi, struct ws_tap_link *link)
{
    if (!on_tap_thread() || lws_get_network_wsi(wsi) != wsi)
        return -1;
    SSL *ssl = lws_get_ssl(wsi);
    int fd = lws_get_socket_fd(wsi);
    link->tls = ssl != NULL;
    link->key = ssl != NULL ? (uint64_t)(uintptr_t)ssl : (uint64_t)fd + 1;
    if (fd < 0 || u64map_put(link->tls ? &tap.tls : &tap.sockets, link->key, link) != 0) {
        link->key = 0;
        return -1;
    }
    return 0;
}

void ws_tap_detach(struct ws_tap_link *link)
{
    if (link->key == 0 || !on_tap_thread())
        return;
    struct u64map *map = link->tls ? &tap.tls : &tap.sockets;
    if (u64map_get(map, link->key) == link)
        u64map_del(map, link->key);
    link->key = 0;
}

static void seen(struct u64map *map, uint64_t key, const void *bytes, size_t len)
{
    if (!on_tap_thread() || map->count == 0)
        return;
    struct ws_tap_link *link = u64map_get(map, key);
    if (link == NULL)
        return;
    enum ws_frame_verdict verdict = ws_frame_scan(&link->scan, bytes, len, tap.max_message);
    if (verdict != WS_FRAME_OK)
        tap.cb(link, verdict);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    /* recv() is recvfrom() without an address (POSIX); the C library's recv is this call. */
    ssize_t n = recvfrom(fd, buf, len, flags, NULL, NULL);
    if (n > 0 && fd >= 0 && (flags & MSG_PEEK) == 0)
        seen(&tap.sockets, (uint64_t)fd + 1, buf, (size_t)n);
    return n;
}

/* The next definition of SSL_read after this executable's: libssl's. */
static void real_ssl_read_resolve(void)
{
    *(void **)&tap.real_ssl_read = dlsym(RTLD_NEXT, "SSL_read");
}

int SSL_read(SSL *ssl, void *buf, int num)
{
    pthread_once(&tap.resolve_once, real_ssl_read_resolve);
    if (tap.real_ssl_read == NULL)
        return -1;
    int n = tap.real_ssl_read(ssl, buf, num);
    if (n > 0)
        seen(&tap.tls, (uint64_t)(uintptr_t)ssl, buf, (size_t)n);
    return n;
}
