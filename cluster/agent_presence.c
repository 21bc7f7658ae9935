/* agent_presence: the users' presence as this node's apps see it, in a cluster — derived by the
 * agent from the user records' changefeed (the highest status over the live entries,
 * cl_record_effective), stored in the node's presence records (so polling, snapshots and the
 * admin endpoint read it as on one machine), and, when it changed, told to this node's
 * AppService connections (SHM_MAIL_APP_EVENT, recorded per PUID for the replay after an
 * absence). Every node's agent reads the same records in the same order per user, so the
 * connections of one app on every node hear every change, with no engine traffic beyond the
 * feed each node reads anyway (research/scale-out.md §4.7). A death (node or worker) shows when
 * the cleaner's write of that user's record comes through the feed. */
#include "agent_internal.h"

#include "../common/clock.h"
#include "../shm/app_channel.h"
#include "../shm/presence.h"

#define RINGS_MAX 64

void agent_presence_changed(struct agent *a, const char *email, const struct cl_record *rec,
                            int64_t changed_ms)
{
    if (email == NULL || email[0] == '\0')
        return;
    int64_t since = 0;
    size_t live = 0;
    uint8_t status = rec != NULL ? cl_record_effective(rec, agent_owner_live, a, &since, &live)
                                 : SHM_STATUS_OFFLINE;
    struct shm_presence before;
    if (shm_presence_get(a->store, email, &before) != SHM_OK && before.status == status &&
        status == SHM_STATUS_OFFLINE)
        return; /* never seen, still offline: nothing to keep */
    int64_t now = clock_wall_ms();
    if (changed_ms <= 0)
        changed_ms = now;
    struct shm_presence after = { .status = status, .live = status, .devices = (int)live };
    if (status == before.status && before.since_ms > 0)
        after.since_ms = before.since_ms; /* the same status goes on */
    else
        after.since_ms = since > 0 && status != SHM_STATUS_OFFLINE ? since : changed_ms;
    after.live_since_ms = live > 0 ? after.since_ms : 0;
    struct shm_presence_policy policy = { a->cfg->offline_grace_ms, a->cfg->last_seen_ttl_ms };
    if (shm_presence_put(a->store, email, &after, &policy, NULL) != SHM_OK ||
        status == before.status)
        return;
    int32_t rings[RINGS_MAX];
    size_t ring_count = 0;
    shm_app_event_publish(a->store, email, status, after.since_ms, NULL, now, rings, RINGS_MAX,
                          &ring_count);
    for (size_t i = 0; i < ring_count; i++)
        agent_ring_later(a, rings[i]);
}
