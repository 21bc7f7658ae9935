/* meter: what a process counts for the node-wide metrics of /metrics — latency histograms and
 * counters with bounded labels (channels, errnos, routes; never an e-mail, a PUID or an appid).
 * Each worker records into its own struct meter on its hot path (no allocation, no store write)
 * and publishes it with its periodic statistics (shm/worker_info.h); the master adds them up. */
#ifndef PRESENCED_METER_H
#define PRESENCED_METER_H

#include "histogram.h"

#include <stdint.h>

enum meter_channel { METER_DEVICE, METER_APPSERVICE, METER_CHANNELS };

/* The errnos of SPEC.md §1, in the order of its table. */
#define METER_ERRNOS 20
extern const int meter_errnos[METER_ERRNOS];

enum meter_credential { METER_ASSERTION, METER_TOKEN, METER_CREDENTIALS };
enum meter_outcome {
    METER_CACHED,      /* answered from the store's cache of verified credentials */
    METER_VERIFIED,    /* checked (signatures, or the remote verifier) and accepted */
    METER_REFUSED,     /* errno 32, 33, 34 */
    METER_UNAVAILABLE, /* errno 35 */
    METER_OUTCOMES
};

/* Where a notification written to a device came from: sent while the device was connected, or
 * waiting in the queue until it bound. */
enum meter_delivery { METER_LIVE, METER_PENDING, METER_DELIVERIES };
enum meter_source { METER_FROM_APP, METER_FROM_OPERATOR, METER_SOURCES };

/* HTTP routes of the public port, by what they serve (a fixed set: the path's variable parts,
 * appids among them, never become labels). */
enum meter_route {
    METER_ROUTE_HOME,
    METER_ROUTE_HEALTH,  /* /__heartbeat__, /__lbheartbeat__, /__version__ */
    METER_ROUTE_SIGN_IN, /* /login…, /logout */
    METER_ROUTE_ACCOUNT, /* /account, /getApps, /revoke/… */
    METER_ROUTE_GRANT,   /* /grant/… */
    METER_ROUTE_MYAPPS,  /* /myapps pages and actions */
    METER_ROUTE_POLL,    /* /myapps/<appid>/status */
    METER_ROUTE_VAPID,   /* /vapid */
    METER_ROUTE_OTHER,   /* anything else (404s) */
    METER_ROUTES
};
#define METER_STATUS_CLASSES 4 /* 2xx, 3xx, 4xx, 5xx */

/* Only 64-bit counts (it is published and added up as an array of them). */
/* A cluster node's workers as members of the cluster (cluster/member.h), zero on one machine. */
struct meter_cluster {
    uint64_t claims;                  /* claims of an (e-mail, device) on the user records */
    uint64_t cas_conflicts;           /* compare-and-sets refused by a newer write: tried again */
    uint64_t unavailable;             /* operations given up on the engine: answered 61 */
    uint64_t closes_sent;             /* CLOSEs (52, kick, fence) sent to other workers */
    uint64_t delivers_sent;           /* live notifications sent to the holders' workers */
    uint64_t delivers_received;       /* live notifications received from other workers */
    uint64_t early_sent;              /* EARLY copies sent as a publish started */
    uint64_t early_received;          /* EARLY copies received */
    uint64_t inbox_resent;            /* DELIVERs and CLOSEs sent again after a reconnect */
    uint64_t engine_reconnects;       /* engine connections lost and made again */
    uint64_t engine_timeouts;         /* engine requests unanswered by their deadline */
    uint64_t notifications_published; /* acknowledged by the engine's queue */
    uint64_t notifications_dropped;   /* the oldest dropped for a full queue */
    struct histogram engine_round_trip; /* an engine request sent to its answer read */
};

struct meter {
    struct histogram status_update;              /* device status update: read to reply written */
    struct histogram delivery[METER_DELIVERIES]; /* notification: queued to written */
    struct histogram verification[METER_CREDENTIALS][METER_OUTCOMES]; /* device credentials */
    struct histogram http[METER_ROUTES]; /* request read to answer written */
    uint64_t http_responses[METER_ROUTES][METER_STATUS_CLASSES];
    uint64_t error_replies[METER_CHANNELS][METER_ERRNOS];
    uint64_t notifications_queued[METER_SOURCES];
    uint64_t notifications_delivered; /* left the queue: written to a first device */
    uint64_t appservice_auths;        /* AppService connections authenticated */
    uint64_t appservice_events;       /* presence events written to AppService connections */
    uint64_t takeovers;               /* a device connection superseded by a newer one (52) */
    uint64_t slow_consumers[METER_CHANNELS]; /* closed past max_output_buffer (1008) */
    struct meter_cluster cluster;
};

#define METER_WORDS (sizeof(struct meter) / sizeof(uint64_t))

/* An error reply {"result":"KO","errno":number} sent on channel. */
void meter_error_reply(struct meter *m, enum meter_channel channel, int number);
enum meter_route meter_route_of(const char *path);
/* An HTTP answer with status written, for a request read at since_us (histogram_now_us). */
void meter_http_done(struct meter *m, enum meter_route route, unsigned status, int64_t since_us);
/* A device's credential checked since since_us; error 0 or its errno. */
void meter_verified(struct meter *m, int token, int error, int cached, int64_t since_us);
/* A notification queued at queued_wall_ms written to a device now. */
void meter_delivered(struct meter *m, enum meter_delivery path, int64_t queued_wall_ms);
/* into += from, every count. */
void meter_add(struct meter *into, const struct meter *from);

/* Label values, for whoever renders them. */
const char *meter_channel_name(enum meter_channel channel);
const char *meter_credential_name(enum meter_credential credential);
const char *meter_outcome_name(enum meter_outcome outcome);
const char *meter_delivery_name(enum meter_delivery path);
const char *meter_source_name(enum meter_source source);
const char *meter_route_name(enum meter_route route);

#endif
