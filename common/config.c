/* config: the presenced.conf file format (one "key value" per line) and its validated settings. */
#include "config.h"

#include "file_read.h"

#include "addr.h"
#include "id_support.h"
#include "jwk.h"
#include "jwt.h"
#include "log.h"
#include "origin.h"
#include "vapid.h"
#include "version.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_FILE_SIZE (1024 * 1024)
#define CONFIG_MAX_LINE 4096

enum key_type {
    KEY_STRING,
    KEY_INT,
    KEY_DURATION,
    KEY_SIZE,
    KEY_LOG_LEVEL,
    KEY_LOG_FORMAT,
    KEY_WORKERS,
    KEY_LIST,
    KEY_ISSUER,
    KEY_LISTEN,
    KEY_URL,
    KEY_VERIFIER,
    KEY_CONNECT_TO,
    KEY_BOOL,
    KEY_OIDC_ISSUER,
    KEY_OIDC_AUDIENCE,
    KEY_OIDC_LOGIN,
    KEY_CLUSTER,
    KEY_NODE_NAME
};

struct key_spec {
    const char *name;
    enum key_type type;
    size_t offset;
    int64_t min, max;
};

#define FIELD(f) offsetof(struct config, f)
#define DAY_MS (86400LL * 1000)
#define GIB (1024LL * 1024 * 1024)

static const struct key_spec key_specs[] = {
    { "listen", KEY_LISTEN, FIELD(listen), 0, 0 },
    { "workers", KEY_WORKERS, FIELD(workers), 0, 256 },
    { "data_dir", KEY_STRING, FIELD(data_dir), 0, 0 },
    { "pid_file", KEY_STRING, FIELD(pid_file), 0, 0 },
    { "log_file", KEY_STRING, FIELD(log_file), 0, 0 },
    { "log_level", KEY_LOG_LEVEL, FIELD(log_level), 0, 0 },
    { "log_format", KEY_LOG_FORMAT, FIELD(log_format), 0, 0 },
    { "admin_listen", KEY_LISTEN, FIELD(admin_listen), 0, 0 },
    { "public_url", KEY_URL, FIELD(public_url), 0, 0 },
    { "source_url", KEY_STRING, FIELD(source_url), 0, 0 },
    { "audience", KEY_LIST, FIELD(audience), 0, 0 },
    { "trusted_issuer", KEY_ISSUER, FIELD(trusted_issuer), 0, 0 },
    { "oidc_issuer", KEY_OIDC_ISSUER, FIELD(oidc_issuer), 0, 0 },
    { "oidc_audience", KEY_OIDC_AUDIENCE, FIELD(oidc_audience), 0, 0 },
    { "dev_issuer", KEY_BOOL, FIELD(dev_issuer), 0, 1 },
    { "oidc_login", KEY_OIDC_LOGIN, FIELD(oidc_login), 0, 0 },
    { "verifier", KEY_VERIFIER, FIELD(verifier), 0, 0 },
    { "verify_timeout", KEY_DURATION, FIELD(verify_timeout_ms), 100, 60 * 1000 },
    { "issuer_cache_ttl", KEY_DURATION, FIELD(issuer_cache_ttl_ms), 1000, 7 * DAY_MS },
    { "issuer_failure_ttl", KEY_DURATION, FIELD(issuer_failure_ttl_ms), 1000, DAY_MS },
    { "ca_file", KEY_STRING, FIELD(ca_file), 0, 0 },
    { "session_ttl", KEY_DURATION, FIELD(session_ttl_ms), 60 * 1000, 365 * DAY_MS },
    { "app_rate", KEY_INT, FIELD(app_rate), 1, 1000000 },
    { "app_burst", KEY_INT, FIELD(app_burst), 1, 1000000 },
    { "validate_private_addresses", KEY_BOOL, FIELD(validate_private_addresses), 0, 1 },
    { "connect_to", KEY_CONNECT_TO, FIELD(connect_to), 0, 0 },
    { "clock_skew", KEY_DURATION, FIELD(clock_skew_ms), 0, DAY_MS },
    { "tls_cert", KEY_STRING, FIELD(tls_cert), 0, 0 },
    { "tls_key", KEY_STRING, FIELD(tls_key), 0, 0 },
    { "max_message_size", KEY_SIZE, FIELD(max_message_size), 64, 1024 * 1024 },
    { "max_output_buffer", KEY_SIZE, FIELD(max_output_buffer), 16 * 1024, 64 * 1024 * 1024 },
    { "status_rate", KEY_INT, FIELD(status_rate), 1, 1000000 },
    { "status_burst", KEY_INT, FIELD(status_burst), 1, 1000000 },
    { "abuse_limit", KEY_INT, FIELD(abuse_limit), 1, 1000000 },
    { "max_devices_per_user", KEY_INT, FIELD(max_devices_per_user), 1, 10000 },
    { "ping_interval", KEY_DURATION, FIELD(ping_interval_ms), 1000, DAY_MS },
    { "ping_timeout", KEY_DURATION, FIELD(ping_timeout_ms), 1000, DAY_MS },
    { "notification_ttl", KEY_DURATION, FIELD(notification_ttl_ms), 1000, 30 * DAY_MS },
    { "max_pending_notifications", KEY_INT, FIELD(max_pending_notifications), 1, 100000 },
    { "drain_timeout", KEY_DURATION, FIELD(drain_timeout_ms), 0, DAY_MS },
    { "drain_grace", KEY_DURATION, FIELD(drain_grace_ms), 0, DAY_MS },
    { "offline_grace", KEY_DURATION, FIELD(offline_grace_ms), 0, 3600 * 1000 },
    { "last_seen_ttl", KEY_DURATION, FIELD(last_seen_ttl_ms), 0, 365 * DAY_MS },
    { "vapid_key", KEY_STRING, FIELD(vapid_key), 0, 0 },
    { "vapid_subject", KEY_STRING, FIELD(vapid_subject), 0, 0 },
    { "map_size", KEY_SIZE, FIELD(map_size), 1024 * 1024, 1024 * GIB },
    { "max_map_size", KEY_SIZE, FIELD(max_map_size), 1024 * 1024, 1024 * GIB },
    { "sync_interval", KEY_DURATION, FIELD(sync_interval_ms), 0, 3600 * 1000 },
    { "max_connections", KEY_INT, FIELD(max_connections), 0, 10000000 },
    { "cluster", KEY_CLUSTER, FIELD(cluster), 0, 0 },
    { "node_name", KEY_NODE_NAME, FIELD(node_name), 0, 0 },
    { "node_timeout", KEY_DURATION, FIELD(node_timeout_ms), 2000, 60 * 1000 },
    { "cluster_shards", KEY_INT, FIELD(cluster_shards), 1, 64 },
    { "cluster_replicas", KEY_INT, FIELD(cluster_replicas), 1, 5 },
};

