/* mail_ping: one timed ping through the store and a doorbell, answered by a pong; shared by the
 * unit test of wake-ups (tests/unit/test_wake.c) and the probe of a live worker (wake_probe). */
#ifndef PRESENCED_MAIL_PING_H
#define PRESENCED_MAIL_PING_H

#include "../../common/wake.h"
#include "../../shm/mail.h"
#include "../../shm/store.h"

#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct mail_pongs {
    int count;     /* pongs taken, to check each ping is answered exactly once */
    uint32_t last; /* sequence number of the last pong */
};

static inline int64_t mail_ping_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int mail_ping_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static inline void mail_ping_pong_taken(void *arg, int32_t sender, uint8_t type,
                                        const void *payload, size_t len)
{
    struct mail_pongs *pongs = arg;
    (void)sender;
    if (type == SHM_MAIL_PONG && len == sizeof pongs->last) {
        memcpy(&pongs->last, payload, len);
        pongs->count++;
    }
}

/* Posts ping seq to target, rings it, waits (2 s at most) for the pong's ring. Returns the round
 * trip in µs, or -1. */
static inline int64_t mail_ping_round_trip(struct shm_store *store, struct wake_bells *bells,
                                           pid_t target, uint32_t seq, struct mail_pongs *pongs)
{
    int64_t start = mail_ping_now_us();
    shm_mail_post(store, target, SHM_MAIL_PING, &seq, sizeof seq);
    if (shm_batch_commit(store) != SHM_OK || wake_ring(bells, target) != 0)
        return -1;
    while (pongs->last != seq) {
        struct pollfd pfd = { bells->fd, POLLIN, 0 };
        if (poll(&pfd, 1, 2000) <= 0)
            return -1;
        wake_drain(bells);
        shm_mail_take(store, getpid(), mail_ping_pong_taken, pongs);
        shm_batch_commit(store);
    }
    return mail_ping_now_us() - start;
}

#endif
