"""The Device Presence Channel on three nodes of one cluster (SPEC 8, issue 13): one connection
per (e-mail, device) cluster-wide — a takeover (52/4001) with the two connections on different
nodes, 30 racing connections of which exactly one survives, a history checker over a racing run
(one owner at any time), max_devices_per_user across nodes; a node killed with -9 stops counting
within node_timeout and leaves no ghost after its restart; a node frozen past node_timeout
serves nothing stale once it runs again."""
import asyncio
import json
import os
import signal
import time
import urllib.parse
import urllib.request

import pytest
import websockets

from cluster_fixtures import (NODE_TIMEOUT_S, fresh_engine, make_node, start_node,  # noqa: F401
                              user_record, wait_serving)
from conftest import http_get, until, wait_for
from web_fixtures import ident  # noqa: F401  (fixture)

AUDIENCE = "https://presence.test"


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def assertion(ident):
    made = {}

    def get(email):
        if email not in made:
            made[email] = ident(email, AUDIENCE)
        return made[email]
    return get


@pytest.fixture
def make_cluster(fresh_engine, workdir, ident):
    """Three nodes n1..n3 trusting the test identity provider, serving."""
    made = []

    def factory(**settings):
        extra = f"audience {AUDIENCE}\ntrusted_issuer idp.test {ident.key_file}"
        merged = {"status_rate": "1000", "status_burst": "1000", **settings}
        made.extend(make_node(workdir, fresh_engine, f"n{i + 1}", i, extra=extra, **merged)
                    for i in range(3))
        for n in made:
            start_node(n, wait=False)
        for n in made:
            n.wait_ready(timeout=60)
        for n in made:
            wait_serving(n)
        return made
    yield factory
    for n in made:
        n.stop()
    for n in made:
        n.assert_clean_log()


@pytest.fixture
def nodes(make_cluster):
    return make_cluster()


def update(email, status="online", device="phone", assertion=None):
    message = {"email": email, "status": status, "device": device}
    if assertion is not None:
        message["assertion"] = assertion
    return json.dumps(message)


async def device(node, email, assertion, device_name="phone", status="online"):
    """A device: its WebSocket and its first reply."""
    ws = await websockets.connect(node.ws_url, max_size=None)
    await ws.send(update(email, status, device_name, assertion))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 60))


async def closed_with(ws, timeout=30):
    """What a connection gets until it closes: its last message and the close code."""
    last = None
    try:
        while True:
            last = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    except websockets.ConnectionClosed as e:
        return last, e.code


def test_takeover_with_the_connections_on_two_nodes(nodes, assertion):
    n1, n2, _ = nodes
    email = "take@example.com"

    async def scenario():
        first, reply = await device(n1, email, assertion(email))
        assert reply == {"result": "OK"}
        second, reply = await device(n2, email, assertion(email))
        assert reply == {"result": "OK"}
        last, code = await closed_with(first)
        assert code == 4001 and last["errno"] == 52, (last, code)
        await second.send(update(email, "unavailable"))
        assert json.loads(await second.recv()) == {"result": "OK"}
        await second.close()
    run(scenario())


