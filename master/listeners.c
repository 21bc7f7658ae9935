/* listeners: the public port's SO_REUSEPORT sockets, one per worker slot, held by the master. */
#include "listeners.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096

static int listener_open(const struct listen_addr *addr, char *err, size_t errlen)
{
    char where[80];
    addr_format(addr, where, sizeof where);
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", where, strerror(errno));
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        (addr->ss.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)) {
        snprintf(err, errlen, "%s: setsockopt: %s", where, strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "%s: cannot listen: %s", where, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int listeners_open(const struct listen_addr *addr, int count, int *fds, char *err, size_t errlen)
{
    struct listen_addr bound = *addr;
    for (int i = 0; i < count; i++) {
        fds[i] = listener_open(&bound, err, errlen);
        if (fds[i] < 0) {
            listeners_close(fds, i);
            return -1;
        }
        /* Port 0 asks the kernel for one: the next slots must share the port it chose. */
        if (i == 0 && getsockname(fds[0], (struct sockaddr *)&bound.ss, &bound.len) != 0) {
            snprintf(err, errlen, "getsockname: %s", strerror(errno));
            listeners_close(fds, 1);
            return -1;
        }
    }
    return 0;
}

void listeners_close(int *fds, int count)
{
    for (int i = 0; i < count; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}
