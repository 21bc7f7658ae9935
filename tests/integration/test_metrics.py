"""What an operator reads on /metrics (issue 17): each channel is driven a little — devices with
assertions and development tokens, an AppService, the operator's notifications, HTTP routes —
and each node-wide series then holds exactly what was done: histogram counts equal to the
requests made, error counters equal to the refusals the clients received, the gauges what the
node holds. The totals survive the workers being replaced."""
import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request

import websockets
from prometheus_client.parser import text_string_to_metric_families

from conftest import BINARY, ROOT, http_get, wait_for
from test_appservice import DEVICE_AUDIENCE, AppService, grant
from web_fixtures import activated_app, signed_in


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def samples(server):
    """{(name, frozenset(labels)): value} of every sample /metrics exports."""
    out = {}
    for family in text_string_to_metric_families(server.admin("/metrics")):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0)


def total(metrics, name, **labels):
    """The sum over the samples of name whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= ls)


def admin_notify(server, email, message):
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.admin_port}/users/{email}/notifications",
        data=json.dumps({"source": "ops@example.com", "message": message}).encode(),
        method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 201


def count(metrics):
    return value(metrics, "presenced_status_update_seconds_count")


def http_get_bearer(url, key):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def dev_token(server, email):
    result = subprocess.run([BINARY, "-c", server.config_path, "token", email],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class Tally:
    """What the clients saw: status updates sent, errnos received per channel."""

    def __init__(self):
        self.status_updates = 0
        self.errors = collections.Counter()

    async def device(self, ws, message):
        """Sends one message on a device connection and returns its one reply."""
        text = message if isinstance(message, str) else json.dumps(message)
        try:
            parsed = json.loads(text)
            if isinstance(parsed, dict) and parsed and "email" in parsed and parsed.get(
                    "status") in ("online", "unavailable", "offline"):
                self.status_updates += 1
        except ValueError:
            pass
        await ws.send(text)
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        self.note("device", reply)
        return reply

    def note(self, channel, reply):
        if reply.get("result") == "KO":
            self.errors[(channel, reply["errno"])] += 1


def test_each_series_holds_what_was_done(site, ident, domain):
    server = site(workers=2)
    server.write_config(extra=server.settings["extra"] +
                        f"\naudience {DEVICE_AUDIENCE}\ndev_issuer on\nstatus_burst 4\n"
                        "status_rate 1")
    server.stop()
    server.start()
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    _, alice_puid = grant(server, ident, "alice@example.com", appid, "alice")
    bob_token = dev_token(server, "bob@example.com")
    alice = ident("alice@example.com", DEVICE_AUDIENCE)
    before = samples(server)
    tally = Tally()

    async def scenario():
        app = await AppService.connect(server, appid, api_key)
        events = 0
        # A refused key, an unknown action, a PUID the app does not have.
        bad = await AppService.connect(server, appid)
        tally.note("appservice", await bad.request({"action": "auth", "token": "wrong"}))
        tally.note("appservice", await app.request({"action": "dance"}))
        tally.note("appservice", await app.request({
            "action": "notify", "target": "00000000-0000-4000-8000-000000000000",
            "source": "x", "message": "y"}))

        # Devices: refusals before and after binding, an assertion, a cached one, a token.
        phone = await websockets.connect(server.ws_url)
        await tally.device(phone, "not json")
        await tally.device(phone, {"email": "alice@example.com"})
        await tally.device(phone, {"email": "alice@example.com", "status": "dancing"})
        await tally.device(phone, {"email": "alice@example.com", "status": "online"})  # 30
        await tally.device(phone, {"email": "alice@example.com", "status": "online",
                                   "device": "phone", "assertion": ident(
                                       "alice@example.com", "https://elsewhere.test")})  # 32
        assert (await tally.device(phone, {"email": "alice@example.com", "status": "online",
                                           "device": "phone", "assertion": alice}))["result"] \
            == "OK"
        assert (await app.event())["uid"] == alice_puid
        events += 1
        assert (await tally.device(phone, {}))  == {}  # a ping is no status update
        # Past the burst of 4 (a token a second), updates are slowed down.
        for _ in range(30):
            reply = await tally.device(phone, {"email": "alice@example.com", "status": "online"})
            if reply.get("errno") == 50:
                break
        assert tally.errors[("device", 50)] == 1
        # The same device again, with the same assertion (the cache): a takeover.
        again = await websockets.connect(server.ws_url)
        assert (await tally.device(again, {"email": "alice@example.com", "status": "online",
                                           "device": "phone", "assertion": alice}))["result"] \
            == "OK"
        superseded = json.loads(await asyncio.wait_for(phone.recv(), 10))
        tally.note("device", superseded)
        assert superseded["errno"] == 52
        await phone.close()

        laptop = await websockets.connect(server.ws_url)
        assert (await tally.device(laptop, {"email": "bob@example.com", "status": "unavailable",
                                            "device": "laptop", "token": bob_token}))["result"] \
            == "OK"

        # Notifications: the app's and the operator's, live; one waiting for carol.
        reply = await app.request({"action": "notify", "target": alice_puid, "source": "Bob",
                                   "message": "ring", "id": "n1"})
        tally.note("appservice", reply)
        assert reply["result"] == "OK"
        assert "notifications" in json.loads(await asyncio.wait_for(again.recv(), 10))
        await asyncio.to_thread(admin_notify, server, "bob@example.com", "hello Bob")
        assert "notifications" in json.loads(await asyncio.wait_for(laptop.recv(), 10))
        await asyncio.to_thread(admin_notify, server, "carol@example.com", "hello Carol")
        pending = await asyncio.to_thread(
            wait_for, lambda: value(samples(server), "presenced_notifications_pending") == 1, 10)
        assert pending
        carol_token = await asyncio.to_thread(dev_token, server, "carol@example.com")
        desk = await websockets.connect(server.ws_url)
        await desk.send(json.dumps({"email": "carol@example.com", "status": "offline",
                                    "device": "desk", "token": carol_token}))
        tally.status_updates += 1
        replies = [json.loads(await asyncio.wait_for(desk.recv(), 10)) for _ in range(2)]
        assert replies[0] == {"result": "OK"} and "notifications" in replies[1]
        snapshot = await app.request({"action": "snapshot"})
        assert snapshot["last"] is True

        # HTTP: requests of known routes and answers.
        for path in ("/__lbheartbeat__", "/__version__", "/__version__", "/nowhere"):
            await asyncio.to_thread(http_get, server.url + path)
        status, _, _ = await asyncio.to_thread(
            http_get_bearer, f"{server.url}/myapps/{appid}/status?uid={alice_puid}", "wrong")
        assert status == 401

        # Read while every connection is open (the gauges count them).
        def settled():
            m = samples(server)
            done = (count(m) - count(before) == tally.status_updates and
                    value(m, "presenced_http_responses_total", route="poll", code="4xx") -
                    value(before, "presenced_http_responses_total", route="poll", code="4xx") ==
                    1 and value(m, "presenced_notifications_delivered_total") -
                    value(before, "presenced_notifications_delivered_total") == 3)
            return m if done else None
        now = await asyncio.to_thread(wait_for, settled, 15)
        # The busiest apps are in /status, not in labels.
        busiest = (await asyncio.to_thread(server.status))["busiest_apps"]
        assert busiest == [{"appid": appid, "name": "Chat", "connections": 1}], busiest
        for ws in (again, laptop, desk, bad.ws, app.ws):
            await ws.close()
        return now or samples(server), events

    now, events = run(scenario())

    def delta(name, **labels):
        return value(now, name, **labels) - value(before, name, **labels)

    assert delta("presenced_status_update_seconds_count") == tally.status_updates
    assert delta("presenced_status_update_seconds_bucket", le="+Inf") == tally.status_updates
    for channel in ("device", "appservice"):
        for number in (10, 11, 12, 13, 14, 30, 31, 32, 33, 34, 35, 40, 41, 42, 43, 50, 51, 52,
                       60, 61):
            assert delta("presenced_error_replies_total", channel=channel, errno=str(number)) \
                == tally.errors[(channel, number)], (channel, number, tally.errors)
    assert tally.errors[("device", 52)] == 1 and tally.errors[("appservice", 42)] == 1

    verified = lambda credential, outcome: delta(  # noqa: E731
        "presenced_verification_seconds_count", credential=credential, outcome=outcome)
    assert verified("assertion", "verified") == 1
    assert verified("assertion", "cached") == 1
    assert verified("assertion", "refused") == 1
    assert verified("token", "verified") == 2
    assert delta("presenced_takeovers_total") == 1

    assert delta("presenced_notifications_queued_total", source="app") == 1
    assert delta("presenced_notifications_queued_total", source="operator") == 2
    assert delta("presenced_notifications_delivered_total") == 3
    assert delta("presenced_notification_delivery_seconds_count", path="live") == 2
    assert delta("presenced_notification_delivery_seconds_count", path="pending") == 1
    assert value(now, "presenced_notifications_pending") == 0

    assert delta("presenced_appservice_auths_total") == 1
    assert value(now, "presenced_appservice_connections") == 1
    assert delta("presenced_appservice_events_total") >= events
    assert value(now, "presenced_users", status="online") == 1
    assert value(now, "presenced_users", status="unavailable") == 1
    assert value(now, "presenced_users", status="offline") == 1

    assert delta("presenced_http_request_seconds_count", route="health") == 3
    assert delta("presenced_http_responses_total", route="health", code="2xx") == 3
    assert delta("presenced_http_responses_total", route="other", code="4xx") == 1
    assert delta("presenced_http_responses_total", route="poll", code="4xx") == 1
    # Every request counted in one histogram and one answer class.
    assert total(now, "presenced_http_request_seconds_count") == total(
        now, "presenced_http_responses_total")
    # A histogram's buckets are cumulative and end at its count.
    buckets = sorted((float(dict(ls)["le"]), v) for (n, ls), v in now.items()
                     if n == "presenced_status_update_seconds_bucket")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == value(now, "presenced_status_update_seconds_count")

    # Replaced workers: their counts stay in the node's totals.
    generation = max(w["generation"] for w in server.status()["workers"])
    server.signal(signal.SIGHUP)

    def replaced():
        workers = server.status()["workers"]
        return workers and all(w["generation"] > generation for w in workers)
    assert wait_for(replaced, 30)
    after = samples(server)
    for name, labels in (("presenced_status_update_seconds_count", {}),
                         ("presenced_notifications_delivered_total", {}),
                         ("presenced_error_replies_total", {"channel": "device", "errno": "50"}),
                         ("presenced_verification_seconds_count",
                          {"credential": "token", "outcome": "verified"}),
                         ("presenced_http_request_seconds_count", {"route": "health"})):
        assert value(after, name, **labels) == value(now, name, **labels), name


def test_every_series_is_described_in_presenced_8(server):
    """presenced(8) METRICS describes each family /metrics exports (issue 17)."""
    page = open(os.path.join(ROOT, "man", "presenced.8")).read()
    section = page.split(".SH METRICS", 1)[1].split("\n.SH ", 1)[0].replace("\\", "")
    families = {line.split()[2] for line in server.admin("/metrics").splitlines()
                if line.startswith("# TYPE ")}
    assert len(families) > 30
    missing = sorted(f for f in families if not re.search(rf"\b{f}\b", section))
    assert not missing, f"not in presenced(8) METRICS: {missing}"
