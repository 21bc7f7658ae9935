#!/usr/bin/env python3
"""make bench: figures for presenced measured on this machine, in one run.

- idle WebSocket cost: worker RSS growth per open /presence connection
- connection rate: WebSocket handshakes per second from one client process
- cross-process wake-up: round trip of mail + doorbell through a real worker
- identity: assertion verifications per second on one core (DS128 and RS256) and cache hits
- device channel: status update round trip, and operator notification to device latency
- Web Push: pushes per second of CPU on one core (RFC 8291 encryption, VAPID signing)
- at scale (scale.py) and side by side with Mosquitto (versus_mosquitto.py, with its sweeps;
  versus_wss.py over TLS)
- a cluster (cluster.py, short): the status round trip, status-to-AppService event and
  notify-to-device with 3 nodes on 3 engine servers, as ratios to one node in the same run

It prints the table, saves every figure as JSON (build/bench/results.json), draws the plots
(plots.py) into bench/figures/ and puts them, with the machine and its load, in the "Plots"
section of bench/RESULTS.md. BENCH_QUICK=1 runs every part small (a minute or two, to try the
tooling on a busy machine) and writes to build/bench/ only.
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

import plots

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "integration"))
import idp  # noqa: E402  (the test identity provider makes the assertions)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "presenced")
PROBE = os.path.join(ROOT, "build", "tools", "wake_probe")
ID_BENCH = os.path.join(ROOT, "build", "bench", "id_bench")
QUICK = os.environ.get("BENCH_QUICK") == "1"
# What BENCH_QUICK=1 sets (each BENCH_* variable already set wins).
QUICK_SIZES = (("BENCH_CONNECTIONS", "500"), ("BENCH_DEVICES", "4000"), ("BENCH_WORKERS", "2"),
               ("BENCH_CLIENTS", "2"), ("BENCH_STATUS_RATE", "2000"),
               ("BENCH_NOTIFY_RATE", "1000"), ("BENCH_EVENT_RATE", "200"),
               ("BENCH_PROBES", "50"), ("BENCH_RECONNECT", "2000"),
               ("BENCH_VS_CONNECTIONS", "2000"), ("BENCH_VS_RATE", "10000"),
               ("BENCH_VS_RATES", "2000,5000,10000,20000"),
               ("BENCH_SWEEP_COUNTS", "2000,4000,6000"), ("BENCH_SWEEP_MOSQUITTO_MAX", "5000"),
               ("BENCH_VS_TLS_CONNECTIONS", "1000"), ("BENCH_VS_TLS_RATE", "1000"),
               ("BENCH_CLUSTER_ROUNDS", "300"))
if QUICK:
    for _key, _value in QUICK_SIZES:
        os.environ.setdefault(_key, _value)
PUSH_BENCH = os.path.join(ROOT, "build", "bench", "push_bench")
IDLE_CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4000"))
BUILD_BENCH = os.path.join(ROOT, "build", "bench")
FIGURES = os.path.join(BUILD_BENCH, "figures") if QUICK else os.path.join(ROOT, "bench",
                                                                            "figures")
RESULTS_MD = os.path.join(ROOT, "bench", "RESULTS.md")
QUICK_NOTE = " (BENCH_QUICK: small sizes, not a standard run)"
PLOTS_BEGIN, PLOTS_END = "<!-- plots: written by make bench -->", "<!-- plots end -->"


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
        run = subprocess.run([ID_BENCH, workdir, "1000"], capture_output=True, text=True,
                             timeout=300)
        if run.returncode != 0:
            raise SystemExit(f"id_bench failed: {run.stderr}")
        return json.loads(run.stdout)


def push_rates():
    run = subprocess.run([PUSH_BENCH, "1000"], capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise SystemExit(f"push_bench failed: {run.stderr}")
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


# The standard run: the targets of the issue that introduced make bench (bench/RESULTS.md).
SCALE_DEFAULTS = (("BENCH_DEVICES", "60000"), ("BENCH_WORKERS", "4"), ("BENCH_CLIENTS", "4"),
                  ("BENCH_DEVICES_PER_USER", "2"), ("BENCH_STATUS_RATE", "10000"),
                  ("BENCH_NOTIFY_RATE", "5000"), ("BENCH_EVENT_RATE", "1000"),
                  ("BENCH_RECONNECT", "50000"),
                  # The 30,200 assertions (RSA 2048 certificates, about 35 s to make) are kept
                  # for a week and taken by the next runs.
                  ("BENCH_ASSERTIONS_DIR", os.path.join(ROOT, "build", "bench", "standard")))


def elapsed(name, started):
    print(f"bench: {name} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def part(script, env=None):
    """Runs a bench script; its progress lines (stderr) show as they come, its JSON is kept."""
    started = time.monotonic()
    run = subprocess.run([sys.executable, os.path.join(ROOT, "bench", script)], env=env,
                         stdout=subprocess.PIPE, text=True, timeout=1800)
    if run.returncode != 0:
        raise SystemExit(f"{script} failed (its messages are above)")
    elapsed(script, started)
    return json.loads(run.stdout)


def scale():
    """bench/scale.py at the standard size (each BENCH_* variable already set wins)."""
    env = dict(os.environ)
    for key, value in SCALE_DEFAULTS:
        env.setdefault(key, value)
    return part("scale.py", env)


def largest_run():
    """make bench-million's point for the connection plot (build/bench/million.json), if any."""
    try:
        with open(os.path.join(BUILD_BENCH, "million.json")) as f:
            at = json.load(f)
        if "date" not in at:
            return None
        return {"connections": at["connected"], "bytes_per_connection":
                at["server_bytes_per_connection"],
                "idle_cpu_ms_per_5s": at["idle_server_cpu_ms_per_5s"],
                "date": at.get("date", ""), "commit": at.get("commit", "")}
    except (OSError, ValueError, KeyError):
        return None


