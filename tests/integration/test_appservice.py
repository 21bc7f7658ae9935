"""The AppService channel (SPEC.md §5) and the chat-room story end to end, across two workers:
an app registered and validated against a real local HTTPS server for its domain, two users who
grant it through the HTTP flow, the app seeing them by PUID, a notify reaching a device, and a
revoke stopping both directions."""
import asyncio
import json
import re
import time
import urllib.parse
import urllib.request

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_for

from web_fixtures import APP_DOMAIN, action, activated_app, register, signed_in

DEVICE_AUDIENCE = "https://presence.test"


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def story(site, ident, domain):
    server = site(workers=2)
    server.write_config(extra=server.settings["extra"] + f"\naudience {DEVICE_AUDIENCE}")
    server.stop()
    server.start()
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    return server, dev, appid, api_key


def grant(server, ident, email, appid, userstring):
    browser = signed_in(server, ident, email)
    query = urllib.parse.urlencode({"redirect": f"https://{APP_DOMAIN}/welcome",
                                    "id": userstring})
    _, forms, _ = browser.forms(f"/grant/{appid}?{query}")
    fields = next(f["fields"] for f in forms if f["action"] == f"/grant/{appid}")
    status, headers, _ = browser.post(f"/grant/{appid}", {**fields, "decision": "allow"})
    assert status == 303
    return browser, re.search(r"Presence-UID=([0-9a-f-]{36})", headers["location"]).group(1)


class AppService:
    """An app's server on the channel; keeps every message it receives."""

    def __init__(self, ws):
        self.ws = ws
        self.received = []

    @classmethod
    async def connect(cls, server, appid, token=None):
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/myapps/{appid}")
        app = cls(ws)
        if token is not None:
            await ws.send(json.dumps({"action": "auth", "token": token}))
            assert await app.recv() == {"action": "auth", "result": "OK"}
        return app

    async def recv(self, timeout=5):
        message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.received.append(message)
        return message

    async def event(self, timeout=5):
        """The next presence event, skipping nothing: events are all this connection gets.
        Every event carries "since" (SPEC.md §7), a time in ms or null; it is checked and kept
        in self.since, and the rest returned."""
        event = dict(await self.recv(timeout))
        assert "since" in event, event
        self.since = event.pop("since")
        assert self.since is None or (isinstance(self.since, int) and self.since > 0), event
        return event

    async def request(self, message):
        await self.ws.send(json.dumps(message))
        return await self.recv()


async def device(server, ident_fn, email, status="online", device_name="phone"):
    ws = await websockets.connect(server.ws_url)
    await ws.send(json.dumps({"email": email, "status": status, "device": device_name,
                              "assertion": ident_fn(email, DEVICE_AUDIENCE)}))
    assert json.loads(await ws.recv()) == {"result": "OK"}
    return ws


