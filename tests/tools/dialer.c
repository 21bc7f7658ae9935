/* dialer: connects to presenced in a loop, many connections at once, and counts how each one
 * ended — for the reload tests, which need tens of thousands of connections in seconds.
 * Usage: dialer HOST PORT SECONDS CONCURRENCY [AT_LEAST] — for SECONDS (and on, up to four
 * times as long, until AT_LEAST connections were made) it keeps CONCURRENCY connections under
 * way, alternately an HTTP request (GET /__lbheartbeat__, Connection: close) and a
 * WebSocket handshake on /presence with one message ("{}", answered "{}") and a close
 * handshake; then it waits for those still under way and prints one JSON line:
 * connections, ok (http_ok, ws_ok), refused (ECONNREFUSED at connect), reset (ECONNRESET or
 * EPIPE at any point), unanswered (closed by the server, or silent for ANSWER_TIMEOUT_MS,
 * before the whole answer), wrong (an answer other than the expected one), and the first few
 * failures as examples. Exit status 0 when every connection was ok. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_TIMEOUT_MS 10000
#define IN_CAP 4096
#define MAX_CONCURRENCY 4096
#define EXAMPLES_MAX 8

/* RFC 6455's own sample key and the accept value it must produce. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

enum kind { KIND_HTTP, KIND_WS };
enum phase { PH_CONNECT, PH_REQUEST, PH_WS_REPLY, PH_WS_CLOSING };
enum outcome { OK, REFUSED, RESET, UNANSWERED, WRONG, OUTCOMES };

static const char *const outcome_names[OUTCOMES] = { "ok", "refused", "reset", "unanswered",
                                                     "wrong" };

struct conn {
    int fd; /* -1: free */
    enum kind kind;
    enum phase phase;
    int64_t deadline_ms;
    char out[512];
    size_t out_len, out_off;
    char in[IN_CAP];
    size_t in_len;
    size_t ws_body; /* where the frames start after the 101 */
};

