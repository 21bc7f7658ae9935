/* Unit tests: the marks of notifications given live to a cluster worker's connections
 * (worker/backend/early.c) — an EARLY copy, the DELIVER after it, in either order, and the
 * generations that let old marks go. */
#include "tap.h"

#include "../../worker/backend/early.h"

#include <string.h>

#define S(text) text, sizeof text - 1

static void test_marks(void)
{
    uint64_t a = early_mark(1, S("{\"id\":\"a\"}")), b = early_mark(1, S("{\"id\":\"b\"}"));
    ok(a != b, "two notifications, two marks");
    ok(early_mark(2, S("{\"id\":\"a\"}")) != a, "one notification, two connections: two marks");
    ok(a == early_mark(1, S("{\"id\":\"a\"}")), "the same content, the same mark");
    ok(a != 0 && (a & EARLY_KEY_BIT) == 0, "63 bits, never 0");
    is_int((long long)early_key_mark(EARLY_KEY_BIT | a) == (long long)a, 1,
           "a key sequence with the bit carries the mark");
    is_int((long long)early_key_mark(42), 0, "a queue's sequence carries none");
}

static void test_states(void)
{
    struct early_set set = { 0 };
    uint64_t m = early_mark(7, S("{\"id\":\"x\"}")), seq = 99;
    is_int(early_get(&set, m, &seq), EARLY_NONE, "unknown at first");
    is_int((long long)seq, 0, "and no sequence");
    is_int(early_put(&set, m, EARLY_HANDED, 0, 1000), 0, "the EARLY copy handed");
    is_int(early_get(&set, m, &seq), EARLY_HANDED, "known as handed");
    early_put(&set, m, EARLY_HANDED, 123456789012, 1001);
    is_int(early_get(&set, m, &seq), EARLY_HANDED, "still handed when its DELIVER came");
    ok(seq == 123456789012, "with the DELIVER's sequence kept for the delete");
    early_put(&set, m, EARLY_WRITTEN, 0, 1002);
    is_int(early_get(&set, m, &seq), EARLY_WRITTEN, "written");
    is_int((long long)seq, 0, "the sequence gone with the delete");
    early_free(&set);
}

static void test_generations(void)
{
    struct early_set set = { 0 };
    uint64_t old = early_mark(1, S("{\"id\":\"old\"}")), mid = early_mark(1, S("{\"id\":\"mid\"}"));
    early_put(&set, old, EARLY_DELIVERED, 0, 0);
    early_put(&set, mid, EARLY_DELIVERED, 0, EARLY_KEEP_MS);
    is_int(early_get(&set, old, NULL), EARLY_DELIVERED, "kept one generation on");
    is_int(early_get(&set, mid, NULL), EARLY_DELIVERED, "the new one too");
    early_put(&set, mid, EARLY_WRITTEN, 0, 2 * EARLY_KEEP_MS);
    is_int(early_get(&set, old, NULL), EARLY_NONE, "gone after two generations");
    is_int(early_get(&set, mid, NULL), EARLY_WRITTEN, "one noted again stays, newest state");
    early_free(&set);
}

int main(void)
{
    test_marks();
    test_states();
    test_generations();
    return tap_done();
}
