/* record: the user record of a cluster — every device of one user on every node, in one engine
 * key changed only by compare-and-set — its codec and its pure operations (cluster/README.md). */
#include "record.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cl_record_init(struct cl_record *rec, const char *email)
{
    memset(rec, 0, sizeof *rec);
    if (email != NULL)
        snprintf(rec->email, sizeof rec->email, "%s", email);
}

void cl_record_free(struct cl_record *rec)
{
    free(rec->entries);
    rec->entries = NULL;
    rec->count = rec->cap = 0;
}

bool cl_owner_same(const struct cl_owner *a, const struct cl_owner *b)
{
    return a->epoch == b->epoch && a->pid == b->pid && a->conn == b->conn &&
           strcmp(a->node, b->node) == 0;
}

/* ---- codec ---- */

struct writer {
    unsigned char *out;
    size_t cap, len;
    bool overflow;
};

static void put_bytes(struct writer *w, const void *data, size_t len)
{
    if (w->overflow || w->cap - w->len < len) {
        w->overflow = true;
        return;
    }
    memcpy(w->out + w->len, data, len);
    w->len += len;
}

static void put_uint(struct writer *w, uint64_t value, int bytes)
{
    unsigned char buf[8];
    for (int i = bytes - 1; i >= 0; i--, value >>= 8)
        buf[i] = (unsigned char)value;
    put_bytes(w, buf, (size_t)bytes);
}

static void put_name(struct writer *w, const char *name)
{
    size_t len = strlen(name);
    put_uint(w, len, 1);
    put_bytes(w, name, len);
}

long cl_record_encode(const struct cl_record *rec, unsigned char *out, size_t cap)
{
    if (rec->count > CL_RECORD_MAX_ENTRIES)
        return -1;
    struct writer w = { out, cap, 0, false };
    put_uint(&w, CL_RECORD_VERSION, 1);
    put_name(&w, rec->email);
    put_uint(&w, rec->count, 2);
    for (size_t i = 0; i < rec->count; i++) {
        const struct cl_entry *e = &rec->entries[i];
        put_name(&w, e->device);
        put_name(&w, e->owner.node);
        put_uint(&w, e->owner.epoch, 8);
        put_uint(&w, e->owner.pid, 4);
        put_uint(&w, e->owner.conn, 8);
        put_uint(&w, e->status, 1);
        put_uint(&w, (uint64_t)e->since_ms, 8);
        put_uint(&w, (uint64_t)e->claimed_ms, 8);
    }
    put_uint(&w, rec->agg_status, 1);
    put_uint(&w, (uint64_t)rec->agg_since_ms, 8);
    return w.overflow ? -1 : (long)w.len;
}

struct reader {
    const unsigned char *in;
    size_t len, pos;
    const char *why;
};

static int take_uint(struct reader *r, int bytes, uint64_t *out)
{
    if (r->len - r->pos < (size_t)bytes) {
        r->why = "truncated";
        return -1;
    }
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value = value << 8 | r->in[r->pos++];
    *out = value;
    return 0;
}

static bool node_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* A length-prefixed name of 1 to max bytes, no NUL in it; nodes also keep to node_name's set. */
static int take_name(struct reader *r, char *out, size_t max, bool node)
{
    uint64_t len;
    if (take_uint(r, 1, &len) != 0)
        return -1;
    if (len == 0 || len > max) {
        r->why = "a name is empty or too long";
        return -1;
    }
    if (r->len - r->pos < len) {
        r->why = "truncated";
        return -1;
    }
    memcpy(out, r->in + r->pos, len);
    out[len] = '\0';
    r->pos += len;
    for (size_t i = 0; i < len; i++)
        if (out[i] == '\0' || (node && !node_char(out[i]))) {
            r->why = node ? "a node name holds a character node_name does not allow"
                          : "a name holds a NUL byte";
            return -1;
        }
    return 0;
}

