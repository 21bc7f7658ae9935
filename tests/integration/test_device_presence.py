"""The device channel with real identities (SPEC.md §2, §6): ownership across workers, presence,
limits, notification queues, dead peers and dead workers. Assertions come from the test identity
provider, trusted through a key file, so no HTTPS server is needed here."""
import asyncio
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import websockets

import idp
from conftest import TOOLS, wait_for

AUDIENCE = "https://presence.test"


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def ident(tmp_path_factory):
    """Keys and the key file of a trusted issuer, and assertions by e-mail (made once each)."""
    issuer, user = idp.RSKey(2048), idp.DSKey(1024)
    key_file = tmp_path_factory.mktemp("issuer") / "idp.json"
    key_file.write_text(json.dumps(issuer.public_json()))
    made = {}

    def assertion(email):
        if email not in made:
            made[email] = idp.backed(email, issuer, user, AUDIENCE, iss="idp.test")
        return made[email]
    assertion.key_file = str(key_file)
    return assertion


@pytest.fixture
def start(make_server, ident):
    def factory(**settings):
        extra = [f"audience {AUDIENCE}", f"trusted_issuer idp.test {ident.key_file}"]
        extra += settings.pop("lines", [])
        return make_server(extra="\n".join(extra), **settings).start()
    return factory


def update(email, assertion=None, status="online", device="phone"):
    message = {"email": email, "status": status, "device": device}
    if assertion is not None:
        message["assertion"] = assertion
    return json.dumps(message)


async def connect(server, email, assertion, device="phone", status="online"):
    """An authenticated device: returns the WebSocket and its first reply."""
    ws = await websockets.connect(server.ws_url, max_size=None)
    await ws.send(update(email, assertion, status, device))
    return ws, json.loads(await ws.recv())


def admin_json(server, path, body=None):
    url = f"http://127.0.0.1:{server.admin_port}{path}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def user(server, email):
    status, body = admin_json(server, "/users/" + urllib.parse.quote(email))
    assert status == 200, body
    return body


def notify(server, email, **fields):
    fields.setdefault("source", "operator@presence.test")
    fields.setdefault("message", "hello")
    return admin_json(server, "/users/" + urllib.parse.quote(email) + "/notifications", fields)



def test_status_updates_and_aggregate_presence(start, ident):
    server = start()
    email = "alice@example.com"
    a = ident(email)

    async def scenario():
        phone, first = await connect(server, email, a, "phone", "online")
        assert first == {"result": "OK"}
        assert user(server, email)["status"] == "online"
        laptop, reply = await connect(server, email, a, "laptop", "unavailable")
        assert reply == {"result": "OK"}
        body = user(server, email)
        assert body["status"] == "online"
        assert sorted((d["device"], d["status"]) for d in body["devices"]) == [
            ("laptop", "unavailable"), ("phone", "online")]
        await phone.send(update(email, status="offline"))
        assert json.loads(await phone.recv()) == {"result": "OK"}
        assert user(server, email)["status"] == "unavailable"
        await laptop.close()
        assert wait_for(lambda: [d["device"] for d in user(server, email)["devices"]] == ["phone"])
        assert user(server, email)["status"] == "offline"  # connected, but appearing offline
        await phone.close()
        body = wait_for(lambda: not user(server, email)["devices"] and user(server, email))
        assert body["status"] == "offline" and body["since"] is None
    run(scenario())


def test_takeover_on_the_same_and_on_another_worker(start, ident):
    """Each new connection for (alice, phone) supersedes the previous one: errno 52 and close
    4001, whichever worker either is on. Connections land on workers as SO_REUSEPORT hashes
    them, so the test goes on until it has seen both cases."""
    server = start()
    email = "alice@example.com"
    a = ident(email)

    async def scenario():
        seen = set()
        old, reply = await connect(server, email, a)
        assert reply == {"result": "OK"}
        old_pid = user(server, email)["devices"][0]["worker"]
        for _ in range(40):
            new, reply = await connect(server, email, a)
            assert reply == {"result": "OK"}
            superseded = json.loads(await asyncio.wait_for(old.recv(), 5))
            assert superseded["errno"] == 52
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(old.recv(), 5)
            assert old.close_code == 4001
            devices = user(server, email)["devices"]
            assert len(devices) == 1
            new_pid = devices[0]["worker"]
            seen.add("same" if new_pid == old_pid else "other")
            old, old_pid = new, new_pid
            if seen == {"same", "other"}:
                break
        await old.close()
        return seen
    assert run(scenario()) == {"same", "other"}


def test_too_many_devices_is_51(start, ident):
    server = start(max_devices_per_user=2)
    email = "bob@example.com"
    a = ident(email)

    async def scenario():
        one, r1 = await connect(server, email, a, "one")
        two, r2 = await connect(server, email, a, "two")
        three, r3 = await connect(server, email, a, "three")
        again, r4 = await connect(server, email, a, "two")  # the same device: a takeover
        for ws in (one, two, three, again):
            await ws.close()
        return r1, r2, r3, r4
    r1, r2, r3, r4 = run(scenario())
    assert r1 == r2 == r4 == {"result": "OK"}
    assert r3["errno"] == 51


