"""Presence that does not flap, since and last seen (SPEC.md §7), as an app sees them: a reload
within offline_grace shows nothing, a departure past it one offline dated when the device left, a
device's own status at once, since in events, snapshots and polling, the grace kept by the
master when the worker that saw the departure dies, and last seen across a restart."""
import asyncio
import json
import os
import signal
import time
import urllib.parse

import pytest

from conftest import wait_for
from test_appservice import DEVICE_AUDIENCE, AppService, device, grant, run
from web_fixtures import activated_app, signed_in


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture
def app_site(site, ident, domain):
    """A presenced with an active app; settings (offline_grace...) as given."""
    def factory(**settings):
        server = site(workers=2, **settings)
        server.write_config(extra=server.settings["extra"] + f"\naudience {DEVICE_AUDIENCE}")
        server.stop()
        server.start()
        dev = signed_in(server, ident, "dev@example.com")
        appid, api_key = activated_app(dev, domain)
        server.app = (dev, appid, api_key)
        return server
    return factory


def poll(server, browser, appid, api_key, puid):
    status, _, body = browser.get(f"/myapps/{appid}/status?uid={puid}",
                                  headers={"Authorization": f"Bearer {api_key}"})
    assert status == 200, body
    return json.loads(body)["statuses"][0]


async def snapshot_of(app, puid):
    reply = await app.request({"action": "snapshot"})
    assert reply["last"] is True
    return next(p for p in reply["presence"] if p["uid"] == puid)


async def marker(server, ident, app, email, puid):
    """Another user's change, read as the app's next event: whatever came before it was seen
    first, so an event that should not exist shows as the one read instead."""
    ws = await device(server, ident, email, device_name="marker")
    assert await app.event() == {"uid": puid, "status": "online"}
    return ws


def test_a_reload_within_the_grace_shows_nothing(app_site, ident):
    server = app_site(offline_grace="30s")
    dev, appid, api_key = server.app
    _, alice = grant(server, ident, "alice@example.com", appid, "alice")
    _, mark = grant(server, ident, "mark@example.com", appid, "mark")

    async def scenario():
        app = await AppService.connect(server, appid, api_key)
        before = now_ms()
        phone = await device(server, ident, "alice@example.com")
        assert await app.event() == {"uid": alice, "status": "online"}
        since = app.since
        assert before - 1000 <= since <= now_ms() + 1000
        # The page reloads: the WebSocket goes, a new one comes.
        await phone.close()
        assert wait_for(lambda: not [d for d in user_devices(server, "alice@example.com")])
        held = poll(server, dev, appid, api_key, alice)
        assert held == {"uid": alice, "status": "online", "since": since}, held
        assert await snapshot_of(app, alice) == {"uid": alice, "status": "online",
                                                 "since": since}
        phone = await device(server, ident, "alice@example.com")
        # Nothing reached the app: the next event is another user's.
        other = await marker(server, ident, app, "mark@example.com", mark)
        # Her own status counts at once, though the grace is 30 s.
        await phone.send(json.dumps({"email": "alice@example.com", "status": "unavailable"}))
        assert json.loads(await phone.recv()) == {"result": "OK"}
        assert await app.event(timeout=10) == {"uid": alice, "status": "unavailable"}
        assert app.since >= since
        assert (await snapshot_of(app, alice))["since"] == app.since
        assert poll(server, dev, appid, api_key, alice)["since"] == app.since
        for ws in (phone, other, app.ws):
            await ws.close()
    run(scenario())


def user_devices(server, email):
    from test_device_presence import user
    return user(server, email)["devices"]


def test_past_the_grace_one_offline_dated_when_the_device_left(app_site, ident):
    server = app_site(offline_grace="1s")
    dev, appid, api_key = server.app
    _, bob = grant(server, ident, "bob@example.com", appid, "bob")
    _, mark = grant(server, ident, "mark@example.com", appid, "mark")

    async def scenario():
        app = await AppService.connect(server, appid, api_key)
        phone = await device(server, ident, "bob@example.com")
        assert await app.event() == {"uid": bob, "status": "online"}
        online_since = app.since
        left = now_ms()
        await phone.close()
        assert await app.event(timeout=10) == {"uid": bob, "status": "offline"}
        heard = now_ms()
        last_seen = app.since
        # Dated when the phone left, not when the grace ended.
        assert online_since <= last_seen <= heard - 900, (online_since, left, last_seen, heard)
        assert last_seen >= left - 1000
        # One offline only: the next event is another user's.
        other = await marker(server, ident, app, "mark@example.com", mark)
        assert await snapshot_of(app, bob) == {"uid": bob, "status": "offline",
                                               "since": last_seen}
        assert poll(server, dev, appid, api_key, bob) == {"uid": bob, "status": "offline",
                                                          "since": last_seen}
        for ws in (other, app.ws):
            await ws.close()
    run(scenario())


def test_the_grace_outlives_the_worker_that_saw_the_device_leave(app_site, ident):
    """kill -9 of the worker holding the device: the master releases the device and its hold
    ends from the store, so apps hear one offline after the grace, not at once and not never."""
    server = app_site(offline_grace="2s")
    dev, appid, api_key = server.app
    _, carol = grant(server, ident, "carol@example.com", appid, "carol")

    async def scenario():
        phone = await device(server, ident, "carol@example.com")
        pid = user_devices(server, "carol@example.com")[0]["worker"]
        killed = now_ms()
        os.kill(pid, signal.SIGKILL)
        # The master releases the dead worker's device at once; apps still see it held.
        assert wait_for(lambda: not user_devices(server, "carol@example.com"), 10)
        held = poll(server, dev, appid, api_key, carol)
        if now_ms() - killed < 1500:
            assert held["status"] == "online", held
        status = await wait_offline(server, dev, appid, api_key, carol)
        assert now_ms() - killed >= 1800
        assert killed - 1000 <= status["since"] <= now_ms() - 1800, (killed, status)
        try:
            await phone.close()
        except Exception:
            pass
    run(scenario())


async def wait_offline(server, dev, appid, api_key, puid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = poll(server, dev, appid, api_key, puid)
        if status["status"] == "offline":
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("still not offline")


def test_last_seen_after_a_restart(app_site, ident):
    server = app_site(offline_grace="1s")
    dev, appid, api_key = server.app
    _, dora = grant(server, ident, "dora@example.com", appid, "dora")

    async def online():
        phone = await device(server, ident, "dora@example.com")
        return phone
    phone = run(online())
    stopped = now_ms()
    server.stop()
    server.start()

    async def after():
        try:
            await phone.close()
        except Exception:
            pass
        dev2 = signed_in(server, ident, "dev@example.com")
        status = await wait_offline(server, dev2, appid, api_key, dora)
        assert stopped - 5000 <= status["since"] <= now_ms(), status
        app = await AppService.connect(server, appid, api_key)
        assert await snapshot_of(app, dora) == {"uid": dora, "status": "offline",
                                                "since": status["since"]}
        await app.ws.close()
        return status["since"]
    last_seen = run(after())
    # And again after a second restart: last seen is kept in the store.
    server.stop()
    server.start()
    dev3 = signed_in(server, ident, "dev@example.com")
    assert poll(server, dev3, appid, api_key, dora) == {"uid": dora, "status": "offline",
                                                        "since": last_seen}