static int take_entry(struct reader *r, struct cl_entry *e)
{
    uint64_t epoch, pid, conn, status, since, claimed;
    if (take_name(r, e->device, SHM_DEVICE_MAX, false) != 0 ||
        take_name(r, e->owner.node, CONFIG_NODE_NAME_MAX, true) != 0 ||
        take_uint(r, 8, &epoch) != 0 || take_uint(r, 4, &pid) != 0 ||
        take_uint(r, 8, &conn) != 0 || take_uint(r, 1, &status) != 0 ||
        take_uint(r, 8, &since) != 0 || take_uint(r, 8, &claimed) != 0)
        return -1;
    if (status > SHM_STATUS_ONLINE) {
        r->why = "a status out of range";
        return -1;
    }
    e->owner.epoch = epoch;
    e->owner.pid = (uint32_t)pid;
    e->owner.conn = conn;
    e->status = (uint8_t)status;
    e->since_ms = (int64_t)since;
    e->claimed_ms = (int64_t)claimed;
    return 0;
}

static int decode_fail(struct cl_record *rec, const char **why, const char *what)
{
    cl_record_free(rec);
    if (why != NULL)
        *why = what;
    return -1;
}

int cl_record_decode(struct cl_record *rec, const void *data, size_t len, const char **why)
{
    cl_record_init(rec, NULL);
    struct reader r = { data, len, 0, NULL };
    uint64_t version, count, agg, agg_since;
    if (take_uint(&r, 1, &version) != 0)
        return decode_fail(rec, why, r.why);
    if (version != CL_RECORD_VERSION)
        return decode_fail(rec, why, "an unknown record version");
    if (take_name(&r, rec->email, SHM_EMAIL_MAX, false) != 0 || take_uint(&r, 2, &count) != 0)
        return decode_fail(rec, why, r.why);
    if (count > CL_RECORD_MAX_ENTRIES)
        return decode_fail(rec, why, "more entries than a record holds");
    if (count > 0 && (rec->entries = calloc(count, sizeof *rec->entries)) == NULL)
        return decode_fail(rec, why, "out of memory");
    rec->cap = count;
    for (size_t i = 0; i < count; i++) {
        if (take_entry(&r, &rec->entries[i]) != 0)
            return decode_fail(rec, why, r.why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(rec->entries[j].device, rec->entries[i].device) == 0)
                return decode_fail(rec, why, "one device twice");
        rec->count = i + 1;
    }
    if (take_uint(&r, 1, &agg) != 0 || take_uint(&r, 8, &agg_since) != 0)
        return decode_fail(rec, why, r.why);
    if (agg > SHM_STATUS_ONLINE)
        return decode_fail(rec, why, "a status out of range");
    if (r.pos != len)
        return decode_fail(rec, why, "trailing bytes");
    rec->agg_status = (uint8_t)agg;
    rec->agg_since_ms = (int64_t)agg_since;
    return 0;
}

/* ---- operations ---- */

static void aggregate_update(struct cl_record *rec, int64_t now_ms)
{
    uint8_t best = SHM_STATUS_OFFLINE;
    for (size_t i = 0; i < rec->count; i++)
        if (rec->entries[i].status > best)
            best = rec->entries[i].status;
    if (best != rec->agg_status || rec->agg_since_ms == 0) {
        rec->agg_status = best;
        rec->agg_since_ms = now_ms;
    }
}

static void entry_remove(struct cl_record *rec, size_t i)
{
    memmove(&rec->entries[i], &rec->entries[i + 1], (rec->count - i - 1) * sizeof *rec->entries);
    rec->count--;
}

static long entry_index(const struct cl_record *rec, const char *device)
{
    for (size_t i = 0; i < rec->count; i++)
        if (strcmp(rec->entries[i].device, device) == 0)
            return (long)i;
    return -1;
}

const struct cl_entry *cl_record_find(const struct cl_record *rec, const char *device)
{
    long i = entry_index(rec, device);
    return i < 0 ? NULL : &rec->entries[i];
}

static int entries_reserve(struct cl_record *rec, size_t count)
{
    if (count <= rec->cap)
        return 0;
    size_t cap = rec->cap ? rec->cap * 2 : 4;
    while (cap < count)
        cap *= 2;
    struct cl_entry *grown = realloc(rec->entries, cap * sizeof *grown);
    if (grown == NULL)
        return -1;
    rec->entries = grown;
    rec->cap = cap;
    return 0;
}

