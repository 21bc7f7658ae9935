/* loadgen: the load generator of `make bench` — one process holding many device connections
 * (or one AppService) to a presenced, driven by commands on stdin, answering in JSON lines.
 *
 * PORT is a number for ws://, or tls:NUMBER for wss:// (the server's certificate is not checked).
 *
 *   loadgen devices PORT SRC_ADDR COUNT FIRST PER_USER ASSERTIONS_FILE
 *     Opens COUNT /presence connections from SRC_ADDR, device i (from FIRST) of user
 *     i / PER_USER, whose "email assertion" is that line of ASSERTIONS_FILE, and authenticates
 *     them. Prints {"ready":n,"seconds":s}. Then reads commands:
 *       status RATE SECONDS  updates at RATE per second; prints round trips and throughput
 *       reconnect [N]        closes the first N connections (all without N) at once and reopens
 *                            them; prints the time until all are answered OK
 *       notes                prints the latency of the notifications received so far, and how
 *                            many took over 2 ms by tenth of a second of their sending
 *       cpu                  prints this process's CPU time (to tell its share from the server's)
 *       count_only FILE      from now on, only the devices listed (an index a line) count in notes
 *       quit
 *   loadgen mqtt PORT SRC_ADDR COUNT FIRST
 *     The same commands against an MQTT broker over WebSocket (Mosquitto): each connection sends
 *     CONNECT (clean session, no keep-alive) and is ready at CONNACK; "status" publishes, at QoS
 *     1, a payload of a device update's size and times the PUBACK.
 *   loadgen app PORT APPID API_KEY PUIDS_FILE TARGETS ASSERTIONS PROBES
 *     One AppService: authenticates and prints {"authed":true}. Commands:
 *       probes               opens PROBES device connections for the users TARGETS to
 *                            TARGETS + PROBES - 1 (one device each; PUIDS_FILE line i is user i's
 *                            PUID); prints {"ready":n,...}
 *       notify RATE SECONDS  notifications to the first TARGETS PUIDs, each carrying its send
 *                            time; prints the replies' count
 *       events RATE SECONDS  the probes flip their status; prints the time from each update's
 *                            sending to the AppService's event (app_event_latency)
 *       quit
 *
 * Notification latency is measured on the devices: a message "t=<ns>" holds CLOCK_MONOTONIC at
 * sending, the same clock on this machine. */
#include "ws_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Handshakes unanswered at once, per loadgen; BENCH_PENDING_HANDSHAKES sets it (make
 * bench-million's 56 loadgens take fewer each, so that none waits in the server's queue past
 * lws's 10 s handshake timeout). */
#define MAX_PENDING_HANDSHAKES 512
#define SLOW_TENTHS 100
#define SLOW_NS 2000000
#define EMAIL_MAX 254

struct gen;

struct device {
    struct ws_conn ws;
    struct gen *gen;
    int index;
    int user;
    bool authed;
    bool auth_sent;
    bool online;     /* the status last sent: each update flips it */
    bool counted;    /* its notifications count in "notes" (see count_only) */
    int64_t sent_ns; /* an update in flight, or 0 */
    int64_t flipped_ns; /* when the last update was sent (for the AppService's event) */
};

struct samples {
    int64_t *ns;
    size_t count, cap;
};

struct gen {
    bool mqtt; /* the devices speak MQTT 3.1.1 over WebSocket to a broker */
    int epoll;
    int port;
    struct ws_source src;
    struct device *devices;
    int count, first, per_user;
    char **emails, **assertions;
    int users;      /* lines loaded */
    int user_first; /* the user of emails[0] (line user_first of the file) */
    bool wrap;      /* the file had fewer users than the devices: user i is line i % users */
    int authed, opening, next_to_open, open_limit; /* devices below open_limit get (re)opened */
    bool counting_some; /* count_only was given: only counted devices' notifications count */
    /* Notifications over 2 ms, by tenth of a second since the first one counted was sent: when
     * in the run the slow ones came. */
    int64_t notes_start_ns;
    unsigned slow_per_tenth[SLOW_TENTHS];
    struct samples rtt, notes;
    uint64_t answered;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sample_add(struct samples *s, int64_t ns)
{
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        int64_t *grown = realloc(s->ns, cap * sizeof *grown);
        if (grown == NULL)
            return;
        s->ns = grown;
        s->cap = cap;
    }
    s->ns[s->count++] = ns;
}

