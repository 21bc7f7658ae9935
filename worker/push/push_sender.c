/* push_sender: Web Push wake-ups from this worker (SPEC.md §7, RFC 8030) — the due pushes taken
 * from the store, each notification encrypted to its subscription (RFC 8291), signed with the
 * VAPID key (RFC 8292) and POSTed with libcurl on the worker's loop (fetch.c), then finished,
 * retried or its subscription removed as the push service answers.
 *
 * Which process sends: a worker, always — the master has no libcurl loop. A notification an
 * AppService sends on a worker is pushed by that worker; one the operator queues (admin POST on
 * the master) is queued in the store with its pushes and the master rings one ready worker to
 * take them. Jobs live in the store (shm/push_job.h) leased to the worker trying them, so a push
 * waiting for its retry outlives a worker's death or a reload: the master rings a worker when a
 * job is overdue. A push may therefore, rarely, go out twice (a worker died after the push
 * service took it): devices drop duplicates by the notification's id, and the notification
 * stays queued until a device connects, when it gets it on its WebSocket too. */
#include "../worker_internal.h"

#include "../backend/backend.h"
#include "../fetch.h"

#include "../../common/clock.h"
#include "../../common/log.h"
#include "../../common/notification.h"
#include "../../common/vapid.h"
#include "../../shm/push_job.h"
#include "../../shm/push_sub.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUSH_IN_FLIGHT_MAX 64
#define PUSH_TIMEOUT_MS (15 * 1000)
/* A job is the taker's this long: past it, a worker that died has left it to the others. */
#define PUSH_LEASE_MS (60 * 1000)
#define PUSH_ANSWER_MAX 4096
#define PUSH_ATTEMPTS_MAX 12
#define PUSH_BACKOFF_FIRST_MS 1000
#define PUSH_BACKOFF_MAX_MS (5 * 60 * 1000)
#define PUSH_TOKENS 16 /* VAPID tokens kept, one per push service (audience) */
#define PUSH_HEADERS 9

struct push_attempt {
    struct push_attempt *next, *prev;
    struct push_sender *owner;
    struct fetch *fetch;
    bool payload; /* sent with the encrypted notification (else empty: RFC 8030 allows it) */
    char endpoint[PUSH_ENDPOINT_MAX + 1];
    struct shm_push_job job;
};

struct push_token {
    char audience[VAPID_AUDIENCE_MAX];
    char authorization[VAPID_AUTHORIZATION_MAX];
    int64_t exp_s;
};

struct push_sender {
    struct worker *w;
    struct vapid_key key;
    struct push_crypto *crypto;
    uv_timer_t timer;
    bool timer_ready;
    int64_t armed_ms;             /* wall ms the timer fires at; 0 when not armed */
    struct push_attempt *active;  /* requests under way */
    struct push_attempt *taken;   /* leased in the current batch, started once it commits */
    bool commit_waiting;          /* a commit callback will start taken */
    bool stopped;                 /* the worker exits: nothing more is started */
    size_t in_flight;             /* active and taken */
    struct push_token tokens[PUSH_TOKENS];
    size_t token_next;
};

static void attempt_link(struct push_attempt **list, struct push_attempt *a)
{
    a->prev = NULL;
    a->next = *list;
    if (*list != NULL)
        (*list)->prev = a;
    *list = a;
}

static void attempt_unlink(struct push_attempt **list, struct push_attempt *a)
{
    if (a->prev != NULL)
        a->prev->next = a->next;
    else if (*list == a)
        *list = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    a->next = a->prev = NULL;
}

static void sender_fire(uv_timer_t *timer);

/* Makes the timer fire by due_ms (now when past). */
static void sender_arm(struct push_sender *ps, int64_t due_ms)
{
    if (!ps->timer_ready || due_ms <= 0)
        return;
    int64_t now = clock_wall_ms();
    if (ps->armed_ms != 0 && ps->armed_ms <= due_ms && uv_is_active((uv_handle_t *)&ps->timer))
        return;
    int64_t wait = due_ms > now ? due_ms - now : 0;
    ps->armed_ms = now + wait;
    uv_timer_start(&ps->timer, sender_fire, (uint64_t)wait, 0);
}

bool push_enabled(const struct worker *w)
{
    return w->push != NULL;
}

const char *push_public_key(const struct worker *w)
{
    return w->push != NULL ? w->push->key.public_b64 : NULL;
}

