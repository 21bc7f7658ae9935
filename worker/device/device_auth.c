/* device_auth: a device's status updates — binding the connection to a verified (e-mail,
 * device), one owner per device across workers, the device limit, the rate limit, and the
 * user's aggregate presence (SPEC.md §2). */
#include "device_session.h"

#include "../conn_mail.h"
#include "../identity/identity.h"

#include "../../common/clock.h"
#include "../../common/log.h"
#include "../../shm/conn.h"
#include "../../shm/mail.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The status update waiting for its assertion's or token's verification; allocated only
 * meanwhile. */
struct pending_update {
    struct identity_req *req; /* NULL once answered, or when answered at once */
    bool token;               /* a token (SPEC.md §3.1), not an assertion */
    uint8_t status;
    unsigned char tag[ASSERTION_TAG_LEN];
    char device[SHM_DEVICE_MAX + 1];
    bool device_given;
    char email[SHM_EMAIL_MAX + 1];
    int64_t started_us; /* for the meter */
};

static void device_unbind(struct device_session *s)
{
    free(s->email);
    free(s->device);
    s->email = s->device = NULL;
    s->owner = false;
    s->backlog = false;
}

void device_auth_abandon(struct device_session *s)
{
    if (s->pending != NULL && s->pending->req != NULL)
        identity_cancel(s->pending->req);
    free(s->pending);
    s->pending = NULL;
}

/* What says "the same credential again": a hash of its kind and of its text. */
static void credential_tag(const char *credential, size_t len, bool token, unsigned char *tag)
{
    unsigned char kinded[1 + SHA256_DIGEST_LENGTH], digest[SHA256_DIGEST_LENGTH];
    kinded[0] = token ? 'T' : 'A';
    SHA256((const unsigned char *)credential, len, kinded + 1);
    SHA256(kinded, sizeof kinded, digest);
    memcpy(tag, digest, ASSERTION_TAG_LEN);
}

/* A status update of a bound connection: same e-mail, same device (NULL: not named). Checked
 * now, stored with the others at the end of the loop turn (device_batch.c). */
static void status_apply(struct worker *w, struct device_session *s, const char *email,
                         const char *device, uint8_t status)
{
    if (device == NULL)
        device = s->device;
    if (strcmp(email, s->email) != 0) {
        session_error(w, &s->ws, 31, "email does not match the identity of the connection",
                      LWS_CLOSE_STATUS_POLICY_VIOLATION);
        return;
    }
    if (strcmp(device, s->device) != 0) {
        session_error(w, &s->ws, 11, "invalid field: device (a connection keeps its device)", 0);
        return;
    }
    if (!s->owner) {
        session_error(w, &s->ws, 52, "superseded by a newer connection", 4001);
        return;
    }
    device_batch_update(w, s, status);
}

struct device_count {
    const char *except;
    int count;
};

static void device_count_other(void *arg, const char *device, const struct shm_conn_owner *owner)
{
    struct device_count *c = arg;
    (void)owner;
    if (strcmp(device, c->except) != 0)
        c->count++;
}

/* The previous holder of the device, on this worker or another, is told to close (52, 4001). */
static void previous_supersede(struct worker *w, const struct shm_conn_owner *previous)
{
    if (previous->worker_pid == w->info.pid) {
        session_mail(w, previous->conn_id, &(struct conn_mail){ .kind = CONN_MAIL_SUPERSEDED });
        return;
    }
    unsigned char payload[8];
    for (int i = 0; i < 8; i++)
        payload[i] = (unsigned char)(previous->conn_id >> (56 - 8 * i));
    if (mailbox_post(w, previous->worker_pid, SHM_MAIL_CLOSE_CONN, payload, sizeof payload) != 0)
        w->info.store_failures_total++;
}

/* Takes the (e-mail, device) record for this connection. Returns 0, or the errno to reply. */
static int ownership_claim(struct worker *w, struct device_session *s, const char *email,
                           const char *device, uint8_t status)
{
    struct device_count others = { device, 0 };
    if (shm_conn_devices(w->store, email, device_count_other, &others) < 0)
        return 60;
    if (others.count >= w->cfg->max_devices_per_user)
        return 51;
    struct shm_conn_owner me = { w->info.pid, s->ws.conn_id, status, clock_wall_ms() }, previous;
    int had_previous;
    if (shm_conn_claim(w->store, email, device, &me, &previous, &had_previous) != SHM_OK)
        return 60;
    if (had_previous) {
        w->info.meter.takeovers++;
        previous_supersede(w, &previous);
    }
    return 0;
}

/* The first verified update binds the connection to (e-mail, device) and claims it. */
static void device_bind(struct worker *w, struct device_session *s, const struct pending_update *p)
{
    s->email = strdup(p->email);
    s->device = strdup(p->device);
    int number = s->email && s->device ? ownership_claim(w, s, p->email, p->device, p->status) : 60;
    if (number != 0) {
        device_unbind(s);
        if (number == 51)
            session_error(w, &s->ws, 51, "too many devices connected for this user", 0);
        else
            session_error(w, &s->ws, 60, "internal error", 0);
        return;
    }
    s->owner = true;
    memcpy(s->tag, p->tag, sizeof s->tag);
    presence_device_bound(w, s->email, s->device);
    struct out_msg *reply = session_hold(&s->ws, DEVICE_REPLY_CAP);
    if (reply == NULL || device_batch_reply(w, s, reply, true) != 0) {
        if (reply != NULL)
            session_drop(&s->ws, reply);
        /* Not bound after all: the claim in this batch goes too. */
        shm_conn_release(w->store, s->email, s->device, w->info.pid, s->ws.conn_id);
        device_unbind(s);
        session_error(w, &s->ws, 60, "internal error", 0);
    }
}

