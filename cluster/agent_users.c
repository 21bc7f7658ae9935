/* agent_users: the user records in this node's replica — one changefeed per user shard applied
 * into LMDB (record, revision, index by incarnation, cursor in one batch), the watchdog's probe
 * keys, and the cleaner, which removes the entries of dead incarnations by compare-and-set so
 * that a newer connection is never removed by a late cleanup (only dead incarnations are ever
 * cleaned, and a new epoch is never a dead one). */
#include "agent_internal.h"

#include "js.h"
#include "record.h"

#include "../common/clock.h"
#include "../common/log.h"
#include "../shm/mail.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_MS 2000

void agent_bucket_name(unsigned shard, char *out, size_t cap)
{
    snprintf(out, cap, "pd_u%u", shard);
}

struct shard_feed {
    struct agent *agent;
    unsigned shard;
    char stream[32];
};

static void index_record(struct agent *a, const char *uk, const struct cl_record *rec, bool add)
{
    for (size_t i = 0; i < rec->count; i++) {
        const struct cl_owner *o = &rec->entries[i].owner;
        if (add)
            shm_cl_incarnation_add(a->store, o->node, o->epoch, o->pid, uk);
        else
            shm_cl_incarnation_del(a->store, o->node, o->epoch, o->pid, uk);
    }
}

/* The reliable path of a takeover: a device of one of this node's workers is held by another
 * connection now (a claim on any node): that worker is told by local mail to close it (52),
 * should the claimer's CLOSE on its inbox have been lost (a core message: at most once, and an
 * interest not yet known on every engine server loses it). A connection already gone drops it. */
static void superseded_tell(struct agent *a, const struct cl_record *old,
                            const struct cl_record *rec)
{
    for (size_t i = 0; i < old->count; i++) {
        const struct cl_entry *e = &old->entries[i];
        if (e->owner.epoch != a->self.epoch || strcmp(e->owner.node, a->cfg->node_name) != 0)
            continue;
        const struct cl_entry *now = rec != NULL ? cl_record_find(rec, e->device) : NULL;
        if (now == NULL || cl_owner_same(&now->owner, &e->owner))
            continue;
        unsigned char payload[8];
        for (int b = 0; b < 8; b++)
            payload[b] = (unsigned char)(e->owner.conn >> (56 - 8 * b));
        if (shm_mail_post(a->store, (int32_t)e->owner.pid, SHM_MAIL_CLOSE_CONN, payload,
                          sizeof payload) == SHM_OK)
            agent_ring_later(a, (int32_t)e->owner.pid);
    }
}

static void user_applied(void *arg, const char *subject, uint64_t seq, bool deleted,
                         const void *data, size_t len, int64_t time_ms)
{
    struct shard_feed *sf = arg;
    struct agent *a = sf->agent;
    const char *key = strrchr(subject, '.');
    key = key != NULL ? key + 1 : subject;
    if (strlen(key) != CL_USER_KEY_LEN || strspn(key, "0123456789abcdef") != CL_USER_KEY_LEN) {
        shm_cl_cursor_put(a->store, sf->stream, seq); /* a probe key, or not ours */
        return;
    }
    uint64_t old_rev;
    const void *old_value;
    size_t old_len;
    struct cl_record old, rec;
    const char *why;
    bool had_old = shm_cl_user_get(a->store, key, &old_rev, &old_value, &old_len) == SHM_OK &&
                   cl_record_decode(&old, old_value, old_len, &why) == 0;
    if (had_old)
        index_record(a, key, &old, false);
    if (deleted) {
        shm_cl_user_put(a->store, key, seq, NULL, 0);
        if (had_old)
            agent_presence_changed(a, old.email, &old, NULL, time_ms);
    } else if (cl_record_decode(&rec, data, len, &why) != 0) {
        log_warning("user record %s at %" PRIu64 " unreadable (%s): ignored", key, seq, why);
        shm_cl_user_put(a->store, key, seq, NULL, 0);
        if (had_old)
            agent_presence_changed(a, old.email, &old, NULL, time_ms);
    } else {
        if (had_old)
            superseded_tell(a, &old, &rec);
        shm_cl_user_put(a->store, key, seq, data, len);
        index_record(a, key, &rec, true);
        agent_presence_changed(a, rec.email, had_old ? &old : NULL, &rec, time_ms);
        cl_record_free(&rec);
    }
    if (had_old)
        cl_record_free(&old);
    shm_cl_cursor_put(a->store, sf->stream, seq);
}