void push_sender_kick(struct worker *w)
{
    if (w->push != NULL)
        sender_arm(w->push, clock_wall_ms());
}

/* The Authorization of the endpoint's push service, signed anew when its token is near its end. */
static const char *authorization_for(struct push_sender *ps, const char *endpoint)
{
    char audience[VAPID_AUDIENCE_MAX];
    if (vapid_audience(endpoint, audience, sizeof audience) != 0)
        return NULL;
    int64_t now_s = clock_wall_ms() / 1000;
    struct push_token *t = NULL;
    for (size_t i = 0; i < PUSH_TOKENS && t == NULL; i++)
        if (strcmp(ps->tokens[i].audience, audience) == 0)
            t = &ps->tokens[i];
    if (t != NULL && t->exp_s - now_s > 3600)
        return t->authorization;
    if (t == NULL) {
        t = &ps->tokens[ps->token_next];
        ps->token_next = (ps->token_next + 1) % PUSH_TOKENS;
    }
    snprintf(t->audience, sizeof t->audience, "%s", audience);
    t->exp_s = now_s + VAPID_TOKEN_TTL_S;
    if (vapid_authorization(&ps->key, audience, ps->w->cfg->vapid_subject, t->exp_s,
                            t->authorization, sizeof t->authorization) < 0) {
        t->audience[0] = '\0';
        return NULL;
    }
    return t->authorization;
}

static void attempt_free(struct push_attempt *a)
{
    struct push_sender *ps = a->owner;
    if (ps->in_flight > 0)
        ps->in_flight--;
    free(a);
}

static void attempt_finish(struct push_attempt *a, enum shm_push_outcome outcome)
{
    struct worker *w = a->owner->w;
    if (shm_push_finish(w->store, &a->job, outcome) == SHM_ERROR)
        w->info.store_failures_total++;
}

/* Tries again later: after Retry-After when the push service gave one, else after a back-off
 * doubling from 1 s to 5 min; given up once the notification would have expired by then. */
static void attempt_retry(struct push_attempt *a, int64_t retry_after_s, uint8_t flags)
{
    struct push_sender *ps = a->owner;
    int64_t now = clock_wall_ms(), delay;
    if (retry_after_s >= 0) {
        delay = retry_after_s * 1000;
    } else {
        int shift = a->job.attempts < 20 ? a->job.attempts : 20;
        delay = (int64_t)PUSH_BACKOFF_FIRST_MS << shift;
        if (delay > PUSH_BACKOFF_MAX_MS)
            delay = PUSH_BACKOFF_MAX_MS;
    }
    if (a->job.attempts + 1 >= PUSH_ATTEMPTS_MAX || now + delay >= a->job.expires_ms) {
        log_info("push: given up after %u attempt(s): the notification expires first",
                 a->job.attempts + 1u);
        attempt_finish(a, SHM_PUSH_FAILED);
        return;
    }
    if (shm_push_retry(ps->w->store, &a->job, now + delay, flags) == SHM_ERROR)
        ps->w->info.store_failures_total++;
    sender_arm(ps, now + delay);
}

static void attempt_answered(void *arg, const struct fetch_result *r)
{
    struct push_attempt *a = arg;
    struct push_sender *ps = a->owner;
    struct worker *w = ps->w;
    attempt_unlink(&ps->active, a);
    a->fetch = NULL;
    if (!r->transport_ok && r->not_public) {
        log_warning("push: an endpoint's host has only private addresses: not sent "
                    "(validate_private_addresses)");
        attempt_finish(a, SHM_PUSH_FAILED);
    } else if (!r->transport_ok) {
        log_info("push: the push service did not answer (%s): retried", r->error);
        attempt_retry(a, -1, a->job.flags);
    } else if (r->status >= 200 && r->status < 300) {
        attempt_finish(a, SHM_PUSH_SENT);
    } else if (r->status == 404 || r->status == 410) {
        /* The subscription expired or was withdrawn (RFC 8030 §7.3): no more pushes to it. */
        int rc = shm_push_sub_delete_endpoint(w->store, a->job.email, a->job.device, a->endpoint);
        attempt_finish(a, rc == SHM_OK ? SHM_PUSH_GONE : SHM_PUSH_SKIPPED);
    } else if (r->status == 413 && a->payload) {
        attempt_retry(a, 0, a->job.flags | SHM_PUSH_NO_PAYLOAD); /* a wake-up without payload */
    } else if (r->status == 429 || r->status >= 500) {
        attempt_retry(a, r->retry_after_s, a->job.flags);
    } else {
        log_warning("push: the push service refused a push with %ld", r->status);
        attempt_finish(a, SHM_PUSH_FAILED);
    }
    attempt_free(a);
    push_sender_kick(w); /* a request slot is free: more may be due */
}

