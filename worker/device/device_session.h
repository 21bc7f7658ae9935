/* device_session: one WebSocket's state, shared by the files of the two channels (device.c
 * framing and lifecycle, session_out.c output and flow control, device_auth.c identity and
 * status, device_notify.c notifications, appservice.c the AppService channel). */
#ifndef PRESENCED_DEVICE_SESSION_H
#define PRESENCED_DEVICE_SESSION_H

#include "../worker_internal.h"

#include "device_msg.h"
#include "../session/ws_tap.h"

#include "../../shm/notif.h"

#include <stdbool.h>
#include <stdint.h>

#define ASSERTION_TAG_LEN 16 /* of SHA-256: recognises the assertion a session was bound with */

struct out_msg {
    struct list_link link;      /* in its session's queue, the oldest first */
    bool small; /* of DEVICE_REPLY_CAP: back to the worker's pool once written */
    struct shm_notif_key *acks; /* notifications to delete from the queue once written */
    size_t ack_count;
    int64_t event_ms;      /* an AppService event: when its change was recorded; 0: not one */
    bool held;             /* waits for a commit: nothing after it is written either */
    uint8_t delivery;      /* notifications: METER_LIVE or METER_PENDING */
    uint32_t status_stamp; /* the reply to a status update read then (histogram_stamp), or 0 */
    size_t len, cap;
    unsigned char buf[]; /* LWS_PRE bytes, then the text */
};

/* The message last given to lws, while lws holds part of it (session_out.c). */
struct out_sent {
    struct shm_notif_key *acks;
    int64_t event_ms;
    uint32_t len; /* 0: lws holds nothing */
    uint32_t ack_count;
    uint8_t delivery;
};

struct pending_update;

/* Fields ordered so that padding is small: one of these per WebSocket. */
struct ws_session {
    enum conn_kind kind; /* CONN_DEVICE */
    uint32_t errors;
    struct list_link link; /* in the worker's sessions */
    struct lws *wsi;
    struct keepalive_link alive;
    uint64_t conn_id;
    char *email;  /* the verified identity this connection is bound to; NULL before */
    char *device; /* bound with it */
    unsigned char tag[ASSERTION_TAG_LEN];
    struct pending_update *pending; /* reading is paused meanwhile, so replies keep their order */
    struct app_state *app;          /* an AppService connection (/myapps/<appid>); NULL: a device */
    struct list_link out;           /* the queue of messages to write (struct out_msg) */
    size_t out_bytes;     /* what the queue holds (held messages at their cap) */
    struct out_sent sent; /* unsent too, until lws's buffer is empty */
    int64_t missed_ms;    /* the oldest AppService change dropped unwritten; 0: none */
    char *rx;             /* a message arriving in fragments; NULL between messages */
    size_t rx_len, rx_cap;
    struct ws_tap_link tap; /* the frame headers of what the client sends */
    int64_t refill_ms;      /* when tokens were last topped up (monotonic) */
    float tokens;           /* status_rate token bucket */
    uint32_t status_stamp;  /* a status update waits for its reply since (its out_msg takes it) */
    uint16_t close_code;    /* close with this once the queue is written */
    uint8_t frame_verdict;  /* a violation the tap saw, to act on (enum ws_frame_verdict) */
    bool ping_due : 1;      /* a ping is to be written */
    bool owner : 1;         /* holds the (e-mail, device) record in the store */
    bool rx_too_big : 1;
    bool slow : 1;       /* closed as a slow consumer: nothing more is queued */
    bool backlog : 1;    /* pending notifications left in the store, sent in pages */
    bool paged : 1;      /* ... there were: live deliveries are checked against the store */
    bool close_sent : 1; /* the close frame is written: the peer's answer is awaited */
};

/* session_out.c: the output of a session and its flow control. Queueing past
 * max_output_buffer closes the connection as a slow consumer (1008) and queues nothing
 * (NULL). */

/* Queues text for the device. acks (moved into the message, may be NULL) are deleted from the
 * notification queue once it is written. */
struct out_msg *session_send_acked(struct ws_session *s, const char *text, size_t len,
                                   struct shm_notif_key *acks, size_t ack_count);
void session_send(struct ws_session *s, const char *text, size_t len);
/* An AppService presence event, whose change was recorded at changed_ms: a slow consumer gets
 * it again among the changes missed while away (session_missed_since). */
void session_send_event(struct ws_session *s, const char *text, size_t len, int64_t changed_ms);
/* A reply whose text is known only once the batch commits: its place in the queue is kept (cap
 * bytes) and the queue waits for it. NULL when out of memory. */
struct out_msg *session_hold(struct ws_session *s, size_t cap);
/* Like session_send_acked, but held until session_release. */
struct out_msg *session_send_held(struct ws_session *s, const char *text, size_t len,
                                  struct shm_notif_key *acks, size_t ack_count);
/* Writes what is queued now rather than at lws's next WRITEABLE callback, as far as the socket
 * takes it: for replies released after a commit and deliveries from other processes, which
 * come outside lws's callbacks and usually find the socket writable (lws 4.1 buffers a partial
 * write and sends it before anything written later). */
