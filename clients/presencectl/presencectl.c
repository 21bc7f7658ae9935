/* presencectl: the operator's command line over presenced's admin endpoint (presencectl(1)), as
 * redis-cli and mosquitto_ctrl are for theirs — one command, one request, a readable answer or
 * --json, exit 0 or 1 with a message. */
#include "ctl_admin.h"
#include "ctl_print.h"

#include "../../common/version.h"

#include <curl/curl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_ADMIN "127.0.0.1:8283" /* admin_listen's default (presenced.conf(5)) */

struct options {
    const char *config_path, *admin_at;
    bool json, wait;
    long timeout_s;
    const char *action, *source, *ttl, *urgency, *name, *domain, *description, *owner;
};

/* Which command options a command takes. */
enum {
    OPT_ACTION = 1 << 0,
    OPT_SOURCE = 1 << 1,
    OPT_TTL = 1 << 2,
    OPT_NAME = 1 << 3,
    OPT_DOMAIN = 1 << 4,
    OPT_DESCRIPTION = 1 << 5,
    OPT_OWNER = 1 << 6,
    OPT_WAIT = 1 << 7,
    OPT_URGENCY = 1 << 8,
};

struct run {
    struct ctl_admin admin;
    struct options opt;
    const char *verb; /* the second word of "app …" */
    char **args;      /* the words after the command */
    int arg_count;
};

static void usage(FILE *to)
{
    fprintf(to,
            "usage: presencectl [-c FILE | -a HOST:PORT] [--json] [-t SECONDS] COMMAND [ARGS]\n"
            "  status                          the master, its workers, the store\n"
            "  user EMAIL                      a user's presence, devices, pending, grants\n"
            "  notify EMAIL MESSAGE [--action URL] [--source TEXT] [--ttl SECONDS]\n"
            "                       [--urgency very-low|low|normal|high]\n"
            "                                  queue a notification for the user's devices\n"
            "  kick EMAIL                      close the user's devices (errno 61)\n"
            "  apps                            every registered app\n"
            "  app create --name NAME --domain DOMAIN [--description TEXT] [--owner EMAIL]\n"
            "                                  provision an app (validated, active; prints its\n"
            "                                  API key once)\n"
            "  app show|enable|disable|rotate-key|delete APPID\n"
            "  drain [--wait]                  stop gracefully, as SIGQUIT\n"
            "  -c FILE     read admin_listen from presenced's configuration file\n"
            "  -a ADDRESS  the admin endpoint (default " DEFAULT_ADMIN ")\n"
            "  --json      print the endpoint's JSON answer as it is\n"
            "  -t SECONDS  give up on a request after this long (default 10)\n"
            "see presencectl(1)\n");
}

static int fail(const char *message)
{
    fprintf(stderr, "presencectl: %s\n", message);
    return 1;
}

/* Prints why an answer is an error and returns 1; 0 for a success answer. */
static int answer_check(const struct run *r, const struct ctl_answer *answer, int rc)
{
    if (rc != 0) {
        fprintf(stderr,
                "presencectl: cannot reach the admin endpoint at %s: %s\n"
                "  (is presenced running, with admin_listen %s?)\n",
                r->admin.where, answer->error, r->admin.where);
        return 1;
    }
    if (r->opt.json && answer->text != NULL)
        fputs(answer->text, stdout);
    if (answer->status >= 200 && answer->status < 300) {
        if (answer->body == NULL)
            return fail("the admin endpoint's answer is not JSON");
        return 0;
    }
    const char *why = answer->body ? ctl_str(answer->body, "error") : "";
    fprintf(stderr, "presencectl: %s (HTTP %ld)\n", why[0] ? why : "the request failed",
            answer->status);
    return 1;
}

/* What a command makes of a successful answer: prints it (unless --json) and returns the exit
 * code. */
typedef int (*answer_cb)(struct run *r, struct json_object *answer);

/* One request; on success hands the answer to done and returns its exit code, else 1. */
static int call(struct run *r, const char *method, const char *path, struct json_object *body,
                answer_cb done)
{
    struct ctl_answer answer;
    int rc = ctl_admin_request(&r->admin, method, path, body, &answer);
    int exit_code = answer_check(r, &answer, rc);
    if (exit_code == 0)
        exit_code = done(r, answer.body);
    ctl_answer_free(&answer);
    json_object_put(body);
    return exit_code;
}

/* "/users/<email>" + suffix, the e-mail percent-encoded. NULL when out of memory. */
static char *user_path(const char *email, const char *suffix, char *buf, size_t cap)
{
    char *escaped = ctl_admin_escape(email);
    if (escaped == NULL)
        return NULL;
    snprintf(buf, cap, "/users/%s%s", escaped, suffix);
    free(escaped);
    return buf;
}