def test_the_chat_room_story(story, ident):
    server, dev, appid, api_key = story
    alice_web, alice_puid = grant(server, ident, "alice@example.com", appid, "alice")
    bob_web, bob_puid = grant(server, ident, "bob@example.com", appid, "bob")
    assert alice_puid != bob_puid

    async def scenario():
        # Two connections of the app: each gets every event.
        first = await AppService.connect(server, appid, api_key)
        second = await AppService.connect(server, appid, api_key)
        apps = (first, second)
        alice = await device(server, ident, "alice@example.com")
        for app in apps:
            assert await app.event() == {"uid": alice_puid, "status": "online"}
        bob = await device(server, ident, "bob@example.com", status="unavailable")
        for app in apps:
            assert await app.event() == {"uid": bob_puid, "status": "unavailable"}
        await alice.send(json.dumps({"email": "alice@example.com", "status": "unavailable"}))
        assert json.loads(await alice.recv()) == {"result": "OK"}
        for app in apps:
            assert await app.event() == {"uid": alice_puid, "status": "unavailable"}

        # Alice rings Bob: the notification reaches Bob's phone.
        reply = await first.request({"action": "notify", "target": bob_puid, "source": "Alice",
                                     "message": "Alice is ringing",
                                     "url": "https://chat.test/r/1", "ttl": 60, "id": "c1"})
        assert reply == {"action": "notify", "result": "OK", "id": "c1"}
        ring = json.loads(await asyncio.wait_for(bob.recv(), 5))["notifications"][0]
        assert (ring["source"], ring["message"], ring["action"], ring["app"]) == (
            "Alice", "Alice is ringing", "https://chat.test/r/1", "Chat")

        snapshot = await first.request({"action": "snapshot"})
        assert snapshot["action"] == "snapshot" and snapshot["last"] is True
        assert sorted((p["uid"], p["status"]) for p in snapshot["presence"]) == sorted(
            [(alice_puid, "unavailable"), (bob_puid, "unavailable")])

        # Alice revokes: the app hears "offline" once, then nothing more of her.
        _, forms, _ = alice_web.forms("/account")
        revoke = next(f["fields"] for f in forms if f["action"] == f"/revoke/{appid}")
        assert alice_web.post(f"/revoke/{appid}", revoke)[0] == 303
        for app in apps:
            assert await app.event() == {"uid": alice_puid, "status": "offline"}
        await alice.send(json.dumps({"email": "alice@example.com", "status": "online"}))
        assert json.loads(await alice.recv()) == {"result": "OK"}
        reply = await first.request({"action": "notify", "target": alice_puid, "source": "Bob",
                                     "message": "hi", "id": "c2"})
        assert reply["errno"] == 43 and reply["action"] == "notify" and reply["id"] == "c2"
        # Bob's next change is the next event: nothing about Alice came in between.
        await bob.send(json.dumps({"email": "bob@example.com", "status": "online"}))
        assert json.loads(await bob.recv()) == {"result": "OK"}
        for app in apps:
            assert await app.event() == {"uid": bob_puid, "status": "online"}

        # Away and back: the changes missed meanwhile, coalesced per PUID.
        for app in apps:
            await app.ws.close()
        await asyncio.sleep(0.2)
        await bob.send(json.dumps({"email": "bob@example.com", "status": "unavailable"}))
        assert json.loads(await bob.recv()) == {"result": "OK"}
        await bob.send(json.dumps({"email": "bob@example.com", "status": "offline"}))
        assert json.loads(await bob.recv()) == {"result": "OK"}
        back = await AppService.connect(server, appid, api_key)
        assert await back.event() == {"uid": bob_puid, "status": "offline"}
        for ws in (alice, bob, back.ws):
            await ws.close()
        return [m for app in apps + (back,) for m in app.received]
    received = run(scenario())
    # No e-mail in anything the AppService received.
    for message in received:
        assert "@" not in json.dumps(message), message


def test_appservice_refusals(story, ident, site, domain):
    server, dev, appid, api_key = story
    other_appid, _ = activated_app(dev, domain)
    _, other_puid = grant(server, ident, "carol@example.com", other_appid, "carol")
    draft = register(dev, "Draft")
    retired, retired_key = activated_app(dev, domain)
    assert action(dev, retired, "deactivate")[0] == 303

    async def refused(target_appid, token):
        app = await AppService.connect(server, target_appid)
        reply = await app.request({"action": "auth", "token": token})
        with pytest.raises(websockets.ConnectionClosed):
            await app.recv()
        return reply["errno"], app.ws.close_code, reply["action"]

    async def scenario():
        assert await refused("00000000-0000-4000-8000-000000000000", api_key) == (40, 1008,
                                                                                  "auth")
        assert await refused(draft, api_key) == (41, 1008, "auth")
        assert await refused(retired, retired_key) == (41, 1008, "auth")
        assert await refused(appid, "wrong") == (42, 1008, "auth")
        app = await AppService.connect(server, appid)
        reply = await app.request({"action": "notify", "target": other_puid, "source": "x",
                                   "message": "y", "id": "n1"})
        assert (reply["errno"], reply["action"], reply["id"]) == (30, "notify", "n1")
        reply = await app.request({"action": "dance"})
        assert reply["errno"] == 13
        assert (await app.request({"action": "auth", "key": api_key}))["result"] == "OK"
        # A PUID of another app is unknown to this one.
        reply = await app.request({"action": "notify", "target": other_puid, "source": "x",
                                   "message": "y"})
        assert reply["errno"] == 43
        await app.ws.close()
        # Silent past the deadline: closed with 1008.
        silent = await AppService.connect(server, appid)
        started = time.monotonic()
        reply = await silent.recv(timeout=15)
        with pytest.raises(websockets.ConnectionClosed):
            await silent.recv()
        return reply, silent.ws.close_code, time.monotonic() - started
    reply, code, waited = run(scenario())
    assert reply["errno"] == 30 and code == 1008 and 9 <= waited <= 13
    # A bad key on the polling API too; both counted for the operator (errno 40 and 41 are not
    # key guesses).
    status, _, _ = dev.get(f"/myapps/{appid}/status?uid=x",
                           headers={"Authorization": "Bearer wrong"})
    assert status == 401
    assert wait_for(lambda: key_failures(server) == 2, timeout=10), key_failures(server)


def key_failures(server):
    families = {f.name: f for f in text_string_to_metric_families(server.admin("/metrics"))}
    return sum(s.value for s in families["presenced_app_key_failures"].samples)