static void oidc_login_free(struct config_oidc_login *login);

static char *xstrdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

int config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = xstrdup("*:8282");
    cfg->data_dir = xstrdup("/var/lib/presenced");
    cfg->pid_file = xstrdup("/run/presenced.pid");
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->admin_listen = xstrdup("127.0.0.1:8283");
    cfg->public_url = xstrdup("http://localhost:8282");
    cfg->source_url = xstrdup(PRESENCED_SOURCE);
    cfg->clock_skew_ms = 60 * 1000;
    cfg->verifier_protocol = 1;
    cfg->session_ttl_ms = DAY_MS;
    cfg->app_rate = 100;
    cfg->app_burst = 200;
    cfg->verify_timeout_ms = 5 * 1000;
    cfg->issuer_cache_ttl_ms = 3600 * 1000;
    cfg->issuer_failure_ttl_ms = 30 * 1000;
    cfg->max_message_size = 4096;
    cfg->max_output_buffer = 64 * 1024;
    cfg->status_rate = 5;
    cfg->status_burst = 20;
    cfg->abuse_limit = 50;
    cfg->max_devices_per_user = 10;
    cfg->ping_interval_ms = 30 * 1000;
    cfg->ping_timeout_ms = 10 * 1000;
    cfg->notification_ttl_ms = 3600 * 1000;
    cfg->max_pending_notifications = 100;
    cfg->drain_timeout_ms = 10 * 1000;
    cfg->offline_grace_ms = 5 * 1000;
    cfg->last_seen_ttl_ms = 7 * DAY_MS;
    cfg->map_size = 256LL * 1024 * 1024;
    cfg->max_map_size = 16 * GIB;
    cfg->sync_interval_ms = 1000;
    cfg->node_timeout_ms = 5000;
    cfg->cluster_shards = 12;
    cfg->cluster_replicas = 3;
    if (cfg->listen == NULL || cfg->data_dir == NULL || cfg->pid_file == NULL ||
        cfg->admin_listen == NULL || cfg->public_url == NULL || cfg->source_url == NULL) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    free(cfg->path);
    free(cfg->listen);
    free(cfg->data_dir);
    free(cfg->pid_file);
    free(cfg->log_file);
    free(cfg->admin_listen);
    free(cfg->public_url);
    free(cfg->source_url);
    free(cfg->public_origin);
    for (size_t i = 0; i < cfg->audience_count; i++)
        free(cfg->audience[i]);
    for (size_t i = 0; i < cfg->trusted_issuer_count; i++) {
        free(cfg->trusted_issuer[i].host);
        free(cfg->trusted_issuer[i].key_file);
    }
    for (size_t i = 0; i < cfg->oidc_issuer_count; i++) {
        free(cfg->oidc_issuer[i].issuer);
        free(cfg->oidc_issuer[i].jwks_file);
    }
    for (size_t i = 0; i < cfg->oidc_audience_count; i++)
        free(cfg->oidc_audience[i]);
    for (size_t i = 0; i < cfg->oidc_login_count; i++)
        oidc_login_free(&cfg->oidc_login[i]);
    free(cfg->verifier);
    free(cfg->ca_file);
    for (size_t i = 0; i < cfg->connect_to_count; i++)
        free(cfg->connect_to[i]);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->cluster);
    free(cfg->node_name);
    free(cfg->vapid_key);
    free(cfg->vapid_subject);
    memset(cfg, 0, sizeof *cfg);
}

