/* tcp_bytes: how many bytes TCP has received on a socket, read or not (TCP_INFO). */
#ifndef PRESENCED_TCP_BYTES_H
#define PRESENCED_TCP_BYTES_H

#include <stdint.h>

/* Bytes received on the connected TCP socket fd, including those not read yet; 0 when the
 * kernel cannot tell. */
uint64_t tcp_bytes_received(int fd);

#endif