def test_rate_limit_is_50_with_retry_after(start, ident):
    server = start(status_rate=1, status_burst=2)
    email = "carol@example.com"

    async def scenario():
        ws, first = await connect(server, email, ident(email))
        replies = [first]
        for status in ("unavailable", "online"):
            await ws.send(update(email, status=status))
            replies.append(json.loads(await ws.recv()))
        await ws.send("{}")  # keep-alives are not rate limited
        replies.append(json.loads(await ws.recv()))
        await asyncio.sleep(1.1)
        await ws.send(update(email, status="offline"))
        replies.append(json.loads(await ws.recv()))
        await ws.close()
        return replies
    replies = run(scenario())
    assert replies[0] == replies[1] == {"result": "OK"}
    assert replies[2]["errno"] == 50 and replies[2]["retry_after"] >= 1
    assert replies[3] == {}
    assert replies[4] == {"result": "OK"}


def test_a_full_store_is_60_never_a_false_ok(start, ident):
    server = start(map_size="1M", max_map_size="1M")
    email = "dave@example.com"
    # A process that pins the store with a reader and fills the rest of the map.
    filler = subprocess.Popen([os.path.join(TOOLS, "store_tool"), server.settings["data_dir"],
                               "fill"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert filler.stdout.readline().strip() == "full"
        reply = run(replies_only(server, update(email, ident(email))))
        assert reply["errno"] == 60, reply
        assert user(server, email)["devices"] == []
    finally:
        filler.stdin.close()
        filler.wait(timeout=10)
    # With the store writable again, the same update is stored.
    assert run(replies_only(server, update(email, ident(email)))) == {"result": "OK"}


async def replies_only(server, message):
    async with websockets.connect(server.ws_url, max_size=None) as ws:
        await ws.send(message)
        return json.loads(await ws.recv())


def test_pending_notifications_arrive_in_one_message(start, ident):
    server = start()
    email = "erin@example.com"
    ids = []
    for i in range(3):
        status, body = notify(server, email, message=f"m{i}", action=f"https://chat.test/r/{i}")
        assert status == 201
        ids.append(body["id"])
    assert user(server, email)["pending_notifications"] == 3

    async def scenario():
        ws, reply = await connect(server, email, ident(email))
        assert reply == {"result": "OK"}
        message = json.loads(await ws.recv())
        await ws.close()
        return message
    message = run(scenario())
    notes = message["notifications"]
    assert [n["id"] for n in notes] == ids
    assert [n["message"] for n in notes] == ["m0", "m1", "m2"]
    assert notes[0]["action"] == "https://chat.test/r/0"
    assert notes[0]["source"] == "operator@presence.test"
    assert abs(notes[0]["ts"] - time.time()) < 60
    assert wait_for(lambda: user(server, email)["pending_notifications"] == 0)


def test_live_notification_from_admin_and_from_another_process(start, ident):
    server = start()
    email = "frank@example.com"

    async def scenario():
        ws, reply = await connect(server, email, ident(email))
        assert reply == {"result": "OK"}
        latencies = []
        for source in ("admin", "process"):
            started = time.monotonic()
            if source == "admin":
                status, _ = notify(server, email, message="from the operator")
                assert status == 201
            else:
                # Another process of the store queues it, as a worker would for an app.
                subprocess.run([os.path.join(TOOLS, "store_tool"), server.settings["data_dir"],
                                "notify", email, "from another process"], check=True,
                               capture_output=True)
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            latencies.append(time.monotonic() - started)
            assert len(message["notifications"]) == 1
        await ws.close()
        return latencies
    latencies = run(scenario())
    # Mostly the admin request and the tool's start-up; the wake-up itself takes microseconds.
    assert max(latencies) < 2.0, latencies
    assert wait_for(lambda: user(server, email)["pending_notifications"] == 0)


def test_every_connected_device_gets_a_live_notification(start, ident):
    server = start()
    email = "gina@example.com"

    async def scenario():
        devices = [await connect(server, email, ident(email), f"d{i}") for i in range(4)]
        assert all(reply == {"result": "OK"} for _, reply in devices)
        status, body = notify(server, email, message="to all")
        assert status == 201
        got = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for ws, _ in devices]
        for ws, _ in devices:
            await ws.close()
        return body["id"], got
    note_id, got = run(scenario())
    assert all(m["notifications"][0]["id"] == note_id for m in got)


def test_notifications_survive_a_restart(start, ident):
    server = start()
    email = "hank@example.com"
    status, body = notify(server, email, message="kept")
    assert status == 201
    server.stop()
    server.start()

    async def scenario():
        ws, reply = await connect(server, email, ident(email))
        message = json.loads(await ws.recv())
        await ws.close()
        return reply, message
    reply, message = run(scenario())
    assert reply == {"result": "OK"}
    assert message["notifications"][0]["id"] == body["id"]


def metric_value(server, name):
    """The value of an unlabelled series of /metrics."""
    for line in server.admin("/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def test_ttl_and_queue_cap(start, ident):
    server = start(max_pending_notifications=3)
    email = "ivan@example.com"
    for i in range(5):
        assert notify(server, email, message=f"keep{i}")[0] == 201
    # Queued last, so the cap does not drop it (it drops keep2): only its ttl keeps it away.
    assert notify(server, email, message="short", ttl=1)[0] == 201
    time.sleep(1.2)

    async def scenario():
        ws, reply = await connect(server, email, ident(email))
        message = json.loads(await ws.recv())
        await ws.close()
        return message
    message = run(scenario())
    assert [n["message"] for n in message["notifications"]] == ["keep3", "keep4"]
    assert metric_value(server, "presenced_notifications_dropped_total") == 3
    assert metric_value(server, "presenced_notifications_expired_total") == 1


def test_admin_user_endpoint_refusals(start):
    server = start()
    assert admin_json(server, "/users/not-an-email")[0] == 400
    assert admin_json(server, "/users/a@example.com/notifications", {"message": "x"})[0] == 400
    assert admin_json(server, "/users/a@example.com/notifications",
                      {"source": "s", "message": "m", "ttl": 10 ** 9})[0] == 400
    assert admin_json(server, "/users/a@example.com/other")[0] == 404
    assert admin_json(server, "/users/a@example.com", {"x": 1})[0] == 405
    body = user(server, "nobody@example.com")
    assert body == {"email": "nobody@example.com", "known": False, "status": "offline",
                    "since": None, "published": {"status": "offline", "since": None},
                    "devices": [], "push_subscriptions": [], "pending_notifications": 0,
                    "grants": [], "apps_owned": 0}


def test_kill_9_of_the_worker_shows_offline_within_2s(start, ident):
    server = start()
    email = "judy@example.com"

    async def scenario():
        ws, reply = await connect(server, email, ident(email))
        assert reply == {"result": "OK"}
        pid = user(server, email)["devices"][0]["worker"]
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        body = wait_for(lambda: user(server, email)["status"] == "offline" and
                        not user(server, email)["devices"] and user(server, email), 2.0)
        elapsed = time.monotonic() - killed
        try:
            await ws.close()
        except Exception:
            pass
        return body, elapsed
    body, elapsed = run(scenario())
    assert body and body["status"] == "offline", body
    assert elapsed < 2.0


class SilentPeer:
    """A WebSocket client that authenticates, then never reads again: it answers no ping."""

    def __init__(self, port, message):
        self.sock = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /presence HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        assert b" 101 " in response.split(b"\r\n")[0], response
        payload = message.encode()
        mask = os.urandom(4)
        header = bytes([0x81]) + (bytes([0x80 | len(payload)]) if len(payload) < 126 else
                                  bytes([0x80 | 126]) + struct.pack("!H", len(payload)))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self):
        self.sock.close()


def test_a_peer_that_stops_answering_pings_is_closed_and_gone(start, ident):
    server = start(ping_interval="1s", ping_timeout="1s")
    email = "kate@example.com"
    peer = SilentPeer(server.port, update(email, ident(email)))
    try:
        assert wait_for(lambda: user(server, email)["status"] == "online", 5)
        started = time.monotonic()
        assert wait_for(lambda: not user(server, email)["devices"], 10)
        elapsed = time.monotonic() - started
        assert user(server, email)["status"] == "offline"
        assert elapsed < 6, elapsed
    finally:
        peer.close()


def test_a_thousand_devices_update_at_once(start, ident):
    server = start(workers=2)
    users = [f"user{i}@example.com" for i in range(100)]

    async def device(email, n):
        ws, reply = await connect(server, email, ident(email), f"dev{n}")
        assert reply == {"result": "OK"}, reply
        await ws.send(update(email, status="unavailable", device=f"dev{n}"))
        second = json.loads(await ws.recv())
        return ws, second

    async def scenario():
        results = await asyncio.gather(*[device(u, n) for u in users for n in range(10)])
        acknowledged = sum(1 for _, r in results if r == {"result": "OK"})
        # Workers publish their counts every second.
        status = wait_for(lambda: sum(w["websockets"] for w in server.status()["workers"]) == 1000
                          and server.status(), 5)
        for ws, _ in results:
            await ws.close()
        return acknowledged, status
    acknowledged, status = run(scenario(), timeout=120)
    assert acknowledged == 1000
    assert sum(w["websockets"] for w in status["workers"]) == 1000
    assert all(w["websockets"] > 0 for w in status["workers"])
