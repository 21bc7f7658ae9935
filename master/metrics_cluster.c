/* metrics_cluster: the cluster's series of /metrics on a node of a cluster (SPEC.md §8) — the
 * workers' counters as members (claims, compare-and-set conflicts, operations given up, the
 * inbox messages sent, received and sent again, engine reconnects and timeouts, the queue's
 * publishes and drops), the engine's round-trip latency, and the node's own state as its agent
 * keeps it in the store (fences, deaths declared, engine connection, nodes alive and dead). */
#include "master.h"
#include "metrics.h"

#include "../cluster/node_record.h"
#include "../common/clock.h"
#include "../common/meter.h"
#include "../shm/replica.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <string.h>

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct evbuffer *out, const char *name, const char *type, const char *help,
                uint64_t value)
{
    family(out, name, type, help);
    evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, value);
}

static void member_counters(struct evbuffer *out, const struct meter_cluster *c)
{
    static const char *const C = "counter";
    one(out, "presenced_cluster_claims_total", C,
        "Claims of an (e-mail, device) on the user records in the engine.", c->claims);
    one(out, "presenced_cluster_cas_conflicts_total", C,
        "Compare-and-sets of a user record refused by a newer write (each tried again).",
        c->cas_conflicts);
    one(out, "presenced_cluster_unavailable_total", C,
        "Operations given up on the engine after their budget (answered errno 61).",
        c->unavailable);
    one(out, "presenced_cluster_engine_reconnects_total", C,
        "Workers' engine connections lost and made again.", c->engine_reconnects);
    one(out, "presenced_cluster_engine_timeouts_total", C,
        "Engine requests unanswered by their deadline.", c->engine_timeouts);
    family(out, "presenced_cluster_inbox_messages_total", C,
           "Messages between workers of the cluster, by kind and way: live notifications sent "
           "and received (deliver: after the engine stored them; early: as their publish "
           "started), closes sent, and both sent again after a reconnect.");
    evbuffer_add_printf(out,
                        "presenced_cluster_inbox_messages_total{kind=\"deliver\",way=\"sent\"} "
                        "%" PRIu64 "\n"
                        "presenced_cluster_inbox_messages_total{kind=\"deliver\",way=\"received\"} "
                        "%" PRIu64 "\n"
                        "presenced_cluster_inbox_messages_total{kind=\"early\",way=\"sent\"} "
                        "%" PRIu64 "\n"
                        "presenced_cluster_inbox_messages_total{kind=\"early\",way=\"received\"} "
                        "%" PRIu64 "\n"
                        "presenced_cluster_inbox_messages_total{kind=\"close\",way=\"sent\"} "
                        "%" PRIu64 "\n"
                        "presenced_cluster_inbox_messages_total{kind=\"any\",way=\"resent\"} "
                        "%" PRIu64 "\n",
                        c->delivers_sent, c->delivers_received, c->early_sent, c->early_received,
                        c->closes_sent, c->inbox_resent);
    one(out, "presenced_cluster_notifications_published_total", C,
        "Notifications acknowledged by the engine's queue (PD_Q).", c->notifications_published);
    one(out, "presenced_cluster_notifications_dropped_total", C,
        "Oldest notifications dropped to make room in a full queue (max_pending_notifications).",
        c->notifications_dropped);
}

struct nodes_count {
    int64_t now, timeout;
    uint64_t alive, dead;
};

static void node_counted(void *arg, const char *name, uint64_t rev, int64_t heard_ms,
                         const char *json, size_t len)
{
    struct nodes_count *n = arg;
    struct cl_node rec;
    const char *why;
    (void)rev;
    if (cl_node_decode(json, len, name, &rec, &why) != 0)
        return;
    if (rec.state == CL_NODE_ALIVE && n->now - heard_ms <= n->timeout)
        n->alive++;
    else
        n->dead++;
}

static void node_state(struct evbuffer *out, struct master *m)
{
    struct shm_cl_self self;
    memset(&self, 0, sizeof self);
    struct nodes_count n = { clock_wall_ms(), m->cfg.node_timeout_ms, 0, 0 };
    struct shm_store *store = master_store_visit(m);
    if (store != NULL) {
        if (shm_cl_self_get(store, &self) != SHM_OK)
            memset(&self, 0, sizeof self);
        shm_cl_nodes(store, node_counted, &n);
        shm_store_close(store);
    }
    one(out, "presenced_cluster_fences_total", "counter",
        "Times this node fenced itself (cut off from the engine, or declared dead) since the "
        "master started.",
        self.fences);
    one(out, "presenced_cluster_declared_total", "counter",
        "Deaths of other nodes this node declared.", self.declared);
    one(out, "presenced_cluster_serving", "gauge",
        "1 while this node serves (its epoch registered, not fenced).",
        self.state == SHM_CL_SERVING);
    one(out, "presenced_cluster_engine_connected", "gauge",
        "1 while this node's agent is connected to an engine server.", self.connected != 0);
    family(out, "presenced_cluster_nodes", "gauge",
           "The cluster's nodes as this node sees them, alive (heard within node_timeout) or "
           "not.");
    evbuffer_add_printf(out,
                        "presenced_cluster_nodes{state=\"alive\"} %" PRIu64 "\n"
                        "presenced_cluster_nodes{state=\"dead\"} %" PRIu64 "\n",
                        n.alive, n.dead);
}

void metrics_cluster_render(struct evbuffer *out, struct master *m, const struct meter *node)
{
    if (m->cfg.cluster == NULL)
        return;
    family(out, "presenced_cluster_engine_request_seconds", "histogram",
           "The workers' engine requests (reads, compare-and-sets, queue publishes), from sent "
           "to answer read.");
    metrics_histogram_samples(out, "presenced_cluster_engine_request_seconds", "",
                              &node->cluster.engine_round_trip);
    member_counters(out, &node->cluster);
    node_state(out, m);
}
