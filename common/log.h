/* log: leveled, timestamped log lines to stderr or a reopenable file. */
#ifndef PRESENCED_LOG_H
#define PRESENCED_LOG_H

#include <stdarg.h>

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_NOTICE,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR
};

/* Parses "debug", "info", "notice", "warning", "error"; returns -1 on anything else. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* path NULL or "" logs to stderr. role is "master" or "worker N", shown on every line. */
int log_open(const char *path, enum log_level level);
void log_set_role(const char *role);
void log_set_level(enum log_level level);
/* Reopens the file at the same path (logrotate, SIGUSR1); a no-op on stderr. */
int log_reopen(void);
void log_close(void);
/* The descriptor lines go to (kept open across the master's fork of a worker). */
int log_fd(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