static int compare(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of sorted samples, in microseconds. */
static double quantile_us(const struct samples *s, double q)
{
    size_t i = (size_t)((double)s->count * q);
    return s->count ? (double)s->ns[i < s->count ? i : s->count - 1] / 1000 : 0;
}

/* {"count":n,"p50_us":..,"p99_us":..,"max_us":..,"cdf_us":[..]} of the samples, which it then
 * forgets; cdf_us is the 0th, 1st, ... 99th percentile, the 99.9th and the largest (for the
 * latency CDF that make bench draws). */
static void samples_print(const char *name, struct samples *s, const char *extra)
{
    if (s->count > 0)
        qsort(s->ns, s->count, sizeof *s->ns, compare);
    printf("{\"%s\":{\"count\":%zu,\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f,\"cdf_us\":[",
           name, s->count, quantile_us(s, 0.5), quantile_us(s, 0.99), quantile_us(s, 1.0));
    for (int p = 0; p < 100; p++)
        printf("%.0f,", quantile_us(s, p / 100.0));
    printf("%.0f,%.0f]}%s}\n", quantile_us(s, 0.999), quantile_us(s, 1.0), extra ? extra : "");
    fflush(stdout);
    s->count = 0;
}

/* Asks for EPOLLOUT only while something waits to be written; unchanged masks cost nothing. */
static void watch(int epoll, struct ws_conn *c, bool add)
{
    bool out = ws_wants_write(c);
    if (!add && out == c->watching_out)
        return;
    c->watching_out = out;
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(epoll, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev);
}

static void assertion_keep(struct gen *g, char *line)
{
    char *space = strchr(line, ' ');
    if (space == NULL)
        return;
    *space = '\0';
    space[1 + strcspn(space + 1, "\n")] = '\0';
    g->emails = realloc(g->emails, (size_t)(g->users + 1) * sizeof *g->emails);
    g->assertions = realloc(g->assertions, (size_t)(g->users + 1) * sizeof *g->assertions);
    g->emails[g->users] = strdup(line);
    g->assertions[g->users++] = strdup(space + 1);
}

/* Line i of the file is user i's "email assertion": only the lines of this process's users
 * are kept (a million devices' file is most of a gigabyte), and reading stops after the last.
 * A file with fewer lines than users serves them in turn (user i takes line i % lines). */
static int assertions_load(struct gen *g, const char *path)
{
    int lo = g->first / g->per_user, hi = (g->first + g->count - 1) / g->per_user;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int index = 0;
    g->user_first = lo;
    while (index <= hi && getline(&line, &cap, f) > 0) {
        if (index++ >= lo)
            assertion_keep(g, line);
    }
    if (index <= hi) { /* too few lines: all of them, in turn */
        for (int i = 0; i < g->users; i++) {
            free(g->emails[i]);
            free(g->assertions[i]);
        }
        g->users = 0;
        g->user_first = 0;
        g->wrap = true;
        rewind(f);
        while (getline(&line, &cap, f) > 0)
            assertion_keep(g, line);
    }
    free(line);
    fclose(f);
    return g->users > 0 ? 0 : -1;
}

/* Where user's e-mail and assertion are in g->emails and g->assertions. */
static int user_slot(const struct gen *g, int user)
{
    return g->wrap ? user % g->users : user - g->user_first;
}

/* MQTT's remaining length: 7 bits a byte, high bit for "more". */
static size_t mqtt_length(unsigned char *out, size_t len)
{
    size_t n = 0;
    do {
        unsigned char byte = (unsigned char)(len % 128);
        len /= 128;
        out[n++] = (unsigned char)(byte | (len > 0 ? 0x80 : 0));
    } while (len > 0);
    return n;
}

/* CONNECT: protocol "MQTT" level 4, clean session, no keep-alive, client id "d<index>". */
static void mqtt_connect_send(struct device *d)
{
    unsigned char body[64], packet[80];
    char id[24];
    int id_len = snprintf(id, sizeof id, "d%d", d->index);
    size_t b = 0;
    memcpy(body, "\x00\x04MQTT\x04\x02\x00\x00", 10);
    b = 10;
    body[b++] = (unsigned char)(id_len >> 8);
    body[b++] = (unsigned char)id_len;
    memcpy(body + b, id, (size_t)id_len);
    b += (size_t)id_len;
    size_t p = 0;
    packet[p++] = 0x10;
    p += mqtt_length(packet + p, b);
    memcpy(packet + p, body, b);
    ws_send_binary(&d->ws, packet, p + b);
}

/* PUBLISH at QoS 1 (packet id 1) of payload to topic "s/<index>". */
static void mqtt_publish_send(struct device *d, const char *payload, size_t len)
{
    unsigned char packet[512];
    char topic[24];
    int topic_len = snprintf(topic, sizeof topic, "s/%d", d->index);
    size_t rest = 2 + (size_t)topic_len + 2 + len, p = 0;
    packet[p++] = 0x32;
    p += mqtt_length(packet + p, rest);
    packet[p++] = (unsigned char)(topic_len >> 8);
    packet[p++] = (unsigned char)topic_len;
    memcpy(packet + p, topic, (size_t)topic_len);
    p += (size_t)topic_len;
    packet[p++] = 0;
    packet[p++] = 1;
    memcpy(packet + p, payload, len);
    ws_send_binary(&d->ws, packet, p + len);
}

static void auth_send(struct gen *g, struct device *d)
{
    if (g->mqtt) {
        mqtt_connect_send(d);
        return;
    }
    char msg[16384];
    int user = user_slot(g, d->user);
    d->online = true;
    int n = snprintf(msg, sizeof msg,
                     "{\"email\":\"%s\",\"status\":\"online\",\"device\":\"d%d\","
                     "\"assertion\":\"%s\"}",
                     g->emails[user], d->index, g->assertions[user]);
    ws_send_text(&d->ws, msg, (size_t)n);
}

/* CONNACK (accepted) counts as the device's OK; PUBACK as an update's. */
static void mqtt_on_packet(struct device *d, const unsigned char *p, size_t len)
{
    struct gen *g = d->gen;
    if (len >= 4 && p[0] == 0x20 && p[3] == 0 && !d->authed) {
        d->authed = true;
        g->authed++;
        g->opening--;
    } else if (len >= 4 && p[0] == 0x40 && d->sent_ns != 0) {
        sample_add(&g->rtt, now_ns() - d->sent_ns);
        g->answered++;
        d->sent_ns = 0;
    }
}

static void note_add(struct gen *g, int64_t sent_ns)
{
    int64_t latency = now_ns() - sent_ns;
    sample_add(&g->notes, latency);
    if (g->notes_start_ns == 0 || sent_ns < g->notes_start_ns)
        g->notes_start_ns = sent_ns;
    int64_t tenth = (sent_ns - g->notes_start_ns) / 100000000;
    if (latency > SLOW_NS && tenth < SLOW_TENTHS)
        g->slow_per_tenth[tenth]++;
}

/* The notification latencies, and when the slow ones were sent; both are then forgotten. */
static void notes_print(struct gen *g)
{
    char extra[64 + SLOW_TENTHS * 11];
    int last = SLOW_TENTHS - 1;
    while (last >= 0 && g->slow_per_tenth[last] == 0)
        last--;
    /* The tenths count from this loadgen's first notification: scale.py lines the loadgens up
     * by it (each receives only while the AppService is at its users). */
    size_t n = (size_t)snprintf(extra, sizeof extra, ",\"first_sent_ns\":%lld,\"over_2ms_per_tenth\":[",
                                (long long)g->notes_start_ns);
    for (int i = 0; i <= last; i++)
        n += (size_t)snprintf(extra + n, sizeof extra - n, "%s%u", i ? "," : "",
                              g->slow_per_tenth[i]);
    snprintf(extra + n, sizeof extra - n, "]");
    samples_print("notify_latency", &g->notes, extra);
    memset(g->slow_per_tenth, 0, sizeof g->slow_per_tenth);
    g->notes_start_ns = 0;
}

static void device_on_text(struct ws_conn *c, const char *text, size_t len)
{
    struct device *d = c->user;
    struct gen *g = d->gen;
    if (g->mqtt) {
        mqtt_on_packet(d, (const unsigned char *)text, len);
        return;
    }
    if (len >= 17 && memcmp(text, "{\"notifications\":", 17) == 0) {
        /* Each notification's message is "t=<ns>": its send time. */
        if (g->counting_some && !d->counted)
            return;
        for (const char *p = text; (p = strstr(p, "\"message\":\"t=")) != NULL; p += 13)
            note_add(g, strtoll(p + 13, NULL, 10));
        return;
    }
    if (len == 15 && memcmp(text, "{\"result\":\"OK\"}", 15) == 0) {
        if (!d->authed) {
            d->authed = true;
            g->authed++;
            g->opening--;
        } else if (d->sent_ns != 0) {
            sample_add(&g->rtt, now_ns() - d->sent_ns);
            g->answered++;
        }
        d->sent_ns = 0;
        return;
    }
    fprintf(stderr, "loadgen: device %d: %.*s\n", d->index, (int)(len > 200 ? 200 : len), text);
    if (!d->authed)
        g->opening--;
    d->sent_ns = 0;
}

static void device_open(struct gen *g, struct device *d)
{
    d->gen = g;
    d->authed = false;
    d->sent_ns = 0;
    if (ws_connect_protocol(&d->ws, &g->src, "127.0.0.1", g->port, g->mqtt ? "/mqtt" : "/presence",
                            g->mqtt ? "mqtt" : NULL) != 0) {
        fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
        return;
    }
    d->ws.user = d;
    d->auth_sent = false;
    g->opening++;
    watch(g->epoll, &d->ws, true);
}

static int pending_max(void)
{
    static int max;
    if (max == 0) {
        const char *set = getenv("BENCH_PENDING_HANDSHAKES");
        max = set != NULL && atoi(set) > 0 ? atoi(set) : MAX_PENDING_HANDSHAKES;
    }
    return max;
}

/* Opens the next connections while fewer than pending_max() are unanswered. */
static void open_more(struct gen *g)
{
    while (g->next_to_open < g->open_limit && g->opening < pending_max())
        device_open(g, &g->devices[g->next_to_open++]);
}

static void device_drop(struct gen *g, struct device *d)
{
    if (d->ws.fd >= 0)
        epoll_ctl(g->epoll, EPOLL_CTL_DEL, d->ws.fd, NULL);
    if (d->authed)
        g->authed--;
    else if (d->ws.fd >= 0)
        g->opening--;
    d->authed = false;
    ws_close(&d->ws);
}

/* One turn of the loop: up to timeout_ms of waiting. */
static void events_run(struct gen *g, int timeout_ms)
{
    struct epoll_event events[512];
    int n = epoll_wait(g->epoll, events, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        struct ws_conn *c = events[i].data.ptr;
        if (c == NULL)
            continue; /* stdin: read by the caller */
        struct device *d = c->user;
        bool failed = ((events[i].events & EPOLLOUT) && ws_flush(c) != 0) ||
                      ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
                       ws_read(c, device_on_text) != 0);
        if (failed) {
            device_drop(g, d);
            continue;
        }
        /* The first message goes once the handshake is answered. */
        if (c->state == WS_OPEN && !d->auth_sent) {
            auth_send(g, d);
            d->auth_sent = true;
        }
        watch(g->epoll, c, false);
    }
    open_more(g);
}