/* The request of one push: the encrypted notification (or nothing), TTL, Urgency, Topic and the
 * VAPID Authorization. Returns 0, or -1 when it cannot be made. */
static int attempt_start(struct push_attempt *a)
{
    struct push_sender *ps = a->owner;
    struct worker *w = ps->w;
    unsigned char body[PUSH_BODY_MAX];
    size_t body_len = 0;
    struct push_subscription sub;
    if (shm_push_sub_get(w->store, a->job.email, a->job.device, &sub) != SHM_OK)
        return -1;
    snprintf(a->endpoint, sizeof a->endpoint, "%s", sub.endpoint);
    /* A notification too long for one 4096-byte body wakes the device without it: it reads it
     * from the queue when it connects. */
    a->payload = !(a->job.flags & SHM_PUSH_NO_PAYLOAD) && a->job.json_len <= PUSH_PLAINTEXT_MAX;
    if (a->payload &&
        push_encrypt(ps->crypto, sub.p256dh, sub.auth, a->job.json, a->job.json_len, body, &body_len) != 0)
        return -1;
    const char *authorization = authorization_for(ps, sub.endpoint);
    char topic[VAPID_TOPIC_LEN + 1];
    if (authorization == NULL || vapid_topic(&ps->key, a->job.email, topic) != 0)
        return -1;
    int64_t ttl = (a->job.expires_ms - clock_wall_ms()) / 1000;
    char ttl_line[40], urgency_line[32], topic_line[48], auth_line[VAPID_AUTHORIZATION_MAX + 24];
    snprintf(ttl_line, sizeof ttl_line, "TTL: %" PRId64, ttl > 0 ? ttl : 0);
    snprintf(urgency_line, sizeof urgency_line, "Urgency: %s",
             notification_urgency_of(a->job.json, a->job.json_len));
    snprintf(topic_line, sizeof topic_line, "Topic: %s", topic);
    snprintf(auth_line, sizeof auth_line, "Authorization: %s", authorization);
    const char *headers[PUSH_HEADERS] = { ttl_line, urgency_line, topic_line, auth_line,
                                          "Expect:" };
    if (a->payload) {
        headers[5] = "Content-Encoding: aes128gcm";
        headers[6] = "Content-Type: application/octet-stream";
    }
    struct fetch_request req = {
        .url = sub.endpoint,
        .bytes = body,
        .bytes_len = body_len,
        .headers = headers,
        .timeout_ms = PUSH_TIMEOUT_MS,
        .max_bytes = PUSH_ANSWER_MAX,
        .https_only = true,
        .public_only = !w->cfg->validate_private_addresses,
    };
    a->fetch = fetch_start(w->fetcher, &req, attempt_answered, a);
    if (a->fetch == NULL)
        return -1;
    attempt_link(&ps->active, a);
    return 0;
}

/* A leased job, once its lease is committed: sent, or finished when there is nothing to send. */
static void attempt_begin(struct push_attempt *a)
{
    struct worker *w = a->owner->w;
    struct push_subscription sub;
    if (w->backend->device_connected(w, a->job.email, a->job.device) ||
        shm_push_sub_get(w->store, a->job.email, a->job.device, &sub) == SHM_NOT_FOUND) {
        /* Connected since (it gets the notification on its WebSocket), or unsubscribed. */
        attempt_finish(a, SHM_PUSH_SKIPPED);
        attempt_free(a);
        return;
    }
    if (attempt_start(a) != 0) {
        log_warning("push: cannot make a push request: retried");
        attempt_retry(a, -1, a->job.flags);
        attempt_free(a);
    }
}

static void taken_committed(void *arg, int result)
{
    struct push_sender *ps = arg;
    ps->commit_waiting = false;
    struct push_attempt *list = ps->taken;
    ps->taken = NULL;
    while (list != NULL) {
        struct push_attempt *a = list;
        attempt_unlink(&list, a);
        if (result == SHM_OK && ps->stopped) {
            /* Leased as the worker exits: back to the store, due now, for the next one. */
            if (shm_push_retry(ps->w->store, &a->job, clock_wall_ms(), a->job.flags) == SHM_ERROR)
                ps->w->info.store_failures_total++;
            attempt_free(a);
        } else if (result == SHM_OK) {
            attempt_begin(a);
        } else {
            /* The lease rolled back with its batch: the job is due again, in a second (not at
             * once, so that a store refusing writes is not asked again and again). */
            attempt_free(a);
            sender_arm(ps, clock_wall_ms() + 1000);
        }
    }
}