/* Splits "<number><unit>" and returns the unit, or NULL when no digits come first. */
static const char *number_split(const char *text, int64_t *number)
{
    if (!isdigit((unsigned char)text[0]))
        return NULL;
    errno = 0;
    char *end;
    long long value = strtoll(text, &end, 10);
    if (errno != 0)
        return NULL;
    *number = value;
    return end;
}

static int scale(int64_t number, int64_t unit, int64_t *out)
{
    if (number > INT64_MAX / unit)
        return -1;
    *out = number * unit;
    return 0;
}

int config_parse_duration_ms(const char *text, int64_t *out)
{
    int64_t number;
    const char *unit = number_split(text, &number);
    if (unit == NULL)
        return -1;
    if (strcmp(unit, "ms") == 0)
        return scale(number, 1, out);
    if (strcmp(unit, "") == 0 || strcmp(unit, "s") == 0)
        return scale(number, 1000, out);
    if (strcmp(unit, "m") == 0)
        return scale(number, 60 * 1000, out);
    if (strcmp(unit, "h") == 0)
        return scale(number, 3600 * 1000, out);
    if (strcmp(unit, "d") == 0)
        return scale(number, DAY_MS, out);
    return -1;
}

int config_parse_size(const char *text, int64_t *out)
{
    int64_t number;
    const char *unit = number_split(text, &number);
    if (unit == NULL)
        return -1;
    if (strcmp(unit, "") == 0)
        return scale(number, 1, out);
    if (strcmp(unit, "k") == 0 || strcmp(unit, "K") == 0)
        return scale(number, 1024, out);
    if (strcmp(unit, "M") == 0)
        return scale(number, 1024 * 1024, out);
    if (strcmp(unit, "G") == 0)
        return scale(number, GIB, out);
    return -1;
}

