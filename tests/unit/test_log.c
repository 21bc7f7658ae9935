/* Unit tests of common/log.c: text lines, MozLog lines (valid JSON whatever the message holds),
 * levels, and the log_format key. */
#include "tap.h"

#include "../../common/config.h"
#include "../../common/log.h"

#include <json-c/json.h>
#include <stdint.h>
#include <unistd.h>

static char log_path[] = "/tmp/presenced-test-log-XXXXXX";

/* The file's lines, and how many; the caller frees. */
static char *read_all(void)
{
    FILE *f = fopen(log_path, "r");
    if (f == NULL)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void truncate_log(void)
{
    if (truncate(log_path, 0) != 0)
        diag("cannot truncate %s", log_path);
}

static struct json_object *only_line(void)
{
    char *text = read_all();
    char *newline = text ? strchr(text, '\n') : NULL;
    if (newline == NULL || newline[1] != '\0')
        return NULL;
    *newline = '\0';
    return json_tokener_parse(text);
}

static const char *field(struct json_object *o, const char *name)
{
    struct json_object *v;
    return json_object_object_get_ex(o, name, &v) ? json_object_get_string(v) : NULL;
}

static void test_mozlog(void)
{
    log_set_format(LOG_FORMAT_MOZLOG);
    log_set_role("worker 3");
    truncate_log();
    log_warning("quote \" backslash \\ tab \t newline \n bell \a caf\xc3\xa9 bad \xff\xc3 end");
    struct json_object *o = only_line();
    ok(o != NULL, "a MozLog line is one JSON object on one line");
    if (o == NULL)
        return;
    is_str(field(o, "Logger"), "presenced", "Logger");
    is_str(field(o, "EnvVersion"), "2.0", "EnvVersion");
    is_str(field(o, "Type"), "presenced.worker", "Type: the kind of process");
    struct json_object *v, *fields;
    ok(json_object_object_get_ex(o, "Severity", &v) && json_object_get_int(v) == 4,
       "warning is Severity 4");
    ok(json_object_object_get_ex(o, "Pid", &v) && json_object_get_int(v) == getpid(), "Pid");
    ok(json_object_object_get_ex(o, "Timestamp", &v) && json_object_is_type(v, json_type_int) &&
           json_object_get_int64(v) > 1700000000LL * 1000000000LL,
       "Timestamp in nanoseconds");
    char host[256] = "";
    gethostname(host, sizeof host);
    is_str(field(o, "Hostname"), host, "Hostname");
    ok(json_object_object_get_ex(o, "Fields", &fields), "Fields");
    is_str(
        field(fields, "msg"),
        "quote \" backslash \\ tab \t newline \n bell \a caf\xc3\xa9 bad \xef\xbf\xbd\xef\xbf\xbd"
        " end",
        "the message: escapes, UTF-8 kept, invalid bytes as U+FFFD");
    is_str(field(fields, "role"), "worker 3", "the role");
    json_object_put(o);

    truncate_log();
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[1020] = '\xc3'; /* a character the cut falls into */
    big[1021] = '\xa9';
    log_error("%s", big);
    o = only_line();
    ok(o != NULL, "a long message is cut and still one JSON line");
    if (o != NULL && json_object_object_get_ex(o, "Fields", &fields))
        ok(strlen(field(fields, "msg")) < 1100, "cut at about 1 KiB");
    json_object_put(o);

    truncate_log();
    log_set_level(LOG_LEVEL_NOTICE);
    log_info("not written");
    log_notice("written");
    char *text = read_all();
    ok(text && strstr(text, "not written") == NULL && strstr(text, "\"Severity\":5"),
       "levels below log_level are not written; notice is 5");
    log_set_level(LOG_LEVEL_DEBUG);
}

/* Every level has its syslog Severity (presenced(8), LOGGING). */
static void test_every_severity(void)
{
    static const struct {
        enum log_level level;
        int severity;
    } levels[] = { { LOG_LEVEL_DEBUG, 7 },
                   { LOG_LEVEL_INFO, 6 },
                   { LOG_LEVEL_NOTICE, 5 },
                   { LOG_LEVEL_WARNING, 4 },
                   { LOG_LEVEL_ERROR, 3 } };
    log_set_format(LOG_FORMAT_MOZLOG);
    log_set_level(LOG_LEVEL_DEBUG);
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        truncate_log();
        log_msg(levels[i].level, "level %zu", i);
        struct json_object *o = only_line(), *v;
        ok(o != NULL && json_object_object_get_ex(o, "Severity", &v) &&
               json_object_get_int(v) == levels[i].severity,
           "level %zu is Severity %d", i, levels[i].severity);
        json_object_put(o);
    }
}

static void test_text(void)
{
    log_set_format(LOG_FORMAT_TEXT);
    log_set_role("master");
    truncate_log();
    log_info("plain %d", 42);
    char *text = read_all();
    char pid[64];
    snprintf(pid, sizeof pid, "master[%ld] info: plain 42\n", (long)getpid());
    ok(text && strstr(text, pid) && text[0] == '2' && strchr(text, '\n')[1] == '\0',
       "text: time role[pid] level: message");
}

static void test_config_key(void)
{
    is_int(log_format_parse("text"), LOG_FORMAT_TEXT, "text");
    is_int(log_format_parse("mozlog"), LOG_FORMAT_MOZLOG, "mozlog");
    is_int(log_format_parse("json"), -1, "anything else is refused");
    char conf[] = "/tmp/presenced-test-log-conf-XXXXXX";
    int fd = mkstemp(conf);
    const char *text = "log_format mozlog\n";
    ok(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "a config file");
    close(fd);
    struct config cfg;
    char err[512] = "";
    config_defaults(&cfg);
    is_int(cfg.log_format, LOG_FORMAT_TEXT, "text by default");
    is_int(config_load(&cfg, conf, err, sizeof err), 0, "log_format mozlog loads: %s", err);
    is_int(cfg.log_format, LOG_FORMAT_MOZLOG, "and is set");
    config_free(&cfg);
    FILE *f = fopen(conf, "w");
    fputs("log_format json\n", f);
    fclose(f);
    config_defaults(&cfg);
    ok(config_load(&cfg, conf, err, sizeof err) != 0 && strstr(err, ":1: log_format: 'json'"),
       "a bad value is refused with file:line (%s)", err);
    config_free(&cfg);
    unlink(conf);
}

int main(void)
{
    int fd = mkstemp(log_path);
    close(fd);
    ok(log_open(log_path, LOG_LEVEL_DEBUG) == 0, "log opens %s", log_path);
    test_mozlog();
    test_every_severity();
    test_text();
    test_config_key();
    log_close();
    unlink(log_path);
    return tap_done();
}
