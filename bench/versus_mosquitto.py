#!/usr/bin/env python3
"""make bench, side by side with Mosquitto 2.0 (Debian's, MQTT over WebSocket), in one run:

- a connection sweep: idle connections added a step at a time up to each count of
  BENCH_SWEEP_COUNTS (10000 … 60000) for presenced, and as far as Mosquitto can go (one process,
  at most 20,000 open files here: BENCH_SWEEP_MOSQUITTO_MAX, 19000, is its last count); at each
  count the server's memory per connection (growth of Pss) and its CPU over 5 idle seconds;
- a rate sweep on BENCH_VS_CONNECTIONS (10000) connections each: status updates (presenced) and
  QoS 1 publishes of the same payload size (Mosquitto) offered at each rate of BENCH_VS_RATES
  (5000 … 160000 per second) for 3 s, until the server saturates (answers under 85% of what is
  offered); round trips p50/p99, throughput, and server CPU per operation (schedstat of every
  server process). The point at BENCH_VS_RATE (100000) gives the table's ratios.

BENCH_PRESENCED_SWEEP names a JSON file of presenced's connection sweep already made (make bench
takes it from the scale run, which connects its 60,000 devices in steps) instead of a sweep of
its own.

Prints one JSON object; progress lines go to stderr."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from scale import (Client, free_port, identities, port_open, proc_cpu, proc_cpu_split,
                   proc_memory, server_stat, start, workers_cpu_split)

MOSQUITTO = "/usr/sbin/mosquitto"
RATES = "5000,20000,40000,60000,80000,100000,160000"
COUNTS = "10000,15000,20000,30000,45000,60000"
SATURATED = 0.85


def progress(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


def env_int(name, default):
    return int(os.environ.get(name, default))


class Server:
    """What the sweeps need of a server: its Pss, its CPU seconds (and their user and kernel
    parts), and the loadgen arguments of count connections from address addr (first: the index
    of the first)."""

    def __init__(self, name, memory, cpu, loadgen_args, cpu_split):
        self.name, self.memory, self.cpu, self.loadgen_args = name, memory, cpu, loadgen_args
        self.cpu_split = cpu_split  # (user, kernel) CPU seconds


def connection_sweep(server, counts):
    """Adds connections up to each of counts (each step its own loadgen and source address); at
    each count the memory per connection and the CPU of 5 idle seconds."""
    points, clients = [], []
    base, held = server.memory(), 0
    try:
        for count in counts:
            step = count - held
            progress(f"{server.name}: {count} idle connections")
            client = Client(server.loadgen_args(step, held, f"127.0.0.{40 + len(clients)}"))
            clients.append(client)
            ready = client.read()["ready"]
            held = count
            if ready < step:
                progress(f"{server.name}: only {ready} of {step} connected; sweep ends")
                break
            time.sleep(2)
            memory = server.memory()
            cpu_before = server.cpu()
            time.sleep(5)
            points.append({"connections": count,
                           "bytes_per_connection": round((memory - base) / count),
                           "idle_cpu_ms_per_5s": round((server.cpu() - cpu_before) * 1000, 1)})
    finally:
        for client in clients:
            client.quit()
    return points


def rate_sweep(server, connections, rates):
    """status RATE 3 at each rate on the same connections, until the server saturates."""
    client = Client(server.loadgen_args(connections, 0, "127.0.0.22"))
    ready = client.read()["ready"]
    time.sleep(2)
    points = []
    try:
        for rate in rates:
            progress(f"{server.name}: {rate}/s offered on {ready} connections")
            cpu_before, split_before = server.cpu(), server.cpu_split()
            client.send(f"status {rate} 3")
            run = client.read()
            cpu = server.cpu() - cpu_before
            user, kernel = (after - before for after, before in
                            zip(server.cpu_split(), split_before))
            answered = max(run["answered"], 1)
            points.append({"offered_per_second": rate, "per_second": run["per_second"],
                           "server_user_us_per_update": round(user * 1e6 / answered, 1),
                           "server_kernel_us_per_update": round(kernel * 1e6 / answered, 1),
                           "rtt_p50_us": run["status_rtt"]["p50_us"],
                           "rtt_p99_us": run["status_rtt"]["p99_us"],
                           "server_cpu_us_per_update": round(cpu * 1e6 /
                                                             max(run["answered"], 1), 1)})
            if run["per_second"] < SATURATED * rate:
                break
    finally:
        client.quit()
    return ready, points


def mosquitto_start(workdir, extra=""):
    """Mosquitto with a websockets listener on a free port (extra: more of that listener's
    configuration); returns the process and the port, once it accepts connections."""
    port = free_port()
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        # Debian's 2.0.11 starts its websockets listener only after a plain MQTT one.
        f.write(f"listener {free_port()} 127.0.0.1\nlistener {port}\nprotocol websockets\n"
                f"{extra}allow_anonymous true\nmax_connections -1\npersistence false\n"
                "log_dest none\nuser root\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", conf], stderr=subprocess.DEVNULL)
    for _ in range(200):
        if port_open(port):
            return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stopped(proc)
    raise SystemExit("mosquitto did not start")


def mosquitto_server(workdir):
    proc, port = mosquitto_start(workdir)
    return proc, Server("mosquitto", lambda: proc_memory(proc.pid)["Pss"],
                        lambda: proc_cpu(proc.pid),
                        lambda count, first, addr: ["mqtt", port, addr, count, first],
                        lambda: proc_cpu_split(proc.pid))


def presenced_server(workdir, devices, ping_interval=None):
    assertions = identities(workdir, (devices + 9) // 10)
    os.makedirs(f"{workdir}/data")
    # A worker holds at most 20,000 files: enough workers for the largest count.
    workers = max(2, -(-devices // 15000))
    proc, port, admin_port = start(workdir, workers, devices, label="versus",
                                   ping_interval=ping_interval)
    return proc, Server("presenced", lambda: server_stat(admin_port, proc.pid)[0]["Pss"],
                        lambda: server_stat(admin_port, proc.pid)[1],
                        lambda count, first, addr: ["devices", port, addr, count, first, 10,
                                                    assertions],
                        lambda: workers_cpu_split(admin_port))


def stopped(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def mosquitto_counts(counts, largest):
    """The counts Mosquitto can hold, and its largest when the sweep goes beyond it."""
    within = [c for c in counts if c <= largest]
    return within + ([largest] if largest not in within and max(counts) > largest else [])


def sweep_both(counts, mosquitto_largest, connections, rates, presenced_connections=None):
    """Both sweeps of both servers; presenced_connections: presenced's connection sweep already
    made (by the scale run), not made again."""
    out = {}
    if presenced_connections is not None:
        out["presenced"] = {"connections": presenced_connections}
    for name in ("presenced", "mosquitto"):
        with tempfile.TemporaryDirectory(prefix=f"presenced-vs-{name}-") as workdir:
            # A fresh server for each sweep: the rate sweep's memory starts from nothing.
            for sweep in ("connections", "rates"):
                if sweep == "connections" and name in out:
                    continue
                if name == "presenced":
                    # The connection sweep takes more than 30 s: with the default interval
                    # its later steps' idle seconds held the first connections' pings.
                    proc, server = presenced_server(
                        tempfile.mkdtemp(dir=workdir),
                        max(counts) if sweep == "connections" else connections,
                        "15m" if sweep == "connections" else None)
                else:
                    proc, server = mosquitto_server(workdir)
                try:
                    if sweep == "connections":
                        out.setdefault(name, {})["connections"] = connection_sweep(
                            server, counts if name == "presenced" else
                            mosquitto_counts(counts, mosquitto_largest))
                    else:
                        held, points = rate_sweep(server, connections, rates)
                        out[name]["rate_connections"] = held
                        out[name]["rates"] = points
                finally:
                    stopped(proc)
    return out


def at_rate(points, rate):
    """The sweep's point at rate (the last one below it when the server saturated first)."""
    below = [p for p in points if p["offered_per_second"] <= rate]
    return below[-1] if below else points[0]


