/* keepalive: pings a WebSocket after ping_interval of silence and drops it when nothing comes back
 * within ping_timeout, in O(1) per event (lws 4.1 keeps its timers in one sorted list, which
 * costs O(connections) per insertion). */
#ifndef PRESENCED_KEEPALIVE_H
#define PRESENCED_KEEPALIVE_H

#include "../../common/list.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Embedded in what is kept alive. Every member of a list got the same delay when it joined, so
 * appending keeps each list sorted by due time. */
struct keepalive_link {
    struct list_link link; /* in a quiet list or pinged; in none when zeroed or forgotten */
    int64_t due_ms;        /* loop time of the next ping, or of the drop */
    uint8_t lane;          /* which quiet list; 0 until first heard */
};

/* Connections heard from together (a reconnect storm, a burst of updates) would fall due
 * together: each lane adds its own share of up to a quarter of the interval, spreading them. */
#define KEEPALIVE_LANES 8

struct keepalive {
    struct list_link quiet[KEEPALIVE_LANES]; /* heard from; pinged at due_ms, oldest first */
    struct list_link pinged;                 /* pinged; dropped at due_ms unless heard from */
    unsigned next_lane;
    int64_t interval_ms, timeout_ms;
    void (*ping)(struct keepalive_link *link, void *arg);
    void (*drop)(struct keepalive_link *link, void *arg); /* the link has left both lists */
    void *arg;
    uv_timer_t timer;
    bool timer_ready;
};

/* The timer is armed only while something is due later: an idle worker wakes for nothing. */
int keepalive_init(struct keepalive *ka, uv_loop_t *loop, int64_t interval_ms, int64_t timeout_ms,
                   void (*ping)(struct keepalive_link *, void *),
                   void (*drop)(struct keepalive_link *, void *), void *arg);
void keepalive_close(struct keepalive *ka);
/* The peer sent something (or just connected): its next ping is interval_ms from now, plus its
 * lane's share of a quarter of interval_ms. */
void keepalive_heard(struct keepalive *ka, struct keepalive_link *link);
void keepalive_forget(struct keepalive_link *link);
/* Pings what is due at now_ms (a little early, to share wake-ups; a bounded number, the rest at
 * the next turn) and drops what is overdue; returns when the next thing is due (now_ms or
 * earlier when pings are left over), or -1 when nothing is kept. The timer runs it. */
int64_t keepalive_run(struct keepalive *ka, int64_t now_ms);

#endif
