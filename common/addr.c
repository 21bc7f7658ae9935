/* addr: "[host:]port" listen addresses as written in presenced.conf, parsed to socket addresses. */
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int port_parse(const char *text, in_port_t *port)
{
    if (text[0] == '\0')
        return -1;
    char *end;
    long value = strtol(text, &end, 10);
    if (*end != '\0' || value < 0 || value > 65535)
        return -1;
    *port = htons((in_port_t)value);
    return 0;
}

static int host_parse(const char *host, in_port_t port, struct listen_addr *out)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
    memset(out, 0, sizeof *out);
    if (strcmp(host, "*") == 0 || host[0] == '\0')
        host = "0.0.0.0";
    else if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = port;
        out->len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = port;
        out->len = sizeof *v6;
        return 0;
    }
    return -1;
}

int addr_parse(const char *text, struct listen_addr *out, const char **reason)
{
    char host[64] = "";
    const char *port_text;
    in_port_t port;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host) {
            *reason = "expected [ipv6-address]:port";
            return -1;
        }
        memcpy(host, text + 1, (size_t)(close - text - 1));
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon != NULL) {
            if ((size_t)(colon - text) >= sizeof host || strchr(text, ':') != colon) {
                *reason = "expected host:port (write IPv6 addresses as [address]:port)";
                return -1;
            }
            memcpy(host, text, (size_t)(colon - text));
            port_text = colon + 1;
        } else {
            port_text = text;
        }
    }
    if (port_parse(port_text, &port) != 0) {
        *reason = "port must be a number from 0 to 65535";
        return -1;
    }
    if (host_parse(host, port, out) != 0) {
        *reason = "host must be a numeric address, '*' or 'localhost'";
        return -1;
    }
    return 0;
}

void addr_format(const struct listen_addr *addr, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (addr->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&addr->ss;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&addr->ss;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, ntohs(v4->sin_port));
    }
}
