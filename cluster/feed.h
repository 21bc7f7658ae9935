/* feed: a changefeed — every message of one stream from a sequence on, in order, through an
 * ordered push consumer that is made again from the last applied sequence whenever it skips,
 * stalls or cannot show a write known to be committed (the watchdog). */
#ifndef PRESENCED_CLUSTER_FEED_H
#define PRESENCED_CLUSTER_FEED_H

#include "engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A consumer that shows nothing (message or heartbeat) this long is made again. The engine
 * sends a heartbeat every FEED_HEARTBEAT_MS when there is nothing to deliver. */
#define FEED_HEARTBEAT_MS 1000
#define FEED_STALL_MS 3000
/* A write known committed (feed_expect) that has not arrived this long: made again. */
#define FEED_PROBE_MS 2000

struct feed;

/* One stored message of the stream, in stream order; deleted for a KV delete or purge marker. */
typedef void (*feed_apply_cb)(void *arg, const char *subject, uint64_t seq, bool deleted,
                              const void *data, size_t len, int64_t time_ms);

struct feed_options {
    struct engine *engine;
    const char *stream;      /* e.g. KV_pd_nodes */
    const char *filter;      /* subject filter, e.g. $KV.pd_nodes.> */
    uint64_t applied;        /* the last sequence already applied (0: from the start) */
    feed_apply_cb apply;
    void *arg;
};

int feed_start(struct feed **out, const struct feed_options *opt);
void feed_stop(struct feed *f);

/* The last sequence applied. */
uint64_t feed_applied(const struct feed *f);
/* True once the consumer delivered everything the stream held when it was made. */
bool feed_caught_up(const struct feed *f);
/* The watchdog: call every few hundred ms. */
void feed_tick(struct feed *f, int64_t now_ms);
/* A write of this stream committed at seq: the feed must show it within FEED_PROBE_MS. */
void feed_expect(struct feed *f, uint64_t seq, int64_t now_ms);
/* The engine connection came back: the consumer may be gone with its server. */
void feed_reconnected(struct feed *f);
uint64_t feed_recreations(const struct feed *f);

#endif
