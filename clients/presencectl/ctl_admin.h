/* ctl_admin: presencectl's side of the admin endpoint — where it is (-a, or admin_listen of the
 * configuration file), and one request to it with its JSON answer. */
#ifndef PRESENCECTL_ADMIN_H
#define PRESENCECTL_ADMIN_H

#include <stddef.h>

struct json_object;

struct ctl_admin {
    char base_url[160]; /* http://host:port */
    char where[96];     /* host:port, for messages */
    long timeout_s;
};

/* Sets admin->base_url from "HOST:PORT" (or "PORT"); a wildcard address means this host's
 * loopback. Returns 0, or -1 with *why. */
int ctl_admin_at(struct ctl_admin *admin, const char *listen, const char **why);
/* The same from admin_listen of a presenced configuration file, read as presenced reads it.
 * Returns 0, or -1 with a message (file:line: …) in err. */
int ctl_admin_from_config(struct ctl_admin *admin, const char *path, char *err, size_t errlen);

struct ctl_answer {
    long status;              /* HTTP status; 0 when the endpoint could not be reached */
    struct json_object *body; /* the parsed JSON answer, or NULL */
    char *text;               /* the raw body, NUL-terminated */
    char error[256];          /* why there is no answer (status 0) */
};

/* One request: method ("GET", "POST", "DELETE"), a path already percent-encoded where needed,
 * and a JSON body or NULL. Returns 0 when an answer came (any status), -1 otherwise (with
 * answer->error). ctl_answer_free afterwards in both cases. */
int ctl_admin_request(const struct ctl_admin *admin, const char *method, const char *path,
                      struct json_object *body, struct ctl_answer *answer);
void ctl_answer_free(struct ctl_answer *answer);

/* text percent-encoded for a path segment (a new string, NULL when out of memory). */
char *ctl_admin_escape(const char *text);

#endif
