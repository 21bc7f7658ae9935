"""Flow control (SPEC.md, before §1): a WebSocket that does not read is a slow consumer once more
than max_output_buffer waits for it. It is closed with 1008 and the server's memory stays
bounded; what it was not sent is kept — a device's notifications stay queued for its next
connection, an AppService gets the changes it missed when it comes back. The clients that stop
reading are bare sockets with a small receive buffer (raw_ws.py)."""
import asyncio
import json
import re
import time
import urllib.request

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_for
from raw_ws import OP_TEXT, RawWebSocket, frame
from test_appservice import AppService, grant
from web_fixtures import activated_app, signed_in

AUDIENCE = "https://presence.test"
NOTIFICATIONS = 20000
# Freed memory comes back at once (no ASan quarantine), so the worker's resident memory shows
# what it holds, not what it freed lately.
ASAN_NO_QUARANTINE = "detect_leaks=1:abort_on_error=0:quarantine_size_mb=0:" \
                     "thread_local_quarantine_size_kb=0"


def run(coro, timeout=900):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def rss_anon_kb(pid):
    """The worker's anonymous resident memory (its heap and stacks; the store's map is a file
    mapping and is not in it)."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^RssAnon:\s+(\d+) kB", f.read(), re.M).group(1))


def slow_consumers(server):
    families = {f.name: f for f in text_string_to_metric_families(server.admin("/metrics"))}
    family = families.get("presenced_slow_consumers")
    return sum(s.value for s in family.samples) if family else 0


def pending(server, email):
    url = f"http://127.0.0.1:{server.admin_port}/users/{email.replace('@', '%40')}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())["pending_notifications"]


def update(email, assertion, status="online"):
    return json.dumps({"email": email, "status": status, "device": "phone",
                       "assertion": assertion})


@pytest.fixture
def flow_site(site, ident, monkeypatch):
    """One worker (every connection on it), device assertions accepted, and queues, rates and
    keep-alives out of the way of the rule under test."""
    monkeypatch.setenv("ASAN_OPTIONS", ASAN_NO_QUARANTINE)

    def factory(**settings):
        server = site(workers=1, max_pending_notifications=NOTIFICATIONS + 1000,
                      app_rate=1000000, app_burst=1000000, ping_interval="600s",
                      ping_timeout="60s", **settings)
        server.write_config(extra=server.settings["extra"] + f"\naudience {AUDIENCE}")
        server.stop()
        server.start()
        return server
    return factory


def notification_numbers(messages):
    """The numbers the test wrote at the start of each notification's message."""
    return [int(n["message"][:5]) for m in messages for n in m["notifications"]]


