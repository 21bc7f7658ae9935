/* u64map: an open-addressing hash map from non-zero 64-bit keys to pointers (a worker's
 * connections by id). */
#ifndef PRESENCED_U64MAP_H
#define PRESENCED_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct u64map_slot {
    uint64_t key; /* 0: empty */
    void *value;
};

struct u64map {
    struct u64map_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t count;
};

/* Adds or replaces key (non-zero). Returns 0, or -1 when out of memory. */
int u64map_put(struct u64map *map, uint64_t key, void *value);
void *u64map_get(const struct u64map *map, uint64_t key);
/* Removes key; absent keys are fine. */
void u64map_del(struct u64map *map, uint64_t key);
void u64map_free(struct u64map *map);

#endif