/* The parse of one file: where we are and where the first error goes. */
struct parser {
    struct config *cfg;
    const char *name;
    int line;
    int seen_line[sizeof key_specs / sizeof key_specs[0]];
    char *err;
    size_t errlen;
};

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct parser *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, p->line);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int set_string(struct parser *p, char **slot, const char *value)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return fail(p, "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

/* A bound of a key as it would be written in the file: 30s, 1h, 7d, 64k, 1M, or a number. */
static void bound_text(enum key_type type, int64_t n, char *out, size_t cap)
{
    static const struct {
        int64_t size;
        const char *unit;
    } durations[] = { { DAY_MS, "d" }, { 3600 * 1000, "h" }, { 60 * 1000, "m" }, { 1000, "s" } },
      sizes[] = { { GIB, "G" }, { 1024 * 1024, "M" }, { 1024, "k" } };
    const char *unit = type == KEY_DURATION ? "ms" : "";
    int64_t shown = n;
    size_t count = type == KEY_DURATION ? sizeof durations / sizeof durations[0]
                   : type == KEY_SIZE   ? sizeof sizes / sizeof sizes[0]
                                        : 0;
    for (size_t i = 0; n != 0 && i < count; i++) {
        int64_t size = type == KEY_DURATION ? durations[i].size : sizes[i].size;
        if (n % size == 0) {
            shown = n / size;
            unit = type == KEY_DURATION ? durations[i].unit : sizes[i].unit;
            break;
        }
    }
    snprintf(out, cap, "%" PRId64 "%s", shown, n == 0 ? "" : unit);
}

static int set_number(struct parser *p, const struct key_spec *spec, const char *value)
{
    int64_t number;
    int rc;
    const char *expect;
    switch (spec->type) {
    case KEY_DURATION:
        rc = config_parse_duration_ms(value, &number);
        expect = "a duration (e.g. 30, 30s, 500ms, 5m, 1h)";
        break;
    case KEY_SIZE:
        rc = config_parse_size(value, &number);
        expect = "a size (e.g. 4096, 64k, 256M, 1G)";
        break;
    default: {
        const char *unit = number_split(value, &number);
        rc = (unit != NULL && *unit == '\0') ? 0 : -1;
        expect = "a whole number";
    }
    }
    if (rc != 0)
        return fail(p, "%s: '%s' is not %s", spec->name, value, expect);
    if (number < spec->min || number > spec->max) {
        char low[32], high[32];
        bound_text(spec->type, spec->min, low, sizeof low);
        bound_text(spec->type, spec->max, high, sizeof high);
        return fail(p, "%s: %s is out of range (from %s to %s)", spec->name, value, low, high);
    }
    *(int64_t *)((char *)p->cfg + spec->offset) = number;
    return 0;
}

static int set_workers(struct parser *p, const char *value)
{
    if (strcmp(value, "auto") == 0) {
        p->cfg->workers = 0;
        return 0;
    }
    int64_t number;
    const char *unit = number_split(value, &number);
    if (unit == NULL || *unit != '\0' || number < 1 || number > 256)
        return fail(p, "workers: '%s' must be 'auto' or a number from 1 to 256", value);
    p->cfg->workers = (int)number;
    return 0;
}

static int set_url(struct parser *p, const struct key_spec *spec, const char *value)
{
    if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
        return fail(p, "%s: '%s' must start with http:// or https://", spec->name, value);
    /* Paths are added to it (the sign-in's redirect URI, the development issuer's iss). */
    if (strpbrk(value, "?#") != NULL)
        return fail(p, "%s: '%s' may not have a query or a fragment", spec->name, value);
    return set_string(p, (char **)((char *)p->cfg + spec->offset), value);
}

static int set_listen(struct parser *p, const struct key_spec *spec, const char *value)
{
    if (!(strcmp(spec->name, "admin_listen") == 0 && strcmp(value, "off") == 0)) {
        struct listen_addr addr;
        const char *reason;
        if (addr_parse(value, &addr, &reason) != 0)
            return fail(p, "%s: '%s': %s", spec->name, value, reason);
    }
    return set_string(p, (char **)((char *)p->cfg + spec->offset), value);
}

static int add_audience(struct parser *p, const char *value)
{
    struct config *cfg = p->cfg;
    char canonical[ORIGIN_MAX];
    if (cfg->audience_count == CONFIG_MAX_LIST)
        return fail(p, "audience: at most %d audiences", CONFIG_MAX_LIST);
    if (origin_normalize(value, canonical, sizeof canonical) != 0)
        return fail(p, "audience: '%s' must be an origin such as https://example.com", value);
    char *copy = strdup(canonical);
    if (copy == NULL)
        return fail(p, "out of memory");
    cfg->audience[cfg->audience_count++] = copy;
    return 0;
}

/* verifier URL [v1|v2]: without the second word, a URL whose path ends in /v2 speaks v2. */
static int set_verifier(struct parser *p, const struct key_spec *spec, char **args, int nargs)
{
    if (nargs < 1 || nargs > 2)
        return fail(p, "verifier: expected URL [v1|v2]");
    if (nargs == 2 && strcmp(args[1], "v1") != 0 && strcmp(args[1], "v2") != 0)
        return fail(p, "verifier: protocol '%s' must be v1 or v2", args[1]);
    if (set_url(p, spec, args[0]) != 0)
        return -1;
    size_t len = strlen(args[0]);
    bool v2 =
        nargs == 2 ? strcmp(args[1], "v2") == 0 : len >= 3 && strcmp(args[0] + len - 3, "/v2") == 0;
    p->cfg->verifier_protocol = v2 ? 2 : 1;
    return 0;
}

/* connect_to HOST:PORT:ADDRESS:PORT, as curl's --connect-to (ADDRESS may be [v6]). */
static int add_connect_to(struct parser *p, const char *value)
{
    struct config *cfg = p->cfg;
    if (cfg->connect_to_count == CONFIG_MAX_LIST)
        return fail(p, "connect_to: at most %d mappings", CONFIG_MAX_LIST);
    const char *first = strchr(value, ':'), *last = strrchr(value, ':');
    const char *second = first ? strchr(first + 1, ':') : NULL;
    if (first == NULL || second == NULL || second == last || first == value ||
        strspn(last + 1, "0123456789") != strlen(last + 1) || last[1] == '\0')
        return fail(p, "connect_to: '%s' must be HOST:PORT:ADDRESS:PORT", value);
    char *copy = strdup(value);
    if (copy == NULL)
        return fail(p, "out of memory");
    cfg->connect_to[cfg->connect_to_count++] = copy;
    return 0;
}

static int add_issuer(struct parser *p, const char *host, const char *key_file)
{
    struct config *cfg = p->cfg;
    char why[512];
    struct id_key key;
    if (key_file != NULL && id_key_file_load(key_file, &key, why, sizeof why) != 0)
        return fail(p, "trusted_issuer: %s", why);
    if (key_file != NULL)
        id_key_free(&key);
    if (cfg->trusted_issuer_count == CONFIG_MAX_LIST)
        return fail(p, "trusted_issuer: at most %d issuers", CONFIG_MAX_LIST);
    if (strchr(host, '/') != NULL || strchr(host, ':') != NULL)
        return fail(p, "trusted_issuer: '%s' must be a host name, such as login.persona.org", host);
    struct config_issuer issuer = { strdup(host), key_file ? strdup(key_file) : NULL };
    if (issuer.host == NULL || (key_file != NULL && issuer.key_file == NULL)) {
        free(issuer.host);
        free(issuer.key_file);
        return fail(p, "out of memory");
    }
    cfg->trusted_issuer[cfg->trusted_issuer_count++] = issuer;
    return 0;
}

/* An https URL with a host, as an OpenID issuer is (OpenID Connect Discovery §2): no query, no
 * fragment. */
static bool issuer_url_valid(const char *url)
{
    size_t len = strlen(url);
    return strncmp(url, "https://", 8) == 0 && len > 8 && len <= JWT_VALUE_MAX && url[8] != '/' &&
           strpbrk(url, "?# \t") == NULL;
}

static int add_oidc_issuer(struct parser *p, char **args, int nargs)
{
    struct config *cfg = p->cfg;
    if (nargs < 1 || nargs > 2)
        return fail(p, "oidc_issuer: expected ISSUER [JWKS_FILE]");
    if (!issuer_url_valid(args[0]))
        return fail(p, "oidc_issuer: '%s' must be an https URL such as https://accounts.example.com",
                    args[0]);
    for (size_t i = 0; i < cfg->oidc_issuer_count; i++)
        if (strcmp(cfg->oidc_issuer[i].issuer, args[0]) == 0)
            return fail(p, "oidc_issuer: %s is already configured", args[0]);
    if (cfg->oidc_issuer_count == CONFIG_MAX_LIST)
        return fail(p, "oidc_issuer: at most %d issuers", CONFIG_MAX_LIST);
    char why[512];
    struct jwk_set keys;
    if (nargs == 2 && jwk_set_file_load(args[1], &keys, why, sizeof why) != 0)
        return fail(p, "oidc_issuer: %s", why);
    if (nargs == 2)
        jwk_set_free(&keys);
    struct config_oidc_issuer issuer = { strdup(args[0]), nargs == 2 ? strdup(args[1]) : NULL };
    if (issuer.issuer == NULL || (nargs == 2 && issuer.jwks_file == NULL)) {
        free(issuer.issuer);
        free(issuer.jwks_file);
        return fail(p, "out of memory");
    }
    cfg->oidc_issuer[cfg->oidc_issuer_count++] = issuer;
    return 0;
}

static int add_oidc_audience(struct parser *p, const char *value)
{
    struct config *cfg = p->cfg;
    if (cfg->oidc_audience_count == CONFIG_MAX_LIST)
        return fail(p, "oidc_audience: at most %d values", CONFIG_MAX_LIST);
    if (strlen(value) > JWT_VALUE_MAX)
        return fail(p, "oidc_audience: longer than %d bytes", JWT_VALUE_MAX);
    char *copy = strdup(value);
    if (copy == NULL)
        return fail(p, "out of memory");
    cfg->oidc_audience[cfg->oidc_audience_count++] = copy;
    return 0;
}

/* The client secret: the first line of the file, without the line end or trailing blanks. */
static int secret_read(struct parser *p, const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return fail(p, "oidc_login: %s: %s", path, strerror(errno));
    char buf[CONFIG_SECRET_MAX + 2] = "";
    bool read_ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    size_t len = strcspn(buf, "\r\n");
    if (len > CONFIG_SECRET_MAX)
        return fail(p, "oidc_login: %s: the secret is longer than %d bytes", path, CONFIG_SECRET_MAX);
    while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            return fail(p, "oidc_login: %s: the secret holds a control character", path);
    if (!read_ok || len == 0)
        return fail(p, "oidc_login: %s: no secret on its first line", path);
    if ((*out = strdup(buf)) == NULL)
        return fail(p, "out of memory");
    return 0;
}

static void oidc_login_free(struct config_oidc_login *login)
{
    free(login->issuer);
    free(login->client_id);
    free(login->secret);
    free(login->label);
    memset(login, 0, sizeof *login);
}

/* oidc_login ISSUER CLIENT_ID SECRET_FILE [LABEL]: LABEL defaults to the issuer's host. */
static int add_oidc_login(struct parser *p, char **args, int nargs, const char *label)
{
    struct config *cfg = p->cfg;
    if (nargs != 3)
        return fail(p, "oidc_login: expected ISSUER CLIENT_ID SECRET_FILE [LABEL]");
    if (!issuer_url_valid(args[0]))
        return fail(p, "oidc_login: '%s' must be an https URL such as https://accounts.example.com",
                    args[0]);
    if (strlen(args[1]) > JWT_VALUE_MAX)
        return fail(p, "oidc_login: the client id is longer than %d bytes", JWT_VALUE_MAX);
    if (cfg->oidc_login_count == CONFIG_MAX_LOGINS)
        return fail(p, "oidc_login: at most %d providers", CONFIG_MAX_LOGINS);
    struct config_oidc_login login = { strdup(args[0]), strdup(args[1]), NULL, NULL };
    if (secret_read(p, args[2], &login.secret) != 0) {
        oidc_login_free(&login);
        return -1;
    }
    if (label == NULL) {
        const char *host = args[0] + 8;
        login.label = strndup(host, strcspn(host, "/:"));
    } else {
        size_t len = strlen(label);
        while (len > 0 && (label[len - 1] == ' ' || label[len - 1] == '\t'))
            len--;
        login.label = strndup(label, len > CONFIG_LABEL_MAX ? CONFIG_LABEL_MAX : len);
    }
    if (login.issuer == NULL || login.client_id == NULL || login.label == NULL) {
        oidc_login_free(&login);
        return fail(p, "out of memory");
    }
    cfg->oidc_login[cfg->oidc_login_count++] = login;
    return 0;
}

/* One server of the engine: nats://HOST:PORT, HOST a name, an IPv4 address or [v6]. */
static bool nats_url_valid(const char *url, size_t len)
{
    if (len <= 7 || strncmp(url, "nats://", 7) != 0)
        return false;
    const char *host = url + 7, *end = url + len;
    const char *colon = memrchr(host, ':', (size_t)(end - host));
    if (colon == NULL || colon == host || colon + 1 == end || end - colon - 1 > 5 ||
        memchr(host, '/', (size_t)(end - host)) != NULL)
        return false;
    long port = 0;
    for (const char *c = colon + 1; c < end; c++) {
        if (*c < '0' || *c > '9')
            return false;
        port = port * 10 + (*c - '0');
    }
    return port > 0 && port < 65536;
}

/* cluster nats://HOST:PORT[,nats://HOST:PORT…]: the engine's servers. */
static int set_cluster(struct parser *p, const char *value)
{
    size_t count = 0;
    const char *url = value;
    for (;;) {
        size_t len = strcspn(url, ",");
        if (!nats_url_valid(url, len))
            return fail(p, "cluster: '%.*s' must be nats://HOST:PORT (several joined by commas)",
                        (int)len, url);
        if (++count > CONFIG_MAX_LIST)
            return fail(p, "cluster: at most %d servers", CONFIG_MAX_LIST);
        if (url[len] == '\0')
            break;
        url += len + 1;
    }
    return set_string(p, &p->cfg->cluster, value);
}

/* node_name: a KV key and subject token of the engine, and a name in logs and /status. */
static int set_node_name(struct parser *p, const char *value)
{
    size_t len = strlen(value);
    if (len == 0 || len > CONFIG_NODE_NAME_MAX ||
        strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789-") != len)
        return fail(p, "node_name: '%.64s' must be 1 to %d of a-z, 0-9 and -", value,
                    CONFIG_NODE_NAME_MAX);
    return set_string(p, &p->cfg->node_name, value);
}

static const struct key_spec *key_find(const char *name)
{
    for (size_t i = 0; i < sizeof key_specs / sizeof key_specs[0]; i++)
        if (strcmp(key_specs[i].name, name) == 0)
            return &key_specs[i];
    return NULL;
}

/* Splits a line into at most max whitespace-separated words, in place. */
static int words_split(char *line, char **words, int max)
{
    int count = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
        if (count == max)
            return max + 1;
        words[count++] = w;
    }
    return count;
}

static int key_apply(struct parser *p, const struct key_spec *spec, char **args, int nargs)
{
    if (spec->type == KEY_VERIFIER)
        return set_verifier(p, spec, args, nargs);
    if (spec->type == KEY_OIDC_ISSUER)
        return add_oidc_issuer(p, args, nargs);
    if (spec->type == KEY_ISSUER) {
        if (nargs < 1 || nargs > 2)
            return fail(p, "trusted_issuer: expected HOST [KEYFILE]");
        return add_issuer(p, args[0], nargs == 2 ? args[1] : NULL);
    }
    if (nargs != 1) {
        bool comment = false; /* a "# ..." after the value, as some other daemons allow */
        for (int i = 1; i < nargs; i++)
            comment = comment || args[i][0] == '#';
        return fail(p, "%s: expected one value, got %d%s", spec->name, nargs,
                    comment ? " (# after a value starts no comment: comments go on lines of "
                              "their own)"
                            : "");
    }
    switch (spec->type) {
    case KEY_STRING:
        return set_string(p, (char **)((char *)p->cfg + spec->offset), args[0]);
    case KEY_URL:
        return set_url(p, spec, args[0]);
    case KEY_LISTEN:
        return set_listen(p, spec, args[0]);
    case KEY_LIST:
        return add_audience(p, args[0]);
    case KEY_CONNECT_TO:
        return add_connect_to(p, args[0]);
    case KEY_OIDC_AUDIENCE:
        return add_oidc_audience(p, args[0]);
    case KEY_CLUSTER:
        return set_cluster(p, args[0]);
    case KEY_NODE_NAME:
        return set_node_name(p, args[0]);
    case KEY_BOOL: {
        bool yes = strcmp(args[0], "yes") == 0 || strcmp(args[0], "on") == 0;
        if (!yes && strcmp(args[0], "no") != 0 && strcmp(args[0], "off") != 0)
            return fail(p, "%s: '%s' must be on or off (or yes or no)", spec->name, args[0]);
        *(int64_t *)((char *)p->cfg + spec->offset) = yes;
        return 0;
    }
    case KEY_WORKERS:
        return set_workers(p, args[0]);
    case KEY_LOG_LEVEL: {
        int level = log_level_parse(args[0]);
        if (level < 0)
            return fail(p, "log_level: '%s' must be debug, info, notice, warning or error",
                        args[0]);
        p->cfg->log_level = level;
        return 0;
    }
    case KEY_LOG_FORMAT: {
        int format = log_format_parse(args[0]);
        if (format < 0)
            return fail(p, "log_format: '%s' must be text or mozlog", args[0]);
        p->cfg->log_format = format;
        return 0;
    }
    default:
        return set_number(p, spec, args[0]);
    }
}

static int line_parse(struct parser *p, char *line)
{
    char *words[6], original[CONFIG_MAX_LINE];
    snprintf(original, sizeof original, "%s", line);
    int count = words_split(line, words, 5);
    if (count == 0 || words[0][0] == '#')
        return 0;
    const struct key_spec *spec = key_find(words[0]);
    if (spec == NULL)
        return fail(p, "unknown key '%.64s'", words[0]);
    size_t index = (size_t)(spec - key_specs);
    bool repeatable = spec->type == KEY_LIST || spec->type == KEY_ISSUER ||
                      spec->type == KEY_CONNECT_TO || spec->type == KEY_OIDC_ISSUER ||
                      spec->type == KEY_OIDC_AUDIENCE || spec->type == KEY_OIDC_LOGIN;
    if (!repeatable && p->seen_line[index] != 0)
        return fail(p, "%s is already set at line %d", spec->name, p->seen_line[index]);
    p->seen_line[index] = p->line;
    if (spec->type == KEY_OIDC_LOGIN)
        /* The label is the rest of the line, spaces and all. */
        return add_oidc_login(p, words + 1, count > 4 ? 3 : count - 1,
                              count > 4 ? original + (words[4] - line) : NULL);
    return key_apply(p, spec, words + 1, count > 3 ? 3 : count - 1);
}

static int line_of(const struct parser *p, const char *key)
{
    const struct key_spec *spec = key_find(key);
    return p->seen_line[spec - key_specs];
}

/* The canonical origin of public_url: the web login's audience, and the one audience when no
 * audience line is given. */
static int public_origin_set(struct config *cfg)
{
    char origin[ORIGIN_MAX], canonical[ORIGIN_MAX];
    const char *sep = strstr(cfg->public_url, "://");
    size_t len = sep == NULL ? 0 : (size_t)(sep + 3 - cfg->public_url) + strcspn(sep + 3, "/?#");
    if (len == 0 || len >= sizeof origin)
        return -1;
    memcpy(origin, cfg->public_url, len);
    origin[len] = '\0';
    if (origin_normalize(origin, canonical, sizeof canonical) != 0)
        return -1;
    free(cfg->public_origin);
    if ((cfg->public_origin = strdup(canonical)) == NULL)
        return -1;
    cfg->audience_given = cfg->audience_count > 0;
    if (cfg->audience_count == 0) {
        if ((cfg->audience[0] = strdup(canonical)) == NULL)
            return -1;
        cfg->audience_count = 1;
    }
    return 0;
}

/* The OpenID keys' rules: audiences for the issuers, discovery for the sign-ins. */
static int oidc_check(struct parser *p)
{
    struct config *cfg = p->cfg;
    if (cfg->oidc_issuer_count > 0 && cfg->oidc_audience_count == 0) {
        p->line = line_of(p, "oidc_issuer");
        return fail(p, "oidc_issuer needs oidc_audience: the aud values tokens must carry");
    }
    for (size_t i = 0; i < cfg->oidc_login_count; i++)
        for (size_t j = 0; j < cfg->oidc_issuer_count; j++)
            if (cfg->oidc_issuer[j].jwks_file != NULL &&
                strcmp(cfg->oidc_issuer[j].issuer, cfg->oidc_login[i].issuer) == 0) {
                p->line = line_of(p, "oidc_login");
                return fail(p, "oidc_login: %s has a JWKS_FILE in oidc_issuer, but the sign-in "
                               "needs its discovery document: drop the file",
                            cfg->oidc_login[i].issuer);
            }
    return 0;
}

/* Web Push: a P-256 key and a contact, both or neither. */
static int push_check(struct parser *p)
{
    struct config *cfg = p->cfg;
    if ((cfg->vapid_key == NULL) != (cfg->vapid_subject == NULL)) {
        p->line = line_of(p, cfg->vapid_key ? "vapid_key" : "vapid_subject");
        return fail(p, "vapid_key and vapid_subject must be set together");
    }
    if (cfg->vapid_subject != NULL && !vapid_subject_valid(cfg->vapid_subject)) {
        p->line = line_of(p, "vapid_subject");
        return fail(p, "vapid_subject: '%.64s' must be a mailto: or https: URI", cfg->vapid_subject);
    }
    char why[512];
    struct vapid_key key;
    if (cfg->vapid_key != NULL && vapid_key_load(cfg->vapid_key, &key, why, sizeof why) != 0) {
        p->line = line_of(p, "vapid_key");
        return fail(p, "vapid_key: %s", why);
    }
    if (cfg->vapid_key != NULL)
        vapid_key_free(&key);
    return 0;
}

/* Rules that join several keys, reported at the line of the key that breaks them. */
static int config_check(struct parser *p)
{
    struct config *cfg = p->cfg;
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        p->line = line_of(p, cfg->tls_cert ? "tls_cert" : "tls_key");
        return fail(p, "tls_cert and tls_key must be set together");
    }
    const char *files[] = { "tls_cert",   cfg->tls_cert, "tls_key",
                            cfg->tls_key, "ca_file",     cfg->ca_file };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i += 2)
        if (files[i + 1] != NULL && access(files[i + 1], R_OK) != 0) {
            p->line = line_of(p, files[i]);
            return fail(p, "%s: cannot read %s: %s", files[i], files[i + 1], strerror(errno));
        }
    if (public_origin_set(cfg) != 0) {
        p->line = line_of(p, "public_url");
        return fail(p, "public_url: '%s' has no origin (scheme://host[:port])", cfg->public_url);
    }
    if (oidc_check(p) != 0)
        return -1;
    if (cfg->cluster != NULL && cfg->node_name == NULL) {
        p->line = line_of(p, "cluster");
        return fail(p, "cluster needs node_name: the name of this node in the cluster");
    }
    if (cfg->cluster != NULL && cfg->max_devices_per_user > CONFIG_CLUSTER_DEVICES_MAX) {
        p->line = line_of(p, "max_devices_per_user");
        return fail(p, "max_devices_per_user: a node of a cluster allows at most %d",
                    CONFIG_CLUSTER_DEVICES_MAX);
    }
    if (cfg->cluster == NULL && cfg->node_name != NULL) {
        p->line = line_of(p, "node_name");
        return fail(p, "node_name is only for a node of a cluster (set cluster too)");
    }
    if (push_check(p) != 0)
        return -1;
    if (cfg->max_map_size < cfg->map_size) {
        p->line = line_of(p, "max_map_size") ? line_of(p, "max_map_size") : line_of(p, "map_size");
        return fail(p, "max_map_size must not be smaller than map_size");
    }
    return 0;
}