static int print_status(struct run *r, struct json_object *o)
{
    if (!r->opt.json)
        ctl_print_status(stdout, o);
    return 0;
}

static int cmd_status(struct run *r)
{
    return call(r, "GET", "/status", NULL, print_status);
}

/* Every address has a presence; one the store holds nothing of is an error here. */
static int print_user(struct run *r, struct json_object *o)
{
    if (!ctl_bool(o, "known")) {
        fprintf(stderr,
                "presencectl: unknown user %s: no device, grant, app or pending notification\n",
                r->args[0]);
        return 1;
    }
    if (!r->opt.json)
        ctl_print_user(stdout, o);
    return 0;
}

static int cmd_user(struct run *r)
{
    char path[1024];
    if (user_path(r->args[0], "", path, sizeof path) == NULL)
        return fail("out of memory");
    return call(r, "GET", path, NULL, print_user);
}

static int print_queued(struct run *r, struct json_object *o)
{
    if (!r->opt.json)
        printf("queued notification %s for %s\n", ctl_str(o, "id"), r->args[0]);
    return 0;
}

static int cmd_notify(struct run *r)
{
    char path[1024], *end;
    long ttl = 0;
    if (r->opt.ttl != NULL && ((ttl = strtol(r->opt.ttl, &end, 10)) < 1 || *end != '\0'))
        return fail("--ttl: a number of seconds is expected");
    if (user_path(r->args[0], "/notifications", path, sizeof path) == NULL)
        return fail("out of memory");
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "source",
                           json_object_new_string(r->opt.source ? r->opt.source : "operator"));
    json_object_object_add(body, "message", json_object_new_string(r->args[1]));
    if (r->opt.action != NULL)
        json_object_object_add(body, "action", json_object_new_string(r->opt.action));
    if (ttl > 0)
        json_object_object_add(body, "ttl", json_object_new_int64(ttl));
    if (r->opt.urgency != NULL) /* the server says which it takes */
        json_object_object_add(body, "urgency", json_object_new_string(r->opt.urgency));
    return call(r, "POST", path, body, print_queued);
}

static int print_kicked(struct run *r, struct json_object *o)
{
    long long n = ctl_int(o, "devices");
    if (r->opt.json)
        return 0;
    if (n == 0)
        printf("%s has no device connected\n", r->args[0]);
    else
        printf("closing %lld device connection(s) of %s (errno 61: they may reconnect later)\n", n,
               r->args[0]);
    return 0;
}

static int cmd_kick(struct run *r)
{
    char path[1024];
    if (user_path(r->args[0], "/kick", path, sizeof path) == NULL)
        return fail("out of memory");
    return call(r, "POST", path, NULL, print_kicked);
}

static int print_apps(struct run *r, struct json_object *o)
{
    if (!r->opt.json)
        ctl_print_apps(stdout, o);
    return 0;
}

static int cmd_apps(struct run *r)
{
    return call(r, "GET", "/apps", NULL, print_apps);
}

static int print_app(struct run *r, struct json_object *o)
{
    if (!r->opt.json)
        ctl_print_app(stdout, o);
    return 0;
}

static int cmd_app_create(struct run *r)
{
    if (r->opt.name == NULL || r->opt.domain == NULL)
        return fail("app create needs --name NAME and --domain DOMAIN");
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "name", json_object_new_string(r->opt.name));
    json_object_object_add(body, "domain", json_object_new_string(r->opt.domain));
    if (r->opt.description != NULL)
        json_object_object_add(body, "description", json_object_new_string(r->opt.description));
    if (r->opt.owner != NULL)
        json_object_object_add(body, "owner", json_object_new_string(r->opt.owner));
    return call(r, "POST", "/apps", body, print_app);
}

static int print_app_changed(struct run *r, struct json_object *o)
{
    if (r->opt.json)
        return 0;
    bool enabled = strcmp(r->verb, "enable") == 0;
    printf("app %s: %s\n", ctl_str(o, "appid"),
           enabled                           ? "enabled"
           : strcmp(r->verb, "disable") == 0 ? "disabled"
                                             : "new API key");
    if (!enabled && ctl_int(o, "connections") > 0)
        printf("its %lld open AppService connection(s) are being closed\n",
               ctl_int(o, "connections"));
    if (ctl_str(o, "api_key")[0])
        printf("api key %s\n(shown this once: only its hash is kept)\n", ctl_str(o, "api_key"));
    return 0;
}

