/* device_auth: a device's status updates — binding the connection to a verified (e-mail,
 * device), one owner per device across workers, the device limit, the rate limit, and the
 * user's aggregate presence (SPEC.md §2). */
#include "device_session.h"

#include "../backend/backend.h"
#include "../identity/identity.h"

#include "../../common/clock.h"
#include "../../common/log.h"

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

static const char OK_REPLY[] = "{\"result\":\"OK\"}";
static const char NOT_STORED[] =
    "{\"result\":\"KO\",\"errno\":60,\"error\":\"internal error: not stored\"}";
#define UNAVAILABLE "service unavailable, try again later"

/* A status update's answer from the backend: its reply, held since the update was read (the
 * replies keep the order of the updates), goes with it. */
static void status_stored(void *arg, const struct backend_done *d, int result)
{
    struct worker *w = arg;
    struct device_session *s = device_find(w, d->conn_id);
    if (s == NULL)
        return; /* closed since: its reply went with it */
    struct out_msg *reply = d->held[0];
    if (result == 0) {
        session_release(&s->ws, reply, OK_REPLY, sizeof OK_REPLY - 1);
    } else if (result == 52) {
        /* A newer connection took the device; its mail may still be on the way. */
        s->owner = false;
        session_release_error(w, &s->ws, reply, 52, "superseded by a newer connection", 4001);
    } else if (result == 61) {
        session_release_unavailable(w, &s->ws, reply, UNAVAILABLE, d->retry_after_s);
    } else {
        meter_error_reply(&w->info.meter, METER_DEVICE, 60);
        session_release(&s->ws, reply, NOT_STORED, sizeof NOT_STORED - 1);
    }
}

/* A checked status update of a bound session: its reply is held now, the backend stores the
 * update (on one machine with the turn's others, just before the commit). */
static void status_store(struct worker *w, struct device_session *s, uint8_t status)
{
    struct out_msg *reply = session_hold(&s->ws, DEVICE_REPLY_CAP);
    if (reply == NULL)
        return; /* out of memory: the connection closes (out_append) */
    struct backend_done done = {
        .fn = status_stored, .arg = w, .conn_id = s->ws.conn_id, .held = { reply, NULL }
    };
    int rc = w->backend->set_status(w, s->email, s->device, s->ws.conn_id, status, &done);
    if (rc != BACKEND_LATER)
        status_stored(w, &done, rc);
}

/* A status update of a bound connection: same e-mail, same device (NULL: not named). Checked
 * now, stored by the backend. */
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
    status_store(w, s, status);
}

/* What was pending for the user when the connection claimed its device, gathered as the
 * backend reads it (within the claim on one machine, later in a cluster) and held behind the
 * claim's reply. */
struct bind_page {
    struct notify_batch batch; /* first: what device_notify_add is given is both */
    struct worker *w;
    uint64_t conn_id;
    struct out_msg *notes; /* held behind the reply; NULL: nothing was pending */
};

static void bind_page_end(void *arg, bool more)
{
    struct bind_page *page = arg;
    struct device_session *s = device_find(page->w, page->conn_id);
    if (s == NULL)
        return;
    /* More than a page: the rest follows in pages as the device takes them. */
    page->batch.more = more;
    s->backlog = more;
    s->paged = s->paged || more;
    page->notes = device_notify_hold(page->w, s, &page->batch);
}

/* The claim's answer: bound, or not after all. */
static void bind_done(void *arg, const struct backend_done *d, int result)
{
    struct worker *w = arg;
    struct bind_page *page = d->held[1];
    struct out_msg *reply = d->held[0], *notes = page->notes;
    device_notify_discard(&page->batch);
    free(page);
    struct device_session *s = device_find(w, d->conn_id);
    if (s == NULL)
        return; /* closed since: its held messages went with it */
    if (result == 0) {
        session_release(&s->ws, reply, OK_REPLY, sizeof OK_REPLY - 1);
        if (notes != NULL)
            session_release(&s->ws, notes, NULL, 0);
        return;
    }
    device_unbind(s);
    if (notes != NULL)
        session_drop(&s->ws, notes);
    if (result == 51) {
        session_release_error(w, &s->ws, reply, 51, "too many devices connected for this user", 0);
    } else if (result == 61) {
        session_release_unavailable(w, &s->ws, reply, UNAVAILABLE, d->retry_after_s);
    } else {
        meter_error_reply(&w->info.meter, METER_DEVICE, 60);
        session_release(&s->ws, reply, NOT_STORED, sizeof NOT_STORED - 1);
    }
}

/* The first verified update binds the connection to (e-mail, device): the backend claims it
 * (newest wins, max_devices_per_user), with what is pending for the user behind the reply. */
static void device_bind(struct worker *w, struct device_session *s, const struct pending_update *p)
{
    s->email = strdup(p->email);
    s->device = strdup(p->device);
    struct out_msg *reply = s->email && s->device ? session_hold(&s->ws, DEVICE_REPLY_CAP) : NULL;
    struct bind_page *page = reply != NULL ? calloc(1, sizeof *page) : NULL;
    int number = 60;
    if (page != NULL) {
        *page = (struct bind_page){ .w = w, .conn_id = s->ws.conn_id };
        struct backend_claim claim = {
            .email = s->email,
            .device = s->device,
            .conn_id = s->ws.conn_id,
            .status = p->status,
            .page_budget = session_page_budget(&s->ws),
            .page = device_notify_add,
            .page_end = bind_page_end,
            .page_arg = page,
        };
        struct backend_done done = {
            .fn = bind_done, .arg = w, .conn_id = s->ws.conn_id, .held = { reply, page }
        };
        s->owner = true;
        memcpy(s->tag, p->tag, sizeof s->tag);
        number = w->backend->claim(w, &claim, &done);
    }
    if (number == BACKEND_LATER)
        return;
    free(page);
    device_unbind(s);
    const char *text = number == 51   ? "too many devices connected for this user"
                       : number == 61 ? UNAVAILABLE
                                      : "internal error";
    if (reply != NULL && number == 61)
        session_release_unavailable(w, &s->ws, reply, text, 0);
    else if (reply != NULL)
        session_release_error(w, &s->ws, reply, number, text, 0);
    else
        session_error(w, &s->ws, number, text,
                      number == 61 ? LWS_CLOSE_STATUS_GOINGAWAY : 0);
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
    w->backend->release(w, s->email, s->device, s->ws.conn_id);
}