static void job_taken(void *arg, const struct shm_push_job *job)
{
    struct push_sender *ps = arg;
    struct push_attempt *a = malloc(sizeof *a);
    if (a == NULL) {
        ps->w->info.store_failures_total++;
        return; /* its lease ends and it is taken again */
    }
    memset(a, 0, offsetof(struct push_attempt, job));
    a->owner = ps;
    a->job = *job;
    ps->in_flight++;
    attempt_link(&ps->taken, a);
}

static void sender_fire(uv_timer_t *timer)
{
    struct push_sender *ps = timer->data;
    struct worker *w = ps->w;
    ps->armed_ms = 0;
    size_t room = PUSH_IN_FLIGHT_MAX > ps->in_flight ? PUSH_IN_FLIGHT_MAX - ps->in_flight : 0;
    if (room == 0 || ps->stopped)
        return; /* a finishing request kicks again */
    int64_t next = 0;
    if (shm_push_take(w->store, w->info.pid, clock_wall_ms(), PUSH_LEASE_MS, room, job_taken, ps,
                      &next) != SHM_OK)
        w->info.store_failures_total++;
    if (ps->taken != NULL && !ps->commit_waiting) {
        if (shm_batch_on_commit(w->store, taken_committed, ps) == SHM_OK)
            ps->commit_waiting = true;
        else
            taken_committed(ps, SHM_ERROR);
    }
    sender_arm(ps, next);
}

void push_notification_queued(struct worker *w, const char *email, const char *json, size_t len,
                              int64_t now_ms, int64_t expires_ms)
{
    size_t queued = 0;
    if (w->push == NULL)
        return;
    if (shm_push_queue(w->store, email, json, len, now_ms, expires_ms, &queued) != SHM_OK)
        w->info.store_failures_total++;
    else if (queued > 0)
        push_sender_kick(w);
}

int push_sender_init(struct worker *w)
{
    if (w->cfg->vapid_key == NULL)
        return 0; /* Web Push is off */
    char why[512];
    struct push_sender *ps = calloc(1, sizeof *ps);
    if (ps == NULL)
        return -1;
    ps->w = w;
    if (vapid_key_load(w->cfg->vapid_key, &ps->key, why, sizeof why) != 0) {
        log_error("vapid_key: %s", why);
        free(ps);
        return -1;
    }
    if ((ps->crypto = push_crypto_new()) == NULL) {
        vapid_key_free(&ps->key);
        free(ps);
        return -1;
    }
    if (uv_timer_init(&w->loop, &ps->timer) != 0) {
        vapid_key_free(&ps->key);
        push_crypto_free(ps->crypto);
        free(ps);
        return -1;
    }
    ps->timer.data = ps;
    ps->timer_ready = true;
    w->push = ps;
    /* Jobs may be waiting already (queued while no worker ran, or left by a previous one). */
    push_sender_kick(w);
    return 0;
}

void push_sender_stop(struct worker *w)
{
    struct push_sender *ps = w->push;
    if (ps == NULL)
        return;
    /* What is under way goes back to the store, due now, for the next worker to send. */
    ps->stopped = true;
    int64_t now = clock_wall_ms();
    while (ps->active != NULL) {
        struct push_attempt *a = ps->active;
        attempt_unlink(&ps->active, a);
        fetch_cancel(a->fetch);
        if (shm_push_retry(w->store, &a->job, now, a->job.flags) == SHM_ERROR)
            w->info.store_failures_total++;
        attempt_free(a);
    }
    if (ps->timer_ready) {
        uv_close((uv_handle_t *)&ps->timer, NULL);
        ps->timer_ready = false;
    }
}

void push_sender_free(struct worker *w)
{
    struct push_sender *ps = w->push;
    if (ps == NULL)
        return;
    while (ps->taken != NULL) {
        struct push_attempt *a = ps->taken;
        attempt_unlink(&ps->taken, a);
        free(a);
    }
    vapid_key_free(&ps->key);
    push_crypto_free(ps->crypto);
    free(ps);
    w->push = NULL;
}
