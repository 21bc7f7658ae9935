/* histogram: a latency histogram with fixed buckets, cheap enough for a worker's hot path —
 * no allocation, no lock, a handful of comparisons and two additions per observation.
 *
 * Why fixed buckets and not a quantile sketch (HdrHistogram, t-digest): Prometheus aggregates
 * histograms by adding buckets across processes and time, which only works when every process
 * uses the same bounds; quantiles are computed at query time (histogram_quantile). */
#include "histogram.h"

#include <time.h>

const uint64_t histogram_bounds_us[HISTOGRAM_BOUNDS] = {
    25,    50,     100,    250,    500,     1000,    2500,    5000,     10000,    25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 60000000,
};

int64_t histogram_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void histogram_observe(struct histogram *h, uint64_t us)
{
    /* A binary search over 19 bounds: five comparisons. */
    size_t lo = 0, hi = HISTOGRAM_BOUNDS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (us <= histogram_bounds_us[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    h->buckets[lo]++;
    h->sum_us += us;
}

void histogram_since(struct histogram *h, int64_t since_us)
{
    if (since_us == 0)
        return;
    int64_t elapsed = histogram_now_us() - since_us;
    histogram_observe(h, elapsed > 0 ? (uint64_t)elapsed : 0);
}

uint32_t histogram_stamp(void)
{
    uint32_t stamp = (uint32_t)histogram_now_us();
    return stamp != 0 ? stamp : 1;
}

void histogram_since_stamp(struct histogram *h, uint32_t stamp)
{
    if (stamp != 0) /* unsigned arithmetic: right across the wrap */
        histogram_observe(h, (uint32_t)((uint32_t)histogram_now_us() - stamp));
}

uint64_t histogram_count(const struct histogram *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= HISTOGRAM_BOUNDS; i++)
        n += h->buckets[i];
    return n;
}

void histogram_add(struct histogram *into, const struct histogram *from)
{
    for (size_t i = 0; i <= HISTOGRAM_BOUNDS; i++)
        into->buckets[i] += from->buckets[i];
    into->sum_us += from->sum_us;
}
