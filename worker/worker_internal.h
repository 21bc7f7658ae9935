/* worker_internal: the state one worker process shares between its modules (worker/). */
#ifndef PRESENCED_WORKER_INTERNAL_H
#define PRESENCED_WORKER_INTERNAL_H

#include "../common/config.h"
#include "../common/u64map.h"
#include "../common/wake.h"
#include "session/keepalive.h"
#include "../shm/mail.h"
#include "../shm/store.h"
#include "../shm/worker_info.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <uv.h>

struct ws_session;
struct worker;
struct identity;
struct app_state;
struct app_bucket;
struct push_sender;
struct backend_ops;

/* What a connection's lws user data holds; the first member of each kind's struct. */
enum conn_kind { CONN_NONE = 0, CONN_HTTP, CONN_WEBSOCKET };
struct fetcher;

/* The local backend's writes of the loop turn (worker/backend/local_batch.c): the status updates
 * stored just before the commit, with their strings, and the answers that wait for it. */
struct local_update;
struct backend_done;
struct out_msg;
struct local_batch {
    struct local_update *updates;
    size_t update_count, update_cap;
    char *text; /* the updates' e-mails and devices */
    size_t text_len, text_cap;
    struct backend_done *waiters, *releasing;
    size_t waiter_count, waiter_cap, releasing_cap;
    bool waiting; /* the waiters wait for the store's batch (shm_batch_on_commit) */
    uint64_t mail_upto; /* the mail read this turn, deleted at its end (shm_mail_forget) */
};

/* Small messages kept for reuse (session/session_out.c). */
struct out_pool {
    struct list_link free; /* list_init by worker_run */
    size_t count;
};

struct acceptor {
    int fd;
    uv_poll_t poll;
    uv_timer_t pause_timer;
    bool polling;
    bool paused;
    void (*closed)(struct worker *w); /* after a connection closed: is the drain over? */
};

struct worker {
    const struct config *cfg;
    int slot;
    unsigned generation;
    uv_loop_t loop;
    struct lws_context *lws;
    struct lws_vhost *vhost;
    struct shm_store *store;
    struct fetcher *fetcher; /* HTTPS requests: support documents, verifier, app domains */
    struct identity *identity;
    struct push_sender *push; /* Web Push wake-ups (push_sender.c); NULL without vapid_key */
    const struct backend_ops *backend; /* shared state and other connections (backend/backend.h) */
    void *backend_state;               /* the implementation's own */
    struct wake_bells bells;
    struct shm_mail_inbox inbox; /* the mail of the last doorbell (backend/mailbox.c) */
    uv_poll_t bell_poll;
    uv_prepare_t commit_prepare; /* commits the iteration's batch before the loop sleeps */
    uv_timer_t stats_timer;
    uv_timer_t drain_timer;
    uv_signal_t signals[5];
    struct acceptor acceptor;
    struct list_link sessions;    /* every open WebSocket, for drain and wake-ups */
    struct u64map sessions_by_id; /* the same, by connection id (supersede, delivery) */
    struct list_link apps;        /* AppService connections, for the auth deadline */
    uv_timer_t auth_timer;        /* ... which it checks every second (appservice.c) */
    uv_timer_t grace_timer; /* ends the offline_grace holds due (backend/local_presence.c) */
    int64_t grace_due_ms;   /* wall ms the grace timer fires at; 0 when not armed */
    struct keepalive keepalive; /* pings of the WebSockets (lws's own are off) */
    struct local_batch local_batch; /* the local backend's writes of the turn */
    struct out_pool out_pool;
    struct list_link app_buckets; /* per-app notify rate, on this worker */
    uint64_t next_conn_id; /* the last id taken, from this worker's block of the store sequence */
    pid_t *rings; /* processes to ring once the batch is committed */
    size_t ring_count, ring_cap;
    bool handles_ready;
    bool draining;
    bool saying_goodbye; /* errno 61 and close 1001 to every WebSocket, new ones too */
    bool quitting; /* from QUIT on: the node goes away, /__lbheartbeat__ answers 503 */
    bool stopping;
    struct shm_worker_info info;
    struct shm_worker_info published; /* info as last written to the store */
    uint64_t trim_accepted, trim_seen; /* accepted_total at the last trim, at the last tick */
    bool published_once;
    struct web_shared *web_shared; /* a cluster node's web requests waiting for its agent */
};

