"""The cluster's engine for the tests: real nats-server processes (Debian's 2.9) as one JetStream
cluster on loopback, each on free ports with its own store_dir, started and stopped by pid."""
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import TOOLS, free_port, wait_for

NATS_SERVER = os.environ.get("NATS_SERVER_BIN", "/usr/sbin/nats-server")


class NatsServer:
    """One nats-server of the engine."""

    def __init__(self, workdir, name, routes_ports, index):
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.monitor_port = free_port()
        self.route_port = routes_ports[index]
        self.routes_ports = routes_ports
        self.config_path = os.path.join(self.dir, "nats.conf")
        self.log_path = os.path.join(self.dir, "nats.log")
        self.proc = None
        self.write_config()

    def write_config(self):
        routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes_ports)
        single = len(self.routes_ports) == 1
        with open(self.config_path, "w") as f:
            f.write(f"server_name: {self.name}\n"
                    f"listen: 127.0.0.1:{self.port}\n"
                    f"http: 127.0.0.1:{self.monitor_port}\n"
                    "jetstream {\n"
                    f"  store_dir: \"{os.path.join(self.dir, 'store')}\"\n"
                    "  max_file_store: 256MB\n"
                    "  max_memory_store: 32MB\n"
                    "}\n")
            if not single:
                f.write("cluster {\n  name: pd\n"
                        f"  listen: 127.0.0.1:{self.route_port}\n"
                        f"  routes: [{routes}]\n}}\n")

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", self.config_path], stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, signum=signal.SIGKILL):
        if self.alive():
            self.proc.send_signal(signum)
            if signum in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(timeout=15)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def monitor(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}{path}", timeout=2) as r:
            return json.loads(r.read().decode())

    def jetstream_ready(self):
        """True once this server knows the JetStream meta leader."""
        try:
            jsz = self.monitor("/jsz")
        except (OSError, ValueError):
            return False
        if len(self.routes_ports) == 1:
            return jsz.get("config") is not None
        return bool((jsz.get("meta_cluster") or {}).get("leader"))

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class Engine:
    """Three nats-servers (or one) as one JetStream cluster."""

    def __init__(self, workdir, size=3):
        routes = [free_port() for _ in range(size)]
        self.servers = [NatsServer(workdir, f"s{i + 1}", routes, i) for i in range(size)]

    def start(self, timeout=30):
        for s in self.servers:
            s.start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30):
        ready = wait_for(lambda: all(s.jetstream_ready() for s in self.servers if s.alive()),
                         timeout=timeout, step=0.1)
        assert ready, "the engine's JetStream did not come up:\n" + "\n".join(
            s.log_text()[-2000:] for s in self.servers)
        # The meta leader answers API requests once elected: wait for one to succeed.
        assert wait_for(lambda: self.probe("api", "INFO").get("outcome") == "ok", timeout=timeout,
                        step=0.2), "the engine answers no JetStream request"
        # It places a new replicated stream only once it has heard every server's statistics;
        # until then a create is refused with 10005 "no suitable peers for placement".
        if len(self.servers) > 1 and all(s.alive() for s in self.servers):
            assert wait_for(self.places_streams, timeout=timeout, step=0.2), \
                "the engine places no stream on every server"

    def places_streams(self):
        """True when a new stream on every server can be made (then deleted again)."""
        self.ready_probes = getattr(self, "ready_probes", 0) + 1
        bucket = f"engine_ready_{self.ready_probes}"
        made = self.probe("bucket", bucket, str(len(self.servers)))
        if made.get("outcome") != "ok":
            return False
        self.probe("api", f"STREAM.DELETE.KV_{bucket}")
        return True

    def urls(self, first=0):
        """The cluster key's value, starting with server `first` (each node its own first)."""
        order = self.servers[first:] + self.servers[:first]
        return ",".join(s.url for s in order)

    def stop(self):
        for s in self.servers:
            s.stop()

    def probe(self, *args, servers=None, timeout=15, give_up_ms=None):
        """Runs tests/tools/engine_probe (cluster/engine.c, cluster/js.c) and returns its JSON;
        give_up_ms: how long it waits for the engine (10 s by default)."""
        env = dict(os.environ)
        if give_up_ms is not None:
            env["ENGINE_PROBE_GIVE_UP_MS"] = str(give_up_ms)
        out = subprocess.run([os.path.join(TOOLS, "engine_probe"), servers or self.urls(), *args],
                             capture_output=True, text=True, timeout=timeout, env=env)
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
        assert "Sanitizer" not in out.stderr and "runtime error" not in out.stderr, out.stderr
        result = json.loads(line)
        result["rc"] = out.returncode
        result["stderr"] = out.stderr
        return result

    def server_of(self, client_name):
        """The live server a client whose name starts with client_name is connected to."""
        for s in self.servers:
            if not s.alive():
                continue
            try:
                conns = s.monitor("/connz?limit=1024").get("connections", [])
            except (OSError, ValueError):
                continue
            if any((c.get("name") or "").startswith(client_name) for c in conns):
                return s
        return None

    def stream_info(self, name, servers=None):
        info = self.probe("api", f"STREAM.INFO.{name}", servers=servers)
        return json.loads(info["json"]) if "json" in info else info

    def stream_leader(self, name):
        """The server leading the stream, asked of the live servers ("" while it has none)."""
        live = ",".join(s.url for s in self.servers if s.alive())
        return (self.stream_info(name, servers=live).get("cluster") or {}).get("leader") or ""


@pytest.fixture(scope="module")
def engine():
    """One engine for the tests of a module; tests that kill servers restart them."""
    with tempfile.TemporaryDirectory(prefix="presenced-engine-") as d:
        e = Engine(d).start()
        yield e
        e.stop()


@pytest.fixture
def fresh_engine():
    with tempfile.TemporaryDirectory(prefix="presenced-engine-") as d:
        e = Engine(d).start()
        yield e
        e.stop()
