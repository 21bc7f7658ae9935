#!/usr/bin/env python3
"""make bench, side by side with Mosquitto 2.0 (Debian's, MQTT over WebSocket): the same number
of idle connections for memory per connection, and the same offered rate of status updates
(presenced) and QoS 1 publishes of the same payload size (Mosquitto) for throughput and round
trips. Prints one JSON object; BENCH_VS_CONNECTIONS (10000) and BENCH_VS_RATE (100000/s offered)
set the sizes."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from scale import Client, identities, proc_cpu, proc_memory, server_stat, start

MOSQUITTO = "/usr/sbin/mosquitto"


def load_and_measure(args, rate, server_rss, server_cpu):
    """Opens the connections of one loadgen, measures the server's memory growth over them, then
    a 3 s run at rate per second. server_rss() gives the server's Pss (resident bytes, shared
    pages divided among the processes sharing them), server_cpu() its CPU seconds."""
    rss_before = server_rss()
    client = Client(args)
    ready = client.read()
    time.sleep(2)
    rss_after = server_rss()
    cpu_before = server_cpu()
    client.send(f"status {rate} 3")
    run = client.read()
    cpu = server_cpu() - cpu_before
    client.quit()
    answered = max(run["answered"], 1)
    return {"connected": ready["ready"],
            "bytes_per_connection": round((rss_after - rss_before) / ready["ready"]),
            "per_second": run["per_second"], "rtt_p50_us": run["status_rtt"]["p50_us"],
            "rtt_p99_us": run["status_rtt"]["p99_us"],
            "server_cpu_us_per_update": round(cpu * 1e6 / answered, 1)}


def mosquitto(workdir, connections, rate):
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        # Debian's 2.0.11 starts its websockets listener only after a plain MQTT one.
        f.write("listener 18502 127.0.0.1\nlistener 18503\nprotocol websockets\n"
                "allow_anonymous true\nmax_connections -1\npersistence false\n"
                "log_dest none\nuser root\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", conf], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        return load_and_measure(["mqtt", 18503, "127.0.0.21", connections, 0], rate,
                                lambda: proc_memory(proc.pid)["Pss"],
                                lambda: proc_cpu(proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def presenced(workdir, connections, rate):
    assertions = identities(workdir, (connections + 9) // 10)
    os.makedirs(f"{workdir}/data")
    proc, port, admin_port = start(workdir, 2, connections)
    try:
        return load_and_measure(["devices", port, "127.0.0.22", connections, 0, 10, assertions],
                                rate, lambda: server_stat(admin_port, proc.pid)[0]["Pss"],
                                lambda: server_stat(admin_port, proc.pid)[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main():
    connections = int(os.environ.get("BENCH_VS_CONNECTIONS", "10000"))
    rate = int(os.environ.get("BENCH_VS_RATE", "100000"))
    with tempfile.TemporaryDirectory(prefix="presenced-vs-") as workdir:
        ours = presenced(workdir, connections, rate)
        theirs = mosquitto(workdir, connections, rate)
    print(json.dumps({
        "connections": connections, "offered_per_second": rate,
        "presenced": ours, "mosquitto": theirs,
        "memory_ratio": round(ours["bytes_per_connection"] / theirs["bytes_per_connection"], 2),
        "throughput_ratio": round(ours["per_second"] / max(theirs["per_second"], 1), 2),
        "cpu_per_update_ratio": round(ours["server_cpu_us_per_update"] /
                                      max(theirs["server_cpu_us_per_update"], 0.1), 2)}))


if __name__ == "__main__":
    sys.exit(main())
