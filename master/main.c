/* main: the presenced command line — options, config check, daemon start, then the master. */
#include "master.h"
#include "pidfile.h"

#include "../common/dev_issuer.h"
#include "../common/id_assertion.h"
#include "../common/log.h"
#include "../common/version.h"

#include <openssl/evp.h>
#include <time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/presenced.conf"
#define TOKEN_TTL_DEFAULT_MS (3600 * 1000LL)
#define TOKEN_TTL_MAX_MS (30 * 86400 * 1000LL)

struct options {
    const char *config_path;
    bool foreground;
    bool test_only;
    const char *token_email; /* the token command: presenced token EMAIL [TTL] */
    const char *token_ttl;
};

static void usage(FILE *to)
{
    fprintf(to, "usage: presenced [-c FILE] [-f] [-t] [-v]\n"
                "       presenced [-c FILE] token EMAIL [TTL]\n"
                "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
                "  -f       stay in the foreground and log to stderr\n"
                "  -t       check the configuration and exit\n"
                "  -v       print the version and exit\n"
                "  token    print a token of the development issuer (dev_issuer on) that signs\n"
                "           EMAIL in for TTL (default 1h, at most 30d)\n"
                "see presenced(8) and presenced.conf(5)\n");
}

/* Returns -1 to go on, or an exit code. */
static int options_parse(int argc, char **argv, struct options *opt)
{
    int c;
    opt->config_path = DEFAULT_CONFIG;
    while ((c = getopt(argc, argv, "c:ftvh")) != -1) {
        switch (c) {
        case 'c':
            opt->config_path = optarg;
            break;
        case 'f':
            opt->foreground = true;
            break;
        case 't':
            opt->test_only = true;
            break;
        case 'v':
            printf("presenced %s (%s)\n", PRESENCED_VERSION, PRESENCED_COMMIT);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc && strcmp(argv[optind], "token") == 0 && argc - optind >= 2 &&
        argc - optind <= 3) {
        opt->token_email = argv[optind + 1];
        opt->token_ttl = argc - optind == 3 ? argv[optind + 2] : NULL;
        return -1;
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* presenced token EMAIL [TTL]: what a newcomer signs a device in with (README), made with the
 * development issuer's key in data_dir (made there if the server never ran). */
static int token_command(const struct options *opt)
{
    struct config cfg;
    char err[1024], cwd[4096];
    int64_t ttl_ms = TOKEN_TTL_DEFAULT_MS;
    if (config_defaults(&cfg) != 0) {
        fprintf(stderr, "presenced: out of memory\n");
        return 1;
    }
    if (config_load(&cfg, opt->config_path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        config_free(&cfg);
        return 1;
    }
    int rc = 1;
    if (!cfg.dev_issuer)
        fprintf(stderr, "%s: dev_issuer is off: only the development issuer makes tokens\n",
                opt->config_path);
    else if (!id_email_valid(opt->token_email))
        fprintf(stderr, "presenced: '%s' is not an e-mail address\n", opt->token_email);
    else if (opt->token_ttl != NULL &&
             (config_parse_duration_ms(opt->token_ttl, &ttl_ms) != 0 || ttl_ms < 1000 ||
              ttl_ms > TOKEN_TTL_MAX_MS))
        fprintf(stderr, "presenced: TTL '%s' must be a duration from 1s to 30d\n", opt->token_ttl);
    else if (getcwd(cwd, sizeof cwd) == NULL || config_paths_absolute(&cfg, cwd) != 0 ||
             (mkdir(cfg.data_dir, 0750) != 0 && errno != EEXIST))
        fprintf(stderr, "presenced: cannot use data_dir %s: %s\n", cfg.data_dir, strerror(errno));
    else
        rc = 0;
    EVP_PKEY *key = rc == 0 ? dev_issuer_key(cfg.data_dir, err, sizeof err) : NULL;
    char *token =
        key ? dev_issuer_token(key, &cfg, opt->token_email, ttl_ms / 1000, time(NULL)) : NULL;
    if (rc == 0 && token == NULL) {
        fprintf(stderr, "presenced: %s\n", key == NULL ? err : "cannot sign the token");
        rc = 1;
    }
    if (token != NULL)
        printf("%s\n", token);
    free(token);
    EVP_PKEY_free(key);
    config_free(&cfg);
    return rc;
}

/* Detaches. The first process waits until the daemon reports that it serves (one byte on a
 * pipe) and exits 0, or 1 when the daemon failed to start, so a launcher sees start-up errors. */
static int daemonize(int *started_fd, const char *log_file)
{
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(pipe_fds[1]);
        char byte;
        if (read(pipe_fds[0], &byte, 1) == 1)
            _exit(0);
        fprintf(stderr, "presenced: the daemon did not start; see %s\n", log_file);
        _exit(1);
    }
    close(pipe_fds[0]);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (chdir("/") != 0)
        return -1;
    int null = open("/dev/null", O_RDWR);
    if (null < 0)
        return -1;
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO)
        close(null);
    *started_fd = pipe_fds[1];
    return 0;
}

static int config_read(struct master *m, const struct options *opt)
{
    char err[1024];
    if (config_defaults(&m->cfg) != 0) {
        fprintf(stderr, "presenced: out of memory\n");
        return -1;
    }
    if (config_load(&m->cfg, opt->config_path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (!opt->test_only && !opt->foreground && m->cfg.log_file == NULL) {
        fprintf(stderr, "%s: log_file is not set: set it, or run in the foreground with -f\n",
                opt->config_path);
        return -1;
    }
    return 0;
}

static int start_failed(struct master *m, const char *what)
{
    fprintf(stderr, "presenced: cannot start: %s: %s\n", what, strerror(errno));
    config_free(&m->cfg);
    return 1;
}

int main(int argc, char **argv)
{
    struct options opt = { 0 };
    int rc = options_parse(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    if (opt.token_email != NULL)
        return token_command(&opt);
    struct master m;
    memset(&m, 0, sizeof m);
    m.started_fd = -1;
    m.foreground = opt.foreground;
    if (config_read(&m, &opt) != 0) {
        config_free(&m.cfg);
        return 1;
    }
    if (opt.test_only) {
        printf("%s: configuration is valid\n", opt.config_path);
        config_free(&m.cfg);
        return 0;
    }
    if (getcwd(m.start_dir, sizeof m.start_dir) == NULL ||
        config_paths_absolute(&m.cfg, m.start_dir) != 0)
        return start_failed(&m, "paths");
    /* -c may be relative; a reload after the daemon left its directory must find the file. */
    char *config_path = config_path_from(m.start_dir, opt.config_path);
    if (config_path == NULL)
        return start_failed(&m, "paths");
    m.config_path = config_path;
    /* The log opens before detaching: what goes wrong later still has somewhere to go. */
    log_set_format(m.cfg.log_format);
    if (log_open(opt.foreground ? NULL : m.cfg.log_file, m.cfg.log_level) != 0) {
        free(config_path);
        return start_failed(&m, m.cfg.log_file);
    }
    if (!opt.foreground && daemonize(&m.started_fd, m.cfg.log_file) != 0) {
        free(config_path);
        return start_failed(&m, "detaching");
    }
    int pid_fd = pidfile_write(m.cfg.pid_file);
    char *pid_path = strdup(m.cfg.pid_file);
    rc = pid_fd < 0 || pid_path == NULL ? 1 : master_run(&m);
    pidfile_remove(pid_path, pid_fd);
    free(pid_path);
    free(config_path);
    config_free(&m.cfg);
    log_close();
    return rc;
}
