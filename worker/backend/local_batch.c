/* local_batch: the local backend's writes of a loop turn that wait for the store's commit — the
 * status updates, stored all together just before it, and every answer that says OK only once
 * the batch holding its write is committed (claims, status updates, notifications).
 *
 * Why put the writes off: LMDB has one write lock for the node, and a worker held it from its
 * first write of a loop turn to the commit at the turn's end, through everything else the turn
 * did (reading sockets, parsing, writing replies), while every other worker that wanted to
 * write waited. Checked at once and stored at the end, an update keeps its place among the
 * replies (the channel holds its reply from the start) and the lock is held only while writing.
 * The arrays keep their size from one turn to the next: no allocation per update. */
#include "local.h"

#include "../../common/grow.h"
#include "../../shm/store.h"

#include <stdlib.h>
#include <string.h>

struct local_update {
    struct backend_done done;
    size_t email, device; /* offsets of their strings in the batch's text */
    uint64_t conn_id;
    uint8_t status;
};

/* The batch holding the waiters' writes is committed (or rolled back). Answering them writes to
 * the sockets, which may start the next batch, never add waiters to this one; those of the next
 * batch go in the other array meanwhile. */
static void waiters_committed(void *arg, int result)
{
    struct worker *w = arg;
    struct local_batch *b = &w->local_batch;
    struct backend_done *list = b->waiters;
    size_t count = b->waiter_count, cap = b->waiter_cap;
    b->waiters = b->releasing;
    b->waiter_cap = b->releasing_cap;
    b->waiter_count = 0;
    b->releasing = NULL;
    b->releasing_cap = 0;
    b->waiting = false;
    for (size_t i = 0; i < count; i++)
        list[i].fn(list[i].arg, &list[i], result == SHM_OK ? 0 : 60);
    b->releasing = list;
    b->releasing_cap = cap;
}

int local_wait_commit(struct worker *w, const struct backend_done *done)
{
    struct local_batch *b = &w->local_batch;
    if (grow_for((void **)&b->waiters, &b->waiter_cap, b->waiter_count, sizeof *b->waiters, 64) !=
        0)
        return -1;
    if (!b->waiting) {
        if (shm_batch_on_commit(w->store, waiters_committed, w) != SHM_OK)
            return -1;
        b->waiting = true;
    }
    b->waiters[b->waiter_count++] = *done;
    return 0;
}

/* Copies s into the batch's text; its offset, or (size_t)-1 when out of memory. */
static size_t text_keep(struct local_batch *b, const char *s)
{
    size_t len = strlen(s) + 1, at = b->text_len;
    if (at + len > b->text_cap) {
        size_t cap = b->text_cap ? b->text_cap : 1024;
        while (cap < at + len)
            cap *= 2;
        char *grown = realloc(b->text, cap);
        if (grown == NULL)
            return (size_t)-1;
        b->text = grown;
        b->text_cap = cap;
    }
    memcpy(b->text + at, s, len);
    b->text_len += len;
    return at;
}

int local_set_status(struct worker *w, const char *email, const char *device, uint64_t conn_id,
                     uint8_t status, const struct backend_done *done)
{
    struct local_batch *b = &w->local_batch;
    if (grow_for((void **)&b->updates, &b->update_cap, b->update_count, sizeof *b->updates, 64) !=
        0)
        return 60;
    size_t at = b->text_len, e = text_keep(b, email),
           d = e == (size_t)-1 ? e : text_keep(b, device);
    if (d == (size_t)-1) {
        b->text_len = at;
        return 60;
    }
    b->updates[b->update_count++] = (struct local_update){
        .done = *done, .email = e, .device = d, .conn_id = conn_id, .status = status
    };
    return BACKEND_LATER;
}

/* One status update, in the batch: stored (answered after the commit), or answered now with why
 * not. */
static void update_apply(struct worker *w, struct local_update *u)
{
    const char *text = w->local_batch.text;
    int rc = presence_device_status(w, text + u->email, text + u->device, u->conn_id, u->status);
    if (rc == SHM_NOT_FOUND)
        u->done.fn(u->done.arg, &u->done, 52); /* a newer connection took the device */
    else if (rc != SHM_OK || local_wait_commit(w, &u->done) != 0)
        u->done.fn(u->done.arg, &u->done, 60);
}

void local_batch_apply(struct worker *w)
{
    struct local_batch *b = &w->local_batch;
    /* In the order they came; an update's store work adds none to the list, and an answer
     * given now (52, 60) stages nothing in this turn's batch. */
    for (size_t i = 0; i < b->update_count; i++)
        update_apply(w, &b->updates[i]);
    b->update_count = 0;
    b->text_len = 0;
}

void local_batch_free(struct worker *w)
{
    struct local_batch *b = &w->local_batch;
    free(b->updates);
    free(b->text);
    free(b->waiters);
    free(b->releasing);
    memset(b, 0, sizeof *b);
}
