/* local_presence: what apps hear of a user's presence from this worker — a device's own status at
 * once, a device's departure only after offline_grace (SPEC.md §7).
 *
 * The hold a departure leaves is a record in the store with its due time (shm/presence.h), so
 * that it outlives this process. This worker arms a timer for the holds it made and ends, when it
 * fires, every hold then due (its own and any other's); the master's once-a-second sweep ends
 * those whose worker is gone. Either way the change is published in the transaction that ends
 * the hold, so each hold ends, and is told, once. */
#include "local.h"

#include "../../common/clock.h"
#include "../../common/log.h"
#include "../../shm/presence.h"

/* Past the due time, so that the hold has ended when the timer looks; and never sooner than
 * this after a previous look, so that holds a millisecond apart are ended together. */
#define GRACE_SLACK_MS 20

static struct shm_presence_policy policy_of(const struct worker *w)
{
    return (struct shm_presence_policy){ w->cfg->offline_grace_ms, w->cfg->last_seen_ttl_ms };
}

static void changed_publish(struct worker *w, const char *email, const struct shm_presence *before,
                            const struct shm_presence *after)
{
    if (before->status != after->status)
        local_app_event(w, email, after->status, after->since_ms, NULL);
}

static void presence_grace_due(uv_timer_t *timer);

static void grace_arm(struct worker *w, int64_t due_ms)
{
    int64_t now = clock_wall_ms();
    int64_t wait = due_ms - now + GRACE_SLACK_MS;
    if (wait < GRACE_SLACK_MS)
        wait = GRACE_SLACK_MS;
    /* An armed timer that fires sooner stays: it re-arms for what is left when it fires. */
    if (uv_is_active((uv_handle_t *)&w->grace_timer) && w->grace_due_ms != 0 &&
        w->grace_due_ms <= now + wait)
        return;
    w->grace_due_ms = now + wait;
    uv_timer_start(&w->grace_timer, presence_grace_due, (uint64_t)wait, 0);
}

static void expired_publish(void *arg, const char *email, const struct shm_presence *before,
                            const struct shm_presence *after, struct shm_store *store)
{
    (void)store;
    changed_publish(arg, email, before, after);
}

static void presence_grace_due(uv_timer_t *timer)
{
    struct worker *w = timer->data;
    struct shm_presence_policy policy = policy_of(w);
    int64_t next = 0;
    w->grace_due_ms = 0;
    if (shm_presence_expire(w->store, &policy, clock_wall_ms(), 1000, expired_publish, w, &next) !=
        SHM_OK)
        w->info.store_failures_total++;
    if (next != 0)
        grace_arm(w, next);
}

int presence_device_status(struct worker *w, const char *email, const char *device,
                           uint64_t conn_id, uint8_t status)
{
    struct shm_presence before, after;
    struct shm_presence_policy policy = policy_of(w);
    int rc = shm_presence_device_status(w->store, email, device, w->info.pid, conn_id, status,
                                        &policy, clock_wall_ms(), &before, &after);
    if (rc == SHM_OK)
        changed_publish(w, email, &before, &after);
    return rc;
}

void presence_device_bound(struct worker *w, const char *email, const char *device)
{
    struct shm_presence before, after;
    struct shm_presence_policy policy = policy_of(w);
    if (shm_presence_device_bound(w->store, email, device, &policy, clock_wall_ms(), &before,
                                  &after) != SHM_OK)
        w->info.store_failures_total++;
    else
        changed_publish(w, email, &before, &after);
}

void presence_device_left(struct worker *w, const char *email, const char *device,
                          uint64_t conn_id)
{
    struct shm_presence before, after;
    struct shm_presence_policy policy = policy_of(w);
    int64_t now = clock_wall_ms();
    int rc = shm_presence_device_left(w->store, email, device, w->info.pid, conn_id, &policy, now,
                                      &before, &after);
    if (rc == SHM_NOT_FOUND)
        return; /* a newer connection holds the device */
    if (rc != SHM_OK) {
        w->info.store_failures_total++;
        return;
    }
    changed_publish(w, email, &before, &after);
    if (after.held)
        grace_arm(w, now + policy.grace_ms);
}

int presence_grace_init(struct worker *w)
{
    if (uv_timer_init(&w->loop, &w->grace_timer) != 0)
        return -1;
    w->grace_timer.data = w;
    return 0;
}

void presence_grace_close(struct worker *w)
{
    if (w->grace_timer.loop != NULL) /* initialised */
        uv_close((uv_handle_t *)&w->grace_timer, NULL);
}
