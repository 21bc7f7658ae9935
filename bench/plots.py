#!/usr/bin/env python3
"""make bench's figures: PNGs drawn with Debian's python3-matplotlib from the results of one
run (bench/run.py saves them as JSON), to look at rather than read:

- connections.png: server memory per connection and CPU over 5 idle seconds against the number
  of connections held, presenced and Mosquitto, and the largest run's point (make bench-million,
  when build/bench/million.json is there);
- status_rtt.png: status round trip p50 and p99 against the offered rate, up to saturation,
  presenced and Mosquitto, with the throughput each reached;
- notify_cdf.png: the distribution of notification latency (AppService to a device held by
  another worker).

Usage: plots.py RESULTS.json OUTDIR — prints the files written, one a line."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"presenced": "#0060df", "mosquitto": "#d7264c"}


def connections_figure(data, path):
    """data: the sweeps, and the largest run (make bench-million's figures) or None."""
    sweeps, largest = data
    fig, (memory, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in ("presenced", "mosquitto"):
        points = sweeps.get(name, {}).get("connections", [])
        if not points:
            continue
        xs = [p["connections"] for p in points]
        memory.plot(xs, [p["bytes_per_connection"] for p in points], "o-", label=name,
                    color=COLORS[name])
        cpu.plot(xs, [p["idle_cpu_ms_per_5s"] for p in points], "o-", label=name,
                 color=COLORS[name])
    if largest:
        # Its own run (another time, maybe another commit): a point of its own, on a log axis.
        label = f"presenced, make bench-million ({largest.get('date', '')})"
        memory.plot([largest["connections"]], [largest["bytes_per_connection"]], "D",
                    color=COLORS["presenced"], mfc="white", label=label)
        cpu.plot([largest["connections"]], [largest["idle_cpu_ms_per_5s"]], "D",
                 color=COLORS["presenced"], mfc="white", label=label)
        for ax in (memory, cpu):
            ax.set_xscale("log")
    memory.set(title="Server memory per connection (Pss growth)", xlabel="connections held",
               ylabel="bytes per connection")
    cpu.set(title="Server CPU over 5 idle seconds", xlabel="connections held",
            ylabel="CPU ms per 5 s")
    for ax in (memory, cpu):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def status_rtt_figure(sweeps, path):
    fig, (rtt, done) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in ("presenced", "mosquitto"):
        points = sweeps.get(name, {}).get("rates", [])
        if not points:
            continue
        xs = [p["offered_per_second"] for p in points]
        rtt.plot(xs, [p["rtt_p50_us"] for p in points], "o-", color=COLORS[name],
                 label=f"{name} p50")
        rtt.plot(xs, [p["rtt_p99_us"] for p in points], "s--", color=COLORS[name],
                 label=f"{name} p99")
        done.plot(xs, [p["per_second"] for p in points], "o-", color=COLORS[name], label=name)
    top = max([p["offered_per_second"] for s in sweeps.values() for p in s.get("rates", [])],
              default=1)
    done.plot([0, top], [0, top], ":", color="grey", label="offered")
    rtt.set(title="Status round trip against offered rate", xlabel="offered per second",
            ylabel="round trip (us)", yscale="log")
    done.set(title="Throughput against offered rate", xlabel="offered per second",
             ylabel="answered per second")
    for ax in (rtt, done):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merged_cdf(cdfs):
    """One distribution from the loadgens' percentile lists, each weighted by its count."""
    weighted = []
    for c in cdfs:
        values = c["cdf_us"]
        if c["count"] and values:
            weighted += [(v, c["count"] / len(values)) for v in values]
    weighted.sort()
    total = sum(w for _, w in weighted) or 1
    xs, ys, acc = [], [], 0.0
    for value, weight in weighted:
        acc += weight
        xs.append(max(value, 1))
        ys.append(acc / total)
    return xs, ys


def notify_cdf_figure(notify, path):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    xs, ys = merged_cdf(notify.get("cdfs", []))
    ax.plot(xs, ys, color=COLORS["presenced"],
            label=f"{notify.get('received', 0)} deliveries at "
                  f"{notify.get('notify', {}).get('per_second', 0)}/s")
    for q in (0.5, 0.99):
        ax.axhline(q, color="grey", linestyle=":", linewidth=0.8)
    ax.set(title="Notification latency: AppService to a device on another worker",
           xlabel="latency (us)", ylabel="fraction delivered within", xscale="log", ylim=(0, 1))
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw(results, outdir):
    """Writes the figures of results (run.py's JSON) into outdir; returns their paths."""
    os.makedirs(outdir, exist_ok=True)
    sweeps = results["versus"]["sweeps"]
    written = []
    for name, draw_one, data in (("connections.png", connections_figure,
                                  (sweeps, results.get("million"))),
                                 ("status_rtt.png", status_rtt_figure, sweeps),
                                 ("notify_cdf.png", notify_cdf_figure,
                                  results["scale"]["notify_across_workers"])):
        path = os.path.join(outdir, name)
        draw_one(data, path)
        written.append(path)
    return written


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        results = json.load(f)
    for path in draw(results, sys.argv[2]):
        print(path)


if __name__ == "__main__":
    main()
