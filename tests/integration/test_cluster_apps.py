"""Apps, grants and web sessions across the nodes of a cluster (SPEC 8): three presenced nodes on
a 3-server JetStream cluster, one public_url as behind a load balancer, each request sent to
whichever node the test names — a session made on one node is valid on the others at once, an
app registered on one is managed on another, a grant made on one is polled and notified on
another, a revoke on one reaches the app's connections on every node."""
import asyncio
import json
import os
import re
import signal
import time
import urllib.parse
import urllib.request

import pytest

from conftest import wait_for
from engine_fixtures import fresh_engine  # noqa: F401  (fixture)
from test_appservice import AppService, DEVICE_AUDIENCE, run
from cluster_fixtures import Holder, Node, wait_serving
from web_client import Browser
from web_fixtures import APP_DOMAIN, action, domain_key, register


@pytest.fixture
def nodes(fresh_engine, workdir, ident, ca, domain):
    made = []
    for i in range(3):
        d = os.path.join(workdir, f"n{i + 1}")
        os.makedirs(d, exist_ok=True)
        made.append(Node(d, workers="1", cluster=fresh_engine.urls(i), node_name=f"n{i + 1}",
                         node_timeout="3s", cluster_shards="3"))
    origin = f"http://127.0.0.1:{made[0].port}"  # one public_url: the nodes behind one name
    for n in made:
        n.write_config(public_url=origin, extra="\n".join([
            f"trusted_issuer idp.test {ident.key_file}", f"ca_file {ca.ca_file}",
            domain.server.connect_to(), "validate_private_addresses yes",
            f"audience {DEVICE_AUDIENCE}"]))
        n.origin = origin
        n.start(preexec_fn=os.setsid)
    for n in made:
        wait_serving(n)
    yield made
    for n in made:
        n.stop()
    for n in made:
        n.assert_clean_log()


def on(node, browser):
    """The same browser (its cookies) talking to another node."""
    other = Browser(node.port)
    other.cookies = browser.cookies
    return other


def sign_in(node, ident, email):
    browser = Browser(node.port)
    status, headers, _ = browser.sign_in(ident(email, node.origin))
    assert status == 303 and headers["location"] == "/account", (status, headers)
    return browser


def activate_on(nodes, ident, domain):
    """Registered on n1, validated on n2, activated on n3: the key works everywhere."""
    n1, n2, n3 = nodes
    dev = sign_in(n1, ident, "dev@example.com")
    appid = register(dev)
    domain.proof = domain_key(on(n2, dev), appid)
    status, headers, _ = action(on(n2, dev), appid, "validate")
    assert status == 303, (status, headers)
    status, _, text = action(on(n3, dev), appid, "activate")
    assert status == 200, text
    return dev, appid, re.search(r'id="api-key">([^<]+)<', text).group(1)


def grant_on(node, ident, email, appid):
    browser = sign_in(node, ident, email)
    query = urllib.parse.urlencode({"redirect": f"https://{APP_DOMAIN}/welcome"})
    _, forms, _ = browser.forms(f"/grant/{appid}?{query}")
    fields = next(f["fields"] for f in forms if f["action"] == f"/grant/{appid}")
    status, headers, _ = browser.post(f"/grant/{appid}", {**fields, "decision": "allow"})
    assert status == 303, (status, headers)
    return browser, re.search(r"Presence-UID=([0-9a-f-]{36})", headers["location"]).group(1)


def poll(node, appid, api_key, puid):
    status, _, body = Browser(node.port).get(f"/myapps/{appid}/status?uid={puid}",
                                             headers={"Authorization": f"Bearer {api_key}"})
    return status, json.loads(body) if status == 200 else body


async def claimed(node, email, device, hold_ms):
    """A device claimed through node's member_probe (as one of its workers claims it), held
    hold_ms, then released; returns what the probe printed."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: node.member(
        "claim", email, device, "1", str(hold_ms)))


def away_since(engine, appid, node):
    """node's record of the app in pd_appaway, from its leader: 0 while the node has a connection
    of it open, else when its last one closed (ms); None when there is no record."""
    got = engine.probe("get", "pd_appaway", f"{appid}.{node}", "leader")
    value = got.get("value", "").encode("latin-1")
    return int.from_bytes(value[8:], "big") if len(value) == 16 else None


async def until_polled(node, appid, api_key, puid, status, timeout=15):
    """Until polling on node says the user's status."""
    deadline = time.monotonic() + timeout
    while poll(node, appid, api_key, puid)[1]["statuses"][0]["status"] != status:
        assert time.monotonic() < deadline, poll(node, appid, api_key, puid)
        await asyncio.sleep(0.1)


