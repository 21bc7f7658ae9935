"""Notifications on three nodes of one cluster (SPEC 8, issue 13), sent by an AppService
connection on n1 (app, grant and PUID made there): they reach the user's devices on n2 and n3
live, wait in the engine for a user with no device and arrive at the connect on another node,
and none acknowledged is lost when one engine server of three is killed under load (the pause
of the writes it led is measured), nor delivered late or twice when the server the sender is
connected to dies (its deliveries are sent again after its reconnect)."""
import asyncio
import json
import signal
import time
import urllib.parse
import urllib.request

import pytest
import websockets

from cluster_fixtures import (fresh_engine, make_node, start_node,  # noqa: F401
                              wait_serving)
from conftest import until, wait_for
from push_service import push, write_vapid_key  # noqa: F401  (fixture)
from test_appservice import AppService, grant
from web_fixtures import activated_app, ca, domain, ident, signed_in  # noqa: F401

AUDIENCE = "https://presence.test"


def run(coro, timeout=180):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def start_story(fresh_engine, workdir, ident, ca, domain, clusters=None, lines=(), **settings):
    """n1..n3 (clusters: each node's list of engine servers, or all three; settings: more
    configuration keys for all three); on n1 an activated app and a user who granted it: yields
    (nodes, appid, key, puid)."""
    made = []
    for i in range(3):
        n = make_node(workdir, fresh_engine, f"n{i + 1}", i, status_rate="1000",
                      status_burst="1000", app_rate="10000", app_burst="10000", **settings)
        if clusters is not None:
            n.write_config(cluster=clusters[i])
        n.write_config(public_url=f"http://127.0.0.1:{n.port}", extra="\n".join([
            f"audience {AUDIENCE}", f"trusted_issuer idp.test {ident.key_file}",
            f"ca_file {ca.ca_file}", domain.server.connect_to(), "validate_private_addresses yes",
            *lines]))
        n.origin = f"http://127.0.0.1:{n.port}"
        made.append(n)
    for n in made:
        start_node(n, wait=False)
    try:
        for n in made:
            n.wait_ready(timeout=60)
            wait_serving(n)
        dev = signed_in(made[0], ident, "dev@example.com")
        appid, api_key = activated_app(dev, domain)
        _, puid = grant(made[0], ident, "bob@example.com", appid, "bob")
        yield made, appid, api_key, puid
    finally:
        for n in made:
            n.stop()
        for n in made:
            n.assert_clean_log()


@pytest.fixture
def story(fresh_engine, workdir, ident, ca, domain):
    yield from start_story(fresh_engine, workdir, ident, ca, domain)


@pytest.fixture
def split_story(fresh_engine, workdir, ident, ca, domain):
    """n1 on s1 or s2 only, n2 on s3 only: the server n1's worker sends on is never n2's.
    node_timeout is the default 5 s, not the fixtures' 3 s: n1's agent may share the server its
    worker is on, and a frozen server is found out only by the engine client's pings (two
    unanswered, one a second: 2-3 s) before the agent moves — within 3 s n1 would fence itself
    and the others declare it dead (a node cut off: test_cluster_nodes)."""
    s1, s2, s3 = fresh_engine.servers
    yield from start_story(fresh_engine, workdir, ident, ca, domain,
                           clusters=[f"{s1.url},{s2.url}", s3.url, fresh_engine.urls(2)],
                           node_timeout="5s")


@pytest.fixture
def push_story(fresh_engine, workdir, ident, ca, domain, push, tmp_path):
    """The story's nodes with Web Push on, one VAPID key for all, push.test reached."""
    vapid = write_vapid_key(tmp_path / "vapid.pem")
    yield from start_story(fresh_engine, workdir, ident, ca, domain, lines=[
        f"vapid_key {vapid}", "vapid_subject mailto:ops@presence.test", push.connect_to()])


async def device(node, ident, email, name):
    ws = await websockets.connect(node.ws_url, max_size=None)
    await ws.send(json.dumps({"email": email, "status": "online", "device": name,
                              "assertion": ident(email, AUDIENCE)}))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 60))


async def notes(ws, timeout=15):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))["notifications"]