def versus_mosquitto():
    return part("versus_mosquitto.py")


def versus_wss():
    return part("versus_wss.py")


def cluster():
    """bench/cluster.py, shorter than make bench-cluster's (each BENCH_* variable already set
    wins): about 30 s."""
    env = dict(os.environ)
    env.setdefault("BENCH_CLUSTER_ROUNDS", "1000")
    return part("cluster.py", env)


def command_output(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return ""


def machine():
    """What the figures were measured on, and how busy it was."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        memory_kib = int(f.readline().split()[1])
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    versions = command_output(["dpkg-query", "-W", "-f", "${Package} ${Version}\n",
                               "libwebsockets17", "liblmdb0", "mosquitto"])
    return {"cores": os.cpu_count(), "model": model, "memory_gib": round(memory_kib / 2**20),
            "kernel": os.uname().release, "load": load,
            "commit": command_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "packages": versions.splitlines()}


def plots_section(results, figures, base_dir):
    """The "Plots" section of RESULTS.md: the run, the machine, the figures (their paths relative
    to base_dir, where the section goes)."""
    m, start = results["machine"], results["machine_at_start"]
    vs, at, largest = results["versus"], results["scale"], results.get("million")
    steps = vs["sweeps"]["presenced"]["connections"]
    lines = [PLOTS_BEGIN, "## Plots", "",
             f"`make bench` at commit `{m['commit']}`, {m['date']}"
             f"{QUICK_NOTE if results.get('quick') else ''}. "
             f"Machine: {m['cores']} cores ({m['model']}), {m['memory_gib']} GiB, kernel "
             f"{m['kernel']}; {', '.join(m['packages'])}. Load average (1, 5, 15 min) "
             f"{' '.join(start['load'])} at the start, {' '.join(m['load'])} at the end.", "",
             f"Connection sweep: {', '.join(str(p['connections']) for p in steps)} idle "
             f"connections for presenced (authenticated devices, 10 a user), "
             f"{', '.join(str(p['connections']) for p in vs['sweeps']['mosquitto']['connections'])}"
             f" idle MQTT connections for Mosquitto (one process: 20,000 files); rate sweep on "
             f"{vs['connections']} connections each, 3 s per offered rate, until a server "
             f"answers less than 85% of it. Notifications: {at['devices']} devices, "
             f"{at['notify_across_workers']['notify']['per_second']}/s from one AppService, "
             f"timed on the devices of the other workers."
             + (f" The open diamond is `make bench-million`'s run ({largest['connections']} "
                f"devices, commit `{largest['commit']}`, {largest['date']}; its table is in "
                f"RESULTS.md)." if largest else ""), ""]
    for path in figures:
        name = os.path.basename(path)
        rel = os.path.relpath(path, base_dir)
        lines.append(f"![{name[:-4].replace('_', ' ')}]({rel})")
        lines.append("")
    lines.append(PLOTS_END)
    return "\n".join(lines) + "\n"


def results_update(section):
    """Replaces the Plots section of bench/RESULTS.md (added after the table the first time)."""
    with open(RESULTS_MD) as f:
        text = f.read()
    if PLOTS_BEGIN in text and PLOTS_END in text:
        before, rest = text.split(PLOTS_BEGIN, 1)
        text = before + section + rest.split(PLOTS_END, 1)[1].lstrip("\n")
    else:
        marker = "\n## Every standard run"
        at = text.find(marker)
        at = at if at >= 0 else len(text)
        text = text[:at] + "\n" + section + text[at:]
    with open(RESULTS_MD, "w") as f:
        f.write(text)


def main():
    started_on, started = machine(), time.monotonic()
    rates = identity_rates()
    push = push_rates()
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
    micro = [
        (f"unauthenticated idle WebSocket ({IDLE_CONNECTIONS}, 2 workers, RSS)",
         f"{per_conn:.0f} B", "", ""),
        ("handshakes from one Python client", f"{IDLE_CONNECTIONS / seconds:.0f}/s", "", ""),
        ("wake-up round trip through a worker",
         f"p50 {wake['p50_us']} us, p99 {wake['p99_us']} us", "", ""),
        ("assertion verifications, one core",
         f"{rates['ds128_per_s']}/s RS256 over DS128, {rates['rs256_per_s']}/s RS256 over "
         f"RS256, {rates['cache_hit_per_s']}/s cached", "", ""),
        ("OpenID Connect token verifications, one core",
         f"{rates['token_rs256_per_s']}/s RS256, {rates['token_es256_per_s']}/s ES256, "
         f"{rates['token_eddsa_per_s']}/s EdDSA, {rates['token_cache_hit_per_s']}/s cached",
         "", ""),
        ("Web Push messages, one core (per CPU second)",
         f"{push['push_per_s']}/s encrypted ({push['plaintext_bytes']} B), "
         f"{push['push_signed_per_s']}/s with a new VAPID token; encryption alone "
         f"{push['encrypt_per_s']}/s, ES256 signing alone {push['sign_per_s']}/s", "", ""),
        ("status round trip, one Python client",
         f"p50 {status_rtt[0]:.0f} us, p99 {status_rtt[1]:.0f} us", "", ""),
        ("operator notification (admin POST) to device",
         f"p50 {notify_latency[0]:.0f} us, p99 {notify_latency[1]:.0f} us", "", ""),
    ]
    elapsed("the micro-benchmarks", started)
    at = scale()
    vs = versus_mosquitto()
    secure = versus_wss()
    nodes = cluster()
    table(at, vs, secure, micro, nodes)
    results = {"scale": at, "versus": vs, "wss": secure, "micro": micro, "cluster": nodes,
               "machine": machine(),
               "machine_at_start": started_on, "quick": QUICK, "million": largest_run()}
    os.makedirs(BUILD_BENCH, exist_ok=True)
    with open(os.path.join(BUILD_BENCH, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    figures = plots.draw(results, FIGURES)
    section = plots_section(results, figures,
                            BUILD_BENCH if QUICK else os.path.dirname(RESULTS_MD))
    if QUICK:
        with open(os.path.join(BUILD_BENCH, "RESULTS-plots.md"), "w") as f:
            f.write(section)
        print(f"\nBENCH_QUICK: figures in {FIGURES}, their section in "
              f"{os.path.join(BUILD_BENCH, 'RESULTS-plots.md')}")
    else:
        results_update(section)
        print(f"\nfigures in {FIGURES}; bench/RESULTS.md's Plots section is rewritten")
    elapsed("make bench", started)


def verdict(met):
    return "met" if met else "NOT met"


def cluster_rows(nodes):
    """Each of cluster.py's figures: 3 nodes against one, and what the cluster adds at p99
    (SPEC 8: at most 2 ms)."""
    names = (("status_rtt", "status round trip"), ("event", "status to AppService event"),
             ("notify", "notify to device"))
    rows = []
    for key, name in names:
        f = nodes[key]
        one, three = f["one"], f["cluster"]
        rows.append((f"{name}, 3 nodes vs 1 ({nodes['rounds']} rounds)",
                     f"p50 {three['p50_us']} / {one['p50_us']} us, p99 {three['p99_us']} / "
                     f"{one['p99_us']} us = {f['ratio_p99']}, {f['added_p99_ms']:+} ms",
                     "+<= 2 ms at p99", verdict(f["added_p99_ms"] <= 2)))
    return rows


def table(at, vs, secure, micro, nodes):
    """The figures of the scale run and of the Mosquitto comparisons (ws, then wss), then micro,
    then the cluster's, one row each."""
    ours, theirs = vs["presenced"], vs["mosquitto"]
    tls_ours, tls_theirs = secure["presenced"], secure["mosquitto"]
    notify, events = at["notify_across_workers"], at["status_to_appservice"]
    rows = [
        ("devices authenticated and held", f"{at['connected']} of {at['devices']} "
         f"({at['users']} users, {at['workers']} workers)", "60000",
         verdict(at["connected"] >= 60000)),
        ("connections per second (first connect)", f"{at['connections_per_second']}", "", ""),
        ("server memory per idle connection (Pss)", f"{at['server_bytes_per_connection']} B",
         "<= 3072 B", verdict(at["server_bytes_per_connection"] <= 3072)),
        (f"memory per connection vs Mosquitto ({vs['connections']} each)",
         f"{ours['bytes_per_connection']} B / {theirs['bytes_per_connection']} B = "
         f"{vs['memory_ratio']}", "< 1", verdict(vs["memory_ratio"] < 1)),
        ("server CPU in 5 idle seconds, with the devices / without",
         f"{at['idle_server_cpu_ms_per_5s']} ms / "
         f"{at['idle_server_cpu_ms_per_5s_without_connections']} ms", "no more with them",
         verdict(at["idle_server_cpu_ms_per_5s"] <=
                 at["idle_server_cpu_ms_per_5s_without_connections"] + 1)),
        (f"status round trip at {at['status_per_second']}/s",
         f"p50 {at['status_rtt_p50_us']:.0f} us, p99 {at['status_rtt_p99_us']:.0f} us", "", ""),
        (f"status throughput vs Mosquitto QoS 1 ({vs['offered_per_second']}/s offered)",
         f"{ours['per_second']}/s / {theirs['per_second']}/s = {vs['throughput_ratio']}",
         ">= 1.5", verdict(vs["throughput_ratio"] >= 1.5)),
        ("server CPU per update vs per QoS 1 publish",
         f"{ours['server_cpu_us_per_update']} us / {theirs['server_cpu_us_per_update']} us = "
         f"{vs['cpu_per_update_ratio']}", "<= 1", verdict(vs["cpu_per_update_ratio"] <= 1)),
        ("  of it user / kernel, presenced vs Mosquitto",
         f"{ours['server_user_us_per_update']} / {ours['server_kernel_us_per_update']} us vs "
         f"{theirs['server_user_us_per_update']} / {theirs['server_kernel_us_per_update']} us",
         "", ""),
        (f"memory per idle wss connection vs Mosquitto ({secure['connections']} each)",
         f"{tls_ours['bytes_per_connection']} B / {tls_theirs['bytes_per_connection']} B = "
         f"{secure['memory_ratio']}", "<= 8192 B",
         verdict(tls_ours["bytes_per_connection"] <= 8192)),
        (f"server CPU per update over wss vs Mosquitto ({secure['offered_per_second']}/s)",
         f"{tls_ours['server_cpu_us_per_update']} us / "
         f"{tls_theirs['server_cpu_us_per_update']} us = {secure['cpu_per_update_ratio']}", "",
         ""),
        ("round trip at saturation vs Mosquitto",
         f"p50 {ours['rtt_p50_us']:.0f} us / {theirs['rtt_p50_us']:.0f} us", "", ""),
        (f"notify to device, other workers, {notify['notify']['per_second']}/s",
         f"p50 {notify['p50_us']:.0f} us, p99 {notify['p99_us']:.0f} us "
         f"({notify['received']} deliveries)", "p99 < 2000 us",
         verdict(notify["p99_us"] < 2000 and notify["notify"]["per_second"] >= 4900)),
        (f"status change to AppService event ({events['flips']} flips)",
         f"p50 {events['p50_us']:.0f} us, p99 {events['p99_us']:.0f} us "
         f"({events['events']} events)", "", ""),
        (f"reconnect storm, cached assertions",
         f"{at['reconnected']} in {at['reconnect_seconds']} s", "50000 in <= 10 s",
         verdict(at["reconnected"] >= 50000 and at["reconnect_seconds"] <= 10)),
    ] + micro + cluster_rows(nodes)
    widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(4)]
    for row in [HEADER, tuple("-" * w for w in widths)] + rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


HEADER = ("measure", "presenced", "target", "")


if __name__ == "__main__":
    sys.exit(main())
