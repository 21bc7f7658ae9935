/* push_bench: Web Push messages per second on one core — what the sender does per push:
 * RFC 8291 encryption (a new P-256 key pair, ECDH, HKDF, AES-128-GCM), the VAPID ES256 token
 * when one is signed anew, the user's Topic — each alone and together, per second of CPU time.
 * Prints one JSON object.
 * Usage: push_bench [COUNT] */
#include "../common/push_crypto.h"
#include "../common/vapid.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A notification as devices receive it, of the usual size. */
static const char NOTE[] =
    "{\"source\":\"alice@example.com\",\"message\":\"Alice is ringing you in the chat room: "
    "pick up when you can\",\"action\":\"https://chat.example.com/r/1a2b3c\",\"app\":\"Chat\","
    "\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"ts\":1732400000}";

/* CPU time of this thread: a figure per core that other processes on a busy machine do not
 * lower. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum work { ENCRYPT = 1, SIGN = 2, TOPIC = 4 };

static double per_second(struct push_crypto *c, const struct vapid_key *k, const unsigned char *ua_public,
                         const unsigned char *auth, int count, int work)
{
    unsigned char body[PUSH_BODY_MAX];
    char header[VAPID_AUTHORIZATION_MAX], topic[VAPID_TOPIC_LEN + 1];
    size_t len;
    double start = now_s();
    for (int i = 0; i < count; i++) {
        if ((work & ENCRYPT) && push_encrypt(c, ua_public, auth, NOTE, sizeof NOTE - 1, body, &len))
            return -1;
        if ((work & SIGN) && vapid_authorization(k, "https://push.example.net",
                                                 "mailto:ops@example.com", 1900000000 + i, header,
                                                 sizeof header) < 0)
            return -1;
        if ((work & TOPIC) && vapid_topic(k, "bob@example.com", topic) != 0)
            return -1;
    }
    return count / (now_s() - start);
}

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 3000;
    struct vapid_key k;
    struct push_crypto *crypto = push_crypto_new();
    EVP_PKEY *ua = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    unsigned char ua_public[PUSH_P256_LEN], auth[PUSH_AUTH_LEN] = { 7 };
    if (vapid_key_from(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), &k) != 0 || ua == NULL ||
        push_p256_public(ua, ua_public) != 0 || crypto == NULL)
        return 1;
    double encrypt = per_second(crypto, &k, ua_public, auth, count, ENCRYPT);
    double sign = per_second(crypto, &k, ua_public, auth, count, SIGN);
    double cached = per_second(crypto, &k, ua_public, auth, count, ENCRYPT | TOPIC);
    double fresh = per_second(crypto, &k, ua_public, auth, count, ENCRYPT | SIGN | TOPIC);
    printf("{\"count\":%d,\"plaintext_bytes\":%zu,\"encrypt_per_s\":%.0f,\"sign_per_s\":%.0f,"
           "\"push_per_s\":%.0f,\"push_signed_per_s\":%.0f}\n",
           count, sizeof NOTE - 1, encrypt, sign, cached, fresh);
    vapid_key_free(&k);
    push_crypto_free(crypto);
    EVP_PKEY_free(ua);
    return encrypt > 0 && sign > 0 && cached > 0 && fresh > 0 ? 0 : 1;
}
