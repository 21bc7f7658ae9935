/* conn_mail: what reaches one of this worker's connections from elsewhere — another worker or
 * the master on this node (mail + doorbell, backend/mailbox.c), another node in a cluster —
 * decoded by the backend, so that a channel acts on it without knowing how it came. The backend
 * hands it to backend_inbound, which gives it to the channel of the connection it names
 * (session_mail); a connection gone, or of another channel, drops it. */
#ifndef PRESENCED_CONN_MAIL_H
#define PRESENCED_CONN_MAIL_H

#include "../shm/notif.h"

#include <stddef.h>
#include <stdint.h>

enum conn_mail_kind {
    CONN_MAIL_SUPERSEDED, /* a newer connection holds the device: errno 52, close 4001 */
    CONN_MAIL_KICKED,     /* the operator closes it: errno 61, close 1001 */
    CONN_MAIL_APP_CLOSED, /* its app was disabled (41), deleted (40) or re-keyed (42): 1008 */
    CONN_MAIL_DELIVER,    /* a notification for the device's user, live */
    CONN_MAIL_APP_EVENT,  /* a user's presence changed, for an AppService connection */
};

struct conn_mail {
    enum conn_mail_kind kind;
    int number;                      /* APP_CLOSED: the errno */
    const struct shm_notif_key *key; /* DELIVER: where the notification is queued */
    const char *json;                /* DELIVER: the notification (not NUL-terminated) */
    size_t json_len;
    const char *puid;   /* APP_EVENT: the user as the app knows it */
    uint8_t status;     /* APP_EVENT: enum shm_status */
    int64_t since_ms;   /* APP_EVENT: since when the status holds (wall ms; 0: not known) */
    int64_t changed_ms; /* APP_EVENT: when the change was recorded (wall ms) */
};

#endif
