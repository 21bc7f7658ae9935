/* early: the marks of notifications given live to a cluster worker's connections, in two
 * generations (an old one is dropped whole: no timer, no per-entry expiry). */
#include "early.h"

#include <stdint.h>

_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t), "a mark's value holds a sequence");

/* FNV-1a over the connection and the JSON: the JSON carries the notification's own id, so two
 * notifications differ; the connection keeps each device's copy apart. */
uint64_t early_mark(uint64_t conn_id, const char *json, size_t len)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (int i = 0; i < 8; i++) {
        h ^= (conn_id >> (8 * i)) & 0xff;
        h *= UINT64_C(1099511628211);
    }
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)json[i];
        h *= UINT64_C(1099511628211);
    }
    h &= ~EARLY_KEY_BIT;
    return h != 0 ? h : 1;
}

/* A value: the state in its low 2 bits, a sequence above them (never NULL: a state is >= 1). */
static void *value_of(enum early_state state, uint64_t seq)
{
    return (void *)(uintptr_t)(seq << 2 | (uint64_t)state);
}

enum early_state early_get(const struct early_set *set, uint64_t mark, uint64_t *seq)
{
    void *v = u64map_get(&set->now, mark);
    if (v == NULL)
        v = u64map_get(&set->before, mark);
    uint64_t bits = (uint64_t)(uintptr_t)v;
    if (seq != NULL)
        *seq = bits >> 2;
    return (enum early_state)(bits & 3);
}

int early_put(struct early_set *set, uint64_t mark, enum early_state state, uint64_t seq,
              int64_t now_ms)
{
    if (now_ms - set->since_ms >= EARLY_KEEP_MS) {
        u64map_free(&set->before);
        set->before = set->now;
        set->now = (struct u64map){ 0 };
        set->since_ms = now_ms;
    }
    return u64map_put(&set->now, mark, value_of(state, seq));
}

void early_free(struct early_set *set)
{
    u64map_free(&set->now);
    u64map_free(&set->before);
}
