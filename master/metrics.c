/* metrics: what the admin endpoint reports, gathered from the master and the workers' records. */
#include "metrics.h"

#include "master.h"

#include "../common/clock.h"
#include "../common/version.h"
#include "../shm/app.h"
#include "../shm/app_channel.h"
#include "../shm/census.h"
#include "../shm/notif.h"
#include "../shm/push_job.h"
#include "../shm/push_sub.h"
#include "../shm/store.h"
#include "../shm/worker_info.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* /status names the apps with the most AppService connections open (appids are no label of
 * /metrics, whose series must stay bounded). */
#define STATUS_TOP_APPS 10

struct snapshot {
    size_t count;
    struct shm_worker_info *infos; /* one per process of the table; zeroed when unpublished */
    struct shm_store_stats store;
    uint64_t notifications_dropped, notifications_expired;
    struct meter node; /* the workers' meters, the retired ones' and the master's, added up */
    struct shm_census census;
    struct shm_app_busy busiest[STATUS_TOP_APPS];
    char busiest_names[STATUS_TOP_APPS][SHM_APP_NAME_MAX + 1];
    size_t busiest_count;
    struct shm_push_counters push;
    uint64_t push_subscriptions;
};

static const char *const proc_state_names[] = { "starting", "ready", "draining" };

/* What the store holds: the workers' records, the retired workers' meters, the counters and
 * the census. */
static int snapshot_read(struct master *m, struct shm_store *store, struct snapshot *snap)
{
    int32_t *pids = calloc(snap->count ? snap->count : 1, sizeof *pids);
    if (pids == NULL)
        return SHM_ERROR;
    for (size_t i = 0; i < snap->count; i++)
        pids[i] = m->procs[i].pid;
    int rc = shm_worker_info_snapshot(store, pids, snap->count, snap->infos, &snap->node);
    free(pids);
    if (rc == SHM_OK)
        rc = shm_store_stats(store, &snap->store);
    if (rc == SHM_OK)
        rc = shm_notif_counters(store, &snap->notifications_dropped, &snap->notifications_expired);
    if (rc == SHM_OK)
        rc = shm_push_counters(store, &snap->push);
    if (rc == SHM_OK)
        rc = shm_push_sub_count(store, &snap->push_subscriptions);
    if (rc == SHM_OK)
        rc = shm_census_take(store, &snap->census);
    if (rc == SHM_OK)
        rc = shm_app_conns_busiest(store, snap->busiest, STATUS_TOP_APPS, &snap->busiest_count);
    for (size_t i = 0; rc == SHM_OK && i < snap->busiest_count; i++) {
        struct shm_app app;
        if (shm_app_get(store, snap->busiest[i].appid, &app) == SHM_OK)
            snprintf(snap->busiest_names[i], sizeof snap->busiest_names[i], "%s", app.name);
    }
    return rc;
}

static int snapshot_take(struct master *m, struct snapshot *snap)
{
    memset(snap, 0, sizeof *snap);
    snap->count = m->proc_count;
    snap->infos = calloc(snap->count ? snap->count : 1, sizeof *snap->infos);
    if (snap->infos == NULL)
        return -1;
    struct shm_store *store = master_store_visit(m);
    int rc = store != NULL ? snapshot_read(m, store, snap) : SHM_ERROR;
    if (store != NULL)
        shm_store_close(store);
    if (rc != SHM_OK) {
        free(snap->infos);
        return -1;
    }
    meter_add(&snap->node, &m->meter);
    for (size_t i = 0; i < snap->count; i++)
        meter_add(&snap->node, &snap->infos[i].meter);
    return 0;
}

/* [{"appid","name","connections"}…], most connections first (app names are the developers'
 * text: json-c escapes them). */
