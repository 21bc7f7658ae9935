/* origin: the canonical text of a web origin, so that audiences compare as strings. */
#include "origin.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool port_valid(const char *text, size_t len)
{
    if (len == 0 || len > 5 || text[0] == '0')
        return false;
    unsigned value = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)text[i]))
            return false;
        value = value * 10 + (unsigned)(text[i] - '0');
    }
    return value <= 65535;
}

static bool host_text_valid(const char *host, size_t len)
{
    if (len == 0)
        return false;
    if (host[0] == '[')
        return len > 2 && host[len - 1] == ']' &&
               strspn(host + 1, "0123456789abcdefABCDEF:.") == len - 2;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)host[i]) && host[i] != '-' && host[i] != '.')
            return false;
    return true;
}

int origin_normalize(const char *in, char *out, size_t outlen)
{
    static const struct {
        const char *scheme;
        const char *default_port;
    } schemes[] = { { "https", "443" }, { "http", "80" }, { "app", NULL } };
    const char *sep = strstr(in, "://");
    if (sep == NULL)
        return -1;
    size_t scheme_len = (size_t)(sep - in), s;
    for (s = 0; s < sizeof schemes / sizeof schemes[0]; s++)
        if (strlen(schemes[s].scheme) == scheme_len &&
            strncasecmp(in, schemes[s].scheme, scheme_len) == 0)
            break;
    if (s == sizeof schemes / sizeof schemes[0])
        return -1;
    const char *host = sep + 3;
    const char *bracket = host[0] == '[' ? strchr(host, ']') : NULL;
    const char *colon = strchr(bracket ? bracket : host, ':');
    size_t host_len = colon ? (size_t)(colon - host) : strlen(host);
    const char *port = colon ? colon + 1 : NULL;
    if (!host_text_valid(host, host_len) || (port != NULL && !port_valid(port, strlen(port))))
        return -1;
    if (port != NULL && schemes[s].default_port != NULL &&
        strcmp(port, schemes[s].default_port) == 0)
        port = NULL;
    int n = snprintf(out, outlen, "%s://%.*s%s%s", schemes[s].scheme, (int)host_len, host,
                     port ? ":" : "", port ? port : "");
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    for (char *p = out + scheme_len + 3; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}
