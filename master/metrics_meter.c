/* metrics_meter: the node-wide series of /metrics — the latency histograms and the counters the
 * processes record in their struct meter (common/meter.h), added up, and the census gauges. */
#include "metrics.h"

#include "../common/meter.h"
#include "../shm/census.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Microseconds as seconds without trailing zeros: 25 -> "0.000025", 2500000 -> "2.5". */
static void seconds_format(uint64_t us, char *out, size_t cap)
{
    snprintf(out, cap, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
    char *end = out + strlen(out) - 1;
    while (*end == '0')
        *end-- = '\0';
    if (*end == '.')
        *end = '\0';
}

/* One histogram's samples; labels is "" or `name="value",…` without the braces. */
void metrics_histogram_samples(struct evbuffer *out, const char *name, const char *labels,
                               const struct histogram *h)
{
    const char *comma = labels[0] ? "," : "";
    uint64_t cumulative = 0;
    char le[32];
    for (size_t i = 0; i < HISTOGRAM_BOUNDS; i++) {
        cumulative += h->buckets[i];
        seconds_format(histogram_bounds_us[i], le, sizeof le);
        evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name, labels, comma, le,
                            cumulative);
    }
    cumulative += h->buckets[HISTOGRAM_BOUNDS];
    char sum[32];
    seconds_format(h->sum_us, sum, sizeof sum);
    evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, comma,
                        cumulative);
    if (labels[0]) {
        evbuffer_add_printf(out, "%s_sum{%s} %s\n%s_count{%s} %" PRIu64 "\n", name, labels, sum,
                            name, labels, cumulative);
    } else {
        evbuffer_add_printf(out, "%s_sum %s\n%s_count %" PRIu64 "\n", name, sum, name, cumulative);
    }
}

static void histograms(struct evbuffer *out, const struct meter *m)
{
    char labels[96];
    family(out, "presenced_status_update_seconds", "histogram",
           "Device status updates, from the message read to its reply written.");
    metrics_histogram_samples(out, "presenced_status_update_seconds", "", &m->status_update);
    family(out, "presenced_notification_delivery_seconds", "histogram",
           "Notifications written to a device, from queued (by an app or the operator) to "
           "written: live (the device was connected) or pending (written when it bound).");
    for (int p = 0; p < METER_DELIVERIES; p++) {
        snprintf(labels, sizeof labels, "path=\"%s\"", meter_delivery_name(p));
        metrics_histogram_samples(out, "presenced_notification_delivery_seconds", labels, &m->delivery[p]);
    }
    family(out, "presenced_verification_seconds", "histogram",
           "Device credentials checked, from the update read to the outcome, by credential and "
           "outcome.");
    for (int c = 0; c < METER_CREDENTIALS; c++)
        for (int o = 0; o < METER_OUTCOMES; o++) {
            snprintf(labels, sizeof labels, "credential=\"%s\",outcome=\"%s\"",
                     meter_credential_name(c), meter_outcome_name(o));
            metrics_histogram_samples(out, "presenced_verification_seconds", labels,
                              &m->verification[c][o]);
        }
    family(out, "presenced_http_request_seconds", "histogram",
           "HTTP requests of the public port, from read to answer written, by route.");
    for (int r = 0; r < METER_ROUTES; r++) {
        snprintf(labels, sizeof labels, "route=\"%s\"", meter_route_name(r));
        metrics_histogram_samples(out, "presenced_http_request_seconds", labels, &m->http[r]);
    }
}

static void counter(struct evbuffer *out, const char *name, const char *help, uint64_t value)
{
    family(out, name, "counter", help);
    evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, value);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, uint64_t value)
{
    family(out, name, "gauge", help);
    evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, value);
}

static void counters(struct evbuffer *out, const struct meter *m)
{
    family(out, "presenced_http_responses_total", "counter",
           "HTTP answers of the public port, by route and status class.");
    for (int r = 0; r < METER_ROUTES; r++)
        for (int c = 0; c < METER_STATUS_CLASSES; c++)
            evbuffer_add_printf(out,
                                "presenced_http_responses_total{route=\"%s\",code=\"%dxx\"} "
                                "%" PRIu64 "\n",
                                meter_route_name(r), c + 2, m->http_responses[r][c]);
    family(out, "presenced_error_replies_total", "counter",
           "Error replies sent on the WebSocket channels, by channel and errno (SPEC 1).");
    for (int ch = 0; ch < METER_CHANNELS; ch++)
        for (int e = 0; e < METER_ERRNOS; e++)
            evbuffer_add_printf(out,
                                "presenced_error_replies_total{channel=\"%s\",errno=\"%d\"} "
                                "%" PRIu64 "\n",
                                meter_channel_name(ch), meter_errnos[e], m->error_replies[ch][e]);
    family(out, "presenced_notifications_queued_total", "counter",
           "Notifications queued, by source: an app's notify, or the operator's POST.");
    for (int s = 0; s < METER_SOURCES; s++)
        evbuffer_add_printf(out,
                            "presenced_notifications_queued_total{source=\"%s\"} %" PRIu64 "\n",
                            meter_source_name(s), m->notifications_queued[s]);
    counter(out, "presenced_notifications_delivered_total",
            "Notifications that left the queue written to a device (once each, however many "
            "devices got it).",
            m->notifications_delivered);
    counter(out, "presenced_appservice_auths_total", "AppService connections authenticated.",
            m->appservice_auths);
    counter(out, "presenced_appservice_events_total",
            "Presence events written to AppService connections (live and missed changes).",
            m->appservice_events);
    counter(out, "presenced_takeovers_total",
            "Device connections superseded by a newer one for the same e-mail and device "
            "(errno 52).",
            m->takeovers);
    family(out, "presenced_slow_consumers_total", "counter",
           "WebSockets closed (1008) with more than max_output_buffer unsent, by channel.");
    for (int ch = 0; ch < METER_CHANNELS; ch++)
        evbuffer_add_printf(out, "presenced_slow_consumers_total{channel=\"%s\"} %" PRIu64 "\n",
                            meter_channel_name(ch), m->slow_consumers[ch]);
}

void metrics_meter_render(struct evbuffer *out, const struct meter *node,
                          const struct shm_census *census)
{
    histograms(out, node);
    counters(out, node);
    gauge(out, "presenced_notifications_pending",
          "Notifications queued and not yet delivered, expired or swept.",
          census->notifications_pending);
    gauge(out, "presenced_appservice_connections", "Authenticated AppService connections open.",
          census->appservice_connections);
    static const char *const statuses[] = { "offline", "unavailable", "online" };
    family(out, "presenced_users", "gauge",
           "Users with a device connected, by the highest status of their connected devices "
           "(offline: connected, appearing offline).");
    for (int s = 2; s >= 0; s--)
        evbuffer_add_printf(out, "presenced_users{status=\"%s\"} %" PRIu64 "\n", statuses[s],
                            census->users[s]);
}