def test_thirty_racing_connections_on_three_nodes_one_survives(nodes, assertion, fresh_engine):
    email = "race30@example.com"

    async def one(node):
        ws, reply = await device(node, email, assertion(email))
        return ws, reply

    async def scenario():
        conns = await asyncio.gather(*[one(nodes[i % 3]) for i in range(30)])
        for _, reply in conns:
            assert reply == {"result": "OK"} or reply.get("errno") in (52, 61), reply

        def alive():
            """Connections that were told they hold the device and are still open."""
            return [ws for ws, reply in conns if reply == {"result": "OK"} and ws.open]
        refused = [reply for _, reply in conns if reply != {"result": "OK"}]
        print(f"30 racing claims: {30 - len(refused)} answered OK, {len(refused)} refused "
              f"({sorted(r.get('errno') for r in refused)})")

        async def settle():
            deadline = time.monotonic() + 60
            while len(alive()) > 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        await settle()
        survivors = alive()
        assert len(survivors) == 1, len(survivors)
        for ws, reply in conns:
            if reply == {"result": "OK"} and not ws.open:
                assert ws.close_code == 4001, ws.close_code
        await survivors[0].send(update(email, "unavailable"))
        assert json.loads(await survivors[0].recv()) == {"result": "OK"}
        entries = [e for e in user_record(fresh_engine, email) if e["device"] == "phone"]
        assert len(entries) == 1 and entries[0]["status"] == 1, entries
        for ws, _ in conns:
            await ws.close()
    run(scenario())
    # The race shows in /metrics: 30 claims, and compare-and-sets refused by a newer write
    # (each tried again); they are the workers' figures, published within a second.
    assert wait_for(lambda: sum(n.metric("presenced_cluster_claims_total") for n in nodes) >= 30,
                    timeout=5), [n.metric("presenced_cluster_claims_total") for n in nodes]
    conflicts = sum(n.metric("presenced_cluster_cas_conflicts_total") for n in nodes)
    print(f"30 racing claims: {conflicts} compare-and-sets refused and tried again")
    assert conflicts >= 1


def test_max_devices_per_user_across_nodes(make_cluster, assertion):
    made = make_cluster(max_devices_per_user="2")
    email = "many@example.com"

    async def scenario():
        a, reply = await device(made[0], email, assertion(email), "a")
        assert reply == {"result": "OK"}
        b, reply = await device(made[1], email, assertion(email), "b")
        assert reply == {"result": "OK"}
        c, reply = await device(made[2], email, assertion(email), "c")
        assert reply["errno"] == 51, reply
        # The same device again, on a third node: a takeover, not a third device.
        a2, reply = await device(made[2], email, assertion(email), "a")
        assert reply == {"result": "OK"}
        last, code = await closed_with(a)
        assert code == 4001
        await b.close()
        # b's release goes through the engine: room for c then, on any node.
        deadline = time.monotonic() + 20
        while True:
            c, reply = await device(made[0], email, assertion(email), "c")
            if reply == {"result": "OK"} or time.monotonic() > deadline:
                break
            await c.close()
            await asyncio.sleep(0.1)
        assert reply == {"result": "OK"}
        await c.close()
        await a2.close()
    run(scenario())


def test_history_one_owner_at_any_time_over_a_racing_run(nodes, assertion):
    """Waves of connections for one (e-mail, device) on the three nodes, each sending status
    updates as fast as answered until it is closed. Every claim and update is an operation with
    the time it was sent and the time its answer came; the checker asserts what one owner at a
    time implies: a connection whose claim was answered before another's was sent never has an
    update answered OK that it sent after that other claim was answered, and no two owners'
    OK answers interleave (c, d, c)."""
    email = "history@example.com"
    ops = []  # (conn, kind, invoked, completed, ok)

    async def worker(index, node):
        t0 = time.monotonic()
        ws = await websockets.connect(node.ws_url)
        await ws.send(update(email, "online", "phone", assertion(email)))
        try:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
        except websockets.ConnectionClosed:
            return
        ops.append((index, "claim", t0, time.monotonic(), reply == {"result": "OK"}))
        if reply != {"result": "OK"}:
            await ws.close()
            return
        status = "unavailable"
        try:
            for _ in range(200):
                t1 = time.monotonic()
                await ws.send(update(email, status))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                ops.append((index, "status", t1, time.monotonic(), reply == {"result": "OK"}))
                if reply != {"result": "OK"}:
                    break
                status = "online" if status == "unavailable" else "unavailable"
        except websockets.ConnectionClosed:
            pass
        await ws.close()

    async def scenario():
        index = 0
        for wave in range(4):
            tasks = []
            for k in range(6):
                tasks.append(asyncio.create_task(worker(index, nodes[(index + wave) % 3])))
                index += 1
            await asyncio.sleep(0)  # the wave starts together, the next one after it ends
            await asyncio.gather(*tasks)
    run(scenario(), timeout=300)

    claims = {c: (inv, comp) for c, kind, inv, comp, ok in ops if kind == "claim" and ok}
    reads = {}
    for c, kind, inv, comp, ok in ops:
        if kind == "status" and ok:
            reads.setdefault(c, []).append((inv, comp))
    assert len(claims) >= 4 and sum(len(r) for r in reads.values()) > 20, (len(claims), ops[:10])
    violations = []
    for c, (c_inv, c_comp) in claims.items():
        for d, (d_inv, d_comp) in claims.items():
            if c == d or not c_comp < d_inv:
                continue
            # d claimed strictly after c: c's updates sent after d's claim was answered fail.
            late = [r for r in reads.get(c, []) if r[0] > d_comp]
            if late:
                violations.append((c, d, late[:3]))
    oks = sorted((inv, comp, c) for c, rs in reads.items() for inv, comp in rs)
    for i, (inv_a, comp_a, c) in enumerate(oks):
        for inv_b, comp_b, d in oks[i + 1:]:
            if d == c or inv_b <= comp_a:
                continue
            later_c = [r for r in reads[c] if r[0] > comp_b]
            if later_c:
                violations.append(("interleaved", c, d))
                break
    assert not violations, violations[:5]
    print(f"history: {len(claims)} owners in turn, "
          f"{sum(len(r) for r in reads.values())} updates answered OK, no overlap")


