/* push_subscription: a device's Web Push subscription as a browser gives it
 * (PushSubscription.toJSON(): {"endpoint","keys":{"p256dh","auth"}}) — read from outside, so
 * every part is checked here. */
#include "push_subscription.h"

#include "b64url.h"
#include "json_strict.h"

#include <string.h>

bool push_endpoint_valid(const char *endpoint, size_t len)
{
    if (len <= 8 || len > PUSH_ENDPOINT_MAX || strlen(endpoint) != len ||
        strncmp(endpoint, "https://", 8) != 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)endpoint[i];
        if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\')
            return false; /* a URL a push service hands out is plain ASCII */
    }
    const char *host = endpoint + 8;
    size_t host_len = strcspn(host, "/?");
    return host_len > 0 && memchr(host, '@', host_len) == NULL && host[0] != ':' &&
           host[0] != '.';
}

/* A base64url key of exactly want bytes; "=" padding, which some libraries write, is dropped. */
static bool key_decode(const char *text, size_t len, unsigned char *out, size_t want)
{
    while (len > 0 && text[len - 1] == '=')
        len--;
    unsigned char buf[B64URL_DECODED_MAX(128)];
    if (len == 0 || len > 128)
        return false;
    long n = b64url_decode(text, len, buf);
    if (n != (long)want)
        return false;
    memcpy(out, buf, want);
    return true;
}

int push_subscription_parse(struct json_object *obj, struct push_subscription *out,
                            const char **why)
{
    struct json_object *keys;
    const char *endpoint, *p256dh, *auth;
    size_t endpoint_len, p256dh_len, auth_len;
    memset(out, 0, sizeof *out);
    if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
        *why = "missing or invalid field: subscription (an object)";
        return -1;
    }
    if (json_strict_string(obj, "endpoint", &endpoint, &endpoint_len) != 1 ||
        !push_endpoint_valid(endpoint, endpoint_len)) {
        *why = "invalid field: subscription.endpoint (an https URL of at most 1024 bytes)";
        return -1;
    }
    if (!json_object_object_get_ex(obj, "keys", &keys) ||
        !json_object_is_type(keys, json_type_object)) {
        *why = "missing or invalid field: subscription.keys";
        return -1;
    }
    if (json_strict_string(keys, "p256dh", &p256dh, &p256dh_len) != 1 ||
        !key_decode(p256dh, p256dh_len, out->p256dh, PUSH_P256_LEN) ||
        !push_public_key_valid(out->p256dh)) {
        *why = "invalid field: subscription.keys.p256dh (a P-256 point, base64url)";
        return -1;
    }
    if (json_strict_string(keys, "auth", &auth, &auth_len) != 1 ||
        !key_decode(auth, auth_len, out->auth, PUSH_AUTH_LEN)) {
        *why = "invalid field: subscription.keys.auth (16 bytes, base64url)";
        return -1;
    }
    memcpy(out->endpoint, endpoint, endpoint_len + 1);
    return 0;
}
