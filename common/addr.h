/* addr: "[host:]port" listen addresses as written in presenced.conf, parsed to socket addresses. */
#ifndef PRESENCED_ADDR_H
#define PRESENCED_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

struct listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Accepts "8282", "*:8282", "127.0.0.1:8282", "[::1]:8282", "localhost:8282" (numeric hosts and
 * "localhost" only: a daemon should not depend on DNS to start). Returns 0 or -1 with a reason. */
int addr_parse(const char *text, struct listen_addr *out, const char **reason);

/* Writes "host:port" (IPv6 in brackets) into buf. */
void addr_format(const struct listen_addr *addr, char *buf, size_t len);

#endif