int agent_users_start(struct agent *a)
{
    a->user_feeds = calloc(a->shards, sizeof *a->user_feeds);
    a->probe_rev = calloc(a->shards, sizeof *a->probe_rev);
    a->shard_ctx = calloc(a->shards, sizeof *a->shard_ctx);
    if (a->user_feeds == NULL || a->probe_rev == NULL || a->shard_ctx == NULL)
        return -1;
    for (unsigned s = 0; s < a->shards; s++) {
        struct shard_feed *sf = calloc(1, sizeof *sf);
        if (sf == NULL)
            return -1;
        sf->agent = a;
        sf->shard = s;
        char bucket[32], filter[48];
        agent_bucket_name(s, bucket, sizeof bucket);
        js_kv_stream(bucket, sf->stream, sizeof sf->stream);
        snprintf(filter, sizeof filter, "$KV.%s.>", bucket);
        uint64_t applied = 0;
        shm_cl_cursor_get(a->store, sf->stream, &applied);
        struct feed_options opt = { .engine = a->engine,
                                    .stream = sf->stream,
                                    .filter = filter,
                                    .applied = applied,
                                    .apply = user_applied,
                                    .arg = sf };
        if (feed_start(&a->user_feeds[s], &opt) != 0) {
            free(sf);
            return -1;
        }
        a->shard_ctx[s] = sf;
    }
    return 0;
}

void agent_users_stop(struct agent *a)
{
    for (unsigned s = 0; a->user_feeds != NULL && s < a->shards; s++) {
        feed_stop(a->user_feeds[s]);
        free(a->shard_ctx[s]);
    }
    free(a->user_feeds);
    free(a->shard_ctx);
    a->shard_ctx = NULL;
    free(a->probe_rev);
    a->user_feeds = NULL;
    a->probe_rev = NULL;
}

/* ---- the watchdog's probes: a committed write that must show in the shard's feed ---- */

struct probe_ctx {
    struct agent *agent;
    unsigned shard;
};

static void probe_written(void *arg, const struct js_result *r)
{
    struct probe_ctx *ctx = arg;
    struct agent *a = ctx->agent;
    if (a->probe_rev != NULL && a->user_feeds != NULL) {
        if (r->outcome == JS_OK) {
            a->probe_rev[ctx->shard] = r->seq;
            feed_expect(a->user_feeds[ctx->shard], r->seq, clock_mono_ms());
        } else if (r->outcome == JS_CONFLICT)
            a->probe_rev[ctx->shard] = 0; /* re-read below at the next probe */
    }
    free(ctx);
}

static void probe_reread(void *arg, const struct js_result *r)
{
    struct probe_ctx *ctx = arg;
    if (ctx->agent->probe_rev != NULL && r->outcome == JS_OK)
        ctx->agent->probe_rev[ctx->shard] = r->seq;
    free(ctx);
}

static void probes_write(struct agent *a)
{
    char key[64], bucket[32], value[32];
    snprintf(key, sizeof key, "probe.%s", a->cfg->node_name);
    int n = snprintf(value, sizeof value, "%" PRId64, clock_wall_ms());
    for (unsigned s = 0; s < a->shards; s++) {
        struct probe_ctx *ctx = malloc(sizeof *ctx);
        if (ctx == NULL)
            return;
        *ctx = (struct probe_ctx){ a, s };
        agent_bucket_name(s, bucket, sizeof bucket);
        int rc = a->probe_rev[s] == 0 && a->last_probe_mono != 0
                     ? js_kv_get_leader(a->engine, bucket, key, probe_reread, ctx)
                     : js_kv_update(a->engine, bucket, key, value, (size_t)n, a->probe_rev[s],
                                    probe_written, ctx);
        if (rc != 0)
            free(ctx);
    }
}

void agent_users_tick(struct agent *a, int64_t now)
{
    if (a->user_feeds == NULL)
        return;
    for (unsigned s = 0; s < a->shards; s++)
        feed_tick(a->user_feeds[s], now);
    if (a->phase == AGENT_SERVING && now - a->last_probe_mono >= PROBE_MS &&
        engine_connected(a->engine)) {
        probes_write(a);
        a->last_probe_mono = now;
    }
    if (now % 1000 < AGENT_TICK_MS)
        agent_clean(a);
}

/* ---- the cleaner ---- */

struct clean_ctx {
    struct agent *agent;
    char uk[CL_USER_KEY_LEN + 1];
    char node[CONFIG_NODE_NAME_MAX + 1];
    uint64_t epoch;
    uint32_t pid;
};

