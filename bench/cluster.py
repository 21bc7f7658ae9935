#!/usr/bin/env python3
"""make bench-cluster: what the cluster adds (SPEC 8: at most 2 ms at p99) — the same three
figures on one presenced and on three nodes of a cluster on three nats-servers (JetStream, R3),
in one run, on loopback:

- status round trip: a device's status update to its reply;
- status to AppService event: the update sent to the app's connection hearing it;
- notify to device: an AppService notify to the device receiving it.

In the cluster the device is on node 2, the app's connection on node 3, its grant made on node
1. Every port is a free one. Prints a table on stderr and the figures as JSON on stdout:
{"status_rtt"|"event"|"notify": {"one": {"p50_us","p99_us"}, "cluster": {...}, "ratio_p99",
"added_p99_ms"}, "rounds", "notifications", "load"}. BENCH_CLUSTER_ROUNDS sets the rounds
(2000; notifications a fifth of it, so that their p99 is not their maximum);
BENCH_CLUSTER_KEEP=DIR runs in DIR and leaves the logs there.
The machine is shared: the load average at the start and at the end is part of the output."""
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
# The engine's fixtures probe it with tests/tools/engine_probe: the build's, not the ASan one's.
os.environ.setdefault("PRESENCED_TOOLS", os.path.join(ROOT, "build", "tools"))
import idp  # noqa: E402
from engine_fixtures import Engine  # noqa: E402
from web_client import Browser  # noqa: E402

BINARY = os.environ.get("PRESENCED_BIN", os.path.join(ROOT, "build", "presenced"))
ROUNDS = int(os.environ.get("BENCH_CLUSTER_ROUNDS", "2000"))
NOTIFIES = max(ROUNDS // 5, 20)
DEVICE_AUDIENCE = "https://bench.example"
APP_DOMAIN = "bench.example"


def log(text):
    print(f"bench-cluster: {text}", file=sys.stderr, flush=True)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, data=None, timeout=5):
    req = urllib.request.Request(url, data=data)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode()