void session_write_now(struct ws_session *s);
/* Lets a held message go, with text (at most its cap) when not NULL, and writes it now. */
void session_release(struct ws_session *s, struct out_msg *m, const char *text, size_t len);
/* Removes a held message unsent. */
void session_drop(struct ws_session *s, struct out_msg *m);
/* What a reply to a status update holds room for. Messages this small come from the worker's
 * pool (no allocation per update); device_pool_free empties it. */
#define DEVICE_REPLY_CAP 128
void device_pool_free(struct worker *w);
/* Closes with code once what is queued is written. */
void session_close_after_send(struct ws_session *s, uint16_t code);
/* The WRITEABLE callback: a due ping, what is queued as far as the socket takes it, or the
 * close; 0, or -1 (close). */
int session_writeable(struct worker *w, struct ws_session *s);
/* Bytes queued and not yet written (what max_output_buffer bounds). */
size_t session_unsent(const struct ws_session *s);
/* How many bytes of text a page of bulk output may take. */
size_t session_page_budget(const struct ws_session *s);
/* Whether a notification is queued, or with lws, unwritten on this session. */
bool session_out_has_ack(const struct ws_session *s, const struct shm_notif_key *key);
/* When the oldest AppService change this session did not write was recorded; 0: none. */
int64_t session_missed_since(const struct ws_session *s);
/* Frees what is queued: its notifications stay in the store. */
void session_out_free(struct ws_session *s);
/* Sends {"result":"KO","errno":N,"error":"..."}; closes with close_code when non-zero; counts
 * towards abuse_limit otherwise. */
void session_error(struct worker *w, struct ws_session *s, int number, const char *text,
                   uint16_t close_code);
/* Lets a held message go as {"result":"KO","errno":N,"error":"..."}, as session_error would
 * send it (closing with close_code when non-zero, counting towards abuse_limit otherwise). */
void session_release_error(struct worker *w, struct ws_session *s, struct out_msg *m, int number,
                           const char *text, uint16_t close_code);
/* Counts an error towards abuse_limit, or closes with close_code when non-zero. */
void session_error_counted(struct worker *w, struct ws_session *s, uint16_t close_code);
/* errno 50 with "retry_after". */
void session_slow_down(struct worker *w, struct ws_session *s, int retry_after_s);

/* device_batch.c: a checked status update of a bound session, its reply held now and its store
 * work done at the end of the loop turn (device_batch_apply). */
void device_batch_update(struct worker *w, struct ws_session *s, uint8_t status);
/* Holds reply (and, when binding, what is pending for the user after it) until the current
 * store batch commits: OK then, or errno 60 if it rolls back. 0, or -1 when out of memory. */
int device_batch_reply(struct worker *w, struct ws_session *s, struct out_msg *reply,
                       bool binding);

/* device_auth.c: a status update (dev_msg kind STATUS). */
void device_status_handle(struct worker *w, struct ws_session *s, const struct dev_msg *msg);
/* Token bucket of status_rate per second up to status_burst, shared by status updates and
 * commands. Returns 0, or the seconds to wait. */
int device_rate_take(struct worker *w, struct ws_session *s);

/* device_command.c: a command (dev_msg kind COMMAND): push_subscribe, push_unsubscribe. */
void device_command_handle(struct worker *w, struct ws_session *s, const struct dev_msg *msg);

/* The session is closing: its record and the user's presence are updated. */
void device_auth_release(struct worker *w, struct ws_session *s);
/* Drops a verification under way. */
void device_auth_abandon(struct ws_session *s);

/* appservice.c: the AppService channel on the same session machinery. */
int appservice_open(struct worker *w, struct ws_session *s);
void appservice_message(struct worker *w, struct ws_session *s, const char *text, size_t len);
void appservice_close(struct worker *w, struct ws_session *s);
/* Queues more of a snapshot or of the missed changes; whether anything was queued. */
bool appservice_refill(struct worker *w, struct ws_session *s);

/* device_notify.c: {"notifications":[…]} being gathered, with the queue keys of its entries. */
struct notify_batch {
    char *text;
    size_t len, cap;
    struct shm_notif_key *keys;
    size_t key_count, key_cap;
    bool failed;
    bool more; /* pending ones were left out: the page budget was reached */
};
/* Gathers what is pending for s's e-mail (in the current store batch), the oldest first, as
 * much as a page of s takes (b->more when some are left). */
void device_notify_collect(struct worker *w, struct ws_session *s, struct notify_batch *b);
/* Sends the batch when it holds anything (its entries leave the queue once written); frees it. */
void device_notify_send(struct worker *w, struct ws_session *s, struct notify_batch *b);
/* The same, held (session_hold) until released; NULL when there was nothing to send. */
struct out_msg *device_notify_hold(struct worker *w, struct ws_session *s, struct notify_batch *b);
/* These notifications were written (all of their message left lws): they leave the store's
 * queue, and are counted. */
void device_notify_written(struct worker *w, const struct shm_notif_key *acks, size_t ack_count,
                           uint8_t delivery);
/* A backlog (s->backlog): queues the next page of what is pending, or ends the backlog when
 * nothing is; whether anything was queued. Only with nothing unsent, so that the store's queue
 * holds nothing the session is sending. */
bool device_notify_refill(struct worker *w, struct ws_session *s);

#endif
