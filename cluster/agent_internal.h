/* agent_internal: what the agent's files share (agent.c: the process, its incarnation and
 * fencing; agent_nodes.c: heartbeats, the nodes' feed, the dead-node detector; agent_users.c:
 * the user records' feeds into the replica, the cleaner). Not for other modules. */
#ifndef PRESENCED_CLUSTER_AGENT_INTERNAL_H
#define PRESENCED_CLUSTER_AGENT_INTERNAL_H

#include "agent.h"
#include "engine.h"
#include "feed.h"
#include "member.h"
#include "node_record.h"
#include "record.h"

#include "../common/list.h"
#include "../common/wake.h"
#include "../shm/replica.h"
#include "../shm/store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define AGENT_BUCKET_NODES "pd_nodes"
#define AGENT_BUCKET_META "pd_meta"
#define AGENT_STREAM_QUEUE "PD_Q"
#define AGENT_HEARTBEAT_SUBJECT "pd.hb"
#define AGENT_HEARTBEAT_MS 500
#define AGENT_REFRESH_MS 2000
#define AGENT_TICK_MS 250
/* Own heartbeats heard within this: the bus works (the bus-health rule). */
#define AGENT_BUS_FRESH_MS 1500
/* Other suspecting nodes declare after node_timeout + this, should the cleaner be dead too. */
#define AGENT_BACKUP_DECLARE_MS 3000
#define AGENT_CLEAN_IN_FLIGHT 64

enum agent_phase {
    AGENT_CONNECTING, /* waiting for the engine */
    AGENT_ASSETS,     /* making buckets and streams, checking the layout */
    AGENT_REGISTER,   /* writing a new epoch into pd_nodes */
    AGENT_SERVING,
    AGENT_FENCED, /* cut off or declared dead: a new epoch once the bus works again */
};

struct peer {
    char name[CONFIG_NODE_NAME_MAX + 1];
    struct cl_node rec; /* from the nodes' feed */
    uint64_t rev;
    bool has_rec;
    int64_t heard_mono; /* last heartbeat or record change */
    bool declaring;
    bool cleaning;
};

struct agent {
    const struct config *cfg;
    uv_loop_t loop;
    struct engine *engine;
    struct shm_store *store;
    struct wake_bells bells;
    uv_poll_t bell_poll;
    bool bell_open;
    uv_signal_t signals[4];
    uv_timer_t tick, heartbeat, refresh;
    uv_prepare_t commit;
    enum agent_phase phase;
    int assets_pending;
    bool assets_failed;
    int ready_fd;
    bool stopping;
    int exit_code;

    /* This node's record and incarnation. */
    struct cl_node self;
    uint64_t self_rev;
    bool writing_self; /* a CAS of our record is in flight */
    bool self_dirty;   /* and another change waits for it */
    int64_t self_heard_mono, bus_ok_since_mono, last_refresh_mono;
    uint64_t hb_seq;
    struct engine_sub *hb_sub;
    struct shm_cl_self view;
    uint64_t previous_epoch; /* cleaned after registering */
    /* The epoch the workers serve under when this agent replaced one that died (0: none). */
    uint64_t inherited_epoch;

    struct peer *peers;
    size_t peer_count, peer_cap;
    struct feed *nodes_feed;
    struct feed **user_feeds;
    struct shard_feed **shard_ctx; /* what each user feed applies with */
    unsigned shards;
    uint64_t *probe_rev; /* per shard: our probe key's revision */
    int64_t last_probe_mono;

    int clean_in_flight;
    uint64_t cleaned_entries;

    /* Workers mailed in the batch, rung once it is committed. */
    int32_t rings[64];
    size_t ring_count;
    struct agent_shared *shared; /* apps, grants, web sessions (agent_shared.c) */
    struct list_link holds;      /* falls held for offline_grace (agent_presence.c) */
    size_t hold_count;
};

/* agent.c */
void agent_fence(struct agent *a, const char *why);
void agent_self_write(struct agent *a);
void agent_view_publish(struct agent *a);
/* Rings worker pid once the batch (with its mail) is committed. */
void agent_ring_later(struct agent *a, int32_t pid);

/* agent_nodes.c */
int agent_nodes_start(struct agent *a);
void agent_nodes_stop(struct agent *a);
void agent_heartbeat_send(struct agent *a);
void agent_detect(struct agent *a, int64_t now_mono);
struct peer *agent_peer(struct agent *a, const char *name, bool add);
bool agent_owner_live(void *arg, const struct cl_owner *owner);

/* agent_users.c */
int agent_users_start(struct agent *a);
void agent_users_stop(struct agent *a);
void agent_users_tick(struct agent *a, int64_t now_mono);
void agent_clean(struct agent *a);
void agent_bucket_name(unsigned shard, char *out, size_t cap);

/* agent_presence.c: a user's record changed from old (NULL: none known) to rec (NULL: the user
 * has none now), at changed_ms (the engine's time of the write): the presence apps see, stored
 * and told when it changed, a departure's fall held for offline_grace (ended by the tick). */
void agent_presence_changed(struct agent *a, const char *email, const struct cl_record *old,
                            const struct cl_record *rec, int64_t changed_ms);
void agent_presence_tick(struct agent *a, int64_t now_mono);
void agent_presence_stop(struct agent *a);

/* agent_shared.c */
int agent_shared_start(struct agent *a);
void agent_shared_stop(struct agent *a);
void agent_shared_free(struct agent *a);
void agent_shared_tick(struct agent *a, int64_t now_mono);
void agent_shared_reconnected(struct agent *a);
/* Makes what the outbox holds in the engine (at a doorbell, and every tick). */
void agent_shared_take(struct agent *a);
/* The shared records' buckets and their max ages (0: none), for the assets. */
void agent_shared_buckets(struct agent *a, const char **names, int64_t *max_age_ms, size_t *count);

#endif