static double seconds_since(int64_t start)
{
    return (double)(now_ns() - start) / 1e9;
}

/* How long to wait for events before the next send is due, in whole milliseconds, rounded up
 * (and at most 1 s): a loadgen sleeps between its sends instead of waking every millisecond,
 * which with 56 of them (make bench-million) kept the 2 cores' run queue full. */
static int ms_until(int64_t due_ns)
{
    int64_t wait = due_ns - now_ns();
    if (wait <= 0)
        return 0;
    return wait >= 1000000000LL ? 1000 : (int)((wait + 999999) / 1000000);
}

/* Every PROGRESS_NS while connecting many, a line on stderr: the run is not stuck. */
#define PROGRESS_NS 2000000000LL
#define PROGRESS_MIN 5000

static void progress(struct gen *g, const char *what, int target, int64_t start, int64_t *last)
{
    if (target < PROGRESS_MIN || now_ns() - *last < PROGRESS_NS)
        return;
    *last = now_ns();
    fprintf(stderr, "loadgen %s: %s %d of %d authenticated (%.0f s)\n", g->src.addr, what,
            g->authed, target, seconds_since(start));
}

static void connect_all(struct gen *g)
{
    int64_t start = now_ns(), shown = start;
    g->next_to_open = 0;
    g->open_limit = g->count;
    open_more(g);
    while ((g->authed < g->count && g->opening > 0) || g->next_to_open < g->count) {
        events_run(g, 100);
        progress(g, "connecting:", g->count, start, &shown);
    }
    printf("{\"ready\":%d,\"seconds\":%.3f}\n", g->authed, seconds_since(start));
    fflush(stdout);
}