def main():
    connections = env_int("BENCH_VS_CONNECTIONS", 10000)
    rate = env_int("BENCH_VS_RATE", 100000)
    rates = sorted({int(r) for r in os.environ.get("BENCH_VS_RATES", RATES).split(",")} | {rate})
    counts = sorted({int(c) for c in os.environ.get("BENCH_SWEEP_COUNTS", COUNTS).split(",")})
    given = os.environ.get("BENCH_PRESENCED_SWEEP")
    if given:
        with open(given) as f:
            given = json.load(f)
    sweeps = sweep_both(counts, env_int("BENCH_SWEEP_MOSQUITTO_MAX", 19000), connections, rates,
                        given or None)
    ours, theirs = at_rate(sweeps["presenced"]["rates"], rate), at_rate(
        sweeps["mosquitto"]["rates"], rate)
    # Memory per connection at the comparison's size (the sweep's point nearest to it).
    def memory(name):
        points = sweeps[name]["connections"]
        return min(points, key=lambda p: abs(p["connections"] - connections))
    ours_mem, theirs_mem = memory("presenced"), memory("mosquitto")
    for side, mem in ((ours, ours_mem), (theirs, theirs_mem)):
        side["bytes_per_connection"] = mem["bytes_per_connection"]
        side["memory_connections"] = mem["connections"]
    print(json.dumps({
        "connections": connections, "offered_per_second": ours["offered_per_second"],
        "presenced": ours, "mosquitto": theirs, "sweeps": sweeps,
        "memory_ratio": round(ours["bytes_per_connection"] / theirs["bytes_per_connection"], 2),
        "throughput_ratio": round(ours["per_second"] / max(theirs["per_second"], 1), 2),
        "cpu_per_update_ratio": round(ours["server_cpu_us_per_update"] /
                                      max(theirs["server_cpu_us_per_update"], 0.1), 2)}))


if __name__ == "__main__":
    sys.exit(main())