struct dialer {
    struct sockaddr_in to;
    int epoll_fd;
    struct conn *conns;
    int concurrency;
    int open;
    uint64_t started;
    uint64_t counts[OUTCOMES];
    uint64_t http_ok, ws_ok;
    char examples[EXAMPLES_MAX][160];
    int example_count;
    char host[64];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_end(struct dialer *d, struct conn *c, enum outcome how, const char *why)
{
    d->counts[how]++;
    if (how == OK)
        (*(c->kind == KIND_HTTP ? &d->http_ok : &d->ws_ok))++;
    else if (d->example_count < EXAMPLES_MAX)
        snprintf(d->examples[d->example_count++], sizeof d->examples[0], "%s %s: %s",
                 c->kind == KIND_HTTP ? "http" : "ws", outcome_names[how], why);
    close(c->fd);
    c->fd = -1;
    d->open--;
}

static enum outcome outcome_of_errno(int err)
{
    if (err == ECONNREFUSED)
        return REFUSED;
    if (err == ECONNRESET || err == EPIPE)
        return RESET;
    return UNANSWERED;
}

static void request_prepare(struct dialer *d, struct conn *c)
{
    int n;
    if (c->kind == KIND_HTTP)
        n = snprintf(c->out, sizeof c->out,
                     "GET /__lbheartbeat__ HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     d->host);
    else
        n = snprintf(c->out, sizeof c->out,
                     "GET /presence HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     d->host);
    c->out_len = (size_t)n;
    c->out_off = 0;
}

/* A masked client frame: FIN, opcode, payload of at most 125 bytes. */
static void frame_queue(struct conn *c, unsigned opcode, const char *payload, size_t len)
{
    static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    char *p = c->out;
    *p++ = (char)(0x80 | opcode);
    *p++ = (char)(0x80 | len);
    memcpy(p, mask, 4);
    p += 4;
    for (size_t i = 0; i < len; i++)
        *p++ = (char)(payload[i] ^ mask[i % 4]);
    c->out_len = (size_t)(p - c->out);
    c->out_off = 0;
}

static void watch(struct dialer *d, struct conn *c, int op)
{
    struct epoll_event ev = { .events = EPOLLIN | (c->out_off < c->out_len ? EPOLLOUT : 0),
                              .data.ptr = c };
    epoll_ctl(d->epoll_fd, op, c->fd, &ev);
}

static int conn_start(struct dialer *d, struct conn *c, enum kind kind)
{
    memset(c, 0, offsetof(struct conn, in));
    c->in_len = 0;
    c->kind = kind;
    c->phase = PH_CONNECT;
    c->deadline_ms = now_ms() + ANSWER_TIMEOUT_MS;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf(stderr, "dialer: socket: %s\n", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    d->open++;
    d->started++;
    request_prepare(d, c);
    if (connect(c->fd, (struct sockaddr *)&d->to, sizeof d->to) != 0 && errno != EINPROGRESS) {
        if (errno == EADDRNOTAVAIL || errno == EAGAIN) {
            /* Out of local ports: the dialer's limit, not the server's answer. */
            fprintf(stderr, "dialer: connect: %s\n", strerror(errno));
            return -1;
        }
        conn_end(d, c, outcome_of_errno(errno), strerror(errno));
        return 0;
    }
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
    epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static bool header_done(const struct conn *c, size_t *end)
{
    const char *mark = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (mark == NULL)
        return false;
    *end = (size_t)(mark - c->in) + 4;
    return true;
}

/* The HTTP answer is whole once its headers and content-length bytes are in. */
static void http_check(struct dialer *d, struct conn *c, bool eof)
{
    size_t end;
    if (!header_done(c, &end)) {
        if (eof || c->in_len == sizeof c->in)
            conn_end(d, c, eof ? UNANSWERED : WRONG, "no complete header");
        return;
    }
    const char *len_at = memmem(c->in, end, "content-length:", 15);
    size_t want = len_at ? strtoul(len_at + 15, NULL, 10) : 0;
    if (c->in_len < end + want) {
        if (eof)
            conn_end(d, c, UNANSWERED, "body cut short");
        return;
    }
    if (strncmp(c->in, "HTTP/1.1 200 ", 13) != 0)
        conn_end(d, c, WRONG, "status is not 200");
    else
        conn_end(d, c, OK, "");
}

/* Server frames are unmasked; the one expected here is small. Returns its length in
 * c->in from `at`, 0 while incomplete. */
static size_t frame_in(const struct conn *c, size_t at, unsigned *opcode, const char **payload,
                       size_t *len)
{
    if (c->in_len < at + 2)
        return 0;
    const unsigned char *p = (const unsigned char *)c->in + at;
    size_t n = p[1] & 0x7f;
    if (n > 125)
        return (size_t)-1;
    if (c->in_len < at + 2 + n)
        return 0;
    *opcode = p[0] & 0x0f;
    *payload = (const char *)p + 2;
    *len = n;
    return 2 + n;
}

static void ws_check(struct dialer *d, struct conn *c, bool eof)
{
    if (c->phase == PH_REQUEST) {
        size_t end;
        if (!header_done(c, &end)) {
            if (eof || c->in_len == sizeof c->in)
                conn_end(d, c, eof ? UNANSWERED : WRONG, "no complete handshake answer");
            return;
        }
        if (strncmp(c->in, "HTTP/1.1 101 ", 13) != 0 ||
            memmem(c->in, end, WS_ACCEPT, strlen(WS_ACCEPT)) == NULL) {
            conn_end(d, c, WRONG, "handshake not accepted");
            return;
        }
        c->phase = PH_WS_REPLY;
        c->ws_body = end;
        frame_queue(c, 0x1, "{}", 2);
        watch(d, c, EPOLL_CTL_MOD);
    }
    unsigned opcode;
    const char *payload;
    size_t len;
    size_t n = frame_in(c, c->ws_body, &opcode, &payload, &len);
    if (n == (size_t)-1) {
        conn_end(d, c, WRONG, "frame too long");
        return;
    }
    if (c->phase == PH_WS_REPLY) {
        if (n == 0) {
            if (eof)
                conn_end(d, c, UNANSWERED, "closed before the reply");
            return;
        }
        if (opcode != 0x1 || len != 2 || memcmp(payload, "{}", 2) != 0) {
            char why[80];
            snprintf(why, sizeof why, "reply opcode %u: %.*s", opcode, (int)(len > 60 ? 60 : len),
                     payload);
            conn_end(d, c, WRONG, why);
            return;
        }
        c->ws_body += n;
        c->phase = PH_WS_CLOSING;
        frame_queue(c, 0x8, "\x03\xe8", 2);
        watch(d, c, EPOLL_CTL_MOD);
        return;
    }
    /* Closing: the server answers our close frame and ends the connection. */
    if (eof)
        conn_end(d, c, OK, "");
}

static void conn_readable(struct dialer *d, struct conn *c)
{
    for (;;) {
        if (c->in_len == sizeof c->in) {
            if (c->phase == PH_WS_CLOSING) {
                c->in_len = c->ws_body = 0; /* what follows the reply is not kept */
                continue;
            }
            break;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n == 0) {
            (c->kind == KIND_HTTP ? http_check : ws_check)(d, c, true);
            return;
        }
        if (errno == EAGAIN || errno == EINTR)
            break;
        conn_end(d, c, outcome_of_errno(errno), strerror(errno));
        return;
    }
    (c->kind == KIND_HTTP ? http_check : ws_check)(d, c, false);
}

static void conn_writable(struct dialer *d, struct conn *c)
{
    if (c->phase == PH_CONNECT) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            conn_end(d, c, outcome_of_errno(err), strerror(err));
            return;
        }
        c->phase = PH_REQUEST;
    }
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        conn_end(d, c, outcome_of_errno(errno), strerror(errno));
        return;
    }
    watch(d, c, EPOLL_CTL_MOD);
}

static void deadlines(struct dialer *d, int64_t now)
{
    for (int i = 0; i < d->concurrency; i++) {
        struct conn *c = &d->conns[i];
        if (c->fd >= 0 && now > c->deadline_ms)
            conn_end(d, c, UNANSWERED, "no answer in time");
    }
}

static int run(struct dialer *d, int seconds, uint64_t at_least)
{
    int64_t t0 = now_ms(), last_sweep = t0;
    struct epoll_event events[256];
    for (;;) {
        int64_t now = now_ms(), ran = now - t0;
        bool dialing = ran < (int64_t)seconds * 1000 ||
                       (d->started < at_least && ran < (int64_t)seconds * 4000);
        for (int i = 0; dialing && i < d->concurrency; i++)
            if (d->conns[i].fd < 0 && conn_start(d, &d->conns[i], d->started % 2) != 0)
                return -1;
        if (!dialing && d->open == 0)
            return 0;
        int n = epoll_wait(d->epoll_fd, events, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->fd >= 0 && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
                c->phase != PH_CONNECT)
                conn_readable(d, c);
            if (c->fd >= 0 && (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                conn_writable(d, c);
        }
        if (now - last_sweep >= 100) {
            deadlines(d, now);
            last_sweep = now;
        }
    }
}

static void report(const struct dialer *d, double seconds)
{
    printf("{\"connections\":%llu,\"ok\":%llu,\"http_ok\":%llu,\"ws_ok\":%llu",
           (unsigned long long)d->started, (unsigned long long)d->counts[OK],
           (unsigned long long)d->http_ok, (unsigned long long)d->ws_ok);
    for (int i = 1; i < OUTCOMES; i++)
        printf(",\"%s\":%llu", outcome_names[i], (unsigned long long)d->counts[i]);
    printf(",\"seconds\":%.2f,\"examples\":[", seconds);
    for (int i = 0; i < d->example_count; i++) {
        printf("%s\"", i ? "," : "");
        for (const char *p = d->examples[i]; *p != '\0'; p++)
            if (*p == '"' || *p == '\\')
                printf("\\%c", *p);
            else if ((unsigned char)*p >= 0x20)
                putchar(*p);
        putchar('"');
    }
    printf("]}\n");
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: dialer HOST PORT SECONDS CONCURRENCY [AT_LEAST]\n");
        return 2;
    }
    struct dialer d = { .concurrency = atoi(argv[4]) };
    uint64_t at_least = argc == 6 ? strtoull(argv[5], NULL, 10) : 0;
    int port = atoi(argv[2]), seconds = atoi(argv[3]);
    d.to = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, argv[1], &d.to.sin_addr) != 1 || port <= 0 || port > 65535 ||
        seconds <= 0 || d.concurrency <= 0 || d.concurrency > MAX_CONCURRENCY) {
        fprintf(stderr, "dialer: bad arguments\n");
        return 2;
    }
    snprintf(d.host, sizeof d.host, "%s:%d", argv[1], port);
    d.conns = calloc((size_t)d.concurrency, sizeof *d.conns);
    d.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (d.conns == NULL || d.epoll_fd < 0) {
        fprintf(stderr, "dialer: out of memory or epoll: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < d.concurrency; i++)
        d.conns[i].fd = -1;
    int64_t t0 = now_ms();
    int rc = run(&d, seconds, at_least);
    report(&d, (double)(now_ms() - t0) / 1000.0);
    free(d.conns);
    close(d.epoll_fd);
    if (rc != 0)
        return 1;
    return d.counts[OK] == d.started ? 0 : 1;
}
