/* admin_cluster_users: a cluster node's view of one user's devices on the admin endpoint — every
 * device on every node, from this node's replica of the user's record (cluster/record.h), each
 * with its node and whether its incarnation is alive as this node last heard (shm/replica.h),
 * so that GET /users/<email> answers the same on any node. */
#include "admin_users.h"

#include "../cluster/node_record.h"
#include "../cluster/record.h"
#include "../shm/replica.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#define NODES_MAX 64

struct nodes_seen {
    struct cl_node nodes[NODES_MAX];
    size_t count;
};

static void node_seen(void *arg, const char *name, uint64_t rev, int64_t heard_ms,
                      const char *json, size_t len)
{
    struct nodes_seen *seen = arg;
    const char *why;
    (void)rev;
    (void)heard_ms;
    if (seen->count < NODES_MAX &&
        cl_node_decode(json, len, name, &seen->nodes[seen->count], &why) == 0)
        seen->count++;
}

static bool owner_live(void *arg, const struct cl_owner *owner)
{
    const struct nodes_seen *seen = arg;
    for (size_t i = 0; i < seen->count; i++)
        if (strcmp(seen->nodes[i].name, owner->node) == 0)
            return cl_node_live(&seen->nodes[i], owner->epoch, owner->pid);
    return false;
}

static const char *status_name(uint8_t status)
{
    static const char *const names[] = { "offline", "unavailable", "online" };
    return status < 3 ? names[status] : "offline";
}

int admin_cluster_devices(struct shm_store *store, const char *email, struct json_object *out)
{
    char uk[CL_USER_KEY_LEN + 1];
    cl_user_key(email, uk);
    uint64_t rev;
    const void *value;
    size_t len;
    int rc = shm_cl_user_get(store, uk, &rev, &value, &len);
    if (rc == SHM_NOT_FOUND)
        return 0;
    if (rc != SHM_OK)
        return -1;
    struct cl_record rec;
    const char *why;
    if (cl_record_decode(&rec, value, len, &why) != 0) {
        cl_record_free(&rec);
        return -1;
    }
    struct nodes_seen *seen = calloc(1, sizeof *seen);
    if (seen == NULL) {
        cl_record_free(&rec);
        return -1;
    }
    shm_cl_nodes(store, node_seen, seen);
    int count = 0;
    for (size_t i = 0; i < rec.count; i++) {
        const struct cl_entry *e = &rec.entries[i];
        bool live = owner_live(seen, &e->owner);
        struct json_object *d = json_object_new_object();
        if (d == NULL)
            continue;
        json_object_object_add(d, "device", json_object_new_string(e->device));
        json_object_object_add(d, "status", json_object_new_string(status_name(e->status)));
        json_object_object_add(d, "since", json_object_new_int64(e->since_ms));
        json_object_object_add(d, "node", json_object_new_string(e->owner.node));
        json_object_object_add(d, "worker", json_object_new_int64(e->owner.pid));
        json_object_object_add(d, "alive", json_object_new_boolean(live));
        json_object_array_add(out, d);
        count += live;
    }
    free(seen);
    cl_record_free(&rec);
    return count;
}
