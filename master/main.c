/* main: the presenced command line — options, config check, daemon start, then the master. */
#include "master.h"
#include "pidfile.h"

#include "../common/log.h"
#include "../common/version.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/presenced.conf"

struct options {
    const char *config_path;
    bool foreground;
    bool test_only;
};

static void usage(FILE *to)
{
    fprintf(to, "usage: presenced [-c FILE] [-f] [-t] [-v]\n"
                "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
                "  -f       stay in the foreground and log to stderr\n"
                "  -t       check the configuration and exit\n"
                "  -v       print the version and exit\n"
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
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
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

int main(int argc, char **argv)
{
    struct options opt = { 0 };
    int rc = options_parse(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    struct master m;
    memset(&m, 0, sizeof m);
    m.config_path = opt.config_path;
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
        config_paths_absolute(&m.cfg, m.start_dir) != 0 || (!opt.foreground && daemonize() != 0)) {
        fprintf(stderr, "presenced: cannot start: %s\n", strerror(errno));
        config_free(&m.cfg);
        return 1;
    }
    if (log_open(opt.foreground ? NULL : m.cfg.log_file, m.cfg.log_level) != 0) {
        fprintf(stderr, "%s: cannot open the log file: %s\n", m.cfg.log_file, strerror(errno));
        config_free(&m.cfg);
        return 1;
    }
    int pid_fd = pidfile_write(m.cfg.pid_file);
    if (pid_fd < 0) {
        config_free(&m.cfg);
        return 1;
    }
    char *pid_path = strdup(m.cfg.pid_file);
    rc = master_run(&m);
    pidfile_remove(pid_path ? pid_path : m.cfg.pid_file, pid_fd);
    free(pid_path);
    config_free(&m.cfg);
    log_close();
    return rc;
}
