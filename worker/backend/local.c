/* local: the backend of one machine (backend.h) — ownership, presence and notification queues in
 * the node's LMDB store, other connections reached by mail and doorbell (mailbox.c), answers
 * given once the store's batch commits (local_batch.c). Its table, its start and end, and the
 * device and notification operations. */
#include "local.h"

#include "../conn_mail.h"

#include "../../common/clock.h"
#include "../../shm/app_channel.h"
#include "../../shm/conn.h"
#include "../../shm/mail.h"
#include "../../shm/notif.h"
#include "../../shm/presence.h"

#include <string.h>

#define RINGS_MAX 64

static int local_open(struct worker *w)
{
    return presence_grace_init(w) == 0 && mailbox_start(w) == 0 ? 0 : -1;
}

static void local_stop(struct worker *w)
{
    mailbox_stop(w);
    presence_grace_close(w);
}

/* What this worker holds is released (the master does it too if we crash) and committed, and
 * the workers of the apps that hear of it are rung (the doorbell is closed by then: a bell of
 * its own). Statuses held for the grace are published by whoever ends the holds (the master,
 * at the latest); what changes at once is published here. */
static void local_close(struct worker *w)
{
    local_batch_free(w);
    if (w->store == NULL)
        return;
    struct shm_presence_policy policy = { w->cfg->offline_grace_ms, w->cfg->last_seen_ttl_ms };
    struct shm_rings rings = { .count = 0 };
    size_t released;
    shm_presence_release_worker(w->store, w->info.pid, &policy, clock_wall_ms(), &released,
                                shm_app_presence_changed, &rings);
    shm_app_conn_release_worker(w->store, w->info.pid, clock_wall_ms(), NULL, NULL);
    struct wake_bells bells;
    if (shm_batch_commit(w->store) == SHM_OK && rings.count > 0 &&
        wake_init(&bells, w->cfg->data_dir) == 0)
        for (size_t i = 0; i < rings.count; i++)
            wake_ring(&bells, rings.pids[i]);
}

static bool local_serving(struct worker *w)
{
    (void)w;
    return true;
}

struct device_count {
    const char *except;
    int count;
};

static void device_count_other(void *arg, const char *device, const struct shm_conn_owner *owner)
{
    struct device_count *c = arg;
    (void)owner;
    if (strcmp(device, c->except) != 0)
        c->count++;
}

/* The previous holder of the device, on this worker or another, is told to close (52, 4001). */
static void previous_supersede(struct worker *w, const struct shm_conn_owner *previous)
{
    if (previous->worker_pid == w->info.pid) {
        backend_inbound(w, previous->conn_id, &(struct conn_mail){ .kind = CONN_MAIL_SUPERSEDED });
        return;
    }
    unsigned char payload[8];
    for (int i = 0; i < 8; i++)
        payload[i] = (unsigned char)(previous->conn_id >> (56 - 8 * i));
    if (mailbox_post(w, previous->worker_pid, SHM_MAIL_CLOSE_CONN, payload, sizeof payload) != 0)
        w->info.store_failures_total++;
}

static int local_claim(struct worker *w, const struct backend_claim *c,
                       const struct backend_done *done)
{
    struct device_count others = { c->device, 0 };
    if (shm_conn_devices(w->store, c->email, device_count_other, &others) < 0)
        return 60;
    if (others.count >= w->cfg->max_devices_per_user)
        return 51;
    struct shm_conn_owner me = { w->info.pid, c->conn_id, c->status, clock_wall_ms() }, previous;
    int had_previous;
    if (shm_conn_claim(w->store, c->email, c->device, &me, &previous, &had_previous) != SHM_OK)
        return 60;
    if (had_previous) {
        w->info.meter.takeovers++;
        previous_supersede(w, &previous);
    }
    presence_device_bound(w, c->email, c->device);
    if (local_wait_commit(w, done) != 0) {
        /* Not answered after all: the claim in this batch goes too, as a departure, so that
         * the user's presence (its record counted the device when it bound) and apps follow. */
        presence_device_left(w, c->email, c->device, c->conn_id);
        return 60;
    }
    /* In the claim's batch: what is mailed from now on was not pending before. */
    bool more = false;
    local_delivered_flush(w);
    if (shm_notif_page(w->store, c->email, clock_wall_ms(), c->page_budget, c->page, c->page_arg,
                       &more) < 0)
        w->info.store_failures_total++;
    c->page_end(c->page_arg, more);
    return BACKEND_LATER;
}

static void local_release(struct worker *w, const char *email, const char *device, uint64_t conn_id)
{
    presence_device_left(w, email, device, conn_id);
}

static bool local_device_connected(struct worker *w, const char *email, const char *device)
{
    struct shm_conn_owner owner;
    return shm_conn_get(w->store, email, device, &owner) == SHM_OK;
}

static int local_pending_page(struct worker *w, const char *email, size_t budget,
                              backend_notif_cb cb, void *arg, bool *more)
{
    local_delivered_flush(w); /* a page written before this one is gone from the queue */
    if (shm_notif_page(w->store, email, clock_wall_ms(), budget, cb, arg, more) < 0) {
        w->info.store_failures_total++;
        return -1;
    }
    return 0;
}

static bool local_pending_has(struct worker *w, const struct shm_notif_key *key)
{
    /* Written this turn: gone from the queue, though its delete comes at the turn's end. */
    return !local_delivered_pending(w, key) && shm_notif_exists(w->store, key);
}

static void local_delivered(struct worker *w, const struct shm_notif_key *key)
{
    local_delivered_later(w, key);
}

int local_notify_now(struct worker *w, const char *email, const char *json, size_t len,
                     int64_t expires_ms)
{
    int32_t rings[RINGS_MAX];
    size_t ring_count = 0, dropped;
    if (shm_notif_send(w->store, email, json, len, clock_wall_ms(), expires_ms,
                       (size_t)w->cfg->max_pending_notifications, rings, RINGS_MAX, &ring_count,
                       &dropped) != SHM_OK)
        return -1;
    for (size_t i = 0; i < ring_count; i++)
        mailbox_ring_later(w, rings[i]);
    return 0;
}

const struct backend_ops backend_local = {
    .name = "local",
    .open = local_open,
    .stop = local_stop,
    .close = local_close,
    .before_commit = local_batch_apply,
    .after_commit = mailbox_after_commit,
    .serving = local_serving,
    .claim = local_claim,
    .set_status = local_set_status,
    .release = local_release,
    .device_connected = local_device_connected,
    .pending_page = local_pending_page,
    .pending_has = local_pending_has,
    .delivered = local_delivered,
    .notify = local_notify_later,
    .app_connected = local_app_connected,
    .app_closed = local_app_closed,
    .app_changes_page = local_app_changes_page,
    .app_close_all = local_app_close_all,
    .app_event = local_app_event,
    .presence_get = local_presence_get,
    .look_further = local_look_further,
    .app_get = local_app_get,
    .app_list_by_owner = local_app_list_by_owner,
    .app_put = local_app_put,
    .app_delete = local_app_delete,
    .grant_get = local_grant_get,
    .grant_by_puid = local_grant_by_puid,
    .grant_list_user = local_grant_list_user,
    .grant_page_app = local_grant_page_app,
    .grant_put = local_grant_put,
    .grant_revoke = local_grant_revoke,
    .web_session_get = local_web_session_get,
    .web_session_put = local_web_session_put,
    .web_session_delete = local_web_session_delete,
};