/* The worker that owns an lws connection. */
static inline struct worker *worker_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* Starts accepting on fd; closed is called after each connection closes (the worker ends its
 * loop there once a draining worker has none left). */
int acceptor_start(struct worker *w, int fd, void (*closed)(struct worker *w));
void acceptor_stop(struct worker *w);
/* What an accepted connection needs before lws has it: TCP_NODELAY. 0, or -1 (errno). */
int acceptor_socket_setup(int fd);
/* Draining: accepts what the slot's queue holds for this worker, then stops accepting. */
void acceptor_retire(struct worker *w);
/* Called when a connection closes: accepting resumes if it paused at max_connections. */
void acceptor_connection_closed(struct worker *w);

int lws_setup(struct worker *w);
/* Takes an SSL_CTX (void *: no OpenSSL header here); 0, or -1 when it cannot be set up. */
int lws_setup_tls_context(void *ssl_ctx);
void lws_teardown(struct worker *w);
void lws_teardown_finish(struct worker *w);
/* protocol.c: the one lws protocol of the port, and which channel serves which path. */
int presence_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                               void *in, size_t len);
/* What lws allocates for each connection: the largest of a channel's session and an HTTP
 * connection. */
size_t protocol_session_size(void);
/* Each channel's per-worker start (0, or -1), the end of each loop turn (before the store's
 * batch commits), stop (its connections still open) and free (once they have all gone). */
int protocol_channels_start(struct worker *w);
void protocol_channels_before_commit(struct worker *w);
void protocol_channels_stop(struct worker *w);
void protocol_channels_free(struct worker *w);

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);
size_t http_req_size(void);
/* The connection is going: what an HTTP request still holds is released. */
void http_destroy(void *user);
/* Draining: closes the keep-alive connections waiting for a next request; the requests under
 * way are answered with "connection: close". */
void http_drain_idle(struct worker *w);
/* The lws callback reason http_drain_idle visits every connection with. */
#define HTTP_CALLBACK_DRAIN_IDLE (LWS_CALLBACK_USER + 1)
/* Answers a WebSocket handshake on a path that has no channel with a 404; returns 1 (close). */
int http_upgrade_refuse(struct lws *wsi);

/* push_sender.c: Web Push (SPEC.md §7). Started when vapid_key is set; stop cancels what is
 * under way (back to the store for another worker), free releases the rest. */
int push_sender_init(struct worker *w);
void push_sender_stop(struct worker *w);
void push_sender_free(struct worker *w);
bool push_enabled(const struct worker *w);
/* The VAPID public key in base64url (GET /vapid), NULL when push is off. */
const char *push_public_key(const struct worker *w);
/* Pushes may be due: the sender looks at once (mail from the master, a job queued here). */
void push_sender_kick(struct worker *w);
/* A notification was queued for email (in the batch): a push for each of its subscribed devices
 * not connected now, sent from this worker. */
void push_notification_queued(struct worker *w, const char *email, const char *json, size_t len,
                              int64_t now_ms, int64_t expires_ms);

/* web/web_shared.c: the agent's SHM_MAIL_CL_DONE; the end of the waits at exit. */
void web_shared_done(struct worker *w, const void *payload, size_t len);
void web_shared_stop(struct worker *w);
/* A node of a cluster: bucket.key (SHM_BUCKET_APPS appid, SHM_BUCKET_GRANTS "p.<PUID>", …) read
 * from the engine into this node's store; cb(arg) once done (found or not: read the store
 * again), on the loop, never inside the call — unless the worker exits first. 0, or -1 (not a
 * cluster, or it cannot be asked: cb will not run). */
int web_shared_fetch_any(struct worker *w, const char *bucket, const char *key,
                         void (*cb)(void *arg), void *arg);

#endif