int cl_record_claim(struct cl_record *rec, const struct cl_entry *me, size_t max_devices,
                    cl_live_fn live, void *live_arg, struct cl_entry *previous, bool *had_previous)
{
    *had_previous = false;
    for (size_t i = rec->count; i-- > 0;)
        if (live != NULL && !live(live_arg, &rec->entries[i].owner))
            entry_remove(rec, i);
    long at = entry_index(rec, me->device);
    if (at >= 0) {
        if (previous != NULL)
            *previous = rec->entries[at];
        *had_previous = true;
        rec->entries[at] = *me;
    } else {
        if (rec->count >= max_devices || rec->count >= CL_RECORD_MAX_ENTRIES)
            return CL_REC_TOO_MANY;
        if (entries_reserve(rec, rec->count + 1) != 0)
            return CL_REC_NOMEM;
        rec->entries[rec->count++] = *me;
    }
    aggregate_update(rec, me->claimed_ms);
    return CL_REC_OK;
}

static long owned_index(const struct cl_record *rec, const char *device,
                        const struct cl_owner *owner)
{
    long i = entry_index(rec, device);
    return i >= 0 && cl_owner_same(&rec->entries[i].owner, owner) ? i : -1;
}

int cl_record_set_status(struct cl_record *rec, const char *device, const struct cl_owner *owner,
                         uint8_t status, int64_t now_ms)
{
    long i = owned_index(rec, device, owner);
    if (i < 0)
        return CL_REC_NOT_OWNER;
    if (rec->entries[i].status == status)
        return CL_REC_UNCHANGED;
    rec->entries[i].status = status;
    rec->entries[i].since_ms = now_ms;
    aggregate_update(rec, now_ms);
    return CL_REC_OK;
}

int cl_record_release(struct cl_record *rec, const char *device, const struct cl_owner *owner,
                      int64_t now_ms)
{
    long i = owned_index(rec, device, owner);
    if (i < 0)
        return CL_REC_NOT_OWNER;
    entry_remove(rec, (size_t)i);
    aggregate_update(rec, now_ms);
    return CL_REC_OK;
}

size_t cl_record_release_incarnation(struct cl_record *rec, const char *node, uint64_t epoch,
                                     uint32_t pid, int64_t now_ms)
{
    size_t removed = 0;
    for (size_t i = rec->count; i-- > 0;) {
        const struct cl_owner *o = &rec->entries[i].owner;
        if (o->epoch == epoch && strcmp(o->node, node) == 0 && (pid == 0 || o->pid == pid)) {
            entry_remove(rec, i);
            removed++;
        }
    }
    if (removed > 0)
        aggregate_update(rec, now_ms);
    return removed;
}

uint8_t cl_record_effective(const struct cl_record *rec, cl_live_fn live, void *live_arg,
                            int64_t *since, size_t *live_count)
{
    uint8_t best = SHM_STATUS_OFFLINE;
    int64_t best_since = 0;
    size_t alive = 0;
    for (size_t i = 0; i < rec->count; i++) {
        const struct cl_entry *e = &rec->entries[i];
        if (live != NULL && !live(live_arg, &e->owner))
            continue;
        alive++;
        if (e->status > best || (e->status == best && e->since_ms > best_since)) {
            best = e->status;
            best_since = e->since_ms;
        }
    }
    if (alive > 0 && best == rec->agg_status)
        best_since = rec->agg_since_ms;
    if (alive == 0)
        best_since = 0;
    if (since != NULL)
        *since = best_since;
    if (live_count != NULL)
        *live_count = alive;
    return best;
}

void cl_user_key(const char *email, char out[CL_USER_KEY_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)email, strlen(email), digest);
    for (int i = 0; i < CL_USER_KEY_LEN / 2; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[CL_USER_KEY_LEN] = '\0';
}

unsigned cl_user_shard(const char *user_key, unsigned shards)
{
    unsigned hi = (unsigned)(user_key[0] <= '9' ? user_key[0] - '0' : user_key[0] - 'a' + 10);
    unsigned lo = (unsigned)(user_key[1] <= '9' ? user_key[1] - '0' : user_key[1] - 'a' + 10);
    return shards == 0 ? 0 : ((hi << 4) | lo) % shards;
}
