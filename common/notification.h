/* notification: a live notification as devices receive it, and the request that queues one
 * (SPEC.md §2, §6). */
#ifndef PRESENCED_NOTIFICATION_H
#define PRESENCED_NOTIFICATION_H

#include <stddef.h>
#include <stdint.h>

#define NOTIFICATION_SOURCE_MAX 256
#define NOTIFICATION_MESSAGE_MAX 1024
#define NOTIFICATION_ACTION_MAX 2048
#define NOTIFICATION_APP_MAX 128
#define NOTIFICATION_ID_LEN 36 /* a UUID in text */

struct notification {
    const char *source;  /* who it is from */
    const char *message; /* the text to show */
    const char *action;  /* a URL to open, or NULL */
    const char *app;     /* the app's name, or NULL (from the operator) */
    const char *urgency; /* Web Push's Urgency (RFC 8030 §5.3), or NULL: "normal" */
    int64_t ttl_ms;      /* 0: the default */
};

/* Whether text is an RFC 8030 urgency: very-low, low, normal or high. */
int notification_urgency_valid(const char *text);

/* The urgency a rendered notification (its JSON) asks of Web Push: its "urgency", or
 * "normal" when it has none (a static string). */
const char *notification_urgency_of(const char *json, size_t len);

/* Reads {"source","message","action","ttl","urgency"} (the admin endpoint's body; ttl in
 * seconds, from 1 to max_ttl_ms). The strings point into *root, which the caller json_object_put()s. Returns 0,
 * or -1 with *why set. */
struct json_object;
int notification_parse(const char *text, size_t len, int64_t max_ttl_ms, struct notification *out,
                       struct json_object **root, const char **why);

/* A random UUID (version 4) in text, NUL-terminated. Returns 0 or -1. */
int notification_id_make(char out[NOTIFICATION_ID_LEN + 1]);

/* Renders {"source","message","action","app","id","ts","urgency"} into out (cap bytes). Returns the
 * length, or -1 when it does not fit. */
int notification_render(const struct notification *n, const char *id, int64_t ts_s, char *out,
                        size_t cap);

#endif
