/* log: leveled, timestamped log lines to stderr or a reopenable file, as text or MozLog JSON
 * (the format of Mozilla's services and their log pipelines: one JSON object a line). */
#include "log.h"

#include "utf8.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = { "debug", "info", "notice", "warning", "error" };
/* MozLog's Severity is syslog's: 7 debug, 6 info, 5 notice, 4 warning, 3 error. */
static const int level_severity[] = { 7, 6, 5, 4, 3 };

#define LOG_LINE_MAX 1024
/* A message escaped for JSON: each byte may become \u00XX. */
#define LOG_JSON_MAX (LOG_LINE_MAX * 6 + 512)

/* The module's own state: one log sink per process. */
static struct {
    int fd;
    char *path;
    enum log_level level;
    enum log_format format;
    char role[32];
    char hostname[256]; /* as JSON text, taken when the format is set */
} log_state = { .fd = STDERR_FILENO, .path = NULL, .level = LOG_LEVEL_INFO, .role = "presenced" };

int log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return level_names[level];
}

int log_format_parse(const char *name)
{
    if (strcmp(name, "text") == 0)
        return LOG_FORMAT_TEXT;
    if (strcmp(name, "mozlog") == 0)
        return LOG_FORMAT_MOZLOG;
    return -1;
}

static int log_file_open(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int log_open(const char *path, enum log_level level)
{
    log_state.level = level;
    if (path == NULL || path[0] == '\0')
        return 0;
    int fd = log_file_open(path);
    if (fd < 0)
        return -1;
    char *copy = strdup(path);
    if (copy == NULL) {
        close(fd);
        return -1;
    }
    log_close();
    log_state.fd = fd;
    log_state.path = copy;
    return 0;
}

void log_set_role(const char *role)
{
    snprintf(log_state.role, sizeof log_state.role, "%s", role);
}

void log_set_level(enum log_level level)
{
    log_state.level = level;
}

/* Appends text (len bytes) to out as the inside of a JSON string: quotes, backslashes and control
 * characters escaped, and every byte that is not part of valid UTF-8 (a message cut in the middle
 * of a character, or bytes a peer sent) replaced by U+FFFD, so that every line parses. Returns
 * the new length; out has room for 6 bytes per input byte. */
static size_t json_escape(const char *text, size_t len, char *out, size_t at)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            out[at++] = '\\';
            out[at++] = (char)c;
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            at += (size_t)sprintf(out + at, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            p++;
        } else if (c < 0x80) {
            out[at++] = (char)c;
            p++;
        } else {
            size_t n = utf8_sequence((const char *)p, (size_t)(end - p));
            if (n == 0) {
                memcpy(out + at, "\\ufffd", 6);
                at += 6;
                p++;
            } else {
                memcpy(out + at, p, n);
                at += n;
                p += n;
            }
        }
    }
    return at;
}

void log_set_format(enum log_format format)
{
    log_state.format = format;
    char host[sizeof log_state.hostname / 6 - 1];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    size_t n = json_escape(host, strlen(host), log_state.hostname, 0);
    log_state.hostname[n] = '\0';
}

int log_reopen(void)
{
    if (log_state.path == NULL)
        return 0;
    int fd = log_file_open(log_state.path);
    if (fd < 0)
        return -1;
    /* dup2 keeps the descriptor number, so a line being written never lands in a closed fd. */
    if (dup2(fd, log_state.fd) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

void log_close(void)
{
    if (log_state.path != NULL) {
        close(log_state.fd);
        free(log_state.path);
        log_state.path = NULL;
        log_state.fd = STDERR_FILENO;
    }
}

int log_fd(void)
{
    return log_state.fd;
}

static int text_prefix(enum log_level level, char *line, size_t cap)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    return snprintf(line, cap,
                    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s: ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    (long)(now.tv_usec / 1000), log_state.role, (long)getpid(), level_names[level]);
}

/* {"Timestamp":ns,"Type":"presenced.master|worker","Logger":"presenced","Hostname":…,
 *  "EnvVersion":"2.0","Severity":N,"Pid":N,"Fields":{"msg":…,"role":…}} */
static size_t mozlog_line(enum log_level level, const char *msg, size_t len, char *line)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    const char *type = strncmp(log_state.role, "worker", 6) == 0 ? "worker" : log_state.role;
    size_t at =
        (size_t)sprintf(line,
                        "{\"Timestamp\":%lld,\"Type\":\"presenced.%s\",\"Logger\":"
                        "\"presenced\",\"Hostname\":\"%s\",\"EnvVersion\":\"2.0\","
                        "\"Severity\":%d,\"Pid\":%ld,\"Fields\":{\"msg\":\"",
                        ns, type, log_state.hostname, level_severity[level], (long)getpid());
    at = json_escape(msg, len, line, at);
    at += (size_t)sprintf(line + at, "\",\"role\":\"");
    at = json_escape(log_state.role, strlen(log_state.role), line, at);
    at += (size_t)sprintf(line + at, "\"}}\n");
    return at;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < log_state.level)
        return;
    int saved_errno = errno;
    char text[LOG_LINE_MAX];
    bool mozlog = log_state.format == LOG_FORMAT_MOZLOG;
    int n = mozlog ? 0 : text_prefix(level, text, sizeof text);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof text)
        n += vsnprintf(text + n, sizeof text - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0) {
        errno = saved_errno;
        return;
    }
    if ((size_t)n >= sizeof text - 1)
        n = (int)sizeof text - 2;
    /* One write per line: lines of several processes sharing the file do not interleave. */
    ssize_t written;
    if (mozlog) {
        char line[LOG_JSON_MAX];
        written = write(log_state.fd, line, mozlog_line(level, text, (size_t)n, line));
    } else {
        text[n++] = '\n';
        written = write(log_state.fd, text, (size_t)n);
    }
    (void)written;
    errno = saved_errno;
}