def test_a_web_session_made_on_one_node_is_valid_on_the_others(nodes, ident):
    n1, n2, n3 = nodes
    browser = sign_in(n1, ident, "alice@example.com")
    # At once, with no wait: the sign-in answered only once the engine had the session, and a
    # node that does not know it yet asks the engine.
    for node in (n2, n3, n1):
        status, _, text = on(node, browser).get("/account")
        assert status == 200 and "alice@example.com" in text, (node.settings["node_name"], status)
    # A cookie nobody made is no session anywhere (asked of the engine, not found).
    stranger = Browser(n2.port)
    stranger.cookies = {"presenced_session": "A" * 43}
    status, headers, _ = stranger.get("/account")
    assert status == 303 and headers["location"].startswith("/login")
    # Signed out on n2: the session is gone on every node (n2 at once; the others as soon as
    # their changefeed brings the deletion).
    cookie = dict(browser.cookies)
    b2 = on(n2, browser)
    status, headers, _ = b2.post("/logout", {"csrf": b2.csrf()})
    assert status == 303
    for node in (n2, n1, n3):
        old = Browser(node.port)
        old.cookies = dict(cookie)
        assert wait_for(lambda: old.get("/account")[0] == 303, timeout=5), node.settings


def test_an_app_registered_on_one_node_is_managed_and_polled_on_the_others(nodes, ident, domain):
    n1, n2, n3 = nodes
    dev, appid, api_key = activate_on(nodes, ident, domain)
    # Every node lists it for its owner and answers polling with its key.
    for node in nodes:
        assert wait_for(lambda: appid in on(node, dev).get("/myapps")[2], timeout=5)
        assert wait_for(lambda: poll(node, appid, api_key, "x")[0] == 200, timeout=5), node
    # Deactivated on n1: no node takes the key any more.
    assert action(on(n1, dev), appid, "deactivate")[0] == 303
    for node in nodes:
        assert wait_for(lambda: poll(node, appid, api_key, "x")[0] == 403, timeout=5), node


def test_grant_on_one_node_then_polling_and_notify_on_another(nodes, ident, domain):
    n1, n2, n3 = nodes
    dev, appid, api_key = activate_on(nodes, ident, domain)
    assert wait_for(lambda: poll(n2, appid, api_key, "x")[0] == 200, timeout=5)

    async def scenario():
        app = await AppService.connect(n2, appid, api_key)
        user, puid = grant_on(n1, ident, "bob@example.com", appid)
        # The grant answered once the engine had it: n2 knows the PUID.
        status, body = poll(n2, appid, api_key, puid)
        assert status == 200 and [s["uid"] for s in body["statuses"]] == [puid], body
        reply = await app.request({"action": "notify", "target": puid, "source": "dev",
                                   "message": "hi", "id": "n1"})
        assert reply == {"action": "notify", "result": "OK", "id": "n1"}, reply
        # The user's account page on n3 lists the app, with the same PUID in /getApps, once
        # n3's feed of pd_grants brought the grant: a list reads the node's copy (presenced(8)
        # CLUSTER: milliseconds, seconds on a loaded machine), where a request naming the PUID
        # (the polling above) reads through to the engine.
        def listed():
            status, _, text = on(n3, user).get("/getApps")
            return status == 200 and [a["uid"] for a in json.loads(text)["apps"]] == [puid]
        assert wait_for(listed, timeout=10), on(n3, user).get("/getApps")
        # Granted again on n3: the same PUID.
        _, again = grant_on(n3, ident, "bob@example.com", appid)
        assert again == puid
        await app.ws.close()
    run(scenario())