def test_notify_rate_limit(site, ident, domain):
    server = site(app_rate=1, app_burst=2, workers=1)
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    _, puid = grant(server, ident, "dora@example.com", appid, "dora")

    async def scenario():
        app = await AppService.connect(server, appid, api_key)
        replies = [await app.request({"action": "notify", "target": puid, "source": "s",
                                      "message": f"m{i}"}) for i in range(3)]
        await app.ws.close()
        return replies
    replies = run(scenario())
    assert replies[0]["result"] == replies[1]["result"] == "OK"
    assert replies[2]["errno"] == 50 and replies[2]["retry_after"] >= 1


def test_deactivate_new_key_and_delete_close_the_apps_connections(site, ident, domain):
    """What the developer does on /myapps reaches the app's open connections on every worker:
    deactivate (errno 41), a new API key (42 for those authenticated with the old one), delete
    (40), each then close 1008."""
    server = site(workers=2)
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)

    async def connections(key, count=4):
        # Several connections, which SO_REUSEPORT spreads over the workers.
        return [await AppService.connect(server, appid, key) for _ in range(count)]

    async def closed(apps):
        outcomes = []
        for app in apps:
            reply = await app.recv(timeout=10)
            with pytest.raises(websockets.ConnectionClosed):
                await app.recv(timeout=10)
            outcomes.append((reply["errno"], app.ws.close_code))
        return outcomes

    async def scenario():
        apps = await connections(api_key)
        assert action(dev, appid, "deactivate")[0] == 303
        assert await closed(apps) == [(41, 1008)] * 4
        status, _, text = action(dev, appid, "activate")
        assert status == 200
        key = re.search(r'id="api-key">([^<]+)<', text).group(1)
        apps = await connections(key)
        status, _, text = action(dev, appid, "rotate-key")
        assert status == 200
        assert await closed(apps) == [(42, 1008)] * 4
        key = re.search(r'id="api-key">([^<]+)<', text).group(1)
        apps = await connections(key)
        status, _, _ = dev.request("DELETE", f"/myapps/{appid}",
                                   headers={"X-CSRF-Token": dev.csrf(f"/myapps/{appid}")})
        assert status == 303
        assert await closed(apps) == [(40, 1008)] * 4
    run(scenario())


def test_a_notify_target_carrying_u0000_is_errno_11(site, ident, domain):
    """"<PUID>\\u0000junk" was taken as the PUID (json-c's strings end at the NUL): no string of
    the channel carries U+0000 (SPEC.md, before §1), and nothing is queued."""
    server = site(workers=1)
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    _, puid = grant(server, ident, "erin@example.com", appid, "erin")

    async def scenario():
        app = await AppService.connect(server, appid, api_key)
        replies = []
        for id_, target, source in (("z1", puid + "\\u0000junk", "s"),
                                    ("z2", puid, "s\\u0000")):
            await app.ws.send('{"action":"notify","target":"%s","source":"%s","message":"m",'
                              '"id":"%s"}' % (target, source, id_))
            replies.append(await app.recv())
        await app.ws.close()
        return replies
    for reply, id_ in zip(run(scenario()), ("z1", "z2")):
        assert (reply["result"], reply["errno"], reply["action"], reply["id"]) == (
            "KO", 11, "notify", id_), reply
        assert "U+0000" in reply["error"]
    url = f"http://127.0.0.1:{server.admin_port}/users/erin%40example.com"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert json.loads(r.read())["pending_notifications"] == 0


def test_which_replies_repeat_the_request_id(site, ident, domain):
    """presence(7): notify's reply and every error reply repeat the id; auth's OK and a
    snapshot's chunks carry none; an id of another form is ignored and the request served."""
    server = site(workers=1)
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    _, puid = grant(server, ident, "finn@example.com", appid, "finn")

    async def scenario():
        app = await AppService.connect(server, appid)
        assert await app.request({"action": "snapshot", "id": "s0"}) == {
            "action": "snapshot", "id": "s0", "result": "KO", "errno": 30,
            "error": "authentication required"}
        assert await app.request({"action": "auth", "token": api_key, "id": "a1"}) == {
            "action": "auth", "result": "OK"}
        assert await app.request({"action": "dance", "id": "d1"}) == {
            "id": "d1", "result": "KO", "errno": 13, "error": "unknown action"}
        notify = {"action": "notify", "target": puid, "source": "s", "message": "m"}
        assert await app.request({**notify, "id": "n1"}) == {
            "action": "notify", "result": "OK", "id": "n1"}
        for other in (7, "x" * 65, "not an id"):
            assert await app.request({**notify, "id": other}) == {
                "action": "notify", "result": "OK"}, other
        snapshot = await app.request({"action": "snapshot", "id": "s1"})
        assert snapshot == {"action": "snapshot", "last": True,
                            "presence": [{"uid": puid, "status": "offline", "since": None}]}
        await app.ws.close()
    run(scenario())
