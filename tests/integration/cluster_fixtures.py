"""Fixtures of the cluster tests (SPEC 8): presenced nodes on one 3-server JetStream cluster
(engine_fixtures.py), each in a process group of its own so that a test can kill or freeze a
whole node."""
import hashlib
import json
import os
import struct
import signal
import subprocess
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import TOOLS, Server, wait_for
from engine_fixtures import fresh_engine  # noqa: F401  (fixture)

NODE_TIMEOUT_S = 3


class Node(Server):
    def cluster(self):
        return self.status().get("cluster", {})

    def peers(self):
        return {n["name"]: n for n in self.cluster().get("nodes", [])}

    def metrics(self):
        """{(name, frozenset(labels)): value} of /metrics, read with prometheus_client's parser
        (the text format is checked as it is read)."""
        out = {}
        for family in text_string_to_metric_families(self.admin("/metrics")):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def metric(self, name, **labels):
        return self.metrics().get((name, frozenset(labels.items())))

    def kill_group(self, signum=signal.SIGKILL):
        """The whole node: master, workers and agent (they share the master's process group)."""
        os.killpg(os.getpgid(self.proc.pid), signum)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(os.getpgid(self.proc.pid), signal.SIGCONT)
            except ProcessLookupError:
                pass
        super().stop()

    def member(self, *args, timeout=60):
        """Runs tests/tools/member_probe as one more worker of this node; its JSON lines."""
        out = subprocess.run([os.path.join(TOOLS, "member_probe"), self.config_path, *args],
                             capture_output=True, text=True, timeout=timeout)
        assert "Sanitizer" not in out.stderr and "runtime error" not in out.stderr, out.stderr
        assert out.returncode == 0, (out.returncode, out.stderr)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


class Holder:
    """tests/tools/member_probe as one more worker of node, holding (email, device) for hold_ms
    (a negative hold: until killed): the JSON lines it prints, read as they come. A context
    manager: on leaving, it is waited for (killed first with kill=True) and its standard error
    must hold no sanitizer report."""

    def __init__(self, node, email, device, hold_ms=8000, kill=False):
        self.kill = kill
        self.proc = subprocess.Popen([os.path.join(TOOLS, "member_probe"), node.config_path,
                                      "claim", email, device, "1", str(hold_ms)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def first(self, key, timeout):
        """The first line that has key, once one came within timeout seconds."""
        assert wait_for(lambda: any(key in x for x in self.lines), timeout=timeout), self.lines
        return next(x for x in self.lines if key in x)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.kill:
            self.proc.kill()
        self.proc.wait(timeout=60)
        self.reader.join()
        errors = self.proc.stderr.read()
        if not self.kill:
            assert "Sanitizer" not in errors, errors


def user_key(email):
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def user_record(engine, email, shards=3):
    """The user's record from its bucket's leader (cluster/record.h's layout): its entries."""
    uk = user_key(email)
    got = engine.probe("get", f"pd_u{int(uk[:2], 16) % shards}", uk, "leader")
    if got.get("outcome") != "ok" or "value" not in got or got.get("deleted"):
        return []
    b = got["value"].encode("latin-1")
    at = 1
    n = b[at]
    at += 1 + n
    count = struct.unpack(">H", b[at:at + 2])[0]
    at += 2
    entries = []
    for _ in range(count):
        dl = b[at]
        device = b[at + 1:at + 1 + dl].decode()
        at += 1 + dl
        nl = b[at]
        node = b[at + 1:at + 1 + nl].decode()
        at += 1 + nl
        epoch, pid, conn, status, since, claimed = struct.unpack(">QIQBQQ", b[at:at + 37])
        at += 37
        entries.append({"device": device, "node": node, "epoch": epoch, "pid": pid,
                        "conn": conn, "status": status, "since": since, "claimed": claimed})
    return entries


def make_node(base, engine, name, first, **settings):
    workdir = os.path.join(base, name)
    os.makedirs(workdir, exist_ok=True)
    merged = {"workers": "1", "node_timeout": f"{NODE_TIMEOUT_S}s", "cluster_shards": "3"}
    merged.update(settings)
    return Node(workdir, cluster=engine.urls(first), node_name=name, **merged)


def start_node(node, wait=True):
    # A process group of its own, so that a test can kill or freeze the whole node. Its workers
    # start once its agent registered the node's epoch.
    node.start(wait=False, preexec_fn=os.setsid)
    if wait:
        node.wait_ready(timeout=60)
    return node


def wait_serving(node, timeout=30):
    ok = wait_for(lambda: node.cluster().get("state") == "serving", timeout=timeout, step=0.1)
    assert ok, f"{node.settings['node_name']} not serving: {node.cluster()}\n{node.log_text()[-3000:]}"


def wait_peers_alive(node, names, timeout=20):
    def all_alive():
        peers = node.peers()
        return all(peers.get(n, {}).get("alive") for n in names)
    assert wait_for(all_alive, timeout=timeout, step=0.1), (node.peers(), node.log_text()[-3000:])


@pytest.fixture
def cluster3(fresh_engine, workdir):
    nodes = [make_node(workdir, fresh_engine, f"n{i + 1}", i) for i in range(3)]
    for n in nodes:
        start_node(n, wait=False)
    for n in nodes:
        n.wait_ready(timeout=60)
    yield fresh_engine, nodes
    for n in nodes:
        n.stop()
    for n in nodes:
        n.assert_clean_log()