def test_app_connections_on_two_nodes_each_get_every_event(nodes, ident, domain):
    """The events come from each node's agent reading the user records' feed: a device claimed
    through a third node (member_probe, the cluster's claim as a worker of n2 makes it) is seen
    online, then offline, by the app's connections on n1 and on n3; polling on any node says the
    same; a connection back on n3 while n1's stayed open replays nothing (the app was not away);
    a revoke on one node tells the app's connections on the others "offline" once."""
    n1, n2, n3 = nodes
    dev, appid, api_key = activate_on(nodes, ident, domain)
    user, puid = grant_on(n1, ident, "bob@example.com", appid)

    async def scenario():
        first = await AppService.connect(n1, appid, api_key)
        third = await AppService.connect(n3, appid, api_key)
        held = asyncio.ensure_future(claimed(n2, "bob@example.com", "phone", 1500))
        for app in (first, third):
            assert await app.event(timeout=15) == {"uid": puid, "status": "online"}
        for node in nodes:
            status, body = poll(node, appid, api_key, puid)
            assert body["statuses"][0]["status"] == "online", (node.settings["node_name"], body)
        await held
        for app in (first, third):
            assert await app.event(timeout=15) == {"uid": puid, "status": "offline"}
            assert app.since > 0  # when bob went away: last seen
        # n3's connection goes away; bob comes back meanwhile, which n1's connection hears: the
        # app was not away (its absence is the cluster's, test_an_apps_absence_is_counted…), so
        # a connection back on n3 replays nothing and hears the next change live.
        await third.ws.close()
        held = asyncio.ensure_future(claimed(n2, "bob@example.com", "phone", 3000))
        assert await first.event(timeout=15) == {"uid": puid, "status": "online"}
        back = await AppService.connect(n3, appid, api_key)
        await held
        for app in (first, back):
            assert await app.event(timeout=15) == {"uid": puid, "status": "offline"}
        # Revoked on n2: both connections hear "offline" once, and the PUID is gone everywhere.
        b2 = on(n2, user)
        status, _, _ = b2.post(f"/revoke/{appid}", {"csrf": b2.csrf()})
        assert status == 303
        for app in (first, back):
            assert await app.event(timeout=15) == {"uid": puid, "status": "offline"}
        for node in nodes:
            assert wait_for(lambda: poll(node, appid, api_key, puid)[1] == {"statuses": []},
                            timeout=5)
        reply = await first.request({"action": "notify", "target": puid, "source": "dev",
                                     "message": "hi", "id": "n2"})
        assert reply.get("errno") == 43, reply
        for app in (first, back):
            await app.ws.close()
    run(scenario(), timeout=120)


def test_admin_users_on_any_node(nodes):
    """GET /users/<email> on the admin port of any node shows the user's devices on every node
    (from the replica of the user's record, with the node that holds each) and the presence the
    node's agent derived from it."""
    n1, n2, n3 = nodes

    def user(node):
        return json.loads(node.admin("/users/carol%40example.com"))

    async def scenario():
        loop = asyncio.get_running_loop()
        held = asyncio.ensure_future(claimed(n2, "carol@example.com", "laptop", 3000))

        def seen_everywhere():
            for node in nodes:
                u = user(node)
                devices = [(d["device"], d["node"], d["status"], d["alive"]) for d in u["devices"]]
                if devices != [("laptop", "n2", "online", True)] or u["status"] != "online":
                    return False
            return True
        assert await loop.run_in_executor(None, lambda: wait_for(seen_everywhere, timeout=10)), [
            user(n) for n in nodes]
        await held

        assert user(n1)["pending_notifications"] is None  # the engine's queue, not the node's

        def gone_everywhere():
            return all(user(n)["devices"] == [] and user(n)["published"]["status"] == "offline"
                       for n in nodes)
        assert await loop.run_in_executor(None, lambda: wait_for(gone_everywhere, timeout=10)), [
            user(n) for n in nodes]
    run(scenario(), timeout=60)


def test_offline_grace_across_nodes(nodes, ident, domain):
    """A device that goes away and is back within offline_grace (5 s) shows as nothing to the
    app; once it stays away, the app hears offline after the grace, dated from its departure."""
    n1, n2, n3 = nodes
    dev, appid, api_key = activate_on(nodes, ident, domain)
    user, puid = grant_on(n1, ident, "dora@example.com", appid)

    async def claim(hold_ms):
        await claimed(n2, "dora@example.com", "tablet", hold_ms)
        return time.time()

    async def scenario():
        app = await AppService.connect(n3, appid, api_key)
        first = asyncio.ensure_future(claim(1000))
        assert await app.event(timeout=15) == {"uid": puid, "status": "online"}
        await first
        left = await claim(1000)  # back within the grace, gone again a second later
        with pytest.raises(asyncio.TimeoutError):
            await app.event(timeout=0.5)  # nothing told of the first departure
        assert await app.event(timeout=20) == {"uid": puid, "status": "offline"}
        told = time.time()
        # Dated from the departure (the release, before the probe returned), and held for the
        # grace (5 s) from then, not told at once.
        assert app.since <= left * 1000, (app.since, left)
        assert told - app.since / 1000 >= 4.5, (told, app.since)
        await app.ws.close()
    run(scenario(), timeout=90)