int config_parse(struct config *cfg, const char *name, const char *text, size_t len, char *err,
                 size_t errlen)
{
    struct parser p = { .cfg = cfg, .name = name, .line = 0, .err = err, .errlen = errlen };
    size_t pos = 0;
    while (pos < len) {
        p.line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (line_len >= CONFIG_MAX_LINE)
            return fail(&p, "line longer than %d bytes", CONFIG_MAX_LINE - 1);
        if (memchr(text + pos, '\0', line_len) != NULL)
            return fail(&p, "NUL byte in line");
        char line[CONFIG_MAX_LINE];
        memcpy(line, text + pos, line_len);
        line[line_len] = '\0';
        if (line_len > 0 && line[line_len - 1] == '\r')
            line[line_len - 1] = '\0';
        if (line_parse(&p, line) != 0)
            return -1;
        pos += line_len + 1;
    }
    p.line = 0;
    if (config_check(&p) != 0)
        return -1;
    char *copy = strdup(name);
    if (copy == NULL)
        return fail(&p, "out of memory");
    free(cfg->path);
    cfg->path = copy;
    return 0;
}

static char *config_file_read(const char *path, size_t *len, char *err, size_t errlen)
{
    enum file_read_error error;
    char *buf = file_read(path, CONFIG_MAX_FILE_SIZE, len, &error);
    if (buf == NULL && error == FILE_READ_OPEN)
        snprintf(err, errlen, "%s:0: cannot open: %s", path, strerror(errno));
    else if (buf == NULL)
        snprintf(err, errlen, "%s:0: %s", path,
                 error == FILE_READ_MEMORY ? "out of memory" : "read error");
    else if (*len > CONFIG_MAX_FILE_SIZE) {
        snprintf(err, errlen, "%s:0: file larger than 1 MiB", path);
        free(buf);
        return NULL;
    }
    return buf;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = config_file_read(path, &len, err, errlen);
    if (text == NULL)
        return -1;
    int rc = config_parse(cfg, path, text, len, err, errlen);
    free(text);
    return rc;
}

