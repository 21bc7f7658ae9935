/* admin_reply: what every route of the admin endpoint answers with — JSON bodies, errors as
 * {"error":"..."} with their HTTP status, and the request's body. */
#ifndef PRESENCED_ADMIN_REPLY_H
#define PRESENCED_ADMIN_REPLY_H

#include <event2/http.h>
#include <stddef.h>

struct json_object;

/* Sends obj (not consumed) as the JSON body of a code answer. */
void admin_reply_json(struct evhttp_request *req, int code, struct json_object *obj);
/* Sends {"error":text} with code. */
void admin_reply_error(struct evhttp_request *req, int code, const char *text);
/* The request body as a NUL-terminated string (evhttp capped its size); NULL when out of
 * memory. The caller frees it. */
char *admin_body(struct evhttp_request *req, size_t *len);
/* The body as a JSON object (a missing body is {}), or NULL after answering 400. */
struct json_object *admin_body_object(struct evhttp_request *req);

#endif