static int print_deleted(struct run *r, struct json_object *o)
{
    if (!r->opt.json)
        printf("app %s deleted, with its grants\n", ctl_str(o, "appid"));
    return 0;
}

/* app show|enable|disable|rotate-key|delete APPID */
static int cmd_app_one(struct run *r)
{
    char path[512], *appid = ctl_admin_escape(r->args[0]);
    if (appid == NULL)
        return fail("out of memory");
    int rc;
    if (strcmp(r->verb, "show") == 0) {
        snprintf(path, sizeof path, "/apps/%s", appid);
        rc = call(r, "GET", path, NULL, print_app);
    } else if (strcmp(r->verb, "delete") == 0) {
        snprintf(path, sizeof path, "/apps/%s", appid);
        rc = call(r, "DELETE", path, NULL, print_deleted);
    } else {
        snprintf(path, sizeof path, "/apps/%s/%s", appid, r->verb);
        rc = call(r, "POST", path, NULL, print_app_changed);
    }
    free(appid);
    return rc;
}

/* After a drain: whether the admin endpoint still answers. */
static bool admin_answers(const struct ctl_admin *admin)
{
    struct ctl_answer answer;
    int rc = ctl_admin_request(admin, "GET", "/status", NULL, &answer);
    ctl_answer_free(&answer);
    return rc == 0;
}

static int drain_wait(struct run *r, long long timeout_ms)
{
    struct timespec start, now, pause = { 0, 100 * 1000 * 1000 };
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (!admin_answers(&r->admin)) {
            if (!r->opt.json)
                printf("presenced has stopped\n");
            return 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long elapsed =
            (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed > timeout_ms)
            return fail("presenced is still running after drain_grace and drain_timeout");
        nanosleep(&pause, NULL);
    }
}

static int print_draining(struct run *r, struct json_object *o)
{
    if (r->opt.json)
        return 0;
    if (ctl_bool(o, "already"))
        printf("presenced is already stopping\n");
    else
        printf("draining %lld worker(s): devices get errno 61; presenced stops within %lld ms\n",
               ctl_int(o, "workers"),
               ctl_int(o, "drain_grace_ms") + ctl_int(o, "drain_timeout_ms"));
    return 0;
}

static int cmd_drain(struct run *r)
{
    struct ctl_answer answer;
    int rc = ctl_admin_request(&r->admin, "POST", "/drain", NULL, &answer);
    int exit_code = answer_check(r, &answer, rc);
    long long timeout_ms = exit_code == 0 ? ctl_int(answer.body, "drain_grace_ms") +
                                                ctl_int(answer.body, "drain_timeout_ms")
                                          : 0;
    if (exit_code == 0)
        print_draining(r, answer.body);
    ctl_answer_free(&answer);
    if (exit_code != 0 || !r->opt.wait)
        return exit_code;
    /* The master also waits for the workers' goodbyes: a few seconds beyond that. */
    return drain_wait(r, timeout_ms + 5000);
}

struct command {
    const char *word, *sub; /* sub: the second word of "app …", or NULL */
    int args;               /* words after the command */
    unsigned options;
    int (*run)(struct run *);
};

static const struct command commands[] = {
    { "status", NULL, 0, 0, cmd_status },
    { "user", NULL, 1, 0, cmd_user },
    { "notify", NULL, 2, OPT_ACTION | OPT_SOURCE | OPT_TTL | OPT_URGENCY, cmd_notify },
    { "kick", NULL, 1, 0, cmd_kick },
    { "apps", NULL, 0, 0, cmd_apps },
    { "app", "create", 0, OPT_NAME | OPT_DOMAIN | OPT_DESCRIPTION | OPT_OWNER, cmd_app_create },
    { "app", "show", 1, 0, cmd_app_one },
    { "app", "enable", 1, 0, cmd_app_one },
    { "app", "disable", 1, 0, cmd_app_one },
    { "app", "rotate-key", 1, 0, cmd_app_one },
    { "app", "delete", 1, 0, cmd_app_one },
    { "drain", NULL, 0, OPT_WAIT, cmd_drain },
};

static unsigned options_given(const struct options *o)
{
    return (o->action ? OPT_ACTION : 0) | (o->source ? OPT_SOURCE : 0) | (o->ttl ? OPT_TTL : 0) |
           (o->urgency ? OPT_URGENCY : 0) |
           (o->name ? OPT_NAME : 0) | (o->domain ? OPT_DOMAIN : 0) |
           (o->description ? OPT_DESCRIPTION : 0) | (o->owner ? OPT_OWNER : 0) |
           (o->wait ? OPT_WAIT : 0);
}

