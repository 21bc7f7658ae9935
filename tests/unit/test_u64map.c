/* Unit tests of common/u64map: puts, gets, deletions with probing chains, growth. */
#include "tap.h"

#include "../../common/u64map.h"

#include <stdint.h>

int main(void)
{
    struct u64map map = { 0 };
    ok(u64map_get(&map, 1) == NULL, "empty map finds nothing");
    int values[5000];
    int failures = 0;
    for (uint64_t k = 1; k <= 5000; k++)
        failures += u64map_put(&map, k, &values[k - 1]) != 0;
    is_int(failures, 0, "5000 puts");
    is_int(map.count, 5000, "count");
    int wrong = 0;
    for (uint64_t k = 1; k <= 5000; k++)
        wrong += u64map_get(&map, k) != &values[k - 1];
    is_int(wrong, 0, "every key finds its value after growth");
    for (uint64_t k = 1; k <= 5000; k += 2)
        u64map_del(&map, k);
    is_int(map.count, 2500, "half deleted");
    wrong = 0;
    for (uint64_t k = 1; k <= 5000; k++)
        wrong += u64map_get(&map, k) != (k % 2 ? NULL : &values[k - 1]);
    is_int(wrong, 0, "deleted keys are gone, the others still found across shifted chains");
    u64map_put(&map, 2, &values[0]);
    ok(u64map_get(&map, 2) == &values[0], "put replaces");
    is_int(map.count, 2500, "a replacement does not count twice");
    u64map_del(&map, 999999);
    is_int(map.count, 2500, "deleting an absent key changes nothing");
    u64map_free(&map);
    return tap_done();
}