/* Status updates at rate per second for seconds, one in flight per device at most. */
static void status_run(struct gen *g, double rate, double seconds)
{
    int64_t start = now_ns(), interval = (int64_t)(1e9 / rate), next = start;
    uint64_t sent = 0;
    int cursor = 0;
    g->answered = 0;
    while (seconds_since(start) < seconds) {
        while (now_ns() >= next) {
            struct device *d = &g->devices[cursor];
            cursor = (cursor + 1) % g->count;
            next += interval;
            if (!d->authed || d->sent_ns != 0)
                continue;
            char msg[128];
            d->online = !d->online;
            int len = snprintf(msg, sizeof msg, "{\"email\":\"%s\",\"status\":\"%s\"}",
                               g->users ? g->emails[user_slot(g, d->user)] : "user0@bench.example",
                               d->online ? "online" : "unavailable");
            d->sent_ns = d->flipped_ns = now_ns();
            if (g->mqtt)
                mqtt_publish_send(d, msg, (size_t)len);
            else
                ws_send_text(&d->ws, msg, (size_t)len);
            watch(g->epoll, &d->ws, false);
            sent++;
        }
        events_run(g, ms_until(next));
    }
    int64_t drain = now_ns();
    while (seconds_since(drain) < 10 && g->answered < sent)
        events_run(g, 10);
    char extra[160];
    snprintf(extra, sizeof extra, ",\"sent\":%llu,\"answered\":%llu,\"per_second\":%.0f",
             (unsigned long long)sent, (unsigned long long)g->answered,
             (double)g->answered / seconds);
    samples_print("status_rtt", &g->rtt, extra);
}