char *config_path_from(const char *base_dir, const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    size_t len = strlen(base_dir) + 1 + strlen(path) + 1;
    char *joined = malloc(len);
    if (joined != NULL)
        snprintf(joined, len, "%s/%s", base_dir, path);
    return joined;
}

static int path_absolute(char **path, const char *base_dir)
{
    if (*path == NULL || (*path)[0] == '/')
        return 0;
    char *joined = config_path_from(base_dir, *path);
    if (joined == NULL)
        return -1;
    free(*path);
    *path = joined;
    return 0;
}

int config_paths_absolute(struct config *cfg, const char *base_dir)
{
    char **paths[] = { &cfg->data_dir, &cfg->pid_file, &cfg->log_file, &cfg->tls_cert,
                       &cfg->tls_key,  &cfg->ca_file,  &cfg->vapid_key };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (path_absolute(paths[i], base_dir) != 0)
            return -1;
    for (size_t i = 0; i < cfg->trusted_issuer_count; i++)
        if (path_absolute(&cfg->trusted_issuer[i].key_file, base_dir) != 0)
            return -1;
    for (size_t i = 0; i < cfg->oidc_issuer_count; i++)
        if (path_absolute(&cfg->oidc_issuer[i].jwks_file, base_dir) != 0)
            return -1;
    return 0;
}
