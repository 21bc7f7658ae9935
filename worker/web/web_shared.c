/* web_shared: in a cluster, what a web request waits for from this node's agent — the engine's
 * word on the shared records it wrote (apps, grants, web sessions: shm/outbox.h), before its
 * answer leaves, so that a session cookie or a PUID handed out is already known to every node;
 * and a record this node's views miss (another node wrote it a moment ago), fetched from the
 * engine before the request is routed again. The agent answers each outbox entry with
 * SHM_MAIL_CL_DONE; a wait the agent leaves unanswered ends after WEB_SHARED_WAIT_MS. */
#include "web.h"

#include "../backend/mailbox.h"

#include "../../common/clock.h"
#include "../../common/list.h"
#include "../../common/log.h"
#include "../../shm/mail.h"
#include "../../shm/outbox.h"
#include "../../shm/replica.h"

#include <stdlib.h>
#include <string.h>

#define WEB_SHARED_WAIT_MS 5000
#define WEB_SHARED_TICK_MS 250

struct shared_wait {
    struct list_link link;
    struct http_req *req;
    uint64_t first, last; /* the outbox entries it waits for: their seqs, this process's */
    size_t remaining;
    uint8_t outcome; /* the worst heard */
    int64_t deadline_ms;
    bool fetch;      /* a fetch: route the request again once done */
    void (*cb)(void *arg); /* a fetch for another caller (no request): told once done */
    void *cb_arg;
    char *body;      /* a fetch: the request's body, kept for that */
    size_t body_len;
};

struct web_shared {
    struct list_link waits;
    uv_timer_t timer;
};

static void wait_finish(struct worker *w, struct shared_wait *wait);

static void tick(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    int64_t now = clock_mono_ms();
    struct list_link *pos, *tmp;
    LIST_EACH_SAFE(pos, tmp, &w->web_shared->waits) {
        struct shared_wait *wait = LIST_ENTRY(pos, struct shared_wait, link);
        if (now >= wait->deadline_ms) {
            wait->outcome = SHM_OUTBOX_FAILED;
            wait_finish(w, wait);
        }
    }
    if (list_empty(&w->web_shared->waits))
        uv_timer_stop(timer);
}

static struct web_shared *shared_of(struct worker *w)
{
    if (w->web_shared != NULL)
        return w->web_shared;
    struct web_shared *sh = calloc(1, sizeof *sh);
    if (sh == NULL)
        return NULL;
    list_init(&sh->waits);
    if (uv_timer_init(&w->loop, &sh->timer) != 0) {
        free(sh);
        return NULL;
    }
    sh->timer.data = w;
    w->web_shared = sh;
    return sh;
}

/* The agent hears of the entries once this batch is committed. */
static void agent_ring(struct worker *w)
{
    struct shm_cl_self self;
    if (shm_cl_self_get(w->store, &self) == SHM_OK && self.agent_pid > 0)
        mailbox_ring_later(w, self.agent_pid);
}

static struct shared_wait *wait_add(struct worker *w, struct http_req *req)
{
    uint64_t first, last;
    size_t count = shm_outbox_take_new(w->store, &first, &last);
    struct web_shared *sh = count > 0 ? shared_of(w) : NULL;
    struct shared_wait *wait = sh != NULL ? calloc(1, sizeof *wait) : NULL;
    if (wait == NULL)
        return NULL;
    *wait = (struct shared_wait){ .req = req,
                                  .first = first,
                                  .last = last,
                                  .remaining = count,
                                  .deadline_ms = clock_mono_ms() + WEB_SHARED_WAIT_MS };
    list_push_back(&sh->waits, &wait->link);
    if (!uv_is_active((uv_handle_t *)&sh->timer))
        uv_timer_start(&sh->timer, tick, WEB_SHARED_TICK_MS, WEB_SHARED_TICK_MS);
    agent_ring(w);
    return wait;
}

static void wait_free(struct shared_wait *wait)
{
    list_remove(&wait->link);
    free(wait->body);
    free(wait);
}

/* What a held answer becomes when the engine did not take its write. */
static void answer_refused(struct http_req *req, uint8_t outcome)
{
    memset(req->response.set_cookie, 0, sizeof req->response.set_cookie);
    req->response.location[0] = '\0';
    web_message(req, outcome == SHM_OUTBOX_CONFLICT ? HTTP_STATUS_CONFLICT
                                                    : HTTP_STATUS_SERVICE_UNAVAILABLE,
                "Please try again",
                outcome == SHM_OUTBOX_CONFLICT
                    ? "This was changed on another server at the same moment: please try again."
                    : "The cluster did not confirm this change in time: please try again.");
}