def test_a_device_that_does_not_read(flow_site, ident, domain):
    server = flow_site()
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    _, puid = grant(server, ident, "slow@example.com", appid, "slow")
    pid = server.workers()[0]["pid"]

    slow = RawWebSocket(server.port, rcvbuf=4096)
    slow.send_text(update("slow@example.com", ident("slow@example.com", AUDIENCE)))
    assert slow.recv_json() == {"result": "OK"}
    # From here on the slow device reads nothing until the flood is over.

    async def flood():
        # The clients' own keep-alives are off: the round trips measured are the test's.
        other = await websockets.connect(server.ws_url, ping_interval=None)
        await other.send(update("other@example.com", ident("other@example.com", AUDIENCE)))
        assert json.loads(await other.recv()) == {"result": "OK"}
        app = AppService(await websockets.connect(
            f"ws://127.0.0.1:{server.port}/myapps/{appid}", ping_interval=None))
        await app.ws.send(json.dumps({"action": "auth", "token": api_key}))
        assert await app.recv() == {"action": "auth", "result": "OK"}
        baseline = rss_anon_kb(pid)
        samples, round_trips, replies = [baseline], [], []
        done = asyncio.Event()

        async def sample():
            while not done.is_set():
                samples.append(rss_anon_kb(pid))
                await asyncio.sleep(0.1)

        async def ping():
            while not done.is_set():
                started = time.monotonic()
                await other.send("{}")
                assert json.loads(await asyncio.wait_for(other.recv(), 30)) == {}
                round_trips.append(time.monotonic() - started)
                await asyncio.sleep(0.02)

        async def read_replies():
            while len(replies) < NOTIFICATIONS:
                replies.append(json.loads(await asyncio.wait_for(app.ws.recv(), 60)))

        tasks = [asyncio.create_task(t()) for t in (sample, ping)]
        reader = asyncio.create_task(read_replies())
        for i in range(NOTIFICATIONS):
            await app.ws.send(json.dumps({"action": "notify", "target": puid, "source": "flood",
                                          "message": f"{i:05d}" + "x" * 1019, "id": f"n{i}"}))
        await reader
        done.set()
        await asyncio.gather(*tasks)
        samples.append(rss_anon_kb(pid))
        await app.ws.close()
        await other.close()
        return baseline, samples, round_trips, replies

    baseline, samples, round_trips, replies = run(flood())
    growth = max(samples) - baseline
    print(f"\nworker RssAnon {baseline} kB before, +{growth} kB at most over {NOTIFICATIONS} "
          f"notifications of 1 KB; the other device: {len(round_trips)} round trips, "
          f"median {sorted(round_trips)[len(round_trips) // 2] * 1000:.1f} ms, "
          f"max {max(round_trips) * 1000:.1f} ms")
    assert [r.get("result") for r in replies] == ["OK"] * NOTIFICATIONS
    assert growth < 1024, f"the worker grew by {growth} kB"
    # The other device on the same worker was answered all along.
    assert len(round_trips) >= 10
    assert wait_for(lambda: slow_consumers(server) == 1, timeout=10)

    # What reached the slow device's socket before the close, then the close itself.
    slow.sock.settimeout(30)
    texts, code = slow.frames_until_close()
    assert code == 1008
    first = notification_numbers(texts)
    assert len(first) == len(set(first))

    async def back():
        ws = await websockets.connect(server.ws_url, max_size=None)
        await ws.send(update("slow@example.com", ident("slow@example.com", AUDIENCE)))
        assert json.loads(await ws.recv()) == {"result": "OK"}
        messages, numbers = [], 0
        while numbers < NOTIFICATIONS - len(first):
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            messages.append(message)
            numbers += len(message["notifications"])
        await ws.close()
        return messages
    messages = run(back())
    then = notification_numbers(messages)
    print(f"delivered: {len(first)} before the close, {len(then)} after, in {len(messages)} "
          f"messages; {slow_consumers(server)} slow consumer")
    assert sorted(first + then) == list(range(NOTIFICATIONS)), "lost or duplicated"
    assert max(len(json.dumps(m)) for m in messages) <= 64 * 1024
    assert pending(server, "slow@example.com") == 0


def test_an_appservice_that_does_not_read(flow_site, ident, domain):
    server = flow_site()
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    _, puid = grant(server, ident, "ann@example.com", appid, "ann")
    pid = server.workers()[0]["pid"]

    app = RawWebSocket(server.port, f"/myapps/{appid}", rcvbuf=4096)
    app.send_text(json.dumps({"action": "auth", "token": api_key}))
    assert app.recv_json() == {"action": "auth", "result": "OK"}
    baseline = rss_anon_kb(pid)
    # Requests whose answers it never reads (about 100 bytes each), in bursts until the server
    # has had enough; then it sends nothing more, so that the server has read all of it when
    # it closes (a close with unread input would be a reset, and the close frame lost).
    burst = b"".join(frame(OP_TEXT, json.dumps({"action": "snapshot"})) for _ in range(1000))
    peak, sent = baseline, 0
    while slow_consumers(server) == 0 and sent < 200000:
        app.send(burst)
        sent += 1000
        peak = max(peak, rss_anon_kb(pid))
        time.sleep(0.05)
    assert slow_consumers(server) == 1, f"not a slow consumer after {sent} unread snapshots"
    peak = max(peak, rss_anon_kb(pid))
    print(f"\nworker RssAnon {baseline} kB before, +{peak - baseline} kB at most over "
          f"{sent} unread snapshots")
    assert peak - baseline < 1024

    async def change():
        ws = await websockets.connect(server.ws_url)
        await ws.send(update("ann@example.com", ident("ann@example.com", AUDIENCE)))
        assert json.loads(await ws.recv()) == {"result": "OK"}
        return ws
    # Ann comes online while the app's connection is being closed: the event is not written.
    ann = asyncio.new_event_loop()
    ann_ws = ann.run_until_complete(change())

    app.sock.settimeout(30)
    texts, code = app.frames_until_close()
    assert code == 1008
    assert all(t.get("action") == "snapshot" for t in texts), texts[-3:]

    async def back():
        again = await AppService.connect(server, appid, api_key)
        return await again.event(timeout=10)
    # Back: the change it missed comes first.
    assert run(back()) == {"uid": puid, "status": "online"}
    ann.run_until_complete(ann_ws.close())
    ann.close()
