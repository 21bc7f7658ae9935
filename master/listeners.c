/* listeners: the public port's SO_REUSEPORT sockets, one per worker slot, held by the master,
 * and which of them the kernel gives new connections to (a classic BPF program on the group:
 * the sockets a reload retires get none while their queues empty). */
#include "listeners.h"

#include <errno.h>
#include <linux/filter.h>
#include <stdint.h>
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

int listeners_open(struct listen_addr *addr, int from, int count, int *fds, char *err,
                   size_t errlen)
{
    for (int i = from; i < count; i++) {
        fds[i] = listener_open(addr, err, errlen);
        if (fds[i] < 0) {
            listeners_close(fds + from, i - from);
            return -1;
        }
        /* Port 0 asks the kernel for one: the next slots must share the port it chose. */
        if (i == 0 && getsockname(fds[0], (struct sockaddr *)&addr->ss, &addr->len) != 0) {
            snprintf(err, errlen, "getsockname: %s", strerror(errno));
            listeners_close(fds, 1);
            return -1;
        }
    }
    return 0;
}

/* The kernel hands a new connection to the socket of its group this program names: a random
 * one of the first count. The group lists sockets in the order they started listening, and a
 * closed one's place goes to the last: slots 0..count-1, opened in order and only ever
 * retired from the end, stay at the front. A wrong guess costs balance, not a connection
 * (an index past the end falls back to the kernel's hash). */
int listeners_steer(int fd, int count)
{
    struct sock_filter code[] = {
        { BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM) },
        { BPF_ALU | BPF_MOD | BPF_K, 0, 0, (uint32_t)count },
        { BPF_RET | BPF_A, 0, 0, 0 },
    };
    struct sock_fprog prog = { .len = sizeof code / sizeof code[0], .filter = code };
    if (count < 1)
        return -1;
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

void listeners_close(int *fds, int count)
{
    for (int i = 0; i < count; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}