static void identity_error(struct worker *w, struct device_session *s,
                           const struct identity_result *r, bool token)
{
    char text[160];
    if (r->error == 34 && token && strncmp(r->why, "untrusted issuer", 16) != 0)
        snprintf(text, sizeof text, "invalid token: %s", r->why);
    else if (r->error == 34 && strncmp(r->why, "invalid assertion", 17) != 0 &&
             strncmp(r->why, "untrusted issuer", 16) != 0)
        snprintf(text, sizeof text, "invalid assertion: %s", r->why);
    else
        snprintf(text, sizeof text, "%s", r->why);
    session_error(w, &s->ws, r->error, text, 0);
}

static void verification_done(struct worker *w, struct device_session *s,
                              const struct identity_result *r)
{
    const struct pending_update *p = s->pending;
    meter_verified(&w->info.meter, p->token, r->error, r->cached, p->started_us);
    if (r->error != 0) {
        identity_error(w, s, r, p->token);
    } else if (strcmp(r->email, p->email) != 0 || (s->email && strcmp(s->email, r->email) != 0)) {
        session_error(w, &s->ws, 31,
                      p->token ? "email does not match the identity of the token"
                               : "email does not match the identity of the assertion",
                      LWS_CLOSE_STATUS_POLICY_VIOLATION);
    } else if (s->email != NULL) {
        memcpy(s->tag, p->tag, sizeof s->tag);
        status_apply(w, s, p->email, p->device_given ? p->device : NULL, p->status);
    } else {
        device_bind(w, s, p);
    }
    device_auth_abandon(s);
}

static void verification_answered(void *arg, const struct identity_result *r)
{
    struct device_session *s = arg;
    s->pending->req = NULL;
    verification_done(worker_of(s->ws.wsi), s, r);
    lws_rx_flow_control(s->ws.wsi, 1);
}

static void verification_start(struct worker *w, struct device_session *s,
                               const struct dev_msg *msg, const unsigned char *tag)
{
    struct pending_update *p = calloc(1, sizeof *p);
    if (p == NULL) {
        session_error(w, &s->ws, 60, "internal error", 0);
        return;
    }
    /* dev_msg_parse bounded both lengths. */
    snprintf(p->email, sizeof p->email, "%s", msg->email);
    snprintf(p->device, sizeof p->device, "%s", msg->device);
    p->device_given = msg->device_given;
    p->status = msg->status;
    p->token = msg->token != NULL;
    p->started_us = histogram_now_us();
    memcpy(p->tag, tag, sizeof p->tag);
    s->pending = p;
    struct identity_result result;
    int rc = p->token ? identity_verify_token(w->identity, msg->token, msg->token_len, NULL,
                                              &result, verification_answered, s, &p->req)
                      : identity_verify(w->identity, msg->assertion, msg->assertion_len, NULL,
                                        &result, verification_answered, s, &p->req);
    if (rc == 0)
        verification_done(w, s, &result);
    else
        lws_rx_flow_control(s->ws.wsi, 0);
}

int device_rate_take(struct worker *w, struct device_session *s)
{
    int64_t now = clock_mono_ms();
    float rate = (float)w->cfg->status_rate, burst = (float)w->cfg->status_burst;
    s->tokens += (float)(now - s->refill_ms) * rate / 1000.0f;
    if (s->tokens > burst)
        s->tokens = burst;
    s->refill_ms = now;
    if (s->tokens >= 1.0f) {
        s->tokens -= 1.0f;
        return 0;
    }
    float seconds = (1.0f - s->tokens) / rate;
    int wait = (int)seconds;
    return (float)wait < seconds ? wait + 1 : (wait < 1 ? 1 : wait);
}

void device_status_handle(struct worker *w, struct device_session *s, const struct dev_msg *msg)
{
    int retry_after = device_rate_take(w, s);
    if (retry_after > 0) {
        session_slow_down(w, &s->ws, retry_after);
        return;
    }
    const char *credential = msg->assertion ? msg->assertion : msg->token;
    size_t credential_len = msg->assertion ? msg->assertion_len : msg->token_len;
    if (credential == NULL) {
        if (s->email == NULL)
            session_error(w, &s->ws, 30, "authentication required", 0);
        else
            status_apply(w, s, msg->email, msg->device_given ? msg->device : NULL, msg->status);
        return;
    }
    unsigned char tag[ASSERTION_TAG_LEN];
    credential_tag(credential, credential_len, msg->token != NULL, tag);
    if (s->email != NULL && memcmp(tag, s->tag, sizeof tag) == 0)
        /* The same assertion or token: not verified again, even once expired. */
        status_apply(w, s, msg->email, msg->device_given ? msg->device : NULL, msg->status);
    else
        verification_start(w, s, msg, tag);
}

void device_auth_release(struct worker *w, struct device_session *s)
{
    if (!s->owner || s->email == NULL)
        return;
    s->owner = false;
    presence_device_left(w, s->email, s->device, s->ws.conn_id);
}
