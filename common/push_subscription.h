/* push_subscription: a device's Web Push subscription as a browser gives it
 * (PushSubscription.toJSON(): {"endpoint","keys":{"p256dh","auth"}}) — read from outside, so
 * every part is checked here. */
#ifndef PRESENCED_PUSH_SUBSCRIPTION_H
#define PRESENCED_PUSH_SUBSCRIPTION_H

#include "push_crypto.h"

#include <json-c/json.h>

/* Push services' endpoints are a few hundred bytes (FCM, Mozilla's autopush, Apple's, Windows'). */
#define PUSH_ENDPOINT_MAX 1024

struct push_subscription {
    char endpoint[PUSH_ENDPOINT_MAX + 1]; /* an https URL with a host */
    unsigned char p256dh[PUSH_P256_LEN];  /* the user agent's public key, on P-256 */
    unsigned char auth[PUSH_AUTH_LEN];    /* its authentication secret */
};

/* Whether endpoint is one presenced sends to: https, a host (no user part), no fragment, no
 * whitespace or control character, at most PUSH_ENDPOINT_MAX bytes. Where it resolves to is
 * checked when a push is sent, as an app's domain is (validate_private_addresses). */
bool push_endpoint_valid(const char *endpoint, size_t len);

/* Reads a subscription object; other members (expirationTime...) are ignored. The keys are
 * base64url, with or without padding. Returns 0, or -1 with *why naming what is wrong. */
int push_subscription_parse(struct json_object *obj, struct push_subscription *out,
                            const char **why);

#endif
