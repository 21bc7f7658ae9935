/* child: how the master's children (workers, a cluster node's agent) start — forked with the
 * signals blocked across fork(), the master's handlers gone, their own signals blocked until
 * they have handlers, the master's death followed, and only what they keep left open. */
#ifndef PRESENCED_MASTER_CHILD_H
#define PRESENCED_MASTER_CHILD_H

#include <stddef.h>
#include <sys/types.h>

/* fork() with every signal blocked across it: a signal caught in between would be written into
 * the master's libevent signal pipe. The parent's mask is restored; the child's stays all
 * blocked until master_child_begin. */
pid_t master_child_fork(void);

/* In the child: it dies with the master (at once if the master is gone already), the master's
 * handlers go, `ignored` (0: none) is ignored, and of all signals only the count in blocked stay
 * blocked, until the child has its own handlers. */
void master_child_begin(pid_t master_pid, const int *blocked, size_t count, int ignored);

/* In the child: closes every descriptor above 2 but the count in keep (negative ones ignored). */
void master_child_fds_keep(const int *keep, size_t count);

#endif
