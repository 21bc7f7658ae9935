/* Unit tests of common/notification: the operator's request body, ids, the rendered JSON. */
#include "tap.h"

#include "../../common/notification.h"

#include <json-c/json.h>

static int parse_text(const char *text, struct notification *n, struct json_object **root,
                      const char **why)
{
    return notification_parse(text, strlen(text), 3600 * 1000, n, root, why);
}

int main(void)
{
    struct notification n;
    struct json_object *root;
    const char *why = NULL;
    is_int(parse_text("{\"source\":\"ops\",\"message\":\"hi\",\"action\":\"https://x.example\","
                      "\"ttl\":60,\"other\":1}",
                      &n, &root, &why),
           0, "a full body parses, unknown fields ignored");
    is_str(n.source, "ops", "source");
    is_str(n.message, "hi", "message");
    is_str(n.action, "https://x.example", "action");
    is_int(n.ttl_ms, 60000, "ttl in seconds");
    char id[NOTIFICATION_ID_LEN + 1], out[4096];
    is_int(notification_id_make(id), 0, "an id");
    is_int(strlen(id), 36, "36 characters");
    ok(id[14] == '4' && strchr("89ab", id[19]) != NULL, "a version 4 UUID: %s", id);
    n.app = "Chat";
    int len = notification_render(&n, id, 1732400000, out, sizeof out);
    ok(len > 0 && (size_t)len == strlen(out), "rendered");
    char want[256];
    snprintf(want, sizeof want,
             "{\"source\":\"ops\",\"message\":\"hi\",\"action\":\"https://x.example\",\"app\":"
             "\"Chat\",\"id\":\"%s\",\"ts\":1732400000}",
             id);
    is_str(out, want, "the keys devices read, slashes unescaped");
    is_int(notification_render(&n, id, 1, out, 20), -1, "too small a buffer is refused");
    json_object_put(root);

    is_int(parse_text("{\"source\":\"ops\",\"message\":\"hi\"}", &n, &root, &why), 0,
           "action and ttl are optional");
    ok(n.action == NULL && n.ttl_ms == 0 && n.urgency == NULL, "absent: NULL and 0");
    json_object_put(root);

    /* Web Push's Urgency (RFC 8030 §5.3): asked for by the notification, read back at push. */
    is_int(parse_text("{\"source\":\"ops\",\"message\":\"ring\",\"urgency\":\"high\"}", &n,
                      &root, &why),
           0, "urgency");
    is_str(n.urgency, "high", "urgency high");
    len = notification_render(&n, id, 1, out, sizeof out);
    ok(len > 0 && strstr(out, "\"urgency\":\"high\"") != NULL, "rendered with it: %s", out);
    is_str(notification_urgency_of(out, (size_t)len), "high", "the push reads it back");
    json_object_put(root);
    is_str(notification_urgency_of("{\"source\":\"a\",\"message\":\"b\"}", 28), "normal",
           "none asked: normal");
    is_str(notification_urgency_of("{\"urgency\":\"urgent\"}", 20), "normal",
           "an unknown one: normal");
    is_str(notification_urgency_of("not json", 8), "normal", "no JSON: normal");
    is_int(notification_urgency_valid("very-low") && notification_urgency_valid("low") &&
               notification_urgency_valid("normal") && !notification_urgency_valid("High"),
           1, "the four of RFC 8030, as written");
    const char *bad[] = {
        "[]",
        "{\"message\":\"hi\"}",
        "{\"source\":\"ops\"}",
        "{\"source\":\"\",\"message\":\"hi\"}",
        "{\"source\":\"ops\",\"message\":5}",
        "{\"source\":\"ops\",\"message\":\"hi\",\"action\":7}",
        "{\"source\":\"ops\",\"message\":\"hi\",\"ttl\":0}",
        "{\"source\":\"ops\",\"message\":\"hi\",\"ttl\":3601}",
        "{\"source\":\"ops\",\"message\":\"hi\",\"ttl\":\"60\"}",
        "{\"source\":\"o\\u0000ps\",\"message\":\"hi\"}",
        "{\"source\":\"ops\",\"message\":\"hi\",\"urgency\":\"urgent\"}",
        "{\"source\":\"ops\",\"message\":\"hi\",\"urgency\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        root = NULL;
        is_int(parse_text(bad[i], &n, &root, &why), -1, "%s refused (%s)", bad[i], why);
        ok(root == NULL, "and nothing to free");
    }
    return tap_done();
}