/* Closes the first count connections (all when count <= 0) at once and opens them again;
 * prints the time until every one is answered OK. */
static void reconnect_some(struct gen *g, int count)
{
    if (count <= 0 || count > g->count)
        count = g->count;
    int64_t start = now_ns(), shown = start;
    for (int i = 0; i < count; i++)
        device_drop(g, &g->devices[i]);
    g->next_to_open = 0;
    g->open_limit = count;
    open_more(g);
    while ((g->authed < g->count && g->opening > 0) || g->next_to_open < count) {
        events_run(g, 100);
        progress(g, "reconnecting:", g->count, start, &shown);
    }
    printf("{\"ready\":%d,\"reconnected\":%d,\"seconds\":%.3f}\n", g->authed, count,
           seconds_since(start));
    fflush(stdout);
}

/* Only the devices listed in path (one index a line) count in "notes" from now on. */
static void count_only(struct gen *g, const char *path)
{
    FILE *f = fopen(path, "r");
    int index, marked = 0;
    for (int i = 0; i < g->count; i++)
        g->devices[i].counted = false;
    while (f != NULL && fscanf(f, "%d", &index) == 1)
        if (index >= g->first && index < g->first + g->count) {
            g->devices[index - g->first].counted = true;
            marked++;
        }
    if (f != NULL)
        fclose(f);
    g->counting_some = true;
    printf("{\"counted\":%d}\n", marked);
    fflush(stdout);
}

static void cpu_print(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"cpu_seconds\":%.3f}\n", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    fflush(stdout);
}

