/* ctl_admin: presencectl's side of the admin endpoint — where it is (-a, or admin_listen of the
 * configuration file), and one request to it with its JSON answer.
 *
 * HTTP goes through libcurl rather than a hand-written client on a socket: it is already a
 * dependency of presenced (Debian's libcurl4-openssl-dev), and it handles what a correct client
 * must (connection errors worded for humans, timeouts, Content-Length and chunked bodies, IPv6
 * literals, percent-encoding) in code that is maintained and fuzzed elsewhere. */
#include "ctl_admin.h"

#include "../../common/addr.h"
#include "../../common/config.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX (16 * 1024 * 1024) /* an answer larger than this is not the admin endpoint */

int ctl_admin_at(struct ctl_admin *admin, const char *listen, const char **why)
{
    struct listen_addr addr;
    if (addr_parse(listen, &addr, why) != 0)
        return -1;
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    if (addr.ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr.ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(admin->where, sizeof admin->where, "[%s]:%u", host, port);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&addr.ss;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(admin->where, sizeof admin->where, "%s:%u", host, port);
    }
    snprintf(admin->base_url, sizeof admin->base_url, "http://%s", admin->where);
    return 0;
}

int ctl_admin_from_config(struct ctl_admin *admin, const char *path, char *err, size_t errlen)
{
    struct config cfg;
    if (config_defaults(&cfg) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = config_load(&cfg, path, err, errlen);
    const char *why = NULL;
    if (rc == 0 && strcmp(cfg.admin_listen, "off") == 0) {
        snprintf(err, errlen, "%s: admin_listen is off: presenced serves no admin endpoint", path);
        rc = -1;
    } else if (rc == 0 && ctl_admin_at(admin, cfg.admin_listen, &why) != 0) {
        snprintf(err, errlen, "%s: admin_listen %s: %s", path, cfg.admin_listen, why);
        rc = -1;
    }
    config_free(&cfg);
    return rc;
}

struct buffer {
    char *data;
    size_t len;
    int too_big;
};

static size_t buffer_add(char *chunk, size_t size, size_t count, void *arg)
{
    struct buffer *b = arg;
    size_t n = size * count;
    if (b->len + n > ANSWER_MAX) {
        b->too_big = 1;
        return 0;
    }
    char *grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + b->len, chunk, n);
    b->data = grown;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Sets up the handle for one request; returns the headers list to free, or NULL. */
static struct curl_slist *request_setup(CURL *curl, const struct ctl_admin *admin,
                                        const char *method, const char *url, const char *body,
                                        struct buffer *answer)
{
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, admin->timeout_s > 0 ? admin->timeout_s : 10L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*"); /* the admin endpoint is local */
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, buffer_add);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, answer);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "presencectl");
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    if (body != NULL) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    return headers;
}

int ctl_admin_request(const struct ctl_admin *admin, const char *method, const char *path,
                      struct json_object *body, struct ctl_answer *answer)
{
    memset(answer, 0, sizeof *answer);
    char url[2048];
    snprintf(url, sizeof url, "%s%s", admin->base_url, path);
    const char *body_text =
        body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN) : NULL;
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        snprintf(answer->error, sizeof answer->error, "cannot start libcurl");
        return -1;
    }
    struct buffer received = { 0 };
    struct curl_slist *headers = request_setup(curl, admin, method, url, body_text, &received);
    CURLcode rc = curl_easy_perform(curl);
    long os_errno = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer->status);
    else if (curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno != 0)
        snprintf(answer->error, sizeof answer->error, "%s", strerror((int)os_errno));
    else
        snprintf(answer->error, sizeof answer->error, "%s",
                 received.too_big ? "the answer is too large" : curl_easy_strerror(rc));
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    answer->text = received.data ? received.data : strdup("");
    if (rc != CURLE_OK)
        return -1;
    answer->body = json_tokener_parse(answer->text);
    return 0;
}

void ctl_answer_free(struct ctl_answer *answer)
{
    json_object_put(answer->body);
    free(answer->text);
    answer->body = NULL;
    answer->text = NULL;
}

char *ctl_admin_escape(const char *text)
{
    char *escaped = curl_easy_escape(NULL, text, 0);
    char *copy = escaped ? strdup(escaped) : NULL;
    curl_free(escaped);
    return copy;
}
