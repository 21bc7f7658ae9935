/* acceptor: what an accepted connection gets before lws adopts it — TCP_NODELAY (lws sets its
 * options only on what its own listener accepts), checked on a real loopback connection. */
#include "tap.h"

#include "../../worker/worker_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

static int nodelay_of(int fd)
{
    int value = -1;
    socklen_t len = sizeof value;
    if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &len) != 0)
        return -1;
    return value;
}

int main(void)
{
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    ok(listener >= 0 && bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0 &&
           listen(listener, 1) == 0 && getsockname(listener, (struct sockaddr *)&addr, &len) == 0,
       "a loopback listener");
    int client = socket(AF_INET, SOCK_STREAM, 0);
    ok(connect(client, (struct sockaddr *)&addr, sizeof addr) == 0, "connected");
    int fd = accept(listener, NULL, NULL);
    ok(fd >= 0, "accepted");
    is_int(nodelay_of(fd), 0, "an accepted socket has Nagle's algorithm on by default");
    is_int(acceptor_socket_setup(fd), 0, "set up");
    ok(nodelay_of(fd) != 0, "TCP_NODELAY once set up");
    is_int(acceptor_socket_setup(-1), -1, "a bad descriptor says so");
    close(fd);
    close(client);
    close(listener);
    return tap_done();
}