static int busiest_apps_json(const struct snapshot *snap, struct evbuffer *out)
{
    struct json_object *list = json_object_new_array();
    if (list == NULL)
        return -1;
    for (size_t i = 0; i < snap->busiest_count; i++) {
        struct json_object *app = json_object_new_object();
        json_object_object_add(app, "appid", json_object_new_string(snap->busiest[i].appid));
        json_object_object_add(app, "name", json_object_new_string(snap->busiest_names[i]));
        json_object_object_add(app, "connections",
                               json_object_new_int64((int64_t)snap->busiest[i].connections));
        json_object_array_add(list, app);
    }
    const char *text = json_object_to_json_string_ext(list, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = text != NULL ? evbuffer_add(out, text, strlen(text)) : -1;
    json_object_put(list);
    return rc;
}

int metrics_status_json(struct master *m, struct evbuffer *out)
{
    struct snapshot snap;
    if (snapshot_take(m, &snap) != 0)
        return -1;
    static const char *const master_states[] = { "running", "quitting", "stopping" };
    uint64_t connections = 0, websockets = 0;
    evbuffer_add_printf(out,
                        "{\"version\":\"%s\",\"pid\":%ld,\"state\":\"%s\",\"generation\":%u,"
                        "\"uptime_s\":%" PRId64 ",\"workers\":[",
                        PRESENCED_VERSION, (long)getpid(), master_states[m->state], m->generation,
                        (clock_wall_ms() - m->started_wall_ms) / 1000);
    for (size_t i = 0; i < snap.count; i++) {
        const struct worker_proc *p = &m->procs[i];
        const struct shm_worker_info *info = &snap.infos[i];
        connections += info->connections;
        websockets += info->websockets;
        evbuffer_add_printf(out,
                            "%s{\"slot\":%d,\"pid\":%ld,\"generation\":%u,\"state\":\"%s\","
                            "\"started_ms\":%" PRId64 ",\"connections\":%" PRIu64
                            ",\"websockets\":%" PRIu64 ",\"accepted_total\":%" PRIu64 "}",
                            i ? "," : "", p->slot, (long)p->pid, p->generation,
                            proc_state_names[p->state], p->started_wall_ms, info->connections,
                            info->websockets, info->accepted_total);
    }
    evbuffer_add_printf(out,
                        "],\"connections\":%" PRIu64 ",\"websockets\":%" PRIu64
                        ",\"store\":{\"map_size\":%" PRIu64 ",\"used_bytes\":%" PRIu64
                        ",\"readers\":%u},\"busiest_apps\":",
                        connections, websockets, snap.store.map_size, snap.store.used_bytes,
                        snap.store.readers_used);
    int rc = busiest_apps_json(&snap, out);
    cluster_status_json(m, out);
    evbuffer_add_printf(out, "}\n");
    free(snap.infos);
    return rc;
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample per worker process, labelled by slot and pid. */
static void per_worker(struct evbuffer *out, const struct master *m, const struct snapshot *snap,
                       const char *name, const char *type, const char *help, size_t offset)
{
    family(out, name, type, help);
    for (size_t i = 0; i < snap->count; i++) {
        uint64_t value = *(const uint64_t *)((const char *)&snap->infos[i] + offset);
        evbuffer_add_printf(out, "%s{slot=\"%d\",pid=\"%ld\"} %" PRIu64 "\n", name,
                            m->procs[i].slot, (long)m->procs[i].pid, value);
    }
}

static void workers_by_state(struct evbuffer *out, const struct master *m)
{
    family(out, "presenced_workers", "gauge", "Worker processes by state.");
    for (int s = PROC_STARTING; s <= PROC_DRAINING; s++) {
        size_t n = 0;
        for (size_t i = 0; i < m->proc_count; i++)
            n += m->procs[i].state == (enum proc_state)s;
        evbuffer_add_printf(out, "presenced_workers{state=\"%s\"} %zu\n", proc_state_names[s], n);
    }
}

#define INFO_FIELD(f) offsetof(struct shm_worker_info, f)

/* Web Push (SPEC.md §7): store-wide totals, kept across restarts like the notifications'. */
static void push_families(struct evbuffer *out, const struct snapshot *snap)
{
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } rows[] = {
        { "presenced_pushes_queued_total", "counter",
          "Pushes queued: a notification for a subscribed device not connected.",
          offsetof(struct snapshot, push.queued) },
        { "presenced_pushes_sent_total", "counter", "Pushes a push service accepted (2xx).",
          offsetof(struct snapshot, push.sent) },
        { "presenced_pushes_failed_total", "counter",
          "Pushes given up: refused (4xx), not public, or still failing when they expired.",
          offsetof(struct snapshot, push.failed) },
        { "presenced_push_retries_total", "counter",
          "Push attempts retried (429, 5xx, unreachable; 413 without payload).",
          offsetof(struct snapshot, push.retried) },
        { "presenced_push_subscriptions_removed_total", "counter",
          "Subscriptions removed because their push service said they are gone (404, 410).",
          offsetof(struct snapshot, push.gone) },
        { "presenced_push_subscriptions", "gauge", "Web Push subscriptions in the store.",
          offsetof(struct snapshot, push_subscriptions) },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        family(out, rows[i].name, rows[i].type, rows[i].help);
        evbuffer_add_printf(out, "%s %" PRIu64 "\n", rows[i].name,
                            *(const uint64_t *)((const char *)snap + rows[i].offset));
    }
}

int metrics_prometheus(struct master *m, struct evbuffer *out)
{
    struct snapshot snap;
    if (snapshot_take(m, &snap) != 0)
        return -1;
    family(out, "presenced_build_info", "gauge", "The running version.");
    evbuffer_add_printf(out, "presenced_build_info{version=\"%s\",commit=\"%s\"} 1\n",
                        PRESENCED_VERSION, PRESENCED_COMMIT);
    workers_by_state(out, m);
    family(out, "presenced_worker_restarts_total", "counter", "Workers restarted after dying.");
    evbuffer_add_printf(out, "presenced_worker_restarts_total %" PRIu64 "\n", m->restarts_total);
    family(out, "presenced_reloads_total", "counter", "Configuration reloads applied.");
    evbuffer_add_printf(out, "presenced_reloads_total %" PRIu64 "\n", m->reloads_total);
    family(out, "presenced_reload_failures_total", "counter", "Reloads refused (bad config).");
    evbuffer_add_printf(out, "presenced_reload_failures_total %" PRIu64 "\n",
                        m->reload_failures_total);
    per_worker(out, m, &snap, "presenced_connections", "gauge", "Open connections.",
               INFO_FIELD(connections));
    per_worker(out, m, &snap, "presenced_websockets", "gauge", "Open device WebSockets.",
               INFO_FIELD(websockets));
    per_worker(out, m, &snap, "presenced_accepted_connections_total", "counter",
               "Connections accepted.", INFO_FIELD(accepted_total));
    per_worker(out, m, &snap, "presenced_http_requests_total", "counter", "HTTP requests.",
               INFO_FIELD(http_requests_total));
    per_worker(out, m, &snap, "presenced_websocket_messages_total", "counter",
               "WebSocket messages received.", INFO_FIELD(ws_messages_total));
    per_worker(out, m, &snap, "presenced_accept_pauses_total", "counter",
               "Times accepting paused at the file or connection limit.",
               INFO_FIELD(accept_pauses_total));
    per_worker(out, m, &snap, "presenced_store_failures_total", "counter",
               "Store writes that failed.", INFO_FIELD(store_failures_total));
    per_worker(out, m, &snap, "presenced_assertion_cache_hits_total", "counter",
               "Assertions accepted from the shared cache of verified assertions.",
               INFO_FIELD(assertion_cache_hits_total));
    per_worker(out, m, &snap, "presenced_assertions_verified_total", "counter",
               "Assertions verified (locally or by the verifier) and accepted.",
               INFO_FIELD(assertions_verified_total));
    per_worker(out, m, &snap, "presenced_assertions_refused_total", "counter",
               "Assertions refused: audience, expiry, format, signature or issuer (errno 32-34).",
               INFO_FIELD(assertions_refused_total));
    per_worker(out, m, &snap, "presenced_verifier_unavailable_total", "counter",
               "Verifications that could not complete: verifier or identity provider "
               "unreachable (errno 35).",
               INFO_FIELD(verifier_unavailable_total));
    per_worker(out, m, &snap, "presenced_app_key_failures_total", "counter",
               "Bad API keys: AppService auth refused with errno 42, status polls with 401.",
               INFO_FIELD(app_key_failures_total));
    family(out, "presenced_notifications_dropped_total", "counter",
           "Pending notifications dropped because a user's queue was full.");
    evbuffer_add_printf(out, "presenced_notifications_dropped_total %" PRIu64 "\n",
                        snap.notifications_dropped);
    family(out, "presenced_notifications_expired_total", "counter",
           "Pending notifications that expired before a device took them.");
    evbuffer_add_printf(out, "presenced_notifications_expired_total %" PRIu64 "\n",
                        snap.notifications_expired);
    push_families(out, &snap);
    family(out, "presenced_store_map_size_bytes", "gauge", "Size of the LMDB map.");
    evbuffer_add_printf(out, "presenced_store_map_size_bytes %" PRIu64 "\n", snap.store.map_size);
    family(out, "presenced_store_used_bytes", "gauge", "Bytes of the map in use.");
    evbuffer_add_printf(out, "presenced_store_used_bytes %" PRIu64 "\n", snap.store.used_bytes);
    family(out, "presenced_store_readers", "gauge", "LMDB reader slots in use.");
    evbuffer_add_printf(out, "presenced_store_readers %u\n", snap.store.readers_used);
    metrics_meter_render(out, &snap.node, &snap.census);
    metrics_cluster_render(out, m, &snap.node);
    free(snap.infos);
    return 0;
}
