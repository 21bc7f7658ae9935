/* log: leveled, timestamped log lines to stderr or a reopenable file, as text or MozLog JSON. */
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

/* text: "time role[pid] level: message"; mozlog: one JSON object a line in Mozilla's MozLog
 * format (Timestamp in ns, Type, Logger, Hostname, EnvVersion, Severity, Pid, Fields). */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_MOZLOG };

/* Parses "debug", "info", "notice", "warning", "error"; returns -1 on anything else. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);
/* Parses "text" or "mozlog"; returns -1 on anything else. */
int log_format_parse(const char *name);

/* path NULL or "" logs to stderr. role is "master" or "worker N", shown on every line. */
int log_open(const char *path, enum log_level level);
void log_set_role(const char *role);
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
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
