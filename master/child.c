/* child: how the master's children (workers, a cluster node's agent) start — forked with the
 * signals blocked across fork(), the master's handlers gone, their own signals blocked until
 * they have handlers, the master's death followed, and only what they keep left open. */
#include "child.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#define KEEP_MAX 8

pid_t master_child_fork(void)
{
    sigset_t all, saved;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &saved);
    pid_t pid = fork();
    if (pid != 0)
        sigprocmask(SIG_SETMASK, &saved, NULL);
    return pid;
}

void master_child_begin(pid_t master_pid, const int *blocked, size_t count, int ignored)
{
    /* Should the master be killed outright, its children follow instead of serving on alone. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid)
        _exit(1);
    static const int masters[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD };
    for (size_t i = 0; i < sizeof masters / sizeof masters[0]; i++)
        signal(masters[i], SIG_DFL);
    if (ignored != 0)
        signal(ignored, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    for (size_t i = 0; i < count; i++)
        sigaddset(&mask, blocked[i]);
    sigprocmask(SIG_SETMASK, &mask, NULL);
}

static int fd_compare(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

void master_child_fds_keep(const int *keep, size_t count)
{
    int sorted[KEEP_MAX];
    if (count > KEEP_MAX)
        _exit(1); /* a caller's mistake: nothing would be closed right */
    for (size_t i = 0; i < count; i++)
        sorted[i] = keep[i];
    qsort(sorted, count, sizeof sorted[0], fd_compare);
    unsigned first = 3;
    for (size_t i = 0; i < count; i++) {
        if (sorted[i] < (int)first)
            continue;
        if ((unsigned)sorted[i] > first)
            close_range(first, (unsigned)sorted[i] - 1, 0);
        first = (unsigned)sorted[i] + 1;
    }
    close_range(first, ~0U, 0);
}