class Node:
    def __init__(self, workdir, name, extra):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.admin = free_port(), free_port()
        self.name = name
        self.conf = os.path.join(self.dir, "presenced.conf")
        self.extra = extra
        self.proc = None

    def start(self, public_url, cluster=None):
        lines = [f"listen 127.0.0.1:{self.port}", f"admin_listen 127.0.0.1:{self.admin}",
                 "workers 1", f"data_dir {self.dir}/data", f"pid_file {self.dir}/pid",
                 "log_level warning", f"public_url {public_url}", "status_rate 1000000",
                 "status_burst 1000000", "app_rate 1000000", "app_burst 1000000",
                 "offline_grace 0", self.extra]
        if cluster is not None:
            lines += [f"cluster {cluster}", f"node_name {self.name}", "cluster_shards 3"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen([BINARY, "-f", "-c", self.conf], stderr=self.log)

    def status(self):
        return json.loads(get(f"http://127.0.0.1:{self.admin}/status")[1])

    def ready(self, cluster):
        try:
            s = self.status()
        except OSError:
            return False
        if not s.get("workers"):
            return False
        return not cluster or s.get("cluster", {}).get("state") == "serving"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait(predicate, timeout=30, what="a condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"bench-cluster: timed out waiting for {what}")


def percentiles(samples):
    samples = sorted(samples)
    return {"p50_us": round(samples[len(samples) // 2] * 1e6),
            "p99_us": round(samples[int(len(samples) * 0.99)] * 1e6)}


def provision(web, admin_node, app_node, issuer, user):
    """An app provisioned by the operator, a user who grants it on the web node: its API key
    and the user's PUID, once the app's node knows both."""
    _, body = get(f"http://127.0.0.1:{admin_node.admin}/apps",
                  json.dumps({"name": "Bench", "domain": APP_DOMAIN}).encode())
    app = json.loads(body)
    appid, key = app["appid"], app["api_key"]
    browser = Browser(web.port)
    status, forms, _ = browser.forms("/login")
    fields = next(f["fields"] for f in forms if f["action"] == "/login")
    fields["assertion"] = idp.backed("bench@example.com", issuer, user, web.origin,
                                     iss="issuer.example")
    status, headers, _ = browser.post("/login", fields)
    assert status == 303, (status, headers)
    query = urllib.parse.urlencode({"redirect": f"https://{APP_DOMAIN}/x"})

    def grant_page():
        status, forms, _ = browser.forms(f"/grant/{appid}?{query}")
        return forms if status == 200 else None
    wait(lambda: grant_page() is not None, what="the app on the grant's node")
    fields = next(f["fields"] for f in grant_page() if f["action"] == f"/grant/{appid}")
    status, headers, _ = browser.post(f"/grant/{appid}", {**fields, "decision": "allow"})
    assert status == 303, (status, headers)
    puid = re.search(r"Presence-UID=([0-9a-f-]{36})", headers["location"]).group(1)

    def polled():
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{app_node.port}/myapps/{appid}"
                                         f"/status?uid={puid}",
                                         headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                return puid in r.read().decode()
        except OSError:
            return False
    wait(polled, what="the grant on the app's node")
    return appid, key, puid


async def measure(device_node, app_node, appid, key, puid, assertion):
    app = await websockets.connect(f"ws://127.0.0.1:{app_node.port}/myapps/{appid}",
                                   compression=None)
    await app.send(json.dumps({"action": "auth", "token": key}))
    assert json.loads(await app.recv()) == {"action": "auth", "result": "OK"}
    email = "bench@example.com"
    dev = await websockets.connect(f"ws://127.0.0.1:{device_node.port}/presence",
                                   compression=None)
    await dev.send(json.dumps({"email": email, "status": "online", "assertion": assertion,
                               "device": "bench"}))
    assert json.loads(await dev.recv()) == {"result": "OK"}

    async def event(status):
        while True:
            m = json.loads(await asyncio.wait_for(app.recv(), 10))
            if m.get("uid") == puid and m.get("status") == status:
                return
    await event("online")
    rtt, events = [], []
    for i in range(ROUNDS):
        status = ("unavailable", "online")[i % 2]
        started = time.perf_counter()
        await dev.send(json.dumps({"email": email, "status": status}))
        reply = json.loads(await asyncio.wait_for(dev.recv(), 10))
        rtt.append(time.perf_counter() - started)
        assert reply == {"result": "OK"}, reply
        await event(status)
        events.append(time.perf_counter() - started)
    notes = []
    for i in range(NOTIFIES):
        started = time.perf_counter()
        await app.send(json.dumps({"action": "notify", "target": puid, "source": "bench",
                                   "message": "x" * 100, "id": f"n{i}"}))
        while True:
            m = json.loads(await asyncio.wait_for(dev.recv(), 10))
            if "notifications" in m:
                break
        notes.append(time.perf_counter() - started)
        reply = json.loads(await asyncio.wait_for(app.recv(), 10))
        assert reply.get("result") == "OK", reply
    await dev.close()
    await app.close()
    return {"status_rtt": percentiles(rtt), "event": percentiles(events),
            "notify": percentiles(notes)}


def run(mode, workdir, issuer, user, key_file):
    extra = "\n".join([f"audience {DEVICE_AUDIENCE}", f"trusted_issuer issuer.example {key_file}"])
    engine = None
    if mode == "cluster":
        engine = Engine(os.path.join(workdir, "engine")).start()
        nodes = [Node(workdir, f"n{i + 1}", extra) for i in range(3)]
    else:
        nodes = [Node(workdir, "one", extra)]
    origin = f"http://127.0.0.1:{nodes[0].port}"
    try:
        for i, n in enumerate(nodes):
            n.origin = origin
            n.start(origin, engine.urls(i) if engine else None)
        for n in nodes:
            wait(lambda: n.ready(engine is not None), what=f"node {n.name}")
        web, device_node, app_node = nodes if engine else nodes * 3
        appid, key, puid = provision(web, nodes[0], app_node, issuer, user)
        assertion = idp.backed("bench@example.com", issuer, user, DEVICE_AUDIENCE,
                               iss="issuer.example")
        log(f"{mode}: {ROUNDS} status updates, {NOTIFIES} notifications")
        try:
            return asyncio.run(measure(device_node, app_node, appid, key, puid, assertion))
        except asyncio.TimeoutError:
            raise SystemExit(f"bench-cluster: {mode}: a device's status or a notification did "
                             "not reach the other node within 10 s (is the device channel on "
                             "the cluster backend?)") from None
    finally:
        for n in nodes:
            n.stop()
        if engine is not None:
            engine.stop()


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main():
    issuer, user = idp.RSKey(2048), idp.DSKey(1024)
    load = [loadavg()]
    kept = os.environ.get("BENCH_CLUSTER_KEEP")  # a folder where the nodes' logs stay
    with (contextlib.nullcontext(kept) if kept else
          tempfile.TemporaryDirectory(prefix="presenced-bench-cluster-")) as workdir:
        key_file = os.path.join(workdir, "issuer.json")
        with open(key_file, "w") as f:
            json.dump(issuer.public_json(), f)
        one = run("one", os.path.join(workdir, "a"), issuer, user, key_file)
        log("one node: " + ", ".join(f"{k} p50 {v['p50_us']} us p99 {v['p99_us']} us"
                                     for k, v in one.items()))
        three = run("cluster", os.path.join(workdir, "b"), issuer, user, key_file)
    load.append(loadavg())
    out = {"rounds": ROUNDS, "notifications": NOTIFIES, "load": load}
    names = {"status_rtt": "status round trip", "event": "status to AppService event",
             "notify": "notify to device"}
    for k in names:
        a, b = one[k], three[k]
        out[k] = {"one": a, "cluster": b, "ratio_p99": round(b["p99_us"] / max(a["p99_us"], 1), 2),
                  "added_p99_ms": round((b["p99_us"] - a["p99_us"]) / 1000, 2)}
        log(f"{names[k]:28} one p50 {a['p50_us']} us p99 {a['p99_us']} us | 3 nodes p50 "
            f"{b['p50_us']} us p99 {b['p99_us']} us | x{out[k]['ratio_p99']} at p99, "
            f"{out[k]['added_p99_ms']:+} ms (target: at most +2 ms)")
    log(f"load average {load[0]} at the start, {load[1]} at the end (a shared machine)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