/* Serves the commands of stdin until quit or end of file, keeping the connections going. */
static void commands_run(struct gen *g)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(g->epoll, EPOLL_CTL_ADD, 0, &ev);
    char line[256];
    for (;;) {
        struct epoll_event ready;
        events_run(g, 0);
        if (epoll_wait(g->epoll, &ready, 1, 50) <= 0 || ready.data.ptr != NULL)
            continue;
        if (fgets(line, sizeof line, stdin) == NULL || strncmp(line, "quit", 4) == 0)
            return;
        double rate, seconds;
        if (sscanf(line, "status %lf %lf", &rate, &seconds) == 2 && rate > 0)
            status_run(g, rate, seconds);
        else if (strncmp(line, "reconnect", 9) == 0)
            reconnect_some(g, atoi(line + 9));
        else if (strncmp(line, "notes", 5) == 0)
            notes_print(g);
        else if (strncmp(line, "cpu", 3) == 0)
            cpu_print();
        else if (strncmp(line, "count_only ", 11) == 0) {
            line[strcspn(line, "\n")] = '\0';
            count_only(g, line + 11);
        }
    }
}

/* Opens g->count connections. */
static int gen_open(struct gen *g)
{
    g->epoll = epoll_create1(EPOLL_CLOEXEC);
    g->devices = calloc((size_t)g->count, sizeof *g->devices);
    if (g->epoll < 0 || g->devices == NULL)
        return 1;
    for (int i = 0; i < g->count; i++) {
        g->devices[i].index = g->first + i;
        g->devices[i].user = (g->first + i) / g->per_user;
        g->devices[i].ws.fd = -1;
    }
    connect_all(g);
    return 0;
}

static void gen_close(struct gen *g)
{
    for (int i = 0; i < g->count; i++)
        ws_close(&g->devices[i].ws);
    close(g->epoll);
}

/* Opens g->count connections, serves the commands, closes them. */
static int gen_run(struct gen *g)
{
    setvbuf(stdin, NULL, _IONBF, 0);
    if (gen_open(g) != 0)
        return 1;
    commands_run(g);
    gen_close(g);
    return 0;
}

/* A port argument: NUMBER (ws) or tls:NUMBER (wss, for every connection of this process). */
static int port_parse(const char *arg)
{
    if (strncmp(arg, "tls:", 4) == 0) {
        if (ws_tls_enable() != 0) {
            fprintf(stderr, "loadgen: cannot set up TLS\n");
            exit(1);
        }
        arg += 4;
    }
    return atoi(arg);
}

static int mqtt_main(char **argv)
{
    struct gen g = { .mqtt = true,
                     .port = port_parse(argv[0]),
                     .src = { .addr = argv[1] },
                     .count = atoi(argv[2]),
                     .first = atoi(argv[3]),
                     .per_user = 1 };
    if (g.count <= 0) {
        fprintf(stderr, "loadgen: bad arguments\n");
        return 2;
    }
    return gen_run(&g);
}

static int devices_main(char **argv)
{
    struct gen g = { .port = port_parse(argv[0]),
                     .src = { .addr = argv[1] },
                     .count = atoi(argv[2]),
                     .first = atoi(argv[3]),
                     .per_user = atoi(argv[4]) };
    if (g.count <= 0 || g.per_user <= 0 || assertions_load(&g, argv[5]) != 0) {
        fprintf(stderr, "loadgen: bad arguments or assertions file\n");
        return 2;
    }
    return gen_run(&g);
}

/* The AppService side: one connection that notifies at a rate and counts the replies, and the
 * probe devices whose status flips it times until the AppService hears of them. */
struct app {
    struct ws_conn ws;
    int epoll;
    bool authed;
    uint64_t ok, refused;
    char **puids;
    int puid_count, targets; /* notifications go to the first targets PUIDs */
    struct gen probes;       /* users targets.. have one device each, here */
    struct samples events;
};

static struct app *app_of(struct ws_conn *c)
{
    return c->user;
}

/* {"uid":"<PUID>","status":"..."}: the flip of a probe user, timed from its sending. */
static void app_event(struct app *a, const char *text)
{
    const char *uid = strstr(text, "\"uid\":\""), *status = strstr(text, "\"status\":\"");
    if (uid == NULL || status == NULL)
        return;
    uid += 7;
    size_t uid_len = strcspn(uid, "\"");
    for (int i = 0; i < a->probes.count; i++) {
        const char *puid = a->puids[a->targets + i];
        if (strlen(puid) != uid_len || memcmp(puid, uid, uid_len) != 0)
            continue;
        struct device *d = &a->probes.devices[i];
        bool online = strncmp(status + 10, "online", 6) == 0;
        if (d->flipped_ns != 0 && online == d->online) {
            sample_add(&a->events, now_ns() - d->flipped_ns);
            d->flipped_ns = 0;
        }
        return;
    }
}

