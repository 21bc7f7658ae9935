/* tcp_bytes: how many bytes TCP has received on a socket, read or not (TCP_INFO). The kernel's
 * own struct tcp_info is used: glibc's stops before tcpi_bytes_received, and its header cannot
 * sit beside this one, hence a file of its own. */
#include "tcp_bytes.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

uint64_t tcp_bytes_received(int fd)
{
    struct tcp_info info;
    socklen_t len = sizeof info;
    memset(&info, 0, sizeof info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received)
        return 0;
    return info.tcpi_bytes_received;
}
