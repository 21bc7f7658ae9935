"""presencectl(1) against a real presenced: every command, human and --json output, and its
errors (admin port down, unknown user, bad appid, bad input) with exit status 1. Devices and
AppServices are real WebSocket clients; devices sign in with assertions of the tests' identity
provider, users allow an operator's app through the real consent flow."""
import asyncio
import json
import os
import re
import subprocess
import urllib.parse

import pytest
import websockets

from conftest import ROOT, SANITIZER_MARKS, wait_for
from web_fixtures import signed_in

CTL = os.environ.get("PRESENCECTL_BIN", os.path.join(ROOT, "build", "asan", "presencectl"))
APP_DOMAIN = "chat.test"


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def ctl(server_or_args, *args, expect=0):
    """Runs presencectl -c <the server's file> ARGS (or exactly the list given); returns
    (stdout, stderr) after checking the exit status (unless expect is None)."""
    if isinstance(server_or_args, list):
        argv = [CTL, *server_or_args]
    else:
        argv = [CTL, "-c", server_or_args.config_path, *args]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    for mark in SANITIZER_MARKS:
        assert mark not in done.stderr, done.stderr
    assert expect is None or done.returncode == expect, (argv, done.returncode, done.stdout,
                                                         done.stderr)
    return done.stdout, done.stderr


def ctl_json(server, *args, expect=0):
    out, _ = ctl(server, "--json", *args, expect=expect)
    return json.loads(out)


@pytest.fixture
def server(make_server, ident):
    def factory(**settings):
        s = make_server(**settings)
        s.write_config(public_url=f"http://127.0.0.1:{s.port}",
                       extra=f"trusted_issuer idp.test {ident.key_file}")
        s.start()
        s.origin = f"http://127.0.0.1:{s.port}"
        return s
    return factory


async def device(server, ident, email, name="phone", status="online"):
    ws = await websockets.connect(server.ws_url)
    await ws.send(json.dumps({"email": email, "device": name, "status": status,
                              "assertion": ident(email, server.origin)}))
    assert json.loads(await ws.recv()) == {"result": "OK"}
    return ws


async def closed_with(ws):
    """The error the server sent before closing, and the close code."""
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    return reply["errno"], ws.close_code


async def appservice(server, appid, key):
    ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/myapps/{appid}")
    await ws.send(json.dumps({"action": "auth", "token": key}))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 10))


def test_status_and_the_ways_to_name_the_endpoint(server, tmp_path):
    s = server()
    out, _ = ctl(s, "status")
    pids = [str(w["pid"]) for w in s.workers()]
    assert re.search(r"presenced \S+, pid \d+, running", out), out
    assert all(pid in out for pid in pids) and "2 worker(s)" in out, out
    body = ctl_json(s, "status")
    assert body["state"] == "running" and sorted(str(w["pid"]) for w in body["workers"]) == \
        sorted(pids)
    # -a names the endpoint directly; --json may come after the command.
    out, _ = ctl(["-a", f"127.0.0.1:{s.admin_port}", "status", "--json"])
    assert json.loads(out)["pid"] == body["pid"]
    _, err = ctl(["-a", f"127.0.0.1:{s.admin_port}", "-c", s.config_path, "status"], expect=1)
    assert "-c and -a" in err
    off = tmp_path / "off.conf"
    off.write_text("admin_listen off\n")
    _, err = ctl(["-c", str(off), "status"], expect=1)
    assert "admin_listen is off" in err
    bad = tmp_path / "bad.conf"
    bad.write_text("listen 1\nadmin_listen nowhere:x\n")
    _, err = ctl(["-c", str(bad), "status"], expect=1)
    assert f"{bad}:2:" in err
    _, err = ctl(s, "bogus", expect=1)
    assert "unknown command 'bogus'" in err
    _, err = ctl(s, "user", expect=1)
    assert "takes 1 argument" in err
    _, err = ctl(s, "status", "--name", "x", expect=1)
    assert "does not belong to status" in err


def test_admin_port_down_is_a_clear_error(server):
    s = server(workers=1)
    s.stop()
    for command in (["status"], ["user", "a@example.com"], ["apps"], ["drain"]):
        _, err = ctl(s, *command, expect=1)
        assert f"cannot reach the admin endpoint at 127.0.0.1:{s.admin_port}: Connection refused" \
            in err, err


