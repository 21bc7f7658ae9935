"""Every acknowledged notification is exactly one notification, delivered exactly once (SPEC.md
§2, §5, §6): operator POSTs on the admin port in a tight loop, interleaved with an AppService's
notifies to the same user, first while the user has no device connected, then while one is."""
import asyncio
import collections
import concurrent.futures
import http.client
import json
import urllib.parse

import websockets

from conftest import wait_for
from test_appservice import DEVICE_AUDIENCE, AppService, grant
from web_fixtures import activated_app, signed_in

OPERATOR_POSTS = 1000
APP_NOTIFIES = 1000
EMAIL = "nina@example.com"


def run(coro, timeout=240):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def operator_posts(server, phase, count, connections=8):
    """POSTs count notifications back to back over several keep-alive connections at once, so
    that the master answers many in the same millisecond; returns the messages of those
    answered 201, each with the id the answer gave."""
    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        parts = pool.map(lambda c: operator_posts_on_one(server, phase, range(c, count,
                                                                              connections)),
                         range(connections))
        return {message: id for part in parts for message, id in part.items()}


def operator_posts_on_one(server, phase, numbers):
    conn = http.client.HTTPConnection("127.0.0.1", server.admin_port, timeout=30)
    path = "/users/" + urllib.parse.quote(EMAIL) + "/notifications"
    acked = {}
    for i in numbers:
        message = f"op-{phase}-{i}"
        conn.request("POST", path, body=json.dumps({"source": "operator", "message": message}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = json.loads(response.read())
        if response.status == 201:
            acked[message] = body["id"]
    conn.close()
    return acked


async def app_notifies(app, puid, phase, count, window=32):
    """Notifies count times with up to `window` requests in flight; returns the messages whose
    reply was OK."""
    acked, sent, replied = set(), 0, 0
    while replied < count:
        while sent < count and sent - replied < window:
            await app.ws.send(json.dumps({"action": "notify", "target": puid, "source": "app",
                                          "message": f"app-{phase}-{sent}", "id": str(sent),
                                          "ttl": 3600}))
            sent += 1
        reply = json.loads(await asyncio.wait_for(app.ws.recv(), 30))
        if reply.get("action") != "notify":
            continue  # a presence event of the user
        replied += 1
        if reply.get("result") == "OK":
            acked.add(f"app-{phase}-{reply['id']}")
        else:
            print("notify refused:", reply)
    return acked


async def both_at_once(server, app, puid, phase):
    loop = asyncio.get_running_loop()
    posts = loop.run_in_executor(None, operator_posts, server, phase, OPERATOR_POSTS)
    app_acked = await app_notifies(app, puid, phase, APP_NOTIFIES)
    return await posts, app_acked


class Device:
    """A device whose every received notification is counted by message."""

    def __init__(self, ws):
        self.ws = ws
        self.seen = collections.Counter()
        self.ids = collections.Counter()
        self.pongs = asyncio.Queue()
        self.reader = asyncio.ensure_future(self.read())

    async def read(self):
        async for text in self.ws:
            message = json.loads(text)
            if message == {}:
                await self.pongs.put(True)
            for n in message.get("notifications", []):
                self.seen[n["message"]] += 1
                self.ids[n["id"]] += 1

    async def settle(self, server, phase):
        """Waits until everything queued before now has reached this device: a marker sent
        last arrives, then a keep-alive round trip flushes what its worker wrote with it."""
        marker = f"marker-{phase}"
        acked = await asyncio.get_running_loop().run_in_executor(
            None, lambda: operator_posts_one(server, marker))
        assert acked, "the marker was not queued"
        for _ in range(3000):
            if self.seen[marker]:
                break
            await asyncio.sleep(0.02)
        assert self.seen[marker] == 1, f"the marker of {phase} never arrived"
        await self.ws.send("{}")
        await asyncio.wait_for(self.pongs.get(), 30)


def operator_posts_one(server, message):
    conn = http.client.HTTPConnection("127.0.0.1", server.admin_port, timeout=30)
    conn.request("POST", "/users/" + urllib.parse.quote(EMAIL) + "/notifications",
                 body=json.dumps({"source": "operator", "message": message}))
    ok = conn.getresponse().status == 201
    conn.close()
    return ok


async def device_connect(server, ident):
    ws = await websockets.connect(server.ws_url, max_size=None, max_queue=None)
    await ws.send(json.dumps({"email": EMAIL, "status": "online", "device": "phone",
                              "assertion": ident(EMAIL, DEVICE_AUDIENCE)}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"result": "OK"}
    return Device(ws)


def tally(device, acked_ops, acked_apps, phase):
    """(acknowledged, lost, duplicated, unacknowledged yet delivered) for one phase."""
    expected = set(acked_ops) | acked_apps
    delivered = {m: c for m, c in device.seen.items() if m.startswith(("op-" + phase,
                                                                       "app-" + phase))}
    lost = sorted(expected - set(delivered))
    duplicated = sorted(m for m, c in delivered.items() if c > 1)
    extra = sorted(set(delivered) - expected)
    return len(expected), lost, duplicated, extra


def test_every_acknowledged_notification_arrives_exactly_once(site, ident, domain):
    server = site(workers=2, max_pending_notifications=10000, app_rate=1000000,
                  app_burst=1000000)
    server.write_config(extra=server.settings["extra"] + f"\naudience {DEVICE_AUDIENCE}")
    server.stop()
    server.start()
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    _, puid = grant(server, ident, EMAIL, appid, "nina")
    figures = {}

    async def scenario():
        app = await AppService.connect(server, appid, api_key)

        # Offline: everything is queued, then arrives at the device's first connect.
        ops, apps = await both_at_once(server, app, puid, "offline")
        assert len(ops) == OPERATOR_POSTS and len(apps) == APP_NOTIFIES, (len(ops), len(apps))
        assert len(set(ops.values())) == len(ops), "two 201s carried the same id"
        device = await device_connect(server, ident)
        await device.settle(server, "offline")
        figures["offline"] = tally(device, ops, apps, "offline")

        # Online: each arrives live.
        ops, apps = await both_at_once(server, app, puid, "online")
        assert len(ops) == OPERATOR_POSTS and len(apps) == APP_NOTIFIES, (len(ops), len(apps))
        await device.settle(server, "online")
        figures["online"] = tally(device, ops, apps, "online")
        figures["ids"] = max(device.ids.values())
        await device.ws.close()
        await app.ws.close()
    run(scenario())
    report = {}
    for phase in ("offline", "online"):
        acked, lost, duplicated, extra = figures[phase]
        report[phase] = (f"{acked} acknowledged, {len(lost)} lost (e.g. {lost[:3]}), "
                         f"{len(duplicated)} duplicated (e.g. {duplicated[:3]}), "
                         f"{len(extra)} delivered unacknowledged")
        print(f"{phase}: {report[phase]}")
    for phase in ("offline", "online"):
        _, lost, duplicated, extra = figures[phase]
        assert (len(lost), len(duplicated), extra) == (0, 0, []), report
    assert figures["ids"] == 1, "a notification id was delivered twice"
    assert wait_for(lambda: server.admin("/users/" + urllib.parse.quote(EMAIL)).count(
        '"pending_notifications":0'), timeout=10)
