/* metrics: what the admin endpoint reports, gathered from the master and the workers' records. */
#ifndef PRESENCED_METRICS_H
#define PRESENCED_METRICS_H

struct master;
struct evbuffer;
struct meter;
struct shm_census;

int metrics_status_json(struct master *m, struct evbuffer *out);
int metrics_prometheus(struct master *m, struct evbuffer *out);

/* metrics_meter.c: the node-wide histograms, counters and gauges (node: every process's meter
 * added up). */
void metrics_meter_render(struct evbuffer *out, const struct meter *node,
                          const struct shm_census *census);

#endif