def test_user_and_notify(server, ident):
    s = server()
    email = "alice@example.com"
    _, err = ctl(s, "user", email, expect=1)
    assert f"unknown user {email}" in err
    assert ctl_json(s, "user", email, expect=1)["known"] is False
    _, err = ctl(s, "user", "not-an-address", expect=1)
    assert "not an e-mail address (HTTP 400)" in err

    async def scenario():
        phone = await device(s, ident, email, "phone", "online")
        laptop = await device(s, ident, email, "laptop", "unavailable")
        out, _ = ctl(s, "user", email)
        assert out.startswith(f"{email}: online since "), out
        assert re.search(r"phone\s+online\s+since .* worker pid \d+", out), out
        assert re.search(r"laptop\s+unavailable\s+since", out), out
        assert "2 device(s) connected" in out and "0 notification(s) pending" in out
        body = ctl_json(s, "user", email)
        assert body["known"] is True and len(body["devices"]) == 2

        out, _ = ctl(s, "notify", email, "Bob is ringing", "--action", "https://chat.test/r/1",
                     "--source", "Bob")
        queued = re.fullmatch(rf"queued notification ([0-9a-f-]{{36}}) for {re.escape(email)}\n",
                              out)
        assert queued, out
        for ws in (phone, laptop):
            note = json.loads(await asyncio.wait_for(ws.recv(), 10))["notifications"][0]
            assert (note["id"], note["source"], note["message"], note["action"]) == (
                queued.group(1), "Bob", "Bob is ringing", "https://chat.test/r/1")
        body = ctl_json(s, "notify", email, "plain", "--ttl", "60")
        note = json.loads(await asyncio.wait_for(phone.recv(), 10))["notifications"][0]
        assert note["id"] == body["id"] and note["source"] == "operator" and "action" not in note
        assert "urgency" not in note
        ctl(s, "notify", email, "ring", "--urgency", "high")
        note = json.loads(await asyncio.wait_for(phone.recv(), 10))["notifications"][0]
        assert (note["message"], note["urgency"]) == ("ring", "high"), note
        await phone.close()
        await laptop.close()
    run(scenario())
    _, err = ctl(s, "notify", email, "x" * 2000, expect=1)
    assert "(HTTP 400)" in err
    _, err = ctl(s, "notify", email, "hi", "--ttl", "soon", expect=1)
    assert "--ttl" in err
    _, err = ctl(s, "notify", email, "hi", "--ttl", str(10 ** 7), expect=1)
    assert "(HTTP 400)" in err
    _, err = ctl(s, "notify", email, "hi", "--urgency", "urgent", expect=1)
    assert "(HTTP 400)" in err and "urgency" in err, err
    # A user known only by what is pending for them is known.
    ctl(s, "notify", "carol@example.com", "later")
    out, _ = ctl(s, "user", "carol@example.com")
    assert "carol@example.com: offline" in out and "1 notification(s) pending" in out


def test_kick_closes_the_devices_on_every_worker(server, ident):
    s = server()
    email = "dave@example.com"

    async def scenario():
        sockets = []
        # Devices until they are held by both workers.
        for i in range(16):
            sockets.append(await device(s, ident, email, f"d{i}"))
            workers = {d["worker"] for d in ctl_json(s, "user", email)["devices"]}
            if len(workers) == 2 and len(sockets) >= 2:
                break
        assert len(workers) == 2, "every device landed on one worker"
        out, _ = ctl(s, "kick", email)
        assert out == (f"closing {len(sockets)} device connection(s) of {email} "
                       "(errno 61: they may reconnect later)\n"), out
        for ws in sockets:
            assert await closed_with(ws) == (61, 1001)
        assert wait_for(lambda: ctl_json(s, "user", email, expect=None)["devices"] == [])
        # Not a ban: the device may come back.
        back = await device(s, ident, email, "d0")
        assert len(ctl_json(s, "user", email)["devices"]) == 1
        await back.close()
    run(scenario())
    _, err = ctl(s, "kick", "nobody@example.com", expect=1)
    assert "unknown user" in err and "(HTTP 404)" in err
    ctl(s, "notify", "erin@example.com", "pending")
    out, _ = ctl(s, "kick", "erin@example.com")
    assert out == "erin@example.com has no device connected\n"


