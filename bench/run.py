#!/usr/bin/env python3
"""make bench: figures for presenced measured on this machine, in one run.

- idle WebSocket cost: worker RSS growth per open /presence connection
- connection rate: WebSocket handshakes per second from one client process
- cross-process wake-up: round trip of mail + doorbell through a real worker
- identity: assertion verifications per second on one core (DS128 and RS256) and cache hits
- device channel: status update round trip, and operator notification to device latency
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "integration"))
import idp  # noqa: E402  (the test identity provider makes the assertions)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "presenced")
PROBE = os.path.join(ROOT, "build", "tools", "wake_probe")
ID_BENCH = os.path.join(ROOT, "build", "bench", "id_bench")
IDLE_CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4000"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def status(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/status", timeout=5) as r:
        return json.loads(r.read())


def start(workdir, extra=""):
    port, admin = free_port(), free_port()
    conf = os.path.join(workdir, "presenced.conf")
    with open(conf, "w") as f:
        f.write(f"listen 127.0.0.1:{port}\nadmin_listen 127.0.0.1:{admin}\nworkers 2\n"
                f"data_dir {workdir}/data\npid_file {workdir}/pid\nlog_level warning\n{extra}")
    proc = subprocess.Popen([BINARY, "-f", "-c", conf], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            if len(status(admin)["workers"]) == 2:
                return proc, port, admin
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("presenced did not start")


async def open_idle(url, count):
    started = time.monotonic()
    clients = []
    for _ in range(count):
        clients.append(await websockets.connect(url, ping_interval=None, compression=None))
    return clients, time.monotonic() - started


def identity_rates():
    with tempfile.TemporaryDirectory(prefix="presenced-bench-id-") as workdir:
        run = subprocess.run([ID_BENCH, workdir, "3000"], capture_output=True, text=True,
                             timeout=300)
        if run.returncode != 0:
            raise SystemExit(f"id_bench failed: {run.stderr}")
        return json.loads(run.stdout)


def percentiles(samples):
    samples = sorted(samples)
    return (samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6)


async def device_latencies(port, admin, assertion, rounds):
    email = "bench@example.com"
    async with websockets.connect(f"ws://127.0.0.1:{port}/presence", compression=None) as ws:
        await ws.send(json.dumps({"email": email, "status": "online", "assertion": assertion}))
        assert json.loads(await ws.recv()) == {"result": "OK"}
        statuses = []
        for i in range(rounds):
            started = time.perf_counter()
            await ws.send(json.dumps({"email": email,
                                      "status": ("online", "unavailable")[i % 2]}))
            await ws.recv()
            statuses.append(time.perf_counter() - started)
        notes = []
        url = f"http://127.0.0.1:{admin}/users/{email}/notifications"
        body = json.dumps({"source": "bench", "message": "x" * 100}).encode()
        for _ in range(rounds // 10):
            started = time.perf_counter()
            urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=5).read()
            await ws.recv()
            notes.append(time.perf_counter() - started)
        return percentiles(statuses), percentiles(notes)


def device_channel():
    issuer, user = idp.RSKey(2048), idp.DSKey(1024)
    assertion = idp.backed("bench@example.com", issuer, user, "https://bench.example",
                           iss="issuer.example")
    with tempfile.TemporaryDirectory(prefix="presenced-bench-dev-") as workdir:
        key_file = os.path.join(workdir, "issuer.json")
        with open(key_file, "w") as f:
            json.dump(issuer.public_json(), f)
        proc, port, admin = start(workdir, "audience https://bench.example\n"
                                  f"trusted_issuer issuer.example {key_file}\n"
                                  "status_rate 1000000\nstatus_burst 1000000\n")
        try:
            return asyncio.run(device_latencies(port, admin, assertion, 2000))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def scale():
    """bench/scale.py at the size this machine serves well today (see bench/README.md)."""
    env = dict(os.environ)
    for key, value in (("BENCH_DEVICES", "20000"), ("BENCH_WORKERS", "2"),
                       ("BENCH_CLIENTS", "2"), ("BENCH_STATUS_RATE", "8000"),
                       ("BENCH_NOTIFY_RATE", "2000")):
        env.setdefault(key, value)
    run = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "scale.py")], env=env,
                         capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"scale.py failed: {run.stderr[-2000:]}")
    return json.loads(run.stdout)


def versus_mosquitto():
    run = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "versus_mosquitto.py")],
                         capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"versus_mosquitto.py failed: {run.stderr[-2000:]}")
    return json.loads(run.stdout)


def main():
    rates = identity_rates()
    status_rtt, notify_latency = device_channel()
    with tempfile.TemporaryDirectory(prefix="presenced-bench-") as workdir:
        proc, port, admin = start(workdir)
        try:
            workers = [w["pid"] for w in status(admin)["workers"]]
            before = sum(rss_kib(p) for p in workers)
            loop = asyncio.new_event_loop()
            clients, seconds = loop.run_until_complete(
                open_idle(f"ws://127.0.0.1:{port}/presence", IDLE_CONNECTIONS))
            time.sleep(1.5)
            after = sum(rss_kib(p) for p in workers)
            per_conn = (after - before) * 1024 / IDLE_CONNECTIONS
            probe = subprocess.run([PROBE, f"{workdir}/data", str(workers[0]), "2000"],
                                   capture_output=True, text=True, timeout=120)
            wake = json.loads(probe.stdout)
            for ws in clients:
                loop.run_until_complete(ws.close())
            loop.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
    print(f"idle /presence WebSocket: {per_conn:.0f} bytes of worker RSS each "
          f"({IDLE_CONNECTIONS} connections, 2 workers)")
    print(f"handshakes: {IDLE_CONNECTIONS / seconds:.0f}/s from one Python client process")
    print(f"wake-up round trip through a worker: p50 {wake['p50_us']} us, p99 {wake['p99_us']} us, "
          f"max {wake['max_us']} us ({wake['answered']} rounds)")
    print(f"assertion verification, one core: {rates['ds128_per_s']}/s RS256 certificate over "
          f"DS128 assertion, {rates['rs256_per_s']}/s RS256 over RS256, "
          f"{rates['cache_hit_per_s']}/s cache hits ({rates['count']} distinct assertions each)")
    at = scale()
    print(f"at scale ({at['devices']} devices of {at['users']} users, {at['workers']} workers, "
          f"{at['clients']} loadgen processes): {at['connected']} authenticated in "
          f"{at['connect_seconds']} s ({at['connections_per_second']}/s), "
          f"{at['server_bytes_per_connection']} bytes of worker RSS each, "
          f"{at['idle_server_cpu_ms_per_5s']} ms of worker CPU in 5 idle seconds")
    print(f"  status updates: {at['status_per_second']}/s, round trip p50 "
          f"{at['status_rtt_p50_us']:.0f} us, p99 {at['status_rtt_p99_us']:.0f} us "
          f"({at['status_answered']}/{at['status_sent']} answered)")
    print(f"  AppService notify: {at['notify']['per_second']}/s accepted, to each device "
          f"p50 {at['notify_to_device_p50_us']:.0f} us, p99 {at['notify_to_device_p99_us']:.0f} us "
          f"({at['notify_received']} deliveries)")
    print(f"  reconnect storm: {at['reconnected']} re-authenticated (cached assertions) in "
          f"{at['reconnect_seconds']} s")
    vs = versus_mosquitto()
    ours, theirs = vs["presenced"], vs["mosquitto"]
    print(f"versus Mosquitto 2.0 over WebSocket, {vs['connections']} connections each, "
          f"{vs['offered_per_second']}/s offered:")
    print(f"  memory per connection: {ours['bytes_per_connection']} B (authenticated device) vs "
          f"{theirs['bytes_per_connection']} B (MQTT client): ratio {vs['memory_ratio']}")
    print(f"  throughput: {ours['per_second']} status updates/s vs {theirs['per_second']} QoS 1 "
          f"publishes/s of the same payload: ratio {vs['throughput_ratio']}")
    print(f"  round trip at saturation: p50 {ours['rtt_p50_us']:.0f} vs {theirs['rtt_p50_us']:.0f} us")
    print(f"status update round trip (one Python client, stored before the OK): "
          f"p50 {status_rtt[0]:.0f} us, p99 {status_rtt[1]:.0f} us")
    print(f"operator notification to device (admin POST to the master, store, mail, doorbell, "
          f"worker, WebSocket): p50 {notify_latency[0]:.0f} us, p99 {notify_latency[1]:.0f} us")


if __name__ == "__main__":
    sys.exit(main())