def test_kill_9_of_a_node_its_devices_stop_counting_and_no_ghost(make_cluster, assertion,
                                                                 fresh_engine):
    """max_devices_per_user 1: with a device on n2, another device of the user is refused until
    n2's death is known; after it, one is taken on n1 within node_timeout, and the restarted
    n2's old entry is cleaned from the record."""
    n1, n2, n3 = make_cluster(max_devices_per_user="1")
    email = "ghost@example.com"

    async def scenario():
        phone, reply = await device(n2, email, assertion(email), "phone")
        assert reply == {"result": "OK"}
        ws, reply = await device(n1, email, assertion(email), "tablet")
        assert reply.get("errno") == 51, reply
        await ws.close()
        n2.kill_group(signal.SIGKILL)
        n2.proc.wait(timeout=10)
        killed = time.monotonic()
        while True:
            ws, reply = await device(n1, email, assertion(email), "tablet")
            if reply == {"result": "OK"}:
                break
            assert reply.get("errno") in (51, 61) or reply == {"result": "OK"}, reply
            await ws.close()
            assert time.monotonic() - killed < NODE_TIMEOUT_S + 10, "n2's device still counts"
            await asyncio.sleep(0.1)
        seen = time.monotonic() - killed
        print(f"node kill -9: its device stopped counting on n1 after {seen:.2f} s "
              f"(node_timeout {NODE_TIMEOUT_S} s)")
        assert seen < NODE_TIMEOUT_S + 4
        # n2 comes back under a new epoch: nothing of its previous one is in the record, and the
        # tablet on n1 still holds (a second device is still refused: the cap counts it).
        n2.log.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, start_node, n2)
        await loop.run_in_executor(None, wait_serving, n2)
        assert await until(lambda: [(e["node"], e["device"])
                                    for e in user_record(fresh_engine, email)] == [("n1", "tablet")],
                           30), user_record(fresh_engine, email)
        again, reply = await device(n2, email, assertion(email), "phone")
        assert reply.get("errno") == 51, reply
        await again.close()
        await ws.close()
    run(scenario())