def test_an_operators_app_from_create_to_delete(server, ident):
    s = server()
    out, _ = ctl(s, "apps")
    assert out == "no app registered\n"
    _, err = ctl(s, "app", "create", "--name", "Chat", expect=1)
    assert "--domain" in err
    _, err = ctl(s, "app", "create", "--name", "Chat", "--domain", "not a host", expect=1)
    assert "domain" in err and "(HTTP 400)" in err
    _, err = ctl(s, "app", "create", "--name", "", "--domain", APP_DOMAIN, expect=1)
    assert "name" in err and "(HTTP 400)" in err
    _, err = ctl(s, "app", "create", "--name", "C", "--domain", APP_DOMAIN, "--owner", "x",
                 expect=1)
    assert "owner" in err
    out, _ = ctl(s, "app", "create", "--name", "Chat", "--domain", "Chat.Test",
                 "--description", "A chat room")
    appid = re.search(r"^appid\s+([0-9a-f-]{36})$", out, re.M).group(1)
    key = re.search(r"^api key\s+(\S+)$", out, re.M).group(1)
    assert re.search(r"^owner\s+operator$", out, re.M) and re.search(r"^state\s+active$", out,
                                                                     re.M), out
    assert "shown this once" in out
    shown = ctl_json(s, "app", "show", appid)
    assert (shown["domain"], shown["validated"], shown["active"], shown["owner"]) == (
        APP_DOMAIN, True, True, "operator")
    assert "api_key" not in shown  # only at creation and on a new key
    other = ctl_json(s, "app", "create", "--name", "Desk", "--domain", "desk.test",
                     "--owner", "dev@example.com")
    assert other["owner"] == "dev@example.com" and other["api_key"]

    # A user allows it through the consent page; the app's server sees them and rings them.
    browser = signed_in(s, ident, "frank@example.com")
    redirect = f"https://{APP_DOMAIN}/welcome"
    query = urllib.parse.urlencode({"redirect": redirect})
    _, forms, _ = browser.forms(f"/grant/{appid}?{query}")
    fields = next(f["fields"] for f in forms if f["action"] == f"/grant/{appid}")
    status, headers, _ = browser.post(f"/grant/{appid}", {**fields, "decision": "allow"})
    assert status == 303 and "Presence-UID=" in headers["location"], (status, headers)
    out, _ = ctl(s, "user", "frank@example.com")
    assert f"{appid}  Chat" in out, out

    async def scenario():
        app, reply = await appservice(s, appid, key)
        assert reply == {"action": "auth", "result": "OK"}
        listed = wait_for(lambda: [a for a in ctl_json(s, "apps")["apps"]
                                   if a["appid"] == appid and a["connections"] == 1])
        assert listed and listed[0]["grants"] == 1
        out, _ = ctl(s, "apps")
        assert re.search(rf"^{appid}\s+active\s+1\s+1\s+Chat\s+chat\.test\s+operator$", out,
                         re.M), out

        out, _ = ctl(s, "app", "disable", appid)
        assert out.startswith(f"app {appid}: disabled\n"), out
        assert await closed_with(app) == (41, 1008)
        again, reply = await appservice(s, appid, key)
        assert reply["errno"] == 41
        out, _ = ctl(s, "app", "enable", appid)
        assert out == f"app {appid}: enabled\n"
        app, reply = await appservice(s, appid, key)
        assert reply["result"] == "OK"

        body = ctl_json(s, "app", "rotate-key", appid)
        assert body["api_key"] != key
        assert await closed_with(app) == (42, 1008)
        _, reply = await appservice(s, appid, key)
        assert reply["errno"] == 42
        app, reply = await appservice(s, appid, body["api_key"])
        assert reply["result"] == "OK"

        out, _ = ctl(s, "app", "delete", appid)
        assert out == f"app {appid} deleted, with its grants\n"
        assert await closed_with(app) == (40, 1008)
    run(scenario())
    _, err = ctl(s, "app", "show", appid, expect=1)
    assert "unknown appid (HTTP 404)" in err
    for verb in ("show", "disable", "enable", "rotate-key", "delete"):
        _, err = ctl(s, "app", verb, "not-an-appid", expect=1)
        assert "not an appid" in err and "(HTTP 400)" in err, (verb, err)
    assert [a["name"] for a in ctl_json(s, "apps")["apps"]] == ["Desk"]


def test_drain_says_goodbye_and_stops(server, ident):
    s = server(drain_timeout="5s")

    async def scenario():
        sockets = [await device(s, ident, "gina@example.com", f"d{i}") for i in range(3)]
        drained = asyncio.create_task(asyncio.to_thread(ctl, s, "drain", "--wait"))
        for ws in sockets:
            assert await closed_with(ws) == (61, 1001)
        return await drained
    out, _ = run(scenario())
    assert out.startswith("draining 2 worker(s): devices get errno 61; presenced stops within "
                          "5000 ms\n"), out
    assert out.endswith("presenced has stopped\n"), out
    assert s.proc.wait(timeout=10) == 0
    assert "admin: drain requested" in s.log_text()
