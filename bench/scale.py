#!/usr/bin/env python3
"""make bench, at scale: many authenticated devices on one machine, driven by bench/loadgen.

Prints one JSON object. Sizes come from the environment: BENCH_DEVICES (default 60000),
BENCH_WORKERS (4: a process holds at most 20,000 files here), BENCH_CLIENTS (4 loadgen
processes, each from its own 127.0.0.x), BENCH_DEVICES_PER_USER (10, as max_devices_per_user
allows by default), BENCH_STATUS_RATE (updates per second over all clients), BENCH_NOTIFY_RATE,
BENCH_PROBES (users with one device whose status flips are timed to the AppService's event),
BENCH_EVENT_RATE (flips per second), BENCH_PING_INTERVAL and BENCH_SYNC_INTERVAL (the server's
ping_interval and sync_interval, 30s and 1s), BENCH_MAP_SIZE (its map_size, 1G),
BENCH_RECONNECT (devices dropped and reconnected at once, all by default; 0: none; each loadgen
drops its share in proportion), BENCH_SHARES (the devices of each loadgen, comma-separated; even
by default), BENCH_SWEEP=1 (the loadgens connect one after another, and after each the memory per
device and 5 idle seconds' CPU are measured: "sweep", the connection sweep of bench/plots.py),
BENCH_ISSUER and BENCH_ASSERTIONS_DIR (see identities()), BENCH_HOOK (a command run after the idle
window, waited for, and at the start of the status, notify and events phases, alongside them,
with the phase, the master's pid, the admin port and the work directory: bench/profile_hook.py)."""
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import idp  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

BINARY = os.path.join(ROOT, "build", "presenced")
LOADGEN = os.path.join(ROOT, "build", "bench", "loadgen")
APP_SEED = os.path.join(ROOT, "build", "bench", "app_seed")
CONN_DUMP = os.path.join(ROOT, "build", "bench", "conn_dump")
AUDIENCE = "https://bench.example"


def env_int(name, default):
    return int(os.environ.get(name, default))