def test_a_frozen_node_closes_its_devices_and_serves_nothing_stale(nodes, assertion):
    n1, n2, _ = nodes
    email = "frozen@example.com"
    declared_by = []

    async def scenario():
        stale, reply = await device(n2, email, assertion(email), "phone")
        assert reply == {"result": "OK"}
        n2.kill_group(signal.SIGSTOP)
        try:
            assert await until(lambda: n1.peers()["n2"]["state"] == "dead",
                               timeout=NODE_TIMEOUT_S + 15), n1.peers()
            declared_by.append(n1.peers()["n2"]["declared_by"])
            fresh, reply = await device(n1, email, assertion(email), "phone")
            assert reply == {"result": "OK"}
            await stale.send(update(email, "unavailable"))
        finally:
            n2.kill_group(signal.SIGCONT)
        # Thawed, n2 answers nothing stale: its device is closed 61/1001 (fenced) or 52/4001.
        last, code = await closed_with(stale)
        assert code in (1001, 4001) and last is not None and last.get("errno") in (61, 52), (
            last, code)
        await fresh.send(update(email, "unavailable"))
        assert json.loads(await fresh.recv()) == {"result": "OK"}
        await fresh.close()
    run(scenario())
    assert n2.metric("presenced_cluster_fences_total") >= 1, n2.cluster()
    # The declaration shows in the /metrics of the node that made it.
    declarer = {n.settings["node_name"]: n for n in nodes}[declared_by[0]]
    assert wait_for(lambda: declarer.metric("presenced_cluster_declared_total") >= 1, 5), (
        declared_by, declarer.cluster())


def admin_user(node, email):
    url = f"http://127.0.0.1:{node.admin_port}/users/" + urllib.parse.quote(email)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_aggregate_presence_over_devices_on_two_nodes_seen_on_a_third(nodes, assertion):
    n1, n2, n3 = nodes
    email = "agg@example.com"

    def seen(status, devices):
        body = admin_user(n3, email)
        return body.get("status") == status and sorted(
            (d["device"], d["status"]) for d in body.get("devices", [])) == devices

    async def scenario():
        phone, reply = await device(n1, email, assertion(email), "phone", "unavailable")
        assert reply == {"result": "OK"}
        tablet, reply = await device(n2, email, assertion(email), "tablet", "online")
        assert reply == {"result": "OK"}
        assert await until(lambda: seen("online", [("phone", "unavailable"),
                                                   ("tablet", "online")]), 15), admin_user(n3, email)
        await tablet.close()
        assert await until(lambda: seen("unavailable", [("phone", "unavailable")]), 15), \
            admin_user(n3, email)
        await phone.send(update(email, "online"))
        assert json.loads(await phone.recv()) == {"result": "OK"}
        assert await until(lambda: seen("online", [("phone", "online")]), 15), \
            admin_user(n3, email)
        await phone.close()
    run(scenario())


