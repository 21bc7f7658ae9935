/* metrics: what the admin endpoint reports, gathered from the master and the workers' records. */
#ifndef PRESENCED_METRICS_H
#define PRESENCED_METRICS_H

struct master;
struct evbuffer;

int metrics_status_json(struct master *m, struct evbuffer *out);
int metrics_prometheus(struct master *m, struct evbuffer *out);

#endif
