"""The README's first steps, run as written: a server with etc/presenced.conf's settings (the
development issuer on), `presenced -c FILE token EMAIL`, and the README's device client signing
in with that token and printing a notification the operator sends."""
import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from conftest import BINARY, ROOT, Server, log_lines


def readme_block():
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index("<!-- first-device")
    return re.search(r"```sh\n(.*?)```", text[start:], re.S).group(1)


def shipped_settings(server):
    """etc/presenced.conf as make run uses it, on this test's ports and directory."""
    lines = []
    for line in open(os.path.join(ROOT, "etc", "presenced.conf")):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        key = words[0]
        value = {"listen": server.settings["listen"], "admin_listen": server.settings["admin_listen"],
                 "data_dir": server.settings["data_dir"], "pid_file": server.settings["pid_file"],
                 "public_url": server.url, "audience": server.url, "workers": "2"}.get(key)
        lines.append(f"{key} {value}" if value else line.strip())
    return lines


@pytest.fixture
def shipped(workdir):
    server = Server(os.path.join(workdir))
    with open(server.config_path, "w") as f:
        f.write("\n".join(shipped_settings(server)) + "\n")
    server.write_config = lambda **changes: None  # the file is the shipped one
    server.start()
    yield server
    server.stop()
    server.assert_clean_log()


def test_make_run_then_a_token_then_a_device(shipped):
    assert "dev_issuer on" in open(shipped.config_path).read()
    assert log_lines(shipped, r"dev_issuer is on: anyone who can run")  # a warning at every start
    script = (readme_block()
              .replace("./build/presenced", BINARY)
              .replace("etc/presenced.conf", shipped.config_path)
              .replace("ws://localhost:8282", f"ws://127.0.0.1:{shipped.port}"))
    # python3 is the one running the tests (the one with python3-websockets).
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + ":" + os.environ["PATH"])
    device = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=shipped.workdir, env=env)
    try:
        assert json.loads(device.stdout.readline()) == {"result": "OK"}
        assert json.loads(shipped.admin("/users/alice@example.com"))["status"] == "online"
        request = urllib.request.Request(
            f"http://127.0.0.1:{shipped.admin_port}/users/alice@example.com/notifications",
            data=json.dumps({"source": "ops@example.com", "message": "Hello, Alice"}).encode(),
            method="POST")
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.status == 201
        delivered = json.loads(device.stdout.readline())
        assert delivered["notifications"][0]["message"] == "Hello, Alice"
    finally:
        device.kill()
        device.wait()


def test_the_token_command_refuses_without_the_development_issuer(make_server):
    server = make_server()
    result = subprocess.run([BINARY, "-c", server.config_path, "token", "alice@example.com"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "dev_issuer is off" in result.stderr
    assert result.stdout == ""


def test_token_ttl_and_arguments(make_server):
    server = make_server(dev_issuer="on").start()
    short = subprocess.run([BINARY, "-c", server.config_path, "token", "bob@example.com", "2s"],
                           capture_output=True, text=True, timeout=30)
    assert short.returncode == 0, short.stderr
    payload = json.loads(__import__("base64").urlsafe_b64decode(
        short.stdout.split(".")[1] + "=="))
    assert payload["exp"] - payload["iat"] == 2 and payload["aud"] == "presenced-dev"
    assert payload["iss"] == "http://localhost:8282/dev"  # public_url + /dev
    for args, message in ((["not-an-email"], "not an e-mail"), (["a@example.com", "31d"], "TTL")):
        result = subprocess.run([BINARY, "-c", server.config_path, "token", *args],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_a_development_token_of_another_server_is_refused(make_server):
    import asyncio
    import websockets
    one = make_server(dev_issuer="on").start()
    other = make_server(dev_issuer="on", public_url=one.url).start()  # same iss, its own key
    token = subprocess.run([BINARY, "-c", other.config_path, "token", "eve@example.com"],
                           capture_output=True, text=True, timeout=30, check=True).stdout.strip()

    async def sign_in():
        async with websockets.connect(one.ws_url) as ws:
            await ws.send(json.dumps({"email": "eve@example.com", "token": token,
                                      "status": "online"}))
            return json.loads(await ws.recv())
    reply = asyncio.run(asyncio.wait_for(sign_in(), 30))
    assert reply["errno"] == 34, reply
