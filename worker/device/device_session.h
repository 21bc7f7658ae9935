/* device_session: one /presence WebSocket's state, shared by the files of the Device Presence
 * Channel (device.c its table and lifecycle, device_auth.c identity, binding and status updates,
 * device_command.c commands, device_notify.c notifications). It starts with the WebSocket
 * session it runs on (session/session.h). What is shared beyond the worker goes through its
 * backend (backend/backend.h). */
#ifndef PRESENCED_DEVICE_SESSION_H
#define PRESENCED_DEVICE_SESSION_H

#include "../session/session.h"

#include "device_msg.h"

#include "../../shm/notif.h"

#include <stdbool.h>
#include <stdint.h>

#define ASSERTION_TAG_LEN 16 /* of SHA-256: recognises the assertion a session was bound with */
/* What a reply to a status update holds room for: a small message (from the worker's pool). */
#define DEVICE_REPLY_CAP SESSION_SMALL_CAP

struct pending_update;

struct device_session {
    struct ws_session ws; /* first: lws's user data is both */
    char *email;          /* the verified identity this connection is bound to; NULL before */
    char *device;         /* bound with it */
    unsigned char tag[ASSERTION_TAG_LEN];
    struct pending_update *pending; /* reading is paused meanwhile, so replies keep their order */
    int64_t refill_ms;              /* when tokens were last topped up (monotonic) */
    float tokens;                   /* status_rate token bucket */
    bool owner : 1;                 /* holds the (e-mail, device) record in the store */
    bool backlog : 1;               /* pending notifications left in the store, sent in pages */
    bool paged : 1; /* ... there were: live deliveries are checked against the store */
};

/* device.c: the channel (protocol.c routes /presence to it). */
extern const struct channel device_channel;
/* The open device session with conn_id on this worker, or NULL. */
struct device_session *device_find(struct worker *w, uint64_t conn_id);

/* device_auth.c: a status update (dev_msg kind STATUS). */
void device_status_handle(struct worker *w, struct device_session *s, const struct dev_msg *msg);
/* Token bucket of status_rate per second up to status_burst, shared by status updates and
 * commands. Returns 0, or the seconds to wait. */
int device_rate_take(struct worker *w, struct device_session *s);

/* device_command.c: a command (dev_msg kind COMMAND): push_subscribe, push_unsubscribe. */
void device_command_handle(struct worker *w, struct device_session *s, const struct dev_msg *msg);

/* The session is closing: its record and the user's presence are updated. */
void device_auth_release(struct worker *w, struct device_session *s);
/* Drops a verification under way. */
void device_auth_abandon(struct device_session *s);

/* device_notify.c: {"notifications":[…]} being gathered, with the queue keys of its entries. */
struct notify_batch {
    char *text;
    size_t len, cap;
    struct shm_notif_key *keys;
    size_t key_count, key_cap;
    bool failed;
    bool more; /* pending ones were left out: the page budget was reached */
};
/* A pending notification into b (backend_notif_cb: arg is b). */
void device_notify_add(void *arg, const struct shm_notif_key *key, const char *json, size_t len);
/* Frees what b holds. */
void device_notify_discard(struct notify_batch *b);
/* Sends the batch when it holds anything (its entries leave the queue once written); frees it. */
void device_notify_send(struct worker *w, struct device_session *s, struct notify_batch *b);
/* The same, held (session_hold) until released; NULL when there was nothing to send. */
struct out_msg *device_notify_hold(struct worker *w, struct device_session *s,
                                   struct notify_batch *b);
/* These notifications were written (all of their message left lws): they leave the store's
 * queue, and are counted (the channel's on_written). */
void device_notify_written(struct worker *w, struct ws_session *s, const struct shm_notif_key *acks,
                           size_t ack_count, uint8_t delivery);
/* A notification mailed for s (CONN_MAIL_DELIVER). */
void device_notify_deliver(struct worker *w, struct device_session *s,
                           const struct conn_mail *mail);
/* A backlog (s->backlog): queues the next page of what is pending, or ends the backlog when
 * nothing is; whether anything was queued. Only with nothing unsent, so that the store's queue
 * holds nothing the session is sending. */
bool device_notify_refill(struct worker *w, struct device_session *s);

#endif
