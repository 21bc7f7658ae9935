/* listeners: the public port's SO_REUSEPORT sockets, one per worker slot, held by the master. */
#ifndef PRESENCED_LISTENERS_H
#define PRESENCED_LISTENERS_H

#include "../common/addr.h"

/* Opens fds[from..count-1], bound to addr; fds[i] belongs to slot i. When from is 0 and addr's
 * port is 0, addr gets the port the kernel chose. Returns 0, or -1 with err filled and none of
 * those left open. */
int listeners_open(struct listen_addr *addr, int from, int count, int *fds, char *err,
                   size_t errlen);
/* New connections go to the group's first count sockets (slots 0..count-1) only; fd is any
 * socket of the group. Returns 0, or -1 (errno set) when the kernel refuses. */
int listeners_steer(int fd, int count);
void listeners_close(int *fds, int count);

#endif
