/* libFuzzer target: the values of the shared records a cluster node reads from the engine — an
 * app's JSON (pd_apps), a grant (pd_grants, also what the outbox carries) and a web session
 * (pd_sessions), a Web Push subscription's change (pd_push), and an operator's notification as
 * the outbox carries it to the agent: anything is refused or read into a record that writes back
 * the same, or (pd_push) into whole strings within their bounds. */
#include "../../shm/app.h"
#include "../../shm/outbox.h"
#include "../../shm/push_sub.h"
#include "../../shm/web_session.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct shm_outbox_grant g;
    if (shm_outbox_grant_decode(data, size, &g) == 0) {
        unsigned char out[SHM_OUTBOX_VALUE_MAX];
        long n = shm_outbox_grant_encode(&g, out, sizeof out);
        /* One encoding per grant (a field holding a NUL was refused). */
        if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
            __builtin_trap();
    }
    char email[SHM_EMAIL_MAX + 1];
    int64_t expires;
    const char *json;
    size_t json_len;
    if (shm_outbox_notify_decode(data, size, email, &expires, &json, &json_len) == 0) {
        unsigned char out[SHM_OUTBOX_VALUE_MAX];
        long n = shm_outbox_notify_encode(email, expires, json, json_len, out, sizeof out);
        if (json_len == 0 || (n >= 0 && ((size_t)n != size || memcmp(out, data, size) != 0)))
            __builtin_trap();
    }
    struct shm_web_session s;
    if (shm_web_session_decode(data, size, &s) == SHM_OK &&
        (strlen(s.email) == 0 || strlen(s.email) > SHM_EMAIL_MAX || strlen(s.csrf) != SHM_CSRF_LEN))
        __builtin_trap();
    struct shm_push_shared push;
    if (shm_push_shared_decode(data, size, &push) == SHM_OK &&
        (push.email[0] == '\0' || strlen(push.email) > SHM_EMAIL_MAX ||
         strlen(push.device) > SHM_DEVICE_MAX || strlen(push.sub.endpoint) > PUSH_ENDPOINT_MAX ||
         (push.op == SHM_PUSH_SHARED_PUT &&
          !push_endpoint_valid(push.sub.endpoint, strlen(push.sub.endpoint)))))
        __builtin_trap();
    struct shm_app app;
    if (shm_app_decode("00000000-0000-4000-8000-000000000000", data, size, &app) == SHM_OK) {
        char *text = shm_app_encode(&app);
        struct shm_app again;
        if (text == NULL ||
            shm_app_decode(app.appid, text, strlen(text), &again) != SHM_OK ||
            strcmp(again.name, app.name) != 0 || again.active != app.active)
            __builtin_trap();
        free(text);
    }
    return 0;
}
