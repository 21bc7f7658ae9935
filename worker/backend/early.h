/* early: what each device connection of a cluster worker was given live, known by the
 * notification's content — an EARLY copy (cluster/inbox.h) has no queue sequence yet — so that
 * an EARLY copy and the DELIVER that follows the engine's acknowledgement reach the device
 * once, and the DELIVER deletes from the queue what the EARLY copy wrote. */
#ifndef PRESENCED_WORKER_EARLY_H
#define PRESENCED_WORKER_EARLY_H

#include "../../common/u64map.h"

#include <stddef.h>
#include <stdint.h>

/* How long a mark is kept, at least (two generations of it): an EARLY copy and its DELIVER
 * come milliseconds apart, seconds in an engine election. */
#define EARLY_KEEP_MS 20000

/* A notification key's sequence with this bit is an EARLY copy's (the rest: its mark). */
#define EARLY_KEY_BIT (UINT64_C(1) << 63)

enum early_state {
    EARLY_NONE,      /* not given to this connection lately */
    EARLY_HANDED,    /* the EARLY copy is on its way to the device */
    EARLY_WRITTEN,   /* the EARLY copy was written to the device */
    EARLY_DELIVERED, /* a DELIVER, or the claim's pages, gave it */
};

struct early_set {
    struct u64map now, before;
    int64_t since_ms;
};

/* The mark of a notification (its JSON: each has its own id) for a connection: 63 bits, never
 * 0. */
uint64_t early_mark(uint64_t conn_id, const char *json, size_t len);
/* What is known of mark; *seq (when not NULL) is the queue sequence a DELIVER brought while the
 * EARLY copy was still on its way (0: none), to be deleted once it is written. */
enum early_state early_get(const struct early_set *set, uint64_t mark, uint64_t *seq);
/* Notes mark's state (and seq, see early_get); now_ms turns the generations. 0, or -1 when out
 * of memory (then a notification may reach its device twice, never not at all). */
int early_put(struct early_set *set, uint64_t mark, enum early_state state, uint64_t seq,
              int64_t now_ms);
void early_free(struct early_set *set);

/* The mark in an EARLY copy's key sequence, or 0 when the sequence is a queue's. */
static inline uint64_t early_key_mark(uint64_t key_seq)
{
    return (key_seq & EARLY_KEY_BIT) ? key_seq & ~EARLY_KEY_BIT : 0;
}

#endif
