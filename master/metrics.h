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
struct histogram;
/* One histogram's samples in the text format; labels "" or `name="value",...`. */
void metrics_histogram_samples(struct evbuffer *out, const char *name, const char *labels,
                               const struct histogram *h);

/* metrics_cluster.c: the cluster's series (nothing without cluster). */
void metrics_cluster_render(struct evbuffer *out, struct master *m, const struct meter *node);

#endif
