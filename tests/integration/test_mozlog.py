"""log_format mozlog (issue 17): every line a run writes is one MozLog JSON object — with each
channel driven a little at log_level debug, a reload, a log reopen and a worker killed — and
still holds no assertion, token, API key, session cookie or e-mail with a PUID."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import websockets

from conftest import BINARY, http_get, wait_for
from test_appservice import DEVICE_AUDIENCE, AppService, grant
from web_fixtures import activated_app, signed_in

MOZLOG_KEYS = {"Timestamp", "Type", "Logger", "Hostname", "EnvVersion", "Severity", "Pid",
               "Fields"}


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def parts(secret):
    """A secret and the pieces a careless log line could hold of it (each part of a JWS)."""
    return {secret} | {p for p in secret.replace("~", ".").split(".") if len(p) >= 16}


def test_every_line_is_mozlog_and_keeps_secrets(site, ident, domain):
    server = site(workers=2, log_level="debug", log_format="mozlog")
    server.write_config(extra=server.settings["extra"] +
                        f"\naudience {DEVICE_AUDIENCE}\ndev_issuer on")
    server.stop()
    started_ns = time.time_ns()
    server.start()
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    alice_web, alice_puid = grant(server, ident, "alice@example.com", appid, "alice")
    token = subprocess.run([BINARY, "-c", server.config_path, "token", "bob@example.com"],
                           capture_output=True, text=True, timeout=30).stdout.strip()
    assert token.count(".") == 2
    assertion = ident("alice@example.com", DEVICE_AUDIENCE)
    bad_assertion = ident("alice@example.com", "https://elsewhere.test")

    async def scenario():
        app = await AppService.connect(server, appid, api_key)
        wrong = await AppService.connect(server, appid)
        await wrong.request({"action": "auth", "token": api_key[:-4] + "AAAA"})
        phone = await websockets.connect(server.ws_url)
        for message in ({"email": "alice@example.com", "status": "online",
                         "assertion": bad_assertion},
                        {"email": "alice@example.com", "status": "online",
                         "assertion": assertion}):
            await phone.send(json.dumps(message))
            await phone.recv()
        await app.event()
        laptop = await websockets.connect(server.ws_url)
        await laptop.send(json.dumps({"email": "bob@example.com", "status": "online",
                                      "token": token}))
        assert json.loads(await laptop.recv()) == {"result": "OK"}
        assert (await app.request({"action": "notify", "target": alice_puid, "source": "Bob",
                                   "message": "ring"}))["result"] == "OK"
        await phone.recv()
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.admin_port}/users/bob@example.com/notifications",
            data=json.dumps({"source": "ops", "message": "hello"}).encode(), method="POST")
        await asyncio.to_thread(urllib.request.urlopen, request, None, 10)
        await laptop.recv()
        await phone.send(b"\xff\xfe not text")  # a binary frame
        await phone.recv()
        for ws in (phone, laptop, app.ws):
            await ws.close()
    run(scenario())
    http_get(server.url + "/__heartbeat__")
    http_get(server.url + f"/myapps/{appid}/status?uid={alice_puid}")
    status, _, _ = alice_web.get("/account")
    assert status == 200

    # Operations: a reload, a reopen, a worker that dies and is restarted.
    server.signal(signal.SIGHUP)
    assert wait_for(lambda: server.admin("/metrics").count("presenced_reloads_total 1"), 15)
    server.wait_ready()
    server.signal(signal.SIGUSR1)
    victim = server.workers()[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: victim not in [w["pid"] for w in server.workers()] and
                    len(server.workers()) == 2, 15)
    server.stop()

    cookies = list(alice_web.cookies.values()) + list(dev.cookies.values())
    assert cookies
    secrets = set().union(*(parts(s) for s in [assertion, bad_assertion, token, api_key] +
                            cookies))
    lines = open(server.log_path, "rb").read().decode("utf-8").splitlines()
    assert len(lines) > 20
    pids = set()
    for line in lines:
        entry = json.loads(line)  # every line, whole
        assert set(entry) == MOZLOG_KEYS, line
        assert entry["Logger"] == "presenced" and entry["EnvVersion"] == "2.0", line
        assert entry["Type"] in ("presenced.master", "presenced.worker"), line
        assert entry["Hostname"] == socket.gethostname()
        assert isinstance(entry["Severity"], int) and 0 <= entry["Severity"] <= 7, line
        assert isinstance(entry["Timestamp"], int) and \
            started_ns - 10**9 <= entry["Timestamp"] <= time.time_ns(), line
        assert isinstance(entry["Pid"], int) and isinstance(entry["Fields"]["msg"], str)
        assert entry["Fields"]["role"] == "master" or \
            entry["Fields"]["role"].startswith("worker "), line
        pids.add(entry["Pid"])
        for secret in secrets:
            assert secret not in line, (secret, line)
        assert not ("alice@example.com" in line and alice_puid in line), line
    severities = {json.loads(line)["Severity"] for line in lines}
    assert {7, 6}.issubset(severities), severities  # debug and info lines were written
    assert len(pids) >= 4  # the master, two workers, their replacements
    text = "\n".join(lines)
    assert "configuration reloaded" in text and "killed" in text, text[-3000:]


def test_log_format_takes_effect_on_reload(make_server):
    """presenced.conf(5): log_format takes effect on reload — the master's and the new workers'
    lines after a HUP are MozLog, and text again after the next."""
    server = make_server(workers=1)
    server.start()

    def lines():
        return server.log_text().splitlines()

    def reloaded_to(log_format, generation):
        server.write_config(log_format=log_format)
        server.signal(signal.SIGHUP)
        accepting = f"accepting (generation {generation})"
        assert wait_for(lambda: any(accepting in line for line in lines()), 20), lines()[-5:]
        found = [line for line in lines() if accepting in line or
                 f"starting generation {generation}" in line]
        assert len(found) == 2, found  # the master's and the new worker's
        return found

    for line in reloaded_to("mozlog", 1):
        entry = json.loads(line)
        assert set(entry) == MOZLOG_KEYS and entry["Severity"] in (5, 6), line
    for line in reloaded_to("text", 2):
        assert not line.startswith("{") and (" notice: " in line or " info: " in line), line
    server.stop()