def test_a_notification_from_n1_reaches_devices_on_n2_and_n3_live(story, ident):
    (n1, n2, n3), appid, api_key, puid = story

    async def scenario():
        tablet, reply = await device(n2, ident, "bob@example.com", "tablet")
        assert reply == {"result": "OK"}
        phone, reply = await device(n3, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        app = await AppService.connect(n1, appid, api_key)
        sent = time.monotonic()
        reply = await app.request({"action": "notify", "target": puid, "source": "Alice",
                                   "message": "ring", "id": "r1"})
        assert reply == {"action": "notify", "result": "OK", "id": "r1"}
        got = await asyncio.gather(notes(tablet), notes(phone))
        took = time.monotonic() - sent
        assert [g[0]["message"] for g in got] == ["ring", "ring"], got
        assert got[0][0]["id"] == got[1][0]["id"]
        print(f"notify on n1 -> devices on n2 and n3 in {took * 1000:.1f} ms")
        # Written to a device, it left the queue: a new device of bob gets nothing pending.
        await asyncio.sleep(0)
        for ws in (tablet, phone, app.ws):
            await ws.close()
    run(scenario())


def test_a_notification_queued_for_an_offline_user_arrives_at_connect_on_another_node(story,
                                                                                    ident):
    (n1, n2, n3), appid, api_key, puid = story

    async def scenario():
        app = await AppService.connect(n1, appid, api_key)
        for i in range(3):
            reply = await app.request({"action": "notify", "target": puid, "source": "Alice",
                                       "message": f"m{i}", "id": f"q{i}"})
            assert reply["result"] == "OK", reply
        phone, reply = await device(n3, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        got = await notes(phone)
        assert [n["message"] for n in got] == ["m0", "m1", "m2"], got
        await phone.close()
        # Delivered once: written to the phone, they left the queue; the next connect on n2
        # gets none of them.
        deadline = time.monotonic() + 15
        while True:
            tablet, reply = await device(n2, ident, "bob@example.com", "tablet")
            assert reply == {"result": "OK"}
            try:
                extra = await notes(tablet, timeout=1)
            except asyncio.TimeoutError:
                break
            await tablet.close()
            assert time.monotonic() < deadline, extra
        await tablet.close()
        await app.ws.close()
    run(scenario())


def test_kill_9_of_the_queue_leader_loses_no_acknowledged_notification(story, ident,
                                                                       fresh_engine):
    (n1, n2, n3), appid, api_key, puid = story
    engine = fresh_engine
    leader = engine.stream_leader("PD_Q")
    doomed = next(s for s in engine.servers if s.name == leader)

    async def scenario():
        phone, reply = await device(n2, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        app = await AppService.connect(n1, appid, api_key)
        received, acked, ack_times = [], [], []
        stop = asyncio.Event()

        async def receive():
            while not stop.is_set() or len(received) < len(acked):
                try:
                    for n in await notes(phone, timeout=60):
                        received.append(n["message"])
                except asyncio.TimeoutError:
                    return

        reader = asyncio.create_task(receive())
        killed_at = None
        i = 0
        while i < 400:
            await app.ws.send(json.dumps({"action": "notify", "target": puid, "source": "load",
                                          "message": f"n{i}", "id": f"k{i}"}))
            # An election holds a write for seconds (then 61 after 10 s): wait past it.
            reply = await app.recv(timeout=30)
            if reply.get("result") == "OK":
                acked.append(f"n{i}")
                ack_times.append(time.monotonic())
            if i == 100:
                doomed.kill(signal.SIGKILL)
                killed_at = time.monotonic()
            i += 1
        stop.set()
        await asyncio.wait_for(reader, 120)
        assert acked and acked[-1] == "n399", acked[-3:]  # the service resumed
        # One whose live DELIVER went out on the connection of the dying server stays queued:
        # the phone's next connect gets it. None acknowledged is lost either way.
        not_live = [m for m in acked if m not in received]
        await phone.close()
        phone, reply = await device(n2, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        if not_live:
            received += [n["message"] for n in await notes(phone)]
        lost = [m for m in acked if m not in received]
        assert not lost, (len(lost), lost[:5], len(acked), len(received))
        gaps = [b - a for a, b in zip(ack_times, ack_times[1:]) if b > killed_at]
        pause = max(gaps) if gaps else 0
        print(f"engine server {leader} (PD_Q leader) killed: {len(acked)} of 400 acknowledged, "
              f"none lost ({len(not_live)} at the reconnect); the longest pause between "
              f"acknowledgements {pause:.2f} s")
        await phone.close()
        await app.ws.close()
    run(scenario(), timeout=400)
    doomed.start()
    engine.wait_ready()


def test_a_device_has_its_notification_while_the_queues_leader_is_frozen(story, ident,
                                                                         fresh_engine):
    """The sender's worker sends an EARLY copy of a notification to the device's worker as it
    publishes: the device has it while the engine's queue leader, frozen, holds the publish
    (and the app's answer); once it answers, the DELIVER that follows deletes it from the
    queue without giving it twice — also when the device closed once it had it."""
    (n1, n2, n3), appid, api_key, puid = story
    engine = fresh_engine
    theirs = {engine.server_of("presenced n1 worker ").name,
              engine.server_of("presenced n2 worker ").name}

    def queue_leader_away():
        """The server leading PD_Q, moved until it is neither worker's server."""
        for _ in range(20):
            leader = engine.stream_leader("PD_Q")
            if leader and leader not in theirs:
                return next(s for s in engine.servers if s.name == leader)
            engine.probe("api", "STREAM.LEADER.STEPDOWN.PD_Q")
            wait_for(lambda: engine.stream_leader("PD_Q") not in ("", leader), timeout=10)
        raise AssertionError((engine.stream_leader("PD_Q"), theirs))

    async def answer(app, request_id, timeout):
        """The app's answer to its request, past the presence events it hears meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            reply = await app.recv(timeout=max(0.001, deadline - time.monotonic()))
            if reply.get("id") == request_id:
                return reply

    async def early(app, ws, message, close):
        """message sent with the leader frozen: ws has it before the app's answer (and closes
        then when close is set); the answer once the leader is thawed."""
        await asyncio.sleep(1)  # n1's copy of bob's record names ws (the changefeed)
        frozen = await asyncio.get_running_loop().run_in_executor(None, queue_leader_away)
        frozen.kill(signal.SIGSTOP)
        try:
            await app.ws.send(json.dumps({"action": "notify", "target": puid, "source": "Alice",
                                          "message": message, "id": message}))
            got = await notes(ws, timeout=5)
            assert [n["message"] for n in got] == [message], got
            if close:
                await ws.close()  # before its DELIVER can come
            with pytest.raises(asyncio.TimeoutError):  # the publish still waits for the leader
                await answer(app, message, timeout=0.2)
        finally:
            frozen.kill(signal.SIGCONT)
        assert await answer(app, message, timeout=30) == {"action": "notify", "result": "OK",
                                                          "id": message}

    async def nothing_pending_then(app, name):
        """A new connection of the device has nothing pending: a notification sent then
        arrives alone."""
        ws, reply = await device(n2, ident, "bob@example.com", name)
        assert reply == {"result": "OK"}
        reply = await app.request({"action": "notify", "target": puid, "source": "Alice",
                                   "message": "after", "id": "a-" + name})
        assert reply["result"] == "OK", reply
        assert [n["message"] for n in await notes(ws)] == ["after"]
        await ws.close()

    async def scenario():
        app = await AppService.connect(n1, appid, api_key)
        phone, reply = await device(n2, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        await early(app, phone, "early", close=False)
        with pytest.raises(asyncio.TimeoutError):  # its DELIVER gave it no second time
            await notes(phone, timeout=2)
        sent, received = n1.metrics(), n2.metrics()
        assert sent[("presenced_cluster_inbox_messages_total",
                     frozenset({"kind": "early", "way": "sent"}.items()))] >= 1
        assert received[("presenced_cluster_inbox_messages_total",
                         frozenset({"kind": "early", "way": "received"}.items()))] >= 1
        await phone.close()
        await asyncio.sleep(0.5)
        await nothing_pending_then(app, "phone")
        # The only device closes once it had the EARLY copy: its DELIVER deletes it all the same.
        tablet, reply = await device(n2, ident, "bob@example.com", "tablet")
        assert reply == {"result": "OK"}
        await early(app, tablet, "gone", close=True)
        await asyncio.sleep(1)
        await nothing_pending_then(app, "tablet")
        await app.ws.close()
    run(scenario(), timeout=120)

def test_the_senders_engine_server_killed_loses_no_live_delivery(split_story, ident,
                                                                 fresh_engine):
    """The engine server n1's worker is connected to is frozen, then killed, while an
    AppService on n1 pipelines notifications to a device on n2 (whose server lives on): every
    notification acknowledged reaches the device live, once — the DELIVERs n1's worker wrote to
    the dying server are sent again once it reconnected, and the device's worker drops those it
    had by their queue sequence."""
    (n1, n2, n3), appid, api_key, puid = split_story
    engine = fresh_engine
    doomed = engine.server_of("presenced n1 worker ")
    assert doomed is not None and doomed.name in ("s1", "s2"), doomed
    agent_too = engine.server_of("presenced n1 agent") is doomed

    async def scenario():
        phone, reply = await device(n2, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        received, acked, refused, lost, closes = [], set(), [], [0], []
        total = 600

        async def receive():
            while True:
                try:
                    for n in await notes(phone, timeout=20):
                        received.append(n["message"])
                except asyncio.TimeoutError:
                    return

        async def answers(app, sent_on):
            """The replies on app until all sent on it are answered, or it closes: those left
            unanswered then are lost to the test (stored or not, it cannot tell)."""
            answered = 0
            while not (sent_on["done"] and answered == sent_on["count"]):
                try:
                    reply = await app.recv(timeout=40)
                except websockets.ConnectionClosed as e:
                    closes.append(e.rcvd.code if e.rcvd is not None else None)
                    lost[0] += sent_on["count"] - answered
                    return
                answered += 1
                if reply.get("result") == "OK":
                    acked.add(reply["id"])
                else:
                    refused.append(reply)

        def waiting():
            return i - len(acked) - len(refused) - lost[0]
        reader = asyncio.create_task(receive())
        i = 0
        while True:
            app = await AppService.connect(n1, appid, api_key)
            sent_on = {"count": 0, "done": False}
            replies = asyncio.create_task(answers(app, sent_on))
            try:
                while i < total and not replies.done():
                    await app.ws.send(json.dumps({"action": "notify", "target": puid,
                                                  "source": "load", "message": f"m{i}",
                                                  "id": f"m{i}"}))
                    sent_on["count"] += 1
                    if i == 300:
                        doomed.kill(signal.SIGSTOP)  # what n1 writes now is never read
                    i += 1
                    while waiting() > 64 and not replies.done():  # at most 64 unanswered
                        await asyncio.sleep(0.002)
            except websockets.ConnectionClosed:
                pass  # answers() has it too, and counts what went unanswered
            sent_on["done"] = True
            if i == total and not replies.done():
                break
            # A notify the engine could not take in its 10 s is answered 61, and the app's
            # connection closed 1001 (SPEC §1): the app reconnects, as a real one must.
            await replies
            assert closes[-1] == 1001 and refused and refused[-1].get("errno") == 61, \
                (closes, refused[-3:])
            if i == total:
                break
            await asyncio.sleep(refused[-1].get("retry_after", 1))
        await asyncio.sleep(0.5)
        doomed.kill(signal.SIGKILL)
        try:
            await asyncio.wait_for(replies, 90)
        except asyncio.TimeoutError:
            pass
        await asyncio.wait_for(reader, 120)
        ok = sorted(acked)
        assert len(ok) > 300, (len(ok), refused[:3])
        missing = [m for m in ok if m not in received]
        dupes = len(received) - len(set(received))
        print(f"sender's engine server {doomed.name} frozen then killed: {len(ok)} of {total} "
              f"acknowledged, {len(missing)} not delivered live, {dupes} duplicates; "
              f"{len(refused)} refused, {len(closes)} reconnects, {lost[0]} unanswered; n1's "
              f"agent {'on it too' if agent_too else 'on the other server'}")
        assert not missing, (len(missing), missing[:5])
        assert dupes == 0, dupes
        # /metrics says so: n1's worker reconnected and sent its inbox messages again, each
        # acknowledged notification was published and sent live once at least, n2's worker
        # received them, and the engine's round trips were measured.
        sent, got = n1.metrics(), n2.metrics()

        def m(ms, name, **labels):
            return ms.get((name, frozenset(labels.items())))
        assert m(sent, "presenced_cluster_engine_reconnects_total") >= 1
        assert m(sent, "presenced_cluster_inbox_messages_total", kind="any", way="resent") >= 1
        assert m(sent, "presenced_cluster_notifications_published_total") >= len(ok)
        assert m(sent, "presenced_cluster_inbox_messages_total", kind="deliver",
                 way="sent") >= len(ok)
        assert m(got, "presenced_cluster_inbox_messages_total", kind="deliver",
                 way="received") >= len(ok)
        assert m(got, "presenced_cluster_claims_total") >= 1
        assert m(got, "presenced_cluster_engine_reconnects_total") == 0  # its server lived
        assert m(sent, "presenced_cluster_engine_request_seconds_count") >= 2 * len(ok)
        assert m(sent, "presenced_cluster_engine_request_seconds_bucket", le="+Inf") == \
            m(sent, "presenced_cluster_engine_request_seconds_count")
        assert m(sent, "presenced_cluster_fences_total") == 0
        assert m(sent, "presenced_cluster_serving") == 1
        assert m(sent, "presenced_cluster_engine_connected") == 1
        assert m(got, "presenced_cluster_nodes", state="alive") == 3
        print("n1 /metrics: resent", m(sent, "presenced_cluster_inbox_messages_total", kind="any",
                                        way="resent"),
              "engine requests", m(sent, "presenced_cluster_engine_request_seconds_count"),
              "mean", round(m(sent, "presenced_cluster_engine_request_seconds_sum") /
                            m(sent, "presenced_cluster_engine_request_seconds_count") * 1000, 2),
              "ms")
        await phone.close()
        await app.ws.close()
    try:
        run(scenario(), timeout=300)
    finally:
        doomed.start()
        engine.wait_ready()


def test_an_app_that_pipelines_notifications_is_slowed_not_closed(split_story, ident):
    """An AppService on n1 sends 1000 notifies before reading a reply, to a device on n2 that
    reads them live. Their replies wait for the engine's acknowledgements; they are not output
    the app failed to read, so the app is never a slow consumer for them (it was closed with
    1008 after some 80 replies): while they take half of max_output_buffer the server reads no
    more of the connection. Every notify is answered OK, in order, and the connection stays."""
    (n1, n2, n3), appid, api_key, puid = split_story
    total = 1000

    async def scenario():
        phone, reply = await device(n2, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        app = await AppService.connect(n1, appid, api_key)
        received = []

        async def receive():
            while len(received) < total:
                for n in await notes(phone, timeout=30):
                    received.append(n["message"])
        reader = asyncio.create_task(receive())
        for i in range(total):
            await app.ws.send(json.dumps({"action": "notify", "target": puid, "source": "load",
                                          "message": f"p{i}", "id": f"p{i}"}))
        replies = []
        try:
            while len(replies) < total:
                replies.append(await app.recv(timeout=30))
        except websockets.ConnectionClosed as e:
            raise AssertionError((len(replies), e.code, e.reason))
        assert [r["id"] for r in replies] == [f"p{i}" for i in range(total)]
        refused = [r for r in replies if r["result"] != "OK"]
        assert not refused, (len(refused), refused[:3])
        await asyncio.wait_for(reader, 60)
        assert sorted(received) == sorted(f"p{i}" for i in range(total))
        assert app.ws.open
        assert n1.metric("presenced_slow_consumers_total", channel="appservice") in (None, 0)
        await phone.close()
        await app.ws.close()
    run(scenario(), timeout=240)


def test_notifies_pipelined_to_a_full_queue_each_drop_the_oldest(story, ident):
    """300 notifies pipelined on n1 to bob, who has no device, past his queue's cap (100): each
    is answered OK, the oldest dropped for it (SPEC 2), and his phone on n2 gets 100. They all
    dropped the same oldest and found the queue full again, one more each round: beyond some
    64 of them, errno 60 (61 since). A full queue's drops are one at a time per user."""
    (n1, n2, n3), appid, api_key, puid = story
    total = 300

    async def scenario():
        app = await AppService.connect(n1, appid, api_key)
        for i in range(total):
            await app.ws.send(json.dumps({"action": "notify", "target": puid, "source": "load",
                                          "message": f"f{i}", "id": f"f{i}"}))
        replies = [await app.recv(timeout=30) for _ in range(total)]
        refused = [r for r in replies if r["result"] != "OK"]
        assert not refused, (len(refused), refused[:3])
        phone, reply = await device(n2, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        got = []
        while len(got) < 100:
            got += [n["message"] for n in await notes(phone)]
        assert len(got) == len(set(got)) == 100, got
        dropped = "presenced_cluster_notifications_dropped_total"
        assert await until(lambda: (n1.metric(dropped) or 0) >= total - 100, 10), \
            n1.metric(dropped)
        await phone.close()
        await app.ws.close()
    run(scenario(), timeout=180)


def test_a_notify_the_engine_cannot_take_is_errno_61_then_close_1001(story, ident,
                                                                     fresh_engine):
    """Every engine server stopped: a notify on n1 is answered errno 61 with its action, its id
    and a retry_after of 1-5 s, and the AppService connection is closed with 1001, as a device
    is sent off (SPEC 1, 8), not errno 60 on a connection left open."""
    (n1, n2, n3), appid, api_key, puid = story
    engine = fresh_engine

    async def scenario():
        app = await AppService.connect(n1, appid, api_key)
        reply = await app.request({"action": "notify", "target": puid, "source": "Alice",
                                   "message": "before", "id": "u0"})
        assert reply == {"action": "notify", "result": "OK", "id": "u0"}, reply
        for s in engine.servers:
            s.kill(signal.SIGTERM)
        await app.ws.send(json.dumps({"action": "notify", "target": puid, "source": "Alice",
                                      "message": "during", "id": "u1"}))
        reply = await app.recv(timeout=40)
        assert reply.get("errno") == 61 and reply.get("action") == "notify" and \
            reply.get("id") == "u1" and 1 <= reply.get("retry_after", 0) <= 5, reply
        with pytest.raises(websockets.ConnectionClosed):
            await app.recv(timeout=10)
        assert app.ws.close_code == 1001, app.ws.close_code
    try:
        run(scenario(), timeout=120)
    finally:
        for s in engine.servers:
            s.start()
        engine.wait_ready()


def test_a_web_push_wakes_a_device_away_from_every_node_once(push_story, ident, push):
    """bob's phone subscribes to Web Push on n2 and goes away. An AppService's notification on
    n1 reaches the subscription once (n1 knows it from the engine, pd_push), and the operator's
    on n3 once more; while the phone is connected again on n2, a notification on n1 wakes
    nobody (connected on another node) and comes on the WebSocket."""
    (n1, n2, n3), appid, api_key, puid = push_story
    sub_id, subscription = push.subscribe()

    def users(node):
        return json.loads(node.admin("/users/bob%40example.com"))

    async def scenario():
        phone, reply = await device(n2, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        await phone.send(json.dumps({"action": "push_subscribe", "subscription": subscription}))
        assert json.loads(await phone.recv()) == {"action": "push_subscribe", "result": "OK"}
        await phone.close()
        assert await until(lambda: all(not users(n)["devices"] for n in (n1, n2, n3)), 15)
        # Every node learns the subscription through the engine (pd_push).
        for n in (n1, n3):
            assert await until(lambda: users(n)["push_subscriptions"] == ["phone"], 10), users(n)
        app = await AppService.connect(n1, appid, api_key)
        reply = await app.request({"action": "notify", "target": puid, "source": "Alice",
                                   "message": "ring", "id": "p1"})
        assert reply["result"] == "OK", reply
        assert await until(lambda: len(push.messages(sub_id)) >= 1, 20), push.messages(sub_id)
        got = push.messages(sub_id)
        assert len(got) == 1, got
        assert json.loads(got[0]["plaintext"])["message"] == "ring"
        assert got[0]["vapid"]["ok"], got[0]["vapid"]
        status, body = admin_json(n3, "/users/bob%40example.com/notifications",
                                  {"source": "ops", "message": "maintenance"})
        assert status == 201, body
        assert await until(lambda: len(push.messages(sub_id)) >= 2, 20), push.messages(sub_id)
        await asyncio.sleep(3)  # any second push of either would have come by now
        got = push.messages(sub_id)
        assert [json.loads(m["plaintext"])["message"] for m in got] == ["ring", "maintenance"], got
        # Connected again, on n2: the notifications waiting come on the WebSocket, and a new
        # one from n1 wakes nobody (the device is connected on another node).
        phone, reply = await device(n2, ident, "bob@example.com", "phone")
        assert reply == {"result": "OK"}
        waiting = await notes(phone)
        assert "maintenance" in [n["message"] for n in waiting], waiting
        assert await until(lambda: users(n1)["devices"], 10)
        reply = await app.request({"action": "notify", "target": puid, "source": "Alice",
                                   "message": "live", "id": "p2"})
        assert reply["result"] == "OK", reply
        while True:
            live = await notes(phone)
            if "live" in [n["message"] for n in live]:
                break
        await asyncio.sleep(2)
        assert len(push.messages(sub_id)) == 2, push.messages(sub_id)
        await phone.close()
        await app.ws.close()
    run(scenario(), timeout=240)


def admin_json(node, path, body):
    request = urllib.request.Request(f"http://127.0.0.1:{node.admin_port}{path}",
                                     data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.status, json.loads(r.read())
