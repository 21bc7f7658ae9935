/* ctl_print: presencectl's human-readable renderings of the admin endpoint's JSON answers. */
#include "ctl_print.h"

#include <json-c/json.h>
#include <string.h>
#include <time.h>

const char *ctl_str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return "";
    return json_object_get_string(v);
}

long long ctl_int(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) ? (long long)json_object_get_int64(v) : 0;
}

int ctl_bool(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static struct json_object *member(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* "2024-11-23 22:13:20" in local time, from milliseconds since the epoch. */
static const char *when(long long ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || localtime_r(&t, &tm) == NULL ||
        strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, cap, "-");
    return buf;
}

static const char *duration(long long s, char *buf, size_t cap)
{
    if (s >= 86400)
        snprintf(buf, cap, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, cap, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, cap, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, cap, "%llds", s);
    return buf;
}

static const char *bytes(long long n, char *buf, size_t cap)
{
    if (n >= 1 << 30)
        snprintf(buf, cap, "%.1f GiB", (double)n / (1 << 30));
    else if (n >= 1 << 20)
        snprintf(buf, cap, "%.1f MiB", (double)n / (1 << 20));
    else
        snprintf(buf, cap, "%.1f KiB", (double)n / 1024);
    return buf;
}

void ctl_print_status(FILE *out, struct json_object *status)
{
    char up[32], used[32], map[32];
    struct json_object *workers = member(status, "workers"), *store = member(status, "store");
    size_t count = workers ? json_object_array_length(workers) : 0;
    fprintf(out, "presenced %s, pid %lld, %s, generation %lld, up %s\n", ctl_str(status, "version"),
            ctl_int(status, "pid"), ctl_str(status, "state"), ctl_int(status, "generation"),
            duration(ctl_int(status, "uptime_s"), up, sizeof up));
    fprintf(out, "connections %lld (websockets %lld) on %zu worker(s)\n",
            ctl_int(status, "connections"), ctl_int(status, "websockets"), count);
    if (count > 0)
        fprintf(out, "  %-4s %-8s %-4s %-9s %11s %10s %9s\n", "slot", "pid", "gen", "state",
                "connections", "websockets", "accepted");
    for (size_t i = 0; i < count; i++) {
        struct json_object *w = json_object_array_get_idx(workers, i);
        fprintf(out, "  %-4lld %-8lld %-4lld %-9s %11lld %10lld %9lld\n", ctl_int(w, "slot"),
                ctl_int(w, "pid"), ctl_int(w, "generation"), ctl_str(w, "state"),
                ctl_int(w, "connections"), ctl_int(w, "websockets"), ctl_int(w, "accepted_total"));
    }
    if (store != NULL)
        fprintf(out, "store: %s used of a %s map, %lld reader slot(s) in use\n",
                bytes(ctl_int(store, "used_bytes"), used, sizeof used),
                bytes(ctl_int(store, "map_size"), map, sizeof map), ctl_int(store, "readers"));
}

void ctl_print_user(FILE *out, struct json_object *user)
{
    char at[32];
    struct json_object *devices = member(user, "devices"), *grants = member(user, "grants");
    size_t device_count = devices ? json_object_array_length(devices) : 0;
    size_t grant_count = grants ? json_object_array_length(grants) : 0;
    fprintf(out, "%s: %s", ctl_str(user, "email"), ctl_str(user, "status"));
    if (member(user, "since") != NULL)
        fprintf(out, " since %s", when(ctl_int(user, "since"), at, sizeof at));
    struct json_object *published = member(user, "published");
    if (published != NULL) {
        /* What apps see: a departure held for offline_grace, last seen once offline. */
        fprintf(out, "\napps see: %s", ctl_str(published, "status"));
        if (member(published, "since") != NULL)
            fprintf(out, " since %s", when(ctl_int(published, "since"), at, sizeof at));
    }
    fprintf(out, "\n%zu device(s) connected\n", device_count);
    for (size_t i = 0; i < device_count; i++) {
        struct json_object *d = json_object_array_get_idx(devices, i);
        fprintf(out, "  %-20s %-12s since %s  worker pid %lld\n", ctl_str(d, "device"),
                ctl_str(d, "status"), when(ctl_int(d, "since"), at, sizeof at),
                ctl_int(d, "worker"));
    }
    struct json_object *subscribed = member(user, "push_subscriptions");
    size_t subscribed_count = subscribed ? json_object_array_length(subscribed) : 0;
    if (subscribed_count > 0) {
        fprintf(out, "Web Push:");
        for (size_t i = 0; i < subscribed_count; i++)
            fprintf(out, " %s", json_object_get_string(json_object_array_get_idx(subscribed, i)));
        fprintf(out, "\n");
    }
    fprintf(out, "%lld notification(s) pending\n", ctl_int(user, "pending_notifications"));
    fprintf(out, "%zu app(s) allowed\n", grant_count);
    for (size_t i = 0; i < grant_count; i++) {
        struct json_object *g = json_object_array_get_idx(grants, i);
        const char *name = ctl_str(g, "name");
        fprintf(out, "  %s  %s\n", ctl_str(g, "appid"), name[0] ? name : "(deleted app)");
    }
    if (ctl_int(user, "apps_owned") > 0)
        fprintf(out, "owner of %lld app(s)\n", ctl_int(user, "apps_owned"));
}

static const char *app_state(struct json_object *app)
{
    return ctl_bool(app, "active")      ? "active"
           : ctl_bool(app, "validated") ? "disabled"
                                        : "not validated";
}

void ctl_print_apps(FILE *out, struct json_object *apps)
{
    struct json_object *list = member(apps, "apps");
    size_t count = list ? json_object_array_length(list) : 0;
    if (count == 0) {
        fprintf(out, "no app registered\n");
        return;
    }
    fprintf(out, "%-36s  %-13s %6s %5s  %-24s %-24s %s\n", "appid", "state", "grants", "conns",
            "name", "domain", "owner");
    for (size_t i = 0; i < count; i++) {
        struct json_object *a = json_object_array_get_idx(list, i);
        fprintf(out, "%-36s  %-13s %6lld %5lld  %-24s %-24s %s\n", ctl_str(a, "appid"),
                app_state(a), ctl_int(a, "grants"), ctl_int(a, "connections"), ctl_str(a, "name"),
                ctl_str(a, "domain"), ctl_str(a, "owner"));
    }
}

void ctl_print_app(FILE *out, struct json_object *app)
{
    char at[32];
    fprintf(out, "appid        %s\n", ctl_str(app, "appid"));
    fprintf(out, "name         %s\n", ctl_str(app, "name"));
    fprintf(out, "domain       %s\n", ctl_str(app, "domain"));
    if (ctl_str(app, "description")[0])
        fprintf(out, "description  %s\n", ctl_str(app, "description"));
    fprintf(out, "owner        %s\n", ctl_str(app, "owner"));
    fprintf(out, "state        %s\n", app_state(app));
    fprintf(out, "created      %s\n", when(ctl_int(app, "created"), at, sizeof at));
    fprintf(out, "grants       %lld\n", ctl_int(app, "grants"));
    fprintf(out, "connections  %lld\n", ctl_int(app, "connections"));
    if (ctl_str(app, "api_key")[0])
        fprintf(out,
                "api key      %s\n"
                "             (shown this once: only its hash is kept)\n",
                ctl_str(app, "api_key"));
}
