/* keepalive: two FIFO lists and one timer armed at the earliest due time. */
#include "keepalive.h"

#include <stddef.h>

/* Pings due this soon go out with the ones due now, sharing a wake-up. */
#define KEEPALIVE_PING_EARLY_MS 10
/* At most this many pings a turn: their writes come in the next turn, and thousands at once (as
 * when connections made together fall due together) would hold up everything else. */
#define KEEPALIVE_PINGS_PER_RUN 64

/* The first of a list, which is due soonest; the list is not empty. */
static struct keepalive_link *first_of(const struct list_link *head)
{
    return LIST_ENTRY(head->next, struct keepalive_link, link);
}

void keepalive_forget(struct keepalive_link *link)
{
    list_remove(&link->link);
}

static void timer_fired(uv_timer_t *timer);

static void timer_arm(struct keepalive *ka, int64_t due_ms)
{
    int64_t now = (int64_t)uv_now(ka->timer.loop);
    uint64_t delay = due_ms > now ? (uint64_t)(due_ms - now) : 0;
    uv_timer_start(&ka->timer, timer_fired, delay, 0);
}

static void timer_fired(uv_timer_t *timer)
{
    struct keepalive *ka = timer->data;
    int64_t next = keepalive_run(ka, (int64_t)uv_now(timer->loop));
    if (next >= 0)
        timer_arm(ka, next);
}

int keepalive_init(struct keepalive *ka, uv_loop_t *loop, int64_t interval_ms, int64_t timeout_ms,
                   void (*ping)(struct keepalive_link *, void *),
                   void (*drop)(struct keepalive_link *, void *), void *arg)
{
    for (int lane = 0; lane < KEEPALIVE_LANES; lane++)
        list_init(&ka->quiet[lane]);
    list_init(&ka->pinged);
    ka->next_lane = 0;
    ka->interval_ms = interval_ms;
    ka->timeout_ms = timeout_ms;
    ka->ping = ping;
    ka->drop = drop;
    ka->arg = arg;
    if (uv_timer_init(loop, &ka->timer) != 0)
        return -1;
    ka->timer.data = ka;
    ka->timer_ready = true;
    return 0;
}

void keepalive_close(struct keepalive *ka)
{
    if (!ka->timer_ready)
        return;
    uv_close((uv_handle_t *)&ka->timer, NULL);
    ka->timer_ready = false;
}

void keepalive_heard(struct keepalive *ka, struct keepalive_link *link)
{
    if (!list_linked(&link->link) && link->lane == 0)
        link->lane = (uint8_t)(ka->next_lane++ % KEEPALIVE_LANES);
    keepalive_forget(link);
    link->due_ms = (int64_t)uv_now(ka->timer.loop) + ka->interval_ms +
                   ka->interval_ms * link->lane / (4 * KEEPALIVE_LANES);
    list_push_back(&ka->quiet[link->lane], &link->link);
    if (!uv_is_active((uv_handle_t *)&ka->timer))
        timer_arm(ka, link->due_ms);
}

/* The quiet list whose first member is due soonest; NULL when all are empty. */
static struct list_link *quiet_soonest(struct keepalive *ka)
{
    struct list_link *soonest = NULL;
    for (int lane = 0; lane < KEEPALIVE_LANES; lane++)
        if (!list_empty(&ka->quiet[lane]) &&
            (soonest == NULL || first_of(&ka->quiet[lane])->due_ms < first_of(soonest)->due_ms))
            soonest = &ka->quiet[lane];
    return soonest;
}

int64_t keepalive_run(struct keepalive *ka, int64_t now_ms)
{
    while (!list_empty(&ka->pinged) && first_of(&ka->pinged)->due_ms <= now_ms) {
        struct keepalive_link *link = first_of(&ka->pinged);
        keepalive_forget(link);
        ka->drop(link, ka->arg);
    }
    struct list_link *quiet;
    for (int pings = 0; pings < KEEPALIVE_PINGS_PER_RUN && (quiet = quiet_soonest(ka)) != NULL &&
                        first_of(quiet)->due_ms <= now_ms + KEEPALIVE_PING_EARLY_MS;
         pings++) {
        struct keepalive_link *link = first_of(quiet);
        keepalive_forget(link);
        link->due_ms = now_ms + ka->timeout_ms;
        list_push_back(&ka->pinged, &link->link);
        ka->ping(link, ka->arg);
    }
    int64_t next = -1;
    if (!list_empty(&ka->pinged))
        next = first_of(&ka->pinged)->due_ms;
    if ((quiet = quiet_soonest(ka)) != NULL && (next < 0 || first_of(quiet)->due_ms < next))
        next = first_of(quiet)->due_ms;
    return next;
}
