/* u64map: an open-addressing hash map from non-zero 64-bit keys to pointers (a worker's
 * connections by id). */
#include "u64map.h"

#include <stdlib.h>

/* Linear probing with backward-shift deletion: no tombstones, so lookups stay short. */
static size_t slot_of(const struct u64map *map, uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (map->cap - 1);
}

static int grow(struct u64map *map)
{
    size_t cap = map->cap ? map->cap * 2 : 64;
    struct u64map_slot *slots = calloc(cap, sizeof *slots), *old = map->slots;
    if (slots == NULL)
        return -1;
    size_t old_cap = map->cap;
    map->slots = slots;
    map->cap = cap;
    map->count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key != 0)
            u64map_put(map, old[i].key, old[i].value);
    free(old);
    return 0;
}

int u64map_put(struct u64map *map, uint64_t key, void *value)
{
    if ((map->count + 1) * 4 > map->cap * 3 && grow(map) != 0)
        return -1;
    size_t i = slot_of(map, key);
    while (map->slots[i].key != 0 && map->slots[i].key != key)
        i = (i + 1) & (map->cap - 1);
    if (map->slots[i].key == 0)
        map->count++;
    map->slots[i].key = key;
    map->slots[i].value = value;
    return 0;
}

void *u64map_get(const struct u64map *map, uint64_t key)
{
    if (map->cap == 0 || key == 0)
        return NULL;
    for (size_t i = slot_of(map, key); map->slots[i].key != 0; i = (i + 1) & (map->cap - 1))
        if (map->slots[i].key == key)
            return map->slots[i].value;
    return NULL;
}

void u64map_del(struct u64map *map, uint64_t key)
{
    if (map->cap == 0 || key == 0)
        return;
    size_t mask = map->cap - 1, i = slot_of(map, key);
    while (map->slots[i].key != key) {
        if (map->slots[i].key == 0)
            return;
        i = (i + 1) & mask;
    }
    /* Shift back the entries after the hole that probed past it. */
    for (size_t j = (i + 1) & mask; map->slots[j].key != 0; j = (j + 1) & mask) {
        size_t home = slot_of(map, map->slots[j].key);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            map->slots[i] = map->slots[j];
            i = j;
        }
    }
    map->slots[i].key = 0;
    map->slots[i].value = NULL;
    map->count--;
}

void u64map_free(struct u64map *map)
{
    free(map->slots);
    map->slots = NULL;
    map->cap = map->count = 0;
}
