/* agent_presence: the users' presence as this node's apps see it, in a cluster — derived by the
 * agent from the user records' changefeed (the highest status over the live entries,
 * cl_record_effective), stored in the node's presence records (so polling, snapshots and the
 * admin endpoint read it as on one machine), and, when it changed, told to this node's
 * AppService connections (SHM_MAIL_APP_EVENT, recorded per PUID for the replay after an
 * absence). Every node's agent reads the same records in the same order per user, so the
 * connections of one app on every node hear every change, with no engine traffic beyond the
 * feed each node reads anyway (research/scale-out.md §4.7). A death (node or worker) shows when
 * the cleaner's write of that user's record comes through the feed.
 *
 * offline_grace (SPEC.md §7): a fall that a device's departure made (its entry gone, or its
 * incarnation dead) is held — what apps see stays — for the grace, and told then, dated from
 * the departure, unless the user is back by then with the same or a higher status; a fall a
 * device's own status message made is told at once. The holds are this agent's (in memory): an
 * agent that restarts tells the held falls with the next change of those users. */
#include "agent_internal.h"

#include "../common/clock.h"
#include "../common/list.h"
#include "../shm/app_channel.h"
#include "../shm/presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RINGS_MAX 64
#define HOLDS_MAX 100000 /* beyond this a departure is told at once (memory stays bounded) */

struct presence_hold {
    struct list_link link; /* in due order: every hold lasts the same grace */
    int64_t due_mono;
    int64_t left_ms; /* when the device left: the fall's since */
    char email[SHM_EMAIL_MAX + 1];
};

static struct presence_hold *hold_find(struct agent *a, const char *email)
{
    struct list_link *pos;
    LIST_EACH(pos, &a->holds) {
        struct presence_hold *h = LIST_ENTRY(pos, struct presence_hold, link);
        if (strcmp(h->email, email) == 0)
            return h;
    }
    return NULL;
}

static void hold_drop(struct agent *a, struct presence_hold *h)
{
    list_remove(&h->link);
    free(h);
    a->hold_count--;
}

/* Whether a fall to below top was a device's own doing: a device of the user held top before
 * and holds a lower status now. Otherwise devices left (or their node or worker died). */
static bool fall_sent(const struct cl_record *old, const struct cl_record *rec, uint8_t top)
{
    if (old == NULL || rec == NULL)
        return old == NULL;
    for (size_t i = 0; i < old->count; i++) {
        const struct cl_entry *before = &old->entries[i];
        const struct cl_entry *now = cl_record_find(rec, before->device);
        if (before->status >= top && now != NULL && now->status < before->status &&
            cl_owner_same(&now->owner, &before->owner))
            return true;
    }
    return false;
}

/* Stores and tells the user's presence now status (since when it began). */
static void publish(struct agent *a, const char *email, const struct shm_presence *before,
                    uint8_t status, int64_t since, size_t live)
{
    struct shm_presence after = { .status = status, .live = status, .devices = (int)live };
    after.since_ms = status == before->status && before->since_ms > 0 ? before->since_ms : since;
    after.live_since_ms = live > 0 ? after.since_ms : 0;
    struct shm_presence_policy policy = { a->cfg->offline_grace_ms, a->cfg->last_seen_ttl_ms };
    if (shm_presence_put(a->store, email, &after, &policy, NULL) != SHM_OK ||
        status == before->status)
        return;
    int32_t rings[RINGS_MAX];
    size_t ring_count = 0;
    shm_app_event_publish(a->store, email, status, after.since_ms, NULL, clock_wall_ms(), rings,
                          RINGS_MAX, &ring_count);
    for (size_t i = 0; i < ring_count; i++)
        agent_ring_later(a, rings[i]);
}

void agent_presence_changed(struct agent *a, const char *email, const struct cl_record *old,
                            const struct cl_record *rec, int64_t changed_ms)
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
    if (changed_ms <= 0)
        changed_ms = clock_wall_ms();
    struct presence_hold *held = hold_find(a, email);
    if (status < before.status && a->cfg->offline_grace_ms > 0 &&
        (held != NULL || !fall_sent(old, rec, before.status))) {
        if (held == NULL && a->hold_count < HOLDS_MAX &&
            (held = calloc(1, sizeof *held)) != NULL) {
            held->due_mono = clock_mono_ms() + a->cfg->offline_grace_ms;
            held->left_ms = changed_ms;
            snprintf(held->email, sizeof held->email, "%s", email);
            list_push_back(&a->holds, &held->link);
            a->hold_count++;
        }
        if (held != NULL)
            return; /* apps see what they saw until the grace ends */
    }
    if (held != NULL)
        hold_drop(a, held); /* back in time, or a device's own status: no hold */
    publish(a, email, &before, status,
            since > 0 && status != SHM_STATUS_OFFLINE ? since : changed_ms, live);
}

/* The holds due: each user's presence as the replica has it now, told if it fell. */
void agent_presence_tick(struct agent *a, int64_t now_mono)
{
    while (!list_empty(&a->holds)) {
        struct presence_hold *h = LIST_ENTRY(list_first(&a->holds), struct presence_hold, link);
        if (h->due_mono > now_mono)
            return;
        char uk[CL_USER_KEY_LEN + 1];
        cl_user_key(h->email, uk);
        uint64_t rev;
        const void *value;
        size_t len;
        struct cl_record rec;
        const char *why;
        bool have = shm_cl_user_get(a->store, uk, &rev, &value, &len) == SHM_OK &&
                    cl_record_decode(&rec, value, len, &why) == 0;
        int64_t since = 0;
        size_t live = 0;
        uint8_t status = have ? cl_record_effective(&rec, agent_owner_live, a, &since, &live)
                              : SHM_STATUS_OFFLINE;
        if (have)
            cl_record_free(&rec);
        struct shm_presence before;
        shm_presence_get(a->store, h->email, &before);
        /* A fall dates from the departure (an offline user's "last seen"). */
        publish(a, h->email, &before, status, status < before.status ? h->left_ms : since, live);
        hold_drop(a, h);
    }
}

void agent_presence_stop(struct agent *a)
{
    while (!list_empty(&a->holds))
        hold_drop(a, LIST_ENTRY(list_first(&a->holds), struct presence_hold, link));
}