def progress(text):
    """A line on stderr, so that a long run shows where it is (stdout carries the JSON)."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


def proc_memory(pid):
    """Memory of a process from smaps_rollup, in bytes: Rss, Pss (shared pages, such as the
    store's map, divided among the processes using them), Pss_Anon, Pss_File, Pss_Shmem."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0]) * 1024
    return fields


def proc_cpu(pid):
    """CPU seconds of a process (all its threads), from schedstat in nanoseconds, where
    /proc/<pid>/stat counts 10 ms ticks."""
    cpu_ns = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            cpu_ns += int(f.read().split()[0])
    return cpu_ns / 1e9


def proc_cpu_split(pid):
    """User and kernel CPU seconds of a process (all its threads), from /proc/<pid>/stat's utime
    and stime (clock ticks): schedstat has only their sum."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def workers_cpu_split(admin_port):
    """User and kernel CPU seconds summed over the workers."""
    split = [proc_cpu_split(w["pid"]) for w in admin(admin_port, "/status")["workers"]]
    return sum(u for u, _ in split), sum(k for _, k in split)


def admin(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def _key_pem(key):
    return key.private.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def _key_load(pem):
    """An idp key (RSKey or DSKey) from its PEM."""
    private = serialization.load_pem_private_key(pem, None)
    if isinstance(private, rsa.RSAPrivateKey):
        key = idp.RSKey.__new__(idp.RSKey)
        key.private, key.alg = private, "RS256"
    else:
        key = idp.DSKey.__new__(idp.DSKey)
        bits = private.key_size
        key.private, key.alg, key.qbytes = private, "DS128" if bits == 1024 else "DS256", \
            20 if bits == 1024 else 32
    return key


def _assertions_chunk(job):
    """The lines of users first..first+count-1 (run in a worker process of the pool)."""
    issuer_pem, user_pem, first, count, exp_ms = job
    issuer, user_key = _key_load(issuer_pem), _key_load(user_pem)
    # The assertion proper names no e-mail: the one device key signs the same one for all; the
    # certificate binding each e-mail to that key is each user's own (cert~assertion).
    tail = idp.assertion(user_key, AUDIENCE, exp_ms)
    lines = []
    for i in range(first, first + count):
        email = f"user{i}@bench.example"
        cert = idp.certificate(issuer, "issuer.example", user_key, email, exp_ms)
        lines.append(f"{email} {cert}~{tail}")
    return "\n".join(lines) + "\n"


def identities(workdir, users):
    """One backed assertion per user (line i: user i), all certified by one issuer key file
    (workdir/issuer.json); one device key. Made on every core. BENCH_ISSUER=ds certifies with
    DSA 1024 (DS128) instead of RSA 2048: about five times faster to make, for a million
    devices. BENCH_ASSERTIONS_DIR keeps them there for the next run, which takes them as long
    as they cover the users and stay valid for a day (they are made valid for a week)."""
    kind = os.environ.get("BENCH_ISSUER", "rs")
    cache = os.environ.get("BENCH_ASSERTIONS_DIR")
    if cache:
        reused = _identities_cached(cache, workdir, users, kind)
        if reused is not None:
            return reused
    issuer = idp.DSKey(1024) if kind == "ds" else idp.RSKey(2048)
    user_key = idp.DSKey(1024)
    exp_ms = idp.now_ms() + (7 * 86400 if cache else 3600) * 1000
    with open(os.path.join(workdir, "issuer.json"), "w") as f:
        json.dump(issuer.public_json(), f)
    path = os.path.join(workdir, "assertions.txt")
    chunk = 2000
    jobs = [(_key_pem(issuer), _key_pem(user_key), first, min(chunk, users - first), exp_ms)
            for first in range(0, users, chunk)]
    with open(path, "w") as f:
        if len(jobs) <= 1:
            for job in jobs:
                f.write(_assertions_chunk(job))
        else:
            with multiprocessing.Pool(os.cpu_count()) as pool:
                for text in pool.imap(_assertions_chunk, jobs):
                    f.write(text)
    if cache:
        os.makedirs(cache, exist_ok=True)
        for name in ("issuer.json", "assertions.txt"):
            shutil.copy(os.path.join(workdir, name), os.path.join(cache, name))
        with open(os.path.join(cache, "meta.json"), "w") as f:
            json.dump({"users": users, "issuer": kind, "exp_ms": exp_ms}, f)
    return path


def _identities_cached(cache, workdir, users, kind):
    """The kept assertions when they will do, linked into workdir; None otherwise."""
    try:
        with open(os.path.join(cache, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if meta.get("users", 0) < users or meta.get("issuer") != kind or \
            meta.get("exp_ms", 0) < idp.now_ms() + 86400 * 1000:
        return None
    progress(f"assertions: the {meta['users']} kept in {cache}")
    shutil.copy(os.path.join(cache, "issuer.json"), os.path.join(workdir, "issuer.json"))
    return os.path.join(cache, "assertions.txt")


def free_port():
    """A port nobody listens on now (the machine is shared: never a fixed one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(workdir, workers, devices, extra="", label="scale", ping_interval=None):
    """presenced on free ports of 127.0.0.1 with workers; extra: more configuration; its
    ping_interval BENCH_PING_INTERVAL's unless given. Its log is build/bench/presenced-<label>.log."""
    port, admin_port = free_port(), free_port()
    conf = os.path.join(workdir, "presenced.conf")
    with open(conf, "w") as f:
        f.write(f"listen 127.0.0.1:{port}\nadmin_listen 127.0.0.1:{admin_port}\n"
                f"workers {workers}\ndata_dir {workdir}/data\npid_file {workdir}/pid\n"
                f"log_level warning\naudience {AUDIENCE}\n"
                f"trusted_issuer issuer.example {workdir}/issuer.json\n"
                f"max_devices_per_user 10\nstatus_rate 1000\nstatus_burst 1000\n"
                f"app_rate 100000\napp_burst 100000\n"
                f"map_size {os.environ.get('BENCH_MAP_SIZE', '1G')}\n"
                f"ping_interval {ping_interval or os.environ.get('BENCH_PING_INTERVAL', '30s')}\n"
                f"sync_interval {os.environ.get('BENCH_SYNC_INTERVAL', '1s')}\n{extra}")
    # The server's log stays in build/bench/ for a look after a surprising figure.
    log = open(os.path.join(ROOT, "build", "bench", f"presenced-{label}.log"), "w")
    proc = subprocess.Popen([BINARY, "-f", "-c", conf], stderr=log)
    log.close()
    for _ in range(200):
        try:
            if len([w for w in admin(admin_port, "/status")["workers"]
                    if w["state"] == "ready"]) == workers:
                return proc, port, admin_port
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("presenced did not start")


class Client:
    def __init__(self, args):
        self.proc = subprocess.Popen([LOADGEN] + [str(a) for a in args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def read(self):
        return json.loads(self.proc.stdout.readline())

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def quit(self):
        self.send("quit")
        self.proc.wait(timeout=30)


def server_stat(admin_port, master_pid):
    """Memory fields summed over the master and the workers, and the workers' CPU seconds."""
    pids = [w["pid"] for w in admin(admin_port, "/status")["workers"]]
    memory = {}
    for pid in pids + [master_pid]:
        for name, value in proc_memory(pid).items():
            memory[name] = memory.get(name, 0) + value
    return memory, sum(proc_cpu(p) for p in pids)


def idle_timeline(admin_port, seconds, step=0.5):
    """Where an idle window's worker CPU falls: the workers' CPU in each step (ms, summed) and
    the workers that used any, by slot, with their ms — so that a figure above zero says which
    process woke and when, not only that one did."""
    workers = admin(admin_port, "/status")["workers"]
    last = {w["slot"]: proc_cpu(w["pid"]) for w in workers}
    steps, by_slot = [], {}
    for _ in range(round(seconds / step)):
        time.sleep(step)
        spent = 0.0
        for w in workers:
            now = proc_cpu(w["pid"])
            delta, last[w["slot"]] = now - last[w["slot"]], now
            spent += delta
            if delta > 0:
                by_slot[w["slot"]] = by_slot.get(w["slot"], 0.0) + delta
        steps.append(round(spent * 1000, 2))
    return {"idle_cpu_ms_by_half_second": steps,
            "idle_cpu_ms_by_worker_slot": {slot: round(ms * 1000, 2)
                                           for slot, ms in sorted(by_slot.items())}}


def worker_websockets(admin_port):
    """Open WebSockets per worker pid, as the workers last published them (every second)."""
    time.sleep(1.2)
    return {w["pid"]: w["websockets"] for w in admin(admin_port, "/status")["workers"]}


def devices_away_from(workdir, worker_pid):
    """Indices of the devices held by workers other than worker_pid (device "d<i>"), read from
    the store by conn_dump (an admin request per user took minutes at a million)."""
    run = subprocess.run([CONN_DUMP, f"{workdir}/data"], capture_output=True, text=True,
                         check=True)
    away = []
    for line in run.stdout.splitlines():
        device, pid = line.split()
        if int(pid) != worker_pid and device.startswith("d") and device[1:].isdigit():
            away.append(int(device[1:]))
    return away


def kernel_memory():
    """The kernel's slab (and its two parts) from /proc/meminfo, and the pages TCP sockets hold
    for their queues (/proc/net/sockstat), in bytes."""
    fields = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            fields[name] = int(rest.split()[0]) * 1024
    out = {k: fields[k] for k in ("Slab", "SReclaimable", "SUnreclaim")}
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                words = line.split()
                out["tcp_queue_bytes"] = int(words[words.index("mem") + 1]) * os.sysconf(
                    "SC_PAGE_SIZE")
    return out


def slow_per_tenth_merged(printed):
    """The loadgens' over_2ms_per_tenth added up on one time line (see notify_across_workers)."""
    starts = [p.get("first_sent_ns", 0) for p in printed if p.get("first_sent_ns", 0) > 0]
    origin = min(starts, default=0)
    merged = []
    for p in printed:
        shift = (p.get("first_sent_ns", 0) - origin) // 100000000 if origin else 0
        for i, count in enumerate(p["over_2ms_per_tenth"]):
            while len(merged) <= i + shift:
                merged.append(0)
            merged[i + shift] += count
    return merged


class Hook:
    """BENCH_HOOK, run at a phase with what it needs to find the server's processes."""

    def __init__(self, master_pid, admin_port, workdir):
        self.command = os.environ.get("BENCH_HOOK")
        self.args = [str(master_pid), str(admin_port), workdir]
        self.running = None

    def run(self, phase, wait=False):
        self.wait()
        if self.command:
            self.running = subprocess.Popen([self.command, phase] + self.args)
            if wait:
                self.wait()

    def wait(self):
        if self.running is not None:
            self.running.wait()
            self.running = None


def notify_across_workers(workdir, admin_port, app, loadgens, users, rate, before,
                          hook=None):
    """Notifications from the AppService to devices on the other workers: the AppService's
    worker is the one whose WebSocket count grew by it (before: the counts without it)."""
    after = worker_websockets(admin_port)
    app_worker = max(after, key=lambda pid: after[pid] - before.get(pid, 0))
    away = devices_away_from(workdir, app_worker)
    with open(f"{workdir}/away.txt", "w") as f:
        f.write("\n".join(map(str, away)) + "\n")
    for c in loadgens:
        c.send(f"count_only {workdir}/away.txt")
    counted = sum(c.read()["counted"] for c in loadgens)
    app.send(f"notify {rate} 5")
    if hook is not None:
        hook.run("notify")
    result = {"notify": app.read()["notify"], "devices_counted": counted}
    for c in loadgens:
        c.send("notes")
    printed = [c.read() for c in loadgens]
    notes = [p["notify_latency"] for p in printed]
    result["received"] = sum(n["count"] for n in notes)
    # Each loadgen's percentiles, for the latency CDF (bench/plots.py weighs them by count).
    result["cdfs"] = [{"count": n["count"], "cdf_us": n.get("cdf_us", [])} for n in notes]
    # When the slow ones (over 2 ms) were sent, by tenth of a second since the first
    # notification of the phase: each loadgen counts from its own first one, and gets its first
    # only when the AppService comes to its users (users are notified in turn, the first
    # loadgen's first), so its counts are shifted by how much later that was.
    result["over_2ms_per_tenth"] = slow_per_tenth_merged(printed)
    result["p50_us"] = max(n["p50_us"] for n in notes)
    result["p99_us"] = max(n["p99_us"] for n in notes)
    return result


def settle(admin_port, master_pid, limit=60):
    """Waits (up to limit seconds) until the workers use less than 5% of a core over half a
    second; returns how long it took."""
    started = time.monotonic()
    _, cpu = server_stat(admin_port, master_pid)
    while time.monotonic() - started < limit:
        time.sleep(0.5)
        _, now = server_stat(admin_port, master_pid)
        if now - cpu < 0.025:
            break
        cpu = now
    return round(time.monotonic() - started, 1)


def loadgen_shares(devices, clients):
    """How many devices each loadgen connects: BENCH_SHARES (a comma-separated list, one per
    loadgen, adding up to the devices), or as even as can be."""
    listed = os.environ.get("BENCH_SHARES")
    if not listed:
        return [devices // clients + (i < devices % clients) for i in range(clients)]
    shares = [int(n) for n in listed.split(",")]
    if len(shares) != clients or sum(shares) != devices:
        raise SystemExit(f"BENCH_SHARES {listed}: {clients} numbers adding up to {devices}")
    return shares


def proportional(total, shares):
    """total split in proportion to shares, adding up to total exactly."""
    bounds = [round(total * sum(shares[:i]) / sum(shares)) for i in range(len(shares) + 1)]
    return [bounds[i + 1] - bounds[i] for i in range(len(shares))]


def main():
    devices, workers = env_int("BENCH_DEVICES", 60000), env_int("BENCH_WORKERS", 4)
    clients, per_user = env_int("BENCH_CLIENTS", 4), env_int("BENCH_DEVICES_PER_USER", 10)
    users = (devices + per_user - 1) // per_user
    status_rate = env_int("BENCH_STATUS_RATE", 20000)
    notify_rate = env_int("BENCH_NOTIFY_RATE", 5000)
    probes, event_rate = env_int("BENCH_PROBES", 200), env_int("BENCH_EVENT_RATE", 1000)
    result = {"devices": devices, "users": users, "workers": workers, "clients": clients}
    with tempfile.TemporaryDirectory(prefix="presenced-scale-") as workdir:
        progress(f"scale: {users + probes} assertions")
        assertions = identities(workdir, users + probes)
        os.makedirs(f"{workdir}/data")
        seed = json.loads(subprocess.run([APP_SEED, f"{workdir}/data", str(users + probes)],
                                         capture_output=True, text=True, check=True).stdout)
        with open(f"{workdir}/puids.txt", "w") as f:
            f.write("\n".join(seed["puids"]) + "\n")
        proc, port, admin_port = start(workdir, workers, devices)
        loadgens = []
        try:
            # The workers' own timers (statistics, every second) run with or without
            # connections: 5 idle seconds before connecting show what they cost.
            memory_before, cpu_start = server_stat(admin_port, proc.pid)
            time.sleep(5)
            memory_before, cpu_end = server_stat(admin_port, proc.pid)
            result["idle_server_cpu_ms_per_5s_without_connections"] = round(
                (cpu_end - cpu_start) * 1000, 1)
            # Each loadgen from its own 127.0.0.x: at most 20,000 files a process, and about
            # 50,000 source ports an address.
            shares = loadgen_shares(devices, clients)
            firsts = [sum(shares[:i]) for i in range(clients)]
            kernel_before = kernel_memory()
            stepped = os.environ.get("BENCH_SWEEP") == "1"
            progress(f"scale: connecting {devices} devices from {clients} loadgens"
                     + (" one after another" if stepped else ""))

            def loadgen(i):
                return Client(["devices", port, f"127.0.0.{10 + i}", shares[i], firsts[i],
                               per_user, assertions])

            def held_point(connected):
                """Memory per device and 5 idle seconds' CPU with connected devices held."""
                # The 2 s before the window: the last connections' after-effects, shown apart.
                settling = idle_timeline(admin_port, 2)
                memory_after, cpu_before = server_stat(admin_port, proc.pid)
                timeline = idle_timeline(admin_port, 5)  # idle: no traffic, no pings due yet
                _, cpu_after = server_stat(admin_port, proc.pid)
                return memory_after, {
                    "connections": connected,
                    "bytes_per_connection": round((memory_after["Pss"] -
                                                   memory_before["Pss"]) / connected),
                    "idle_cpu_ms_per_5s": round((cpu_after - cpu_before) * 1000, 1),
                    "settling_cpu_ms_by_half_second": settling["idle_cpu_ms_by_half_second"],
                    **timeline}

            if stepped:
                # The connection sweep (bench/plots.py): a point each time a loadgen is done.
                result["sweep"], connecting, ready = [], 0.0, []
                for i in range(clients):
                    started = time.monotonic()
                    loadgens.append(loadgen(i))
                    ready.append(loadgens[-1].read())
                    connecting += time.monotonic() - started
                    connected = sum(r["ready"] for r in ready)
                    progress(f"scale: {connected} devices held")
                    memory_after, point = held_point(connected)
                    result["sweep"].append(point)
                result["connect_seconds"] = round(connecting, 2)
            else:
                started = time.monotonic()
                loadgens = [loadgen(i) for i in range(clients)]
                ready = [c.read() for c in loadgens]
                result["connect_seconds"] = round(time.monotonic() - started, 2)
            result["connected"] = sum(r["ready"] for r in ready)
            result["connections_per_second"] = round(result["connected"] /
                                                      result["connect_seconds"])
            if not stepped:
                memory_after, point = held_point(result["connected"])
            growth = {k: (memory_after[k] - memory_before.get(k, 0)) / result["connected"]
                      for k in ("Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "Rss")}
            # Pss counts a page shared by several processes (the store's map) once in all.
            result["server_bytes_per_connection"] = round(growth["Pss"])
            result["server_bytes_per_connection_detail"] = {k: round(v) for k, v in
                                                            growth.items()}
            # The kernel's share: both ends of each connection (the loadgens' sockets too).
            kernel_after = kernel_memory()
            result["kernel_slab_bytes_before_after"] = [kernel_before["Slab"],
                                                        kernel_after["Slab"]]
            result["kernel_bytes_per_connection_both_ends"] = {
                k: round((kernel_after[k] - kernel_before.get(k, 0)) / result["connected"])
                for k in kernel_after}
            result["idle_server_cpu_ms_per_5s"] = point["idle_cpu_ms_per_5s"]
            for key in ("settling_cpu_ms_by_half_second", "idle_cpu_ms_by_half_second",
                        "idle_cpu_ms_by_worker_slot"):
                result[key] = point[key]
            hook = Hook(proc.pid, admin_port, workdir)
            hook.run("idle", wait=True)  # after the idle window, never in it

            progress(f"scale: {result['connected']} connected in {result['connect_seconds']} s; "
                     f"status updates at {status_rate}/s")
            for c in loadgens:
                c.send(f"status {status_rate / clients} 5")
            hook.run("status")
            runs = [c.read() for c in loadgens]
            hook.wait()
            result["status_per_second"] = sum(r["per_second"] for r in runs)
            result["status_rtt_p50_us"] = max(r["status_rtt"]["p50_us"] for r in runs)
            result["status_rtt_p99_us"] = max(r["status_rtt"]["p99_us"] for r in runs)
            result["status_answered"] = sum(r["answered"] for r in runs)
            result["status_sent"] = sum(r["sent"] for r in runs)

            before = worker_websockets(admin_port)
            app = Client(["app", port, seed["appid"], seed["key"], f"{workdir}/puids.txt",
                          users, assertions, probes])
            loadgens.append(app)
            app.read()  # authenticated
            progress(f"scale: notifications at {notify_rate}/s")
            result["notify_across_workers"] = notify_across_workers(
                workdir, admin_port, app, loadgens[:-1], users, notify_rate, before, hook)
            hook.wait()
            # What the AppService sent faster than the server took it is still being delivered
            # (its loadgen reads every reply first): the flips are timed once the workers are
            # idle, on an AppService connection of their own — one that fell behind the
            # notifications' replies may have been closed as a slow consumer, or still hold
            # their backlog ahead of the events.
            loadgens.remove(app)
            app.quit()
            result["settled_seconds"] = settle(admin_port, proc.pid)
            app = Client(["app", port, seed["appid"], seed["key"], f"{workdir}/puids.txt",
                          users, assertions, probes])
            loadgens.append(app)
            app.read()  # authenticated
            app.send("probes")
            result["probes"] = app.read()["ready"]
            progress(f"scale: status flips to the AppService at {event_rate}/s")
            app.send(f"events {event_rate} 5")
            hook.run("events")
            events = app.read()
            hook.wait()
            result["status_to_appservice"] = {"flips": events["flips"],
                                              "events": events["app_event_latency"]["count"],
                                              "p50_us": events["app_event_latency"]["p50_us"],
                                              "p99_us": events["app_event_latency"]["p99_us"]}
            loadgens.remove(app)
            app.quit()

            reconnect = env_int("BENCH_RECONNECT", devices)
            if reconnect > 0:
                progress(f"scale: reconnect storm of {reconnect}")
                for c, share in zip(loadgens, proportional(reconnect, shares)):
                    c.send(f"reconnect {share}")
                again = [c.read() for c in loadgens]
                result["reconnected"] = sum(r["reconnected"] for r in again)
                result["connected_after_reconnect"] = sum(r["ready"] for r in again)
                result["reconnect_seconds"] = max(r["seconds"] for r in again)
        finally:
            progress("scale: the loadgens leave, then presenced stops")
            started = time.monotonic()
            for c in loadgens:
                try:
                    c.quit()
                except Exception:
                    c.proc.kill()
            result["disconnect_seconds"] = round(time.monotonic() - started, 1)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                progress("scale: presenced did not stop within 600 s; killed")
                proc.kill()
                proc.wait()
            result["stop_seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