static void clean_written(void *arg, const struct js_result *r)
{
    struct clean_ctx *ctx = arg;
    ctx->agent->clean_in_flight--;
    if (r->outcome != JS_OK && r->outcome != JS_CONFLICT)
        log_debug("cleaner: %s not cleaned yet", ctx->uk);
    free(ctx);
}

/* The record from its shard's leader (the replica may be behind), without the dead
 * incarnation's entries, written back on the revision read. */
static void clean_read(void *arg, const struct js_result *r)
{
    struct clean_ctx *ctx = arg;
    struct agent *a = ctx->agent;
    struct cl_record rec;
    const char *why;
    if (r->outcome != JS_OK || r->deleted || cl_record_decode(&rec, r->value, r->len, &why) != 0) {
        a->clean_in_flight--;
        free(ctx);
        return;
    }
    size_t removed =
        cl_record_release_incarnation(&rec, ctx->node, ctx->epoch, ctx->pid, clock_wall_ms());
    char bucket[32];
    agent_bucket_name(cl_user_shard(ctx->uk, a->shards), bucket, sizeof bucket);
    int rc = -1;
    if (removed > 0 && rec.count == 0)
        rc = js_kv_delete(a->engine, bucket, ctx->uk, r->seq, clean_written, ctx);
    else if (removed > 0) {
        static unsigned char buf[CL_RECORD_MAX];
        long len = cl_record_encode(&rec, buf, sizeof buf);
        if (len > 0)
            rc = js_kv_update(a->engine, bucket, ctx->uk, buf, (size_t)len, r->seq, clean_written,
                              ctx);
    }
    if (removed > 0)
        a->cleaned_entries += removed;
    cl_record_free(&rec);
    if (rc != 0) {
        a->clean_in_flight--;
        free(ctx);
    }
}

struct walk_ctx {
    struct agent *agent;
    const char *node;
    uint64_t epoch;
    int found;
};

static void clean_one(void *arg, uint32_t pid, const char *uk)
{
    struct walk_ctx *w = arg;
    struct agent *a = w->agent;
    w->found++;
    if (a->clean_in_flight >= AGENT_CLEAN_IN_FLIGHT)
        return;
    struct clean_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return;
    ctx->agent = a;
    snprintf(ctx->uk, sizeof ctx->uk, "%s", uk);
    snprintf(ctx->node, sizeof ctx->node, "%s", w->node);
    ctx->epoch = w->epoch;
    ctx->pid = pid;
    char bucket[32];
    agent_bucket_name(cl_user_shard(uk, a->shards), bucket, sizeof bucket);
    a->clean_in_flight++;
    if (js_kv_get_leader(a->engine, bucket, uk, clean_read, ctx) != 0) {
        a->clean_in_flight--;
        free(ctx);
    }
}

static int clean_incarnation(struct agent *a, const char *node, uint64_t epoch, uint32_t pid)
{
    struct walk_ctx w = { a, node, epoch, 0 };
    shm_cl_incarnation_walk(a->store, node, epoch, pid, AGENT_CLEAN_IN_FLIGHT, clean_one, &w);
    return w.found;
}

/* Whose entries this node removes: its own previous epoch and its dead workers, and those of
 * dead nodes it is the cleaner of (the lowest-named live node; any live node after a while, in
 * case that one is gone too — compare-and-set makes doing it twice harmless). */
void agent_clean(struct agent *a)
{
    if (a->phase != AGENT_SERVING || a->clean_in_flight > 0 || !engine_connected(a->engine))
        return;
    if (a->previous_epoch != 0 &&
        clean_incarnation(a, a->cfg->node_name, a->previous_epoch, 0) == 0)
        a->previous_epoch = 0;
    for (size_t i = 0; i < a->self.dead_pid_count; i++)
        if (clean_incarnation(a, a->cfg->node_name, a->self.epoch, a->self.dead_pids[i]) == 0 &&
            a->clean_in_flight == 0) {
            cl_node_pid_remove(&a->self, a->self.dead_pids[i]);
            agent_self_write(a);
            break;
        }
    for (size_t i = 0; i < a->peer_count; i++) {
        struct peer *p = &a->peers[i];
        if (!p->has_rec)
            continue;
        /* A dead node's epoch, or the epochs before the one it serves now. */
        if (p->rec.state == CL_NODE_DEAD)
            clean_incarnation(a, p->name, p->rec.epoch, 0);
        else if (p->rec.epoch > 1)
            clean_incarnation(a, p->name, p->rec.epoch - 1, 0);
        for (size_t d = 0; d < p->rec.dead_pid_count; d++)
            clean_incarnation(a, p->name, p->rec.epoch, p->rec.dead_pids[d]);
    }
}