static void app_on_text(struct ws_conn *c, const char *text, size_t len)
{
    struct app *a = app_of(c);
    if (strstr(text, "\"action\":\"auth\"") && strstr(text, "\"result\":\"OK\""))
        a->authed = true;
    else if (len > 0 && strstr(text, "\"action\":\"notify\"") && strstr(text, "\"result\":\"OK\""))
        a->ok++;
    else if (strstr(text, "\"action\":\"notify\""))
        a->refused++;
    else if (strstr(text, "\"uid\":"))
        app_event(a, text);
}

/* One turn for the AppService connection (up to timeout_ms) and one for the probes. */
static bool app_turn(struct app *a, int timeout_ms)
{
    struct epoll_event ev;
    if (epoll_wait(a->epoll, &ev, 1, timeout_ms) > 0) {
        if (((ev.events & EPOLLOUT) && ws_flush(&a->ws) != 0) ||
            ((ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && ws_read(&a->ws, app_on_text) != 0)) {
            fprintf(stderr, "loadgen: the AppService connection ended (close code %u)\n",
                    a->ws.close_code);
            return false;
        }
    }
    watch(a->epoll, &a->ws, false);
    if (a->probes.devices != NULL) /* the probes are open */
        events_run(&a->probes, 0);
    return true;
}

static int puids_load(struct app *a, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[128];
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char **grown = realloc(a->puids, (size_t)(a->puid_count + 1) * sizeof *grown);
        if (grown == NULL)
            break;
        a->puids = grown;
        a->puids[a->puid_count++] = strdup(line);
    }
    if (f != NULL)
        fclose(f);
    return a->puid_count > 0 ? 0 : -1;
}

static int app_auth(struct app *a, int port, const char *appid, const char *key)
{
    char path[128], msg[512];
    snprintf(path, sizeof path, "/myapps/%s", appid);
    a->epoll = epoll_create1(EPOLL_CLOEXEC);
    if (a->epoll < 0 || ws_connect(&a->ws, NULL, "127.0.0.1", port, path) != 0)
        return -1;
    a->ws.user = a;
    watch(a->epoll, &a->ws, true);
    int64_t start = now_ns();
    bool auth_sent = false;
    while (!a->authed && seconds_since(start) < 10) {
        if (!app_turn(a, 10))
            return -1;
        if (a->ws.state == WS_OPEN && !auth_sent) {
            int n = snprintf(msg, sizeof msg, "{\"action\":\"auth\",\"token\":\"%s\"}", key);
            ws_send_text(&a->ws, msg, (size_t)n);
            auth_sent = true;
        }
    }
    return a->authed ? 0 : -1;
}

static void app_notify(struct app *a, double rate, double seconds)
{
    char msg[512];
    int64_t start = now_ns(), interval = (int64_t)(1e9 / rate), next = start;
    uint64_t sent = 0;
    a->ok = a->refused = 0;
    while (seconds_since(start) < seconds) {
        while (now_ns() >= next) {
            int n = snprintf(msg, sizeof msg,
                             "{\"action\":\"notify\",\"target\":\"%s\",\"source\":\"bench\","
                             "\"message\":\"t=%lld\",\"ttl\":60}",
                             a->puids[sent % (uint64_t)a->targets], (long long)now_ns());
            ws_send_text(&a->ws, msg, (size_t)n);
            sent++;
            next += interval;
        }
        if (!app_turn(a, ms_until(next)))
            break;
    }
    int64_t drain = now_ns();
    while (seconds_since(drain) < 2 && a->ok + a->refused < sent && app_turn(a, 10))
        ;
    /* The rate counts what was answered by then. The rest is still read, up to 120 s: left in
     * the socket, it held the server's worker back (it stops reading a connection it cannot
     * write to, so the workers looked idle) and was read during the next phase instead, ahead
     * of the events that phase times (at a million devices, one flip in 5 s and no event). */
    uint64_t ok = a->ok, refused = a->refused;
    while (seconds_since(drain) < 120 && a->ok + a->refused < sent && app_turn(a, 10))
        ;
    printf("{\"notify\":{\"sent\":%llu,\"ok\":%llu,\"refused\":%llu,\"per_second\":%.0f,"
           "\"answered_later\":%llu,\"drain_seconds\":%.1f}}\n",
           (unsigned long long)sent, (unsigned long long)ok, (unsigned long long)refused,
           (double)ok / seconds, (unsigned long long)(a->ok + a->refused - ok - refused),
           seconds_since(drain));
    fflush(stdout);
}

