/* wake: per-process doorbells (abstract Unix datagram sockets) that tell another presenced
 * process to look at its mail in the store now. */
#include "wake.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int wake_init(struct wake_bells *bells, const char *data_dir)
{
    struct stat st;
    bells->fd = -1;
    if (stat(data_dir, &st) != 0)
        return -1;
    bells->store_id = ((uint64_t)st.st_dev << 32) ^ (uint64_t)st.st_ino;
    return 0;
}

/* Abstract names (leading NUL) vanish with the socket: nothing to clean up after a crash. */
static socklen_t bell_address(const struct wake_bells *bells, pid_t pid, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    int n = snprintf(sun->sun_path + 1, sizeof sun->sun_path - 1, "presenced/%016llx/%ld",
                     (unsigned long long)bells->store_id, (long)pid);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int wake_listen(struct wake_bells *bells, pid_t pid)
{
    struct sockaddr_un sun;
    socklen_t len = bell_address(bells, pid, &sun);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sun, len) != 0) {
        close(fd);
        return -1;
    }
    bells->fd = fd;
    return fd;
}

int wake_ring(const struct wake_bells *bells, pid_t pid)
{
    struct sockaddr_un sun;
    socklen_t len = bell_address(bells, pid, &sun);
    int fd = bells->fd;
    int own = 0;
    if (fd < 0) {
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        own = 1;
    }
    char ring = 1;
    ssize_t sent = sendto(fd, &ring, 1, MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
    int saved = errno;
    if (own)
        close(fd);
    return sent == 1 || saved == EAGAIN ? 0 : -1;
}

void wake_drain(const struct wake_bells *bells)
{
    char buf[64];
    while (recv(bells->fd, buf, sizeof buf, 0) > 0)
        ;
}

void wake_close(struct wake_bells *bells)
{
    if (bells->fd >= 0)
        close(bells->fd);
    bells->fd = -1;
}
