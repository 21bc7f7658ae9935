"""Integration fixtures: real presenced processes on loopback ports, real clients."""
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
import websockets

# The web and AppService tests' fixtures (sites, identity provider, an app's domain).
pytest_plugins = ("web_fixtures",)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("PRESENCED_BIN", os.path.join(ROOT, "build", "presenced"))
# Helper programs of tests/tools, built with the sanitizers by `make integration`.
TOOLS = os.environ.get("PRESENCED_TOOLS", os.path.join(ROOT, "build", "asan", "tools"))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """Returns (status, headers (case-insensitive), body) without raising on HTTP errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def first_line(port, request, timeout=10):
    """Sends request's bytes as they are to 127.0.0.1:port: the answer's status line (b"" when
    the connection closed without one)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(request)
    answer = b""
    try:
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    except ConnectionResetError:
        pass
    sock.close()
    return answer.split(b"\r\n", 1)[0]


class Server:
    """One presenced master with its workers, started in the foreground."""

    def __init__(self, workdir, **settings):
        self.workdir = workdir
        self.port = free_port()
        self.admin_port = free_port()
        self.settings = {
            "listen": f"127.0.0.1:{self.port}",
            "admin_listen": f"127.0.0.1:{self.admin_port}",
            "workers": "2",
            "data_dir": os.path.join(workdir, "data"),
            "pid_file": os.path.join(workdir, "presenced.pid"),
            "drain_timeout": "3s",
            "log_level": "info",
        }
        self.settings.update({k: str(v) for k, v in settings.items()})
        self.config_path = os.path.join(workdir, "presenced.conf")
        self.log_path = os.path.join(workdir, "presenced.log")
        self.proc = None
        self.log = None
        self.write_config()

    def write_config(self, **changes):
        self.settings.update({k: str(v) for k, v in changes.items()})
        with open(self.config_path, "w") as f:
            for key, value in self.settings.items():
                if key == "extra":
                    f.write(value + "\n")
                else:
                    f.write(f"{key} {value}\n")

    def start(self, wait=True, preexec_fn=None):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen([BINARY, "-f", "-c", self.config_path], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn)
        if wait:
            self.wait_ready()
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/presence"

    def admin(self, path):
        status, _, body = http_get(f"http://127.0.0.1:{self.admin_port}{path}")
        assert status == 200, (path, status, body)
        return json.loads(body) if path == "/status" else body

    def status(self):
        return self.admin("/status")

    def workers(self, state="ready"):
        return [w for w in self.status()["workers"] if state is None or w["state"] == state]

    def wait_ready(self, count=None, timeout=15):
        count = int(self.settings["workers"]) if count is None else count
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"presenced exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if len(self.workers()) >= count:
                    return
            except (OSError, AssertionError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"presenced not ready in {timeout}s:\n{self.log_text()}")

    def signal(self, signum):
        self.proc.send_signal(signum)

    def log_text(self):
        if self.log is None:
            return ""
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and not self.log.closed:
            self.log.close()

    def assert_clean_log(self):
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            assert mark not in text, f"sanitizer report in the server log:\n{text}"


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="presenced-it-") as d:
        yield d


@pytest.fixture
def make_server(workdir):
    servers = []

    def factory(**settings):
        sub = tempfile.mkdtemp(dir=workdir)
        server = Server(sub, **settings)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
    for server in servers:
        server.assert_clean_log()


@pytest.fixture
def server(make_server):
    return make_server().start()


def log_lines(server, pattern):
    return [line for line in server.log_text().splitlines() if re.search(pattern, line)]


async def replies_then_close(url, *messages):
    """Sends each message and reads its one reply, then expects the server to close the
    WebSocket. Returns (replies, close code)."""
    async with websockets.connect(url, max_size=None) as ws:
        replies = []
        for message in messages:
            try:
                await ws.send(message)
            except websockets.ConnectionClosed:
                # A server that refuses a long message closes while the client still writes it
                # (1009); its reply came before the close and is read below, or the test fails.
                pass
            replies.append(json.loads(await ws.recv()))
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        return replies, ws.close_code


def wait_for(predicate, timeout=5.0, step=0.02):
    """Polls predicate until it returns something true or timeout passes; returns its last
    value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


async def until(condition, timeout, step=0.1):
    """wait_for without blocking the event loop (WebSockets keep answering pings meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(step)
    return condition()