/* The probes flip their status at rate; each flip is timed until the AppService's event. */
static void app_events(struct app *a, double rate, double seconds)
{
    struct gen *g = &a->probes;
    int64_t start = now_ns(), interval = (int64_t)(1e9 / rate), next = start;
    uint64_t flips = 0;
    int cursor = 0;
    while (g->devices != NULL && seconds_since(start) < seconds) {
        while (now_ns() >= next) {
            struct device *d = &g->devices[cursor];
            cursor = (cursor + 1) % g->count;
            next += interval;
            if (!d->authed || d->sent_ns != 0 || d->flipped_ns != 0)
                continue;
            char msg[128];
            d->online = !d->online;
            int len = snprintf(msg, sizeof msg, "{\"email\":\"%s\",\"status\":\"%s\"}",
                               g->emails[user_slot(g, d->user)],
                               d->online ? "online" : "unavailable");
            d->sent_ns = d->flipped_ns = now_ns();
            ws_send_text(&d->ws, msg, (size_t)len);
            watch(g->epoll, &d->ws, false);
            flips++;
        }
        if (!app_turn(a, ms_until(next)))
            break;
    }
    int64_t drain = now_ns();
    while (seconds_since(drain) < 2 && a->events.count < flips && app_turn(a, 10))
        ;
    char extra[64];
    snprintf(extra, sizeof extra, ",\"flips\":%llu", (unsigned long long)flips);
    samples_print("app_event_latency", &a->events, extra);
}

static int app_main(char **argv)
{
    struct app a = { 0 };
    int port = port_parse(argv[0]);
    a.targets = atoi(argv[4]);
    int probes = atoi(argv[6]);
    if (puids_load(&a, argv[3]) != 0 || a.targets <= 0 || probes < 0 ||
        a.targets + probes > a.puid_count) {
        fprintf(stderr, "loadgen: bad arguments or PUIDs file\n");
        return 2;
    }
    if (app_auth(&a, port, argv[1], argv[2]) != 0) {
        fprintf(stderr, "loadgen: the AppService did not authenticate\n");
        return 1;
    }
    printf("{\"authed\":true}\n");
    fflush(stdout);
    a.probes = (struct gen){ .port = port, .src = { .addr = "127.0.0.9" }, .count = probes,
                             .first = a.targets, .per_user = 1 };
    bool probes_open = false;
    setvbuf(stdin, NULL, _IONBF, 0);
    char line[256];
    double rate, seconds;
    while (fgets(line, sizeof line, stdin) != NULL && strncmp(line, "quit", 4) != 0) {
        if (sscanf(line, "notify %lf %lf", &rate, &seconds) == 2 && rate > 0)
            app_notify(&a, rate, seconds);
        else if (sscanf(line, "events %lf %lf", &rate, &seconds) == 2 && rate > 0)
            app_events(&a, rate, seconds);
        else if (strncmp(line, "probes", 6) == 0 && !probes_open && probes > 0) {
            if (assertions_load(&a.probes, argv[5]) != 0 || gen_open(&a.probes) != 0)
                return 1;
            probes_open = true;
        }
    }
    if (probes_open)
        gen_close(&a.probes);
    ws_close(&a.ws);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 8 && strcmp(argv[1], "devices") == 0)
        return devices_main(argv + 2);
    if (argc == 9 && strcmp(argv[1], "app") == 0)
        return app_main(argv + 2);
    if (argc == 6 && strcmp(argv[1], "mqtt") == 0)
        return mqtt_main(argv + 2);
    fprintf(stderr, "usage: loadgen devices PORT SRC_ADDR COUNT FIRST PER_USER ASSERTIONS\n"
                    "       loadgen mqtt PORT SRC_ADDR COUNT FIRST\n"
                    "       loadgen app PORT APPID API_KEY PUIDS_FILE TARGETS ASSERTIONS PROBES\n");
    return 2;
}
