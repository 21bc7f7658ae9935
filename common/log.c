/* log: leveled, timestamped log lines to stderr or a reopenable file. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = { "debug", "info", "notice", "warning", "error" };

/* The module's own state: one log sink per process. */
static struct {
    int fd;
    char *path;
    enum log_level level;
    char role[32];
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

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < log_state.level)
        return;
    int saved_errno = errno;
    char line[1024];
    struct timeval now;
    gettimeofday(&now, NULL);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    int n = snprintf(
        line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s: ", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(now.tv_usec / 1000),
        log_state.role, (long)getpid(), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write per line: lines of several processes sharing the file do not interleave. */
    ssize_t written = write(log_state.fd, line, (size_t)n);
    (void)written;
    errno = saved_errno;
}
