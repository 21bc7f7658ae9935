/* node_record: a node's record in the engine (bucket pd_nodes, key = node_name) — its current
 * epoch (incarnation), alive or declared dead, and the workers of that epoch that died — as
 * JSON an operator can read with any NATS client. */
#include "node_record.h"

#include "../common/json_strict.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

long cl_node_encode(const struct cl_node *node, char *out, size_t cap)
{
    char pids[CL_NODE_DEAD_PIDS_MAX * 11 + 1] = "";
    size_t used = 0;
    for (size_t i = 0; i < node->dead_pid_count; i++)
        used += (size_t)snprintf(pids + used, sizeof pids - used, "%s%" PRIu32, i ? "," : "",
                                 node->dead_pids[i]);
    int n = snprintf(out, cap,
                     "{\"epoch\":%" PRIu64 ",\"state\":\"%s\",\"started\":%" PRId64
                     ",\"beat\":%" PRIu64 ",\"dead_pids\":[%s],\"declared_by\":\"%s\","
                     "\"declared_at\":%" PRId64 "}",
                     node->epoch, node->state == CL_NODE_DEAD ? "dead" : "alive", node->started_ms,
                     node->beat, pids, node->declared_by, node->declared_ms);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static int int_member(struct json_object *root, const char *key, int64_t *out, bool required)
{
    struct json_object *v;
    if (!json_object_object_get_ex(root, key, &v))
        return required ? -1 : 0;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
        return -1;
    *out = json_object_get_int64(v);
    return 0;
}

static bool name_valid(const char *s, size_t len)
{
    if (len > CONFIG_NODE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static int decode_members(struct json_object *root, struct cl_node *out, const char **why)
{
    int64_t epoch = 0, started = 0, beat = 0, declared = 0;
    struct json_object *v;
    if (int_member(root, "epoch", &epoch, true) != 0 || epoch == 0 ||
        int_member(root, "started", &started, false) != 0 ||
        int_member(root, "beat", &beat, false) != 0 ||
        int_member(root, "declared_at", &declared, false) != 0) {
        *why = "epoch, started, beat or declared_at missing or not a whole number";
        return -1;
    }
    out->epoch = (uint64_t)epoch;
    out->started_ms = started;
    out->beat = (uint64_t)beat;
    out->declared_ms = declared;
    const char *state;
    size_t len;
    if (json_strict_string(root, "state", &state, &len) != 1 ||
        (strcmp(state, "alive") != 0 && strcmp(state, "dead") != 0)) {
        *why = "state is not alive or dead";
        return -1;
    }
    out->state = strcmp(state, "dead") == 0 ? CL_NODE_DEAD : CL_NODE_ALIVE;
    const char *by;
    int has_by = json_strict_string(root, "declared_by", &by, &len);
    if (has_by < 0 || (has_by == 1 && !name_valid(by, len))) {
        *why = "declared_by is not a node name";
        return -1;
    }
    if (has_by == 1)
        memcpy(out->declared_by, by, len + 1);
    if (json_object_object_get_ex(root, "dead_pids", &v)) {
        if (!json_object_is_type(v, json_type_array) ||
            json_object_array_length(v) > CL_NODE_DEAD_PIDS_MAX) {
            *why = "dead_pids is not an array of at most 64 pids";
            return -1;
        }
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            struct json_object *pid = json_object_array_get_idx(v, i);
            if (!json_object_is_type(pid, json_type_int) || json_object_get_int64(pid) <= 0 ||
                json_object_get_int64(pid) > UINT32_MAX) {
                *why = "a dead pid is not a pid";
                return -1;
            }
            out->dead_pids[out->dead_pid_count++] = (uint32_t)json_object_get_int64(pid);
        }
    }
    return 0;
}

int cl_node_decode(const void *data, size_t len, const char *name, struct cl_node *out,
                   const char **why)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    struct json_object *root = json_strict_object(data, len);
    if (root == NULL) {
        *why = "not a JSON object";
        return -1;
    }
    int rc = decode_members(root, out, why);
    json_object_put(root);
    return rc;
}

bool cl_node_live(const struct cl_node *node, uint64_t epoch, uint32_t pid)
{
    if (node->state != CL_NODE_ALIVE || node->epoch != epoch)
        return false;
    for (size_t i = 0; pid != 0 && i < node->dead_pid_count; i++)
        if (node->dead_pids[i] == pid)
            return false;
    return true;
}

int cl_node_pid_add(struct cl_node *node, uint32_t pid)
{
    for (size_t i = 0; i < node->dead_pid_count; i++)
        if (node->dead_pids[i] == pid)
            return 0;
    if (node->dead_pid_count == CL_NODE_DEAD_PIDS_MAX)
        return -1;
    node->dead_pids[node->dead_pid_count++] = pid;
    return 0;
}

void cl_node_pid_remove(struct cl_node *node, uint32_t pid)
{
    for (size_t i = 0; i < node->dead_pid_count; i++)
        if (node->dead_pids[i] == pid) {
            node->dead_pids[i] = node->dead_pids[--node->dead_pid_count];
            return;
        }
}

int cl_heartbeat_encode(const char *node, uint64_t epoch, uint64_t seq, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s %" PRIu64 " %" PRIu64, node, epoch, seq);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static int decimal(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t next = n * 10 + (uint64_t)(s[i] - '0');
        if (next / 10 != n)
            return -1;
        n = next;
    }
    *out = n;
    return 0;
}

int cl_heartbeat_parse(const void *data, size_t len, char name[CONFIG_NODE_NAME_MAX + 1],
                       uint64_t *epoch, uint64_t *seq)
{
    const char *s = data, *end = s + len;
    const char *sp1 = memchr(s, ' ', len);
    if (sp1 == NULL || !name_valid(s, (size_t)(sp1 - s)) || sp1 == s)
        return -1;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
    if (sp2 == NULL || decimal(sp1 + 1, (size_t)(sp2 - sp1 - 1), epoch) != 0 ||
        decimal(sp2 + 1, (size_t)(end - sp2 - 1), seq) != 0)
        return -1;
    memcpy(name, s, (size_t)(sp1 - s));
    name[sp1 - s] = '\0';
    return 0;
}
