#!/usr/bin/env python3
"""make bench, TLS side by side with Mosquitto 2.0: BENCH_VS_TLS_CONNECTIONS (3000) idle TLS
WebSockets on each (presenced: authenticated devices on 2 workers; Mosquitto: MQTT clients past
CONNACK on its websockets listener), both with the same self-signed ECDSA P-256 certificate
(the cheapest handshake), then status updates (QoS 1 publishes for Mosquitto) at
BENCH_VS_TLS_RATE (5000/s) for 3 s. Reports each server's memory per idle connection (growth of
Pss), the time to connect them, round trips, and server CPU per update over TLS.

Prints one JSON object; progress lines go to stderr."""
import json
import os
import subprocess
import sys
import tempfile
import time

from scale import Client, identities, proc_cpu, proc_memory, server_stat, start
from versus_mosquitto import env_int, mosquitto_start, progress, stopped


def tls_files(workdir):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1, and its key."""
    cert, key = os.path.join(workdir, "tls.crt"), os.path.join(workdir, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    return cert, key


def measure(name, args, memory, cpu, rate):
    """One loadgen: connect (memory growth per connection), then updates at rate for 3 s."""
    progress(f"{name}: {args[3]} TLS connections")
    before = memory()
    client = Client(args)
    try:
        ready = client.read()
        time.sleep(2)
        grown = memory() - before
        progress(f"{name}: {rate}/s over TLS")
        cpu_before = cpu()
        client.send(f"status {rate} 3")
        run = client.read()
        used = cpu() - cpu_before
    finally:
        client.quit()
    return {"connected": ready["ready"], "connect_seconds": ready["seconds"],
            "bytes_per_connection": round(grown / max(ready["ready"], 1)),
            "per_second": run["per_second"], "rtt_p50_us": run["status_rtt"]["p50_us"],
            "rtt_p99_us": run["status_rtt"]["p99_us"],
            "server_cpu_us_per_update": round(used * 1e6 / max(run["answered"], 1), 1)}


def presenced(workdir, tls, connections, rate):
    assertions = identities(workdir, (connections + 9) // 10)
    os.makedirs(f"{workdir}/data")
    proc, port, admin_port = start(workdir, 2, connections,
                                   f"tls_cert {tls[0]}\ntls_key {tls[1]}\n", label="wss")
    try:
        return measure("presenced", ["devices", f"tls:{port}", "127.0.0.23", connections, 0, 10,
                                     assertions],
                       lambda: server_stat(admin_port, proc.pid)[0]["Pss"],
                       lambda: server_stat(admin_port, proc.pid)[1], rate)
    finally:
        stopped(proc)


def mosquitto(workdir, tls, connections, rate):
    proc, port = mosquitto_start(workdir, f"certfile {tls[0]}\nkeyfile {tls[1]}\n")
    try:
        return measure("mosquitto", ["mqtt", f"tls:{port}", "127.0.0.24", connections, 0],
                       lambda: proc_memory(proc.pid)["Pss"], lambda: proc_cpu(proc.pid), rate)
    finally:
        stopped(proc)


def main():
    connections = env_int("BENCH_VS_TLS_CONNECTIONS", 3000)
    rate = env_int("BENCH_VS_TLS_RATE", 5000)
    with tempfile.TemporaryDirectory(prefix="presenced-wss-") as workdir:
        tls = tls_files(workdir)
        ours = presenced(tempfile.mkdtemp(dir=workdir), tls, connections, rate)
        theirs = mosquitto(workdir, tls, connections, rate)
    print(json.dumps({
        "connections": connections, "offered_per_second": rate,
        "presenced": ours, "mosquitto": theirs,
        "memory_ratio": round(ours["bytes_per_connection"] /
                              max(theirs["bytes_per_connection"], 1), 2),
        "cpu_per_update_ratio": round(ours["server_cpu_us_per_update"] /
                                      max(theirs["server_cpu_us_per_update"], 0.1), 2)}))


if __name__ == "__main__":
    sys.exit(main())
