/* session: one WebSocket and the machinery every channel runs on — reading (fragments, the frame
 * checks, max_message_size, UTF-8), the output queue with its held replies and flow control
 * (session_out.c), close frames, pings (keepalive.c) and the lws callback (session.c) — knowing
 * no channel. A channel (the Device Presence Channel, the AppService channel) is a table of
 * functions the session calls (struct channel), chosen by the WebSocket's path in one place
 * (protocol.c). A channel's own state follows the session in the same allocation: its struct
 * starts with a struct ws_session (SESSION_OF). */
#ifndef PRESENCED_SESSION_H
#define PRESENCED_SESSION_H

#include "../worker_internal.h"

#include "ws_tap.h"

#include "../../common/list.h"
#include "../../common/meter.h"
#include "../../shm/notif.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn_mail;

struct out_msg {
    struct list_link link;      /* in its session's queue, the oldest first */
    bool small;                 /* of SESSION_SMALL_CAP: back to the worker's pool once written */
    struct shm_notif_key *acks; /* notifications to delete from the queue once written */
    size_t ack_count;
    int64_t event_ms;     /* an AppService event: when its change was recorded; 0: not one */
    bool held;            /* waits for a commit: nothing after it is written either */
    uint8_t delivery;     /* notifications: METER_LIVE or METER_PENDING */
    uint32_t reply_stamp; /* the reply to a request read then (histogram_stamp), or 0 */
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

/* Fields ordered so that padding is small: one of these per WebSocket. */
struct ws_session {
    enum conn_kind kind; /* CONN_WEBSOCKET */
    uint32_t errors;
    const struct channel *channel;
    struct list_link link; /* in the worker's sessions */
    struct lws *wsi;
    struct keepalive_link alive;
    uint64_t conn_id;
    struct list_link out; /* the queue of messages to write (struct out_msg) */
    size_t out_bytes;     /* what the queue holds (held messages at their cap) */
    size_t held_bytes;    /* of out_bytes, the held messages': they wait for us, not the peer */
    struct out_sent sent; /* unsent too, until lws's buffer is empty */
    int64_t missed_ms;    /* the oldest event (out_msg.event_ms) dropped unwritten; 0: none */
    char *rx;             /* a message arriving in fragments; NULL between messages */
    size_t rx_len, rx_cap;
    struct ws_tap_link tap; /* the frame headers of what the client sends */
    uint32_t reply_stamp;   /* a request waits for its reply since (its out_msg takes it) */
    uint16_t close_code;    /* close with this once the queue is written */
    uint8_t frame_verdict;  /* a violation the tap saw, to act on (enum ws_frame_verdict) */
    bool ping_due : 1;      /* a ping is to be written */
    bool rx_too_big : 1;
    bool slow : 1;       /* closed as a slow consumer: nothing more is queued */
    bool close_sent : 1; /* the close frame is written: the peer's answer is awaited */
    bool rx_held : 1;    /* not read meanwhile: its held replies take half of max_output_buffer */
};

/* The channel's session that starts with the ws_session s. */
#define SESSION_OF(s, type) ((type *)(void *)(s))

/* A channel: what the session calls, from lws's callbacks and from the worker. Optional entries
 * may be NULL. */
struct channel {
    const char *name;         /* for the log: "device", "AppService" */
    enum meter_channel meter; /* where its error replies and slow consumers are counted */
    size_t session_size;      /* of its session struct, which starts with a struct ws_session */
    /* The handshake is done (the session is set up and zeroed past the ws_session): 0, or -1
     * when it cannot be served (errno 61, close 1001). */
    int (*on_open)(struct worker *w, struct ws_session *s);
    /* A whole text message: valid UTF-8, within max_message_size. */
    void (*on_message)(struct worker *w, struct ws_session *s, const char *text, size_t len);
    /* The connection is gone; what the channel holds for it goes (on_open may have failed). */
    void (*on_close)(struct worker *w, struct ws_session *s);
    /* Optional. The output is below half of max_output_buffer: more bulk output (pages of a
     * backlog) may be queued; whether anything was. */
    bool (*on_drain)(struct worker *w, struct ws_session *s);
    /* Optional. A message with notification keys is written (all of it left lws). */
    void (*on_written)(struct worker *w, struct ws_session *s, const struct shm_notif_key *acks,
                       size_t ack_count, uint8_t delivery);
    /* Optional. The reply to a request read at stamp (histogram_stamp) is written. */
    void (*on_replied)(struct worker *w, uint32_t stamp);
    /* Optional. Mail for this connection (conn_mail.h). */
    void (*on_mail)(struct worker *w, struct ws_session *s, const struct conn_mail *mail);
    /* Optional. The worker is exiting: what the connection waits for (a verification) is
     * dropped, before the connections close. */
    void (*on_stop)(struct worker *w, struct ws_session *s);
    /* Optional, per worker: at its start (0 or -1), at the end of each loop turn (what was put
     * off is written into the store's batch, which commits next), when it stops (connections
     * still open), and once every connection has gone. */
    int (*start)(struct worker *w);
    void (*before_commit)(struct worker *w);
    void (*stop)(struct worker *w);
    void (*free)(struct worker *w);
};

/* session.c: the lws callback of WebSocket connections. ESTABLISHED takes the channel protocol.c
 * chose for the path; the other reasons find it in the session. */
int session_established(struct worker *w, struct ws_session *s, struct lws *wsi,
                        const struct channel *channel);
int session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);
/* The open session with conn_id on this worker, or NULL. */
struct ws_session *session_find(struct worker *w, uint64_t conn_id);
/* Hands mail to the channel of the session with conn_id; a session gone drops it. */
void session_mail(struct worker *w, uint64_t conn_id, const struct conn_mail *mail);
/* Says goodbye to every WebSocket: errno 61 and close 1001 (one already waiting for its peer's
 * close is dropped). */