def admin_notify(node, email, **fields):
    fields.setdefault("source", "operator@presence.test")
    url = f"http://127.0.0.1:{node.admin_port}/users/" + urllib.parse.quote(email) + \
        "/notifications"
    request = urllib.request.Request(url, data=json.dumps(fields).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.status, json.loads(r.read())


def test_the_operators_notification_on_n1_reaches_devices_on_n2_live_and_on_n3_at_connect(
        nodes, assertion):
    n1, n2, n3 = nodes
    email = "operator@example.com"

    async def scenario():
        tablet, reply = await device(n2, email, assertion(email), "tablet")
        assert reply == {"result": "OK"}
        status, body = admin_notify(n1, email, message="live")
        assert status == 201, body
        got = json.loads(await asyncio.wait_for(tablet.recv(), 15))["notifications"]
        assert [(n["message"], n["id"]) for n in got] == [("live", body["id"])], got
        await tablet.close()
        status, body = admin_notify(n1, email, message="later")
        assert status == 201, body
        phone, reply = await device(n3, email, assertion(email), "phone")
        assert reply == {"result": "OK"}
        got = json.loads(await asyncio.wait_for(phone.recv(), 15))["notifications"]
        assert [n["message"] for n in got] == ["later"], got
        await phone.close()
    run(scenario())


def test_an_agent_killed_and_restarted_keeps_the_nodes_devices_and_epoch(nodes, assertion):
    """Only the agent dies (kill -9): the master starts another, which registers the same epoch
    while the workers go on serving; the device stays connected and its updates go through."""
    n1, n2, _ = nodes
    email = "agent@example.com"
    before = n2.cluster()

    async def scenario():
        phone, reply = await device(n2, email, assertion(email), "phone")
        assert reply == {"result": "OK"}
        return phone
    phone_loop = asyncio.new_event_loop()
    phone = phone_loop.run_until_complete(scenario())
    os.kill(before["agent_pid"], signal.SIGKILL)
    assert wait_for(lambda: n2.cluster().get("agent_pid") not in (None, before["agent_pid"])
                         and n2.cluster().get("state") == "serving", 30), n2.cluster()
    assert n2.cluster()["epoch"] == before["epoch"]

    async def after():
        await phone.send(update(email, "unavailable"))
        reply = json.loads(await asyncio.wait_for(phone.recv(), 15))
        assert reply == {"result": "OK"}, reply
        await phone.close()
    phone_loop.run_until_complete(after())
    phone_loop.close()


def test_every_engine_server_restarted_devices_are_served_again(nodes, assertion,
                                                                 fresh_engine):
    """All three engine servers stopped: a device held on n1 is sent off with errno 61, close
    1001 and a retry_after of 1-5 s (the node cannot vouch for its state); a device connecting
    meanwhile gets the same. Once the servers are back, without a restart of any node, devices
    claim on every node again, a takeover still closes the older connection across nodes, and
    the operator's notification on n3 reaches a device on n2 live."""
    n1, n2, n3 = nodes
    email = "outage@example.com"

    def sent_off(last, code):
        return (code == 1001 and last is not None and last.get("errno") == 61 and
                1 <= last.get("retry_after", 0) <= 5)

    async def scenario():
        phone, reply = await device(n1, email, assertion(email), "phone")
        assert reply == {"result": "OK"}
        for s in fresh_engine.servers:
            s.kill(signal.SIGTERM)
        # Its updates meanwhile: not answered OK; it is sent off with 61 (the fence, or the
        # update's own budget) and told when to come back.
        await phone.send(update(email, "unavailable"))
        last, code = await closed_with(phone, timeout=40)
        assert sent_off(last, code), (last, code)
        assert await until(lambda: n2.cluster().get("state") != "serving", 20), n2.cluster()
        # Cut off, a node says so to its balancer: /__heartbeat__ 503 naming the cluster check.
        status, _, body = http_get(n2.url + "/__heartbeat__")
        assert status == 503 and json.loads(body)["checks"]["cluster"] == "error", (status, body)
        late = await websockets.connect(n2.ws_url)
        try:
            await late.send(update(email, "online", "tablet", assertion(email)))
        except websockets.ConnectionClosed:
            pass  # sent off at the handshake, before this update
        last, code = await closed_with(late, timeout=20)
        assert sent_off(last, code), (last, code)
        loop = asyncio.get_running_loop()
        for s in fresh_engine.servers:
            s.start()
        await loop.run_in_executor(None, fresh_engine.wait_ready)
        for n in nodes:
            await loop.run_in_executor(None, lambda: wait_serving(n, timeout=60))
        # Its workers follow the agent within a watch period (200 ms): 200 again.
        assert await until(lambda: http_get(n2.url + "/__heartbeat__")[0] == 200, 10), \
            http_get(n2.url + "/__heartbeat__")
        # Served again by themselves: a claim on each node, a takeover across two of them.
        held = []
        for n, name in ((n1, "a"), (n2, "b"), (n3, "c")):
            deadline = time.monotonic() + 30
            while True:
                try:
                    ws, reply = await device(n, email, assertion(email), name)
                except websockets.ConnectionClosed as closed:
                    # A node still fenced sends a new connection off (1001) before its update.
                    ws, reply = None, {"closed": closed.code}
                if reply == {"result": "OK"} or time.monotonic() > deadline:
                    break
                if ws is not None:
                    await ws.close()
                await asyncio.sleep(0.2)
            assert reply == {"result": "OK"}, (n.settings["node_name"], reply)
            held.append(ws)
        taker, reply = await device(n2, email, assertion(email), "a")
        assert reply == {"result": "OK"}
        last, code = await closed_with(held[0])
        assert code == 4001 and last["errno"] == 52, (last, code)
        status, body = admin_notify(n3, email, message="back")
        assert status == 201, body
        got = json.loads(await asyncio.wait_for(taker.recv(), 15))["notifications"]
        assert [n["message"] for n in got] == ["back"], got
        for ws in held[1:] + [taker]:
            await ws.close()
    run(scenario(), timeout=240)
