"""clients/js/presence.js in a real browser (Debian's headless Chromium, driven by Selenium)
against a real presenced: signing in with an assertion of the tests' identity provider or a token
of the development issuer, status(), notifications as events, the page going hidden, keep-alive
finding a dead connection, errno 50's retry_after, the back-off while the server is down
(doubling, with jitter), reconnecting after a server restart (and sending its status again), after
errno 61 later, and never after errno 52. The module and a test page come from a small HTTP server
the test starts, on another origin than presenced, as an app's page would be."""
import asyncio
import http.server
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import websockets

from chromium import BACKGROUND_FLAGS, Chromium
from conftest import BINARY, ROOT, wait_for

MODULE = os.path.join(ROOT, "clients", "js", "presence.js")

# The test page: the module, one client at a time, every event it fires kept in window.events.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>presence.js</title></head><body>
<script type="module">
import { PresenceClient } from "/presence.js";
window.events = [];
window.start = (options) => {
  window.client = new PresenceClient(options);
  for (const type of ["statechange", "online", "status", "notification", "error",
                      "disconnected", "stopped"])
    window.client.addEventListener(type, (e) =>
      window.events.push({ type, at: performance.now(), ...e.detail }));
  window.client.connect();
};
window.setStatus = (value) => {
  window.client.status(value).then(
    (acked) => window.events.push({ type: "resolved", status: acked }),
    (error) => window.events.push({ type: "rejected", errno: error.errno }));
};
window.ready = true;
</script></body></html>
"""


class PageServer:
    """Serves the module and the test page (the app's origin)."""

    def __init__(self):
        module = open(MODULE, "rb").read()
        page = PAGE.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                routes = {"/presence.js": (module, "text/javascript"),
                          "/client.html": (page, "text/html; charset=utf-8")}
                body, kind = routes.get(self.path, (b"not found", "text/plain"))
                self.send_response(200 if self.path in routes else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def pages():
    server = PageServer()
    yield server
    server.stop()


@pytest.fixture
def presenced(make_server, ident, pages):
    def factory(**settings):
        server = make_server(**settings)
        server.write_config(public_url=f"http://127.0.0.1:{server.port}", dev_issuer="on",
                            extra="\n".join([f"trusted_issuer idp.test {ident.key_file}",
                                             f"audience {pages.origin}"]))
        return server.start()
    return factory


@pytest.fixture
def browser(pages):
    driver = Chromium(*BACKGROUND_FLAGS, window="800,600")
    driver.set_script_timeout(30)
    driver.get(pages.origin + "/client.html")
    assert wait_for(lambda: driver.execute_script("return window.ready === true"), 20)
    yield driver
    driver.quit()


def start(driver, server, **options):
    options.setdefault("url", server.ws_url)
    options.setdefault("initialDelay", 200)
    options.setdefault("maxDelay", 1000)
    driver.execute_script("window.start(arguments[0])", options)


def events(driver, kind=None):
    got = driver.execute_script("return window.events")
    return [e for e in got if kind is None or e["type"] == kind]


def wait_event(driver, kind, count=1, timeout=20, **match):
    """The count-th event of kind whose fields equal match (waits for it)."""
    def found():
        hits = [e for e in events(driver, kind) if all(e.get(k) == v for k, v in match.items())]
        return hits[count - 1] if len(hits) >= count else None
    hit = wait_for(found, timeout)
    assert hit, (kind, match, events(driver))
    return hit


def admin(server, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{server.admin_port}{path}",
                                     data=json.dumps(body).encode() if body else None,
                                     method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def devices(server, email):
    return {d["device"]: d for d in admin(server, "/users/" + urllib.parse.quote(email))["devices"]}


def test_assertion_status_notifications_and_a_restart(presenced, ident, pages, browser):
    server = presenced()
    email = "alice@example.com"
    start(browser, server, email=email, device="tab", assertion=ident(email, pages.origin))
    assert wait_event(browser, "online")["reconnected"] is False
    assert wait_for(lambda: devices(server, email).get("tab", {}).get("status") == "online")

    browser.execute_script("window.setStatus('unavailable')")
    assert wait_event(browser, "resolved")["status"] == "unavailable"
    assert devices(server, email)["tab"]["status"] == "unavailable"

    admin(server, "/users/" + urllib.parse.quote(email) + "/notifications",
          {"source": "bob@example.com", "message": "Bob is ringing",
           "action": "https://chat.test/r/1"})
    note = wait_event(browser, "notification")
    assert (note["source"], note["message"], note["action"]) == (
        "bob@example.com", "Bob is ringing", "https://chat.test/r/1")

    # The server restarts: the client waits, reconnects and says "unavailable" again.
    server.stop()
    lost = wait_event(browser, "disconnected")
    assert lost["reconnectIn"] > 0
    server.start()
    assert wait_event(browser, "online", count=2, timeout=30)["reconnected"] is True
    assert wait_for(lambda: devices(server, email).get("tab", {}).get("status") ==
                    "unavailable", 10), devices(server, email)
    # Reconnecting does not replay what was delivered.
    assert len(events(browser, "notification")) == 1


def test_reconnection_backs_off_exponentially_with_jitter(presenced, ident, pages, browser):
    """With the server gone, each failed attempt waits twice as long as the one before, up to
    maxDelay, and a random part of it: between half of the delay and all of it."""
    server = presenced()
    email = "frank@example.com"
    start(browser, server, email=email, device="tab", assertion=ident(email, pages.origin),
          initialDelay=200, factor=2, maxDelay=1000)
    wait_event(browser, "online")
    server.stop()
    # The first event is the connection lost (errno 61 or not, as the server went); each one
    # after it is an attempt that failed: the 1st, 2nd ... since the last online.
    wait_event(browser, "disconnected", count=7, timeout=30)
    lost = events(browser, "disconnected")[1:7]
    assert all(e.get("errno") is None for e in lost), lost
    delays = [e["reconnectIn"] for e in lost]
    ceilings = [min(1000, 200 * 2 ** n) for n in range(len(lost))]  # 200 400 800 1000 1000 1000
    for delay, ceiling in zip(delays, ceilings):
        assert ceiling / 2 - 1 <= delay <= ceiling + 1, (delays, ceilings)
    assert any(ceiling / 2 + 1 < delay < ceiling - 1 for delay, ceiling in zip(delays, ceilings)), \
        f"no jitter: {delays}"
    # Each wait was kept: the next attempt failed no sooner than it said.
    for before, after in zip(lost, lost[1:]):
        assert after["at"] - before["at"] >= before["reconnectIn"] - 5, (before, after)


def test_a_development_token_and_the_page_going_hidden(presenced, browser):
    server = presenced()
    email = "bob@example.com"
    token = subprocess.run([BINARY, "-c", server.config_path, "token", email],
                           capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    start(browser, server, email=email, device="tab", token=token, followVisibility=True)
    wait_event(browser, "online")
    assert wait_for(lambda: devices(server, email).get("tab", {}).get("status") == "online")
    browser.minimize_window()  # the page is hidden: "unavailable"
    assert wait_for(lambda: devices(server, email)["tab"]["status"] == "unavailable", 10)
    browser.maximize_window()  # visible again: back to what the page asked for
    assert wait_for(lambda: devices(server, email)["tab"]["status"] == "online", 10)
    # A page that asked for "offline" stays offline when shown.
    browser.execute_script("window.setStatus('offline')")
    wait_event(browser, "resolved", status="offline")
    browser.minimize_window()
    browser.maximize_window()
    assert devices(server, email)["tab"]["status"] == "offline"


def test_superseded_is_final_and_61_comes_back_later(presenced, ident, pages, browser):
    server = presenced()
    email = "carol@example.com"
    credential = ident(email, pages.origin)
    start(browser, server, email=email, device="tab", assertion=credential,
          goingAwayDelay=300)
    wait_event(browser, "online")

    # The operator kicks her devices (errno 61): the client comes back, later.
    subprocess.run([os.environ.get("PRESENCECTL_BIN",
                                   os.path.join(ROOT, "build", "asan", "presencectl")),
                    "-c", server.config_path, "kick", email], check=True, capture_output=True,
                   timeout=30)
    lost = wait_event(browser, "disconnected", errno=61)
    assert 300 <= lost["reconnectIn"] <= 2000, lost
    back = wait_event(browser, "online", count=2)
    assert back["at"] - lost["at"] >= 300
    assert back["reconnected"] is True

    # Another connection of the same device takes over: errno 52, and no reconnecting.
    async def take_over():
        ws = await websockets.connect(server.ws_url)
        await ws.send(json.dumps({"email": email, "device": "tab", "status": "online",
                                  "assertion": credential}))
        assert json.loads(await ws.recv()) == {"result": "OK"}
        return ws
    loop = asyncio.new_event_loop()
    try:
        other = loop.run_until_complete(take_over())
        stopped = wait_event(browser, "stopped")
        assert stopped["errno"] == 52, stopped
        assert browser.execute_script("return window.client.state") == "stopped"
        onlines = len(events(browser, "online"))
        # Longer than the longest back-off (maxDelay 1 s): still nothing.
        time.sleep(2.5)
        assert len(events(browser, "online")) == onlines
        assert browser.execute_script("return window.client.state") == "stopped"
        assert len(devices(server, email)) == 1
        loop.run_until_complete(other.close())
    finally:
        loop.close()


def test_retry_after_is_honoured(presenced, ident, pages, browser):
    server = presenced(status_rate=1, status_burst=2)
    email = "dave@example.com"
    start(browser, server, email=email, device="tab", assertion=ident(email, pages.origin))
    wait_event(browser, "online")
    # The binding took one token; two more updates at once: the second gets errno 50.
    browser.execute_script("window.setStatus('unavailable'); window.setStatus('offline')")
    refused = wait_event(browser, "error", errno=50)
    assert refused["retryAfter"] >= 1
    done = wait_event(browser, "resolved", status="offline")
    sent = [e for e in events(browser, "status") if e["status"] == "offline"][0]
    assert sent["at"] - refused["at"] >= refused["retryAfter"] * 1000 - 50
    assert done and devices(server, email)["tab"]["status"] == "offline"


def test_keep_alive_finds_a_dead_connection(presenced, ident, pages, browser):
    server = presenced(workers=1)
    email = "erin@example.com"
    start(browser, server, email=email, device="tab", assertion=ident(email, pages.origin),
          keepAlive=500, keepAliveTimeout=500, connectTimeout=3000)
    wait_event(browser, "online")
    worker = server.workers()[0]["pid"]
    os.kill(worker, signal.SIGSTOP)  # the connection stays open and answers nothing
    try:
        lost = wait_event(browser, "disconnected", reason="keep-alive timeout", timeout=10)
        assert lost["code"] == 0
        # New connections hang in the stopped worker's queue: the connect timeout ends them.
        wait_event(browser, "disconnected", reason="connect timeout", timeout=15)
    finally:
        os.kill(worker, signal.SIGCONT)
    assert wait_event(browser, "online", count=2, timeout=30)["reconnected"] is True
    assert wait_for(lambda: devices(server, email).get("tab", {}).get("status") == "online")


def test_a_page_of_the_apps_origin_reads_the_vapid_key(presenced, pages, browser, tmp_path):
    """GET /vapid from the app's page (another origin: CORS), as a page does before
    PushManager.subscribe(); the /__version__ next to it is not for pages to read."""
    key = ec.generate_private_key(ec.SECP256R1())
    vapid = tmp_path / "vapid.pem"
    vapid.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption()))
    server = presenced(vapid_key=str(vapid), vapid_subject="mailto:ops@presence.test")
    read = """const done = arguments[arguments.length - 1];
fetch(arguments[0]).then((r) => r.json()).then((body) => done(body),
                                                 (error) => done("refused: " + error));"""
    got = browser.execute_async_script(read, server.url + "/vapid")
    assert isinstance(got, dict) and len(got["publicKey"]) == 87, got
    assert str(browser.execute_async_script(read, server.url + "/__version__")).startswith(
        "refused"), "a cross-origin read of a resource without CORS must fail"
