/* cluster_status: the "cluster" member of the admin endpoint's /status — this node's
 * incarnation and engine connection, and every node as this node's agent last saw it — read
 * from the replica the agent keeps in the store (shm/replica.h). */
#include "master.h"

#include "../cluster/node_record.h"
#include "../common/clock.h"
#include "../shm/replica.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <string.h>

struct nodes_out {
    struct evbuffer *out;
    int64_t now, timeout;
    size_t count;
};

static void node_one(void *arg, const char *name, uint64_t rev, int64_t heard_ms,
                     const char *json, size_t len)
{
    struct nodes_out *n = arg;
    struct cl_node rec;
    const char *why;
    (void)rev;
    if (cl_node_decode(json, len, name, &rec, &why) != 0)
        return;
    int64_t ago = n->now - heard_ms;
    bool alive = rec.state == CL_NODE_ALIVE && ago <= n->timeout;
    evbuffer_add_printf(n->out,
                        "%s{\"name\":\"%s\",\"epoch\":%" PRIu64 ",\"state\":\"%s\",\"alive\":%s,"
                        "\"heard_ms_ago\":%" PRId64 ",\"dead_workers\":%zu,\"declared_by\":\"%s\"}",
                        n->count++ ? "," : "", name, rec.epoch,
                        rec.state == CL_NODE_DEAD ? "dead" : "alive", alive ? "true" : "false",
                        ago < 0 ? 0 : ago, rec.dead_pid_count, rec.declared_by);
}

void cluster_status_json(struct master *m, struct evbuffer *out)
{
    if (m->cfg.cluster == NULL)
        return;
    static const char *const states[] = { "starting", "serving", "fenced" };
    struct shm_cl_self self;
    memset(&self, 0, sizeof self);
    struct shm_store *store = master_store_visit(m);
    int64_t now = clock_wall_ms();
    bool have = store != NULL && shm_cl_self_get(store, &self) == SHM_OK;
    evbuffer_add_printf(out,
                        ",\"cluster\":{\"node\":\"%s\",\"agent_pid\":%ld,\"epoch\":%" PRIu64
                        ",\"state\":\"%s\",\"engine\":{\"connected\":%s,\"server\":\"%s\"},"
                        "\"heard_self_ms_ago\":%" PRId64 ",\"fences\":%" PRIu64
                        ",\"declared\":%" PRIu64 ",\"nodes\":[",
                        m->cfg.node_name, (long)m->agent.pid, have ? self.epoch : 0,
                        have && self.state <= SHM_CL_FENCED ? states[self.state] : "starting",
                        have && self.connected ? "true" : "false", have ? self.server : "",
                        have && self.heard_ms > 0 ? now - self.heard_ms : -1, self.fences,
                        self.declared);
    struct nodes_out n = { out, now, m->cfg.node_timeout_ms, 0 };
    if (store != NULL) {
        shm_cl_nodes(store, node_one, &n);
        shm_store_close(store);
    }
    evbuffer_add_printf(out, "]}");
}