def test_an_operators_notification_on_any_node_reaches_the_users_devices(nodes):
    """POST /users/<email>/notifications on one node's admin port queues in the cluster's queue
    (through the node's agent): delivered live to the user's device held on another node, and
    read from the queue on a third."""
    n1, n2, n3 = nodes
    with Holder(n3, "erin@example.com", "tablet") as holder:
        holder.first("claim", timeout=30)
        body = json.dumps({"source": "ops", "message": "maintenance at noon"}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{n1.admin_port}/users/erin%40example.com/notifications", data=body)
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 201
        got = holder.first("deliver", timeout=15)["json"]
        assert (got["source"], got["message"]) == ("ops", "maintenance at noon"), got
        queued = n2.member("pending", "erin@example.com")
        assert [x["json"]["message"] for x in queued if "pending" in x] == [
            "maintenance at noon"], queued


def test_an_operators_kick_on_any_node_closes_the_users_devices_everywhere(nodes):
    """POST /users/<email>/kick on one node's admin port closes the user's device held on another
    node with errno 61 (through the node's agent and the holder's inbox)."""
    n1, n2, n3 = nodes
    with Holder(n3, "fred@example.com", "phone") as holder:
        holder.first("claim", timeout=30)
        assert wait_for(lambda: json.loads(n1.admin("/users/fred%40example.com"))["devices"],
                        timeout=10)
        req = urllib.request.Request(f"http://127.0.0.1:{n1.admin_port}/users/fred%40example.com"
                                     "/kick", data=b"")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["devices"] == 1
        assert wait_for(lambda: any(x.get("close") == 1 and x.get("errno") == 61
                                    for x in holder.lines), timeout=15), holder.lines


def test_an_apps_absence_is_counted_over_the_cluster(nodes, ident, domain, fresh_engine):
    """The app's only connection, on n1, goes away; bob comes online meanwhile; the app comes
    back through n3, which never had a connection of it: it first hears what changed while it
    was away (the absence began when n1's connection closed, pd_appaway). A second connection,
    on n2, opened while n3's is open, replays nothing: the app was not away."""
    n1, n2, n3 = nodes
    dev, appid, api_key = activate_on(nodes, ident, domain)
    user, puid = grant_on(n1, ident, "gus@example.com", appid)

    async def scenario():
        first = await AppService.connect(n1, appid, api_key)
        await first.ws.close()

        # n1's absence is in the engine; the other nodes' feeds bring it within moments.
        deadline = time.monotonic() + 15
        while not away_since(fresh_engine, appid, "n1"):
            assert time.monotonic() < deadline, "n1's absence record never reached the engine"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        held = asyncio.ensure_future(claimed(n2, "gus@example.com", "phone", 6000))
        await until_polled(n3, appid, api_key, puid, "online")
        back = await AppService.connect(n3, appid, api_key)
        assert await back.event(timeout=10) == {"uid": puid, "status": "online"}
        await asyncio.sleep(1)  # n3's "open" record reaches n2
        second = await AppService.connect(n2, appid, api_key)
        await held
        # Both hear the live offline; n2's connection heard nothing before it (no replay).
        for app in (back, second):
            assert await app.event(timeout=15) == {"uid": puid, "status": "offline"}
        assert [m for m in second.received if "uid" in m][0]["status"] == "offline", \
            second.received
        for app in (back, second):
            await app.ws.close()
    run(scenario(), timeout=90)


def test_a_worker_killed_with_the_apps_connection_leaves_its_node_away(nodes, ident, domain,
                                                                      fresh_engine):
    """The app's only connection is on n1's worker, which is killed with kill -9: n1's master,
    which releases a dead worker's connections, says in pd_appaway that n1 has none of the app
    since then (the worker cannot say it any more). hal comes online meanwhile; the app, back
    through n2, first hears it. Before, n1's record said "open" until n1's next close of the
    app, and n2 replayed nothing: the app was taken for present on n1."""
    n1, n2, n3 = nodes
    dev, appid, api_key = activate_on(nodes, ident, domain)
    user, puid = grant_on(n1, ident, "hal@example.com", appid)

    async def scenario():
        first = await AppService.connect(n1, appid, api_key)
        deadline = time.monotonic() + 15
        while away_since(fresh_engine, appid, "n1") != 0:  # n1's "open" record reached it
            assert time.monotonic() < deadline, away_since(fresh_engine, appid, "n1")
            await asyncio.sleep(0.1)
        os.kill(n1.workers()[0]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while not away_since(fresh_engine, appid, "n1"):
            assert time.monotonic() < deadline, "n1 still says the app's connection is open"
            await asyncio.sleep(0.1)
        await first.ws.close()
        await asyncio.sleep(1)  # n1's absence reaches n2's replica
        held = asyncio.ensure_future(claimed(n3, "hal@example.com", "phone", 4000))
        await until_polled(n2, appid, api_key, puid, "online")
        back = await AppService.connect(n2, appid, api_key)
        assert await back.event(timeout=10) == {"uid": puid, "status": "online"}
        await held
        await back.ws.close()
    run(scenario(), timeout=90)