/* The command named by words (NULL when none), with *used set to the words it takes. */
static const struct command *command_find(char **words, int count, int *used)
{
    for (size_t i = 0; count > 0 && i < sizeof commands / sizeof commands[0]; i++) {
        const struct command *c = &commands[i];
        if (strcmp(c->word, words[0]) != 0)
            continue;
        if (c->sub == NULL) {
            *used = 1;
            return c;
        }
        if (count > 1 && strcmp(c->sub, words[1]) == 0) {
            *used = 2;
            return c;
        }
    }
    return NULL;
}

/* Returns -1 to go on, or an exit code. */
static int options_parse(int argc, char **argv, struct options *opt)
{
    enum {
        L_JSON = 256,
        L_ACTION,
        L_SOURCE,
        L_TTL,
        L_URGENCY,
        L_NAME,
        L_DOMAIN,
        L_DESC,
        L_OWNER,
        L_WAIT
    };
    static const struct option longs[] = {
        { "json", no_argument, NULL, L_JSON },
        { "action", required_argument, NULL, L_ACTION },
        { "source", required_argument, NULL, L_SOURCE },
        { "ttl", required_argument, NULL, L_TTL },
        { "urgency", required_argument, NULL, L_URGENCY },
        { "name", required_argument, NULL, L_NAME },
        { "domain", required_argument, NULL, L_DOMAIN },
        { "description", required_argument, NULL, L_DESC },
        { "owner", required_argument, NULL, L_OWNER },
        { "wait", no_argument, NULL, L_WAIT },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'v' },
        { NULL, 0, NULL, 0 },
    };
    char *end;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:a:t:jhv", longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            opt->config_path = optarg;
            break;
        case 'a':
            opt->admin_at = optarg;
            break;
        case 't':
            if ((opt->timeout_s = strtol(optarg, &end, 10)) < 1 || *end != '\0')
                return fail("-t: a number of seconds is expected");
            break;
        case 'j':
        case L_JSON:
            opt->json = true;
            break;
        case L_WAIT:
            opt->wait = true;
            break;
        case L_ACTION:
            opt->action = optarg;
            break;
        case L_SOURCE:
            opt->source = optarg;
            break;
        case L_TTL:
            opt->ttl = optarg;
            break;
        case L_URGENCY:
            opt->urgency = optarg;
            break;
        case L_NAME:
            opt->name = optarg;
            break;
        case L_DOMAIN:
            opt->domain = optarg;
            break;
        case L_DESC:
            opt->description = optarg;
            break;
        case L_OWNER:
            opt->owner = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("presencectl %s (%s)\n", PRESENCED_VERSION, PRESENCED_COMMIT);
            return 0;
        default:
            fprintf(stderr, "presencectl: %s: unknown option or missing value\n", argv[optind - 1]);
            usage(stderr);
            return 1;
        }
    }
    if (opt->config_path != NULL && opt->admin_at != NULL)
        return fail("-c and -a name the admin endpoint twice: give one");
    return -1;
}

static int target_set(struct run *r)
{
    char err[1024];
    const char *why;
    r->admin.timeout_s = r->opt.timeout_s;
    if (r->opt.config_path != NULL) {
        if (ctl_admin_from_config(&r->admin, r->opt.config_path, err, sizeof err) != 0)
            return fail(err);
        return 0;
    }
    const char *at = r->opt.admin_at ? r->opt.admin_at : DEFAULT_ADMIN;
    if (ctl_admin_at(&r->admin, at, &why) != 0) {
        snprintf(err, sizeof err, "-a %s: %s", at, why);
        return fail(err);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct run r = { 0 };
    int rc = options_parse(argc, argv, &r.opt);
    if (rc >= 0)
        return rc;
    int used = 0;
    const struct command *c = command_find(argv + optind, argc - optind, &used);
    if (c == NULL) {
        if (optind < argc)
            fprintf(stderr, "presencectl: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }
    r.verb = c->sub;
    r.args = argv + optind + used;
    r.arg_count = argc - optind - used;
    if (r.arg_count != c->args) {
        fprintf(stderr, "presencectl: %s%s%s takes %d argument(s); see presencectl -h\n", c->word,
                c->sub ? " " : "", c->sub ? c->sub : "", c->args);
        return 1;
    }
    if ((options_given(&r.opt) & ~c->options) != 0) {
        fprintf(stderr, "presencectl: an option given does not belong to %s%s%s\n", c->word,
                c->sub ? " " : "", c->sub ? c->sub : "");
        return 1;
    }
    if (target_set(&r) != 0)
        return 1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return fail("cannot start libcurl");
    rc = c->run(&r);
    curl_global_cleanup();
    return rc;
}
