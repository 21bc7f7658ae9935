/* admin_reply: what every route of the admin endpoint answers with — JSON bodies, errors as
 * {"error":"..."} with their HTTP status, and the request's body. */
#include "admin_reply.h"

#include "../common/json_strict.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <stdlib.h>

void admin_reply_json(struct evhttp_request *req, int code, struct json_object *obj)
{
    struct evbuffer *body = evbuffer_new();
    const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
    if (body == NULL || text == NULL) {
        if (body != NULL)
            evbuffer_free(body);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add_printf(body, "%s\n", text);
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "application/json");
    evhttp_add_header(headers, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, code < 300 ? "OK" : "Error", body);
    evbuffer_free(body);
}

void admin_reply_error(struct evhttp_request *req, int code, const char *text)
{
    struct json_object *obj = json_object_new_object();
    if (obj == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    json_object_object_add(obj, "error", json_object_new_string(text));
    admin_reply_json(req, code, obj);
    json_object_put(obj);
}

char *admin_body(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    *len = evbuffer_get_length(in);
    char *text = malloc(*len + 1);
    if (text == NULL)
        return NULL;
    evbuffer_copyout(in, text, *len);
    text[*len] = '\0';
    return text;
}

struct json_object *admin_body_object(struct evhttp_request *req)
{
    size_t len;
    char *text = admin_body(req, &len);
    if (text == NULL) {
        admin_reply_error(req, 500, "out of memory");
        return NULL;
    }
    struct json_object *obj = len == 0 ? json_object_new_object() : json_strict_object(text, len);
    free(text);
    if (obj == NULL)
        admin_reply_error(req, 400, "the body must be a JSON object");
    return obj;
}
