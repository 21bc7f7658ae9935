/* listeners: the public port's SO_REUSEPORT sockets, one per worker slot, held by the master. */
#ifndef PRESENCED_LISTENERS_H
#define PRESENCED_LISTENERS_H

#include "../common/addr.h"

/* Opens count sockets bound to the same address; fds[i] belongs to slot i. Returns 0, or -1
 * with err filled and nothing left open. */
int listeners_open(const struct listen_addr *addr, int count, int *fds, char *err, size_t errlen);
void listeners_close(int *fds, int count);

#endif