void session_goodbye_all(struct worker *w);
/* The worker is exiting: each channel drops what its sessions wait for (on_stop). */
void session_stop_all(struct worker *w);
/* Starts pinging this worker's WebSockets after ping_interval of silence. */
int session_keepalive_init(struct worker *w);
/* Starts looking at the frame headers of the WebSockets (ws_tap.c), on this thread. */
void session_frames_init(struct worker *w);

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
/* errno 61 (then close 1001, SPEC.md §1) with "retry_after": retry_after_s, or when 0 a
 * jittered SESSION_RETRY_61_MIN_S.. seconds; every 61 of session_error carries one too. */
#define SESSION_RETRY_61_MIN_S 1
#define SESSION_RETRY_61_SPREAD_S 5
int session_retry_after_61(void);
void session_release_unavailable(struct worker *w, struct ws_session *s, struct out_msg *m,
                                 const char *text, int retry_after_s);
/* errno 50 with "retry_after". */
void session_slow_down(struct worker *w, struct ws_session *s, int retry_after_s);

/* session_out.c: the output of a session and its flow control. Queueing past
 * max_output_buffer closes the connection as a slow consumer (1008) and queues nothing
 * (NULL). Held messages wait for the server (a commit, the engine), not for the peer: they
 * are not the peer's unsent output; while they take half of max_output_buffer the connection
 * is not read (the peer's requests wait in its socket), so that a client that pipelines
 * requests is slowed down, not closed. */

/* Queues text. acks (moved into the message, may be NULL) are deleted from the notification
 * queue once it is written (the channel's on_written). */
struct out_msg *session_send_acked(struct ws_session *s, const char *text, size_t len,
                                   struct shm_notif_key *acks, size_t ack_count);
void session_send(struct ws_session *s, const char *text, size_t len);
/* An event, whose change was recorded at changed_ms: a slow consumer gets it again among the
 * changes missed while away (session_missed_since). */
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
/* Messages of at most this many bytes (a reply, an error) come from the worker's pool of them,
 * so that a request and its reply allocate nothing; session_pool_free empties it. */
#define SESSION_SMALL_CAP 128
void session_pool_free(struct worker *w);
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
/* When the oldest event this session did not write was recorded; 0: none. */
int64_t session_missed_since(const struct ws_session *s);
/* Frees what is queued: its notifications stay in the store. */
void session_out_free(struct ws_session *s);

#endif