static void wait_finish(struct worker *w, struct shared_wait *wait)
{
    struct http_req *req = wait->req;
    if (wait->cb != NULL) {
        void (*cb)(void *) = wait->cb;
        void *arg = wait->cb_arg;
        wait_free(wait);
        cb(arg);
        return;
    }
    if (!wait->fetch) {
        req->held = NULL;
        uint8_t outcome = wait->outcome;
        wait_free(wait);
        if (outcome == SHM_OUTBOX_DONE)
            lws_callback_on_writable(req->wsi);
        else
            answer_refused(req, outcome);
        return;
    }
    /* A fetch, done or not: the request is routed again, and reads what the views hold now. */
    http_undefer(req);
    req->fetched = true;
    req->body = wait->body;
    req->body_len = wait->body_len;
    wait->body = NULL;
    wait_free(wait);
    web_route(w, req);
    free(req->body);
    req->body = NULL;
    req->body_len = 0;
}

bool web_shared_hold(struct worker *w, struct http_req *req)
{
    if (!shm_outbox_enabled(w->store) || req->held != NULL)
        return req->held != NULL;
    struct shared_wait *wait = wait_add(w, req);
    if (wait == NULL)
        return false;
    req->held = wait;
    return true;
}

void web_shared_cancel(struct http_req *req)
{
    if (req->held != NULL)
        wait_free(req->held);
    req->held = NULL;
}

static void fetch_cancel(struct http_async *async)
{
    wait_free((struct shared_wait *)async);
}

bool web_shared_fetch_ask(struct worker *w, struct http_req *req, const char *bucket,
                          const char *key)
{
    if (!shm_outbox_enabled(w->store) || req->fetched)
        return false;
    return shm_outbox_add(w->store, SHM_OUTBOX_FETCH, bucket, key, NULL, 0, NULL) == SHM_OK;
}

bool web_shared_fetch_wait(struct worker *w, struct http_req *req)
{
    struct shared_wait *wait = wait_add(w, req);
    if (wait == NULL)
        return false;
    wait->fetch = true;
    wait->body = req->body; /* routed again with it; the caller frees what req still holds */
    wait->body_len = req->body_len;
    req->body = NULL;
    req->body_len = 0;
    http_defer(req, (struct http_async *)wait, fetch_cancel);
    return true;
}

bool web_shared_fetch(struct worker *w, struct http_req *req, const char *bucket, const char *key)
{
    return web_shared_fetch_ask(w, req, bucket, key) && web_shared_fetch_wait(w, req);
}

void web_shared_done(struct worker *w, const void *payload, size_t len)
{
    if (len != 9 || w->web_shared == NULL)
        return;
    uint64_t seq = shm_mail_conn_id(payload);
    uint8_t outcome = ((const unsigned char *)payload)[8];
    struct list_link *pos;
    LIST_EACH(pos, &w->web_shared->waits) {
        struct shared_wait *wait = LIST_ENTRY(pos, struct shared_wait, link);
        if (seq < wait->first || seq > wait->last)
            continue;
        if (outcome > wait->outcome)
            wait->outcome = outcome;
        if (--wait->remaining == 0)
            wait_finish(w, wait);
        return;
    }
}

int web_shared_fetch_any(struct worker *w, const char *bucket, const char *key,
                         void (*cb)(void *arg), void *arg)
{
    if (!shm_outbox_enabled(w->store) ||
        shm_outbox_add(w->store, SHM_OUTBOX_FETCH, bucket, key, NULL, 0, NULL) != SHM_OK)
        return -1;
    struct shared_wait *wait = wait_add(w, NULL);
    if (wait == NULL)
        return -1;
    wait->cb = cb;
    wait->cb_arg = arg;
    return 0;
}

static void shared_closed(uv_handle_t *handle)
{
    free(handle->data);
}

void web_shared_stop(struct worker *w)
{
    struct web_shared *sh = w->web_shared;
    if (sh == NULL)
        return;
    /* The connections are closed by now, and with them every request's wait; other callers'
     * waits are forgotten (their callers are going too). */
    while (!list_empty(&sh->waits))
        wait_free(LIST_ENTRY(list_first(&sh->waits), struct shared_wait, link));
    sh->timer.data = sh;
    uv_close((uv_handle_t *)&sh->timer, shared_closed);
    w->web_shared = NULL;
}
