/* histogram: a latency histogram with fixed buckets, cheap enough for a worker's hot path —
 * no allocation, no lock, a handful of comparisons and two additions per observation. */
#ifndef PRESENCED_HISTOGRAM_H
#define PRESENCED_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

/* The upper bounds of the buckets, in microseconds (25 us to 60 s, about 2.5x apart); a last,
 * unbounded bucket takes the rest. Every histogram has the same ones, so dashboards can sum
 * and compare them. */
#define HISTOGRAM_BOUNDS 19
extern const uint64_t histogram_bounds_us[HISTOGRAM_BOUNDS];

/* Only 64-bit counts: a histogram is copied, compared and stored as an array of them. */
struct histogram {
    uint64_t buckets[HISTOGRAM_BOUNDS + 1]; /* not cumulative: each counts its own range */
    uint64_t sum_us;
};

/* Monotonic microseconds: what durations are measured with. */
int64_t histogram_now_us(void);

void histogram_observe(struct histogram *h, uint64_t us);
/* Records the time from since_us (histogram_now_us) to now; nothing when since_us is 0. */
void histogram_since(struct histogram *h, int64_t since_us);
/* A 32-bit stamp of now, for what a connection keeps (four bytes where a histogram_now_us
 * takes eight): durations up to 71 minutes, its wrap. Never 0, which stands for "none". */
uint32_t histogram_stamp(void);
/* Records the time since stamp; nothing when stamp is 0. */
void histogram_since_stamp(struct histogram *h, uint32_t stamp);
/* How many observations it holds. */
uint64_t histogram_count(const struct histogram *h);
/* into += from, bucket by bucket. */
void histogram_add(struct histogram *into, const struct histogram *from);

#endif
