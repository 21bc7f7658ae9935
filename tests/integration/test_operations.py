"""Running it as an operator does: daemon mode, pid file, log reopening, TLS."""
import asyncio
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request

import websockets

from conftest import BINARY


def wait_for(predicate, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_daemon_mode_pid_file_and_log_reopen(make_server):
    server = make_server(workers=1)
    log_file = os.path.join(server.workdir, "presenced.log")
    server.write_config(log_file=log_file)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    result = subprocess.run([BINARY, "-c", server.config_path], env=env, timeout=30,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    pid_file = server.settings["pid_file"]
    assert wait_for(lambda: os.path.exists(pid_file) and open(pid_file).read().strip(), 10)
    pid = int(open(pid_file).read())
    assert wait_for(lambda: "accepting" in open(log_file).read(), 10)
    # logrotate moves the file, then asks for a reopen.
    os.rename(log_file, log_file + ".1")
    os.kill(pid, signal.SIGUSR1)
    assert wait_for(lambda: os.path.exists(log_file), 10), "no new log file after SIGUSR1"
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not os.path.exists(pid_file), 10), "pid file left behind"
    assert "stopped" in open(log_file).read()
    second = subprocess.run([BINARY, "-c", server.config_path], env=env, timeout=30,
                            capture_output=True, text=True)
    assert second.returncode == 0
    assert wait_for(lambda: os.path.exists(pid_file) and open(pid_file).read().strip(), 10)
    again = subprocess.run([BINARY, "-f", "-c", server.config_path], env=env, timeout=30,
                           capture_output=True, text=True)
    assert again.returncode == 1
    assert "already running" in again.stderr
    os.kill(int(open(pid_file).read()), signal.SIGTERM)
    assert wait_for(lambda: not os.path.exists(pid_file), 10)
    for path in (log_file, log_file + ".1"):
        text = open(path).read()
        assert "AddressSanitizer" not in text and "runtime error" not in text, text


def test_without_log_file_daemon_mode_asks_for_one(make_server):
    server = make_server(workers=1)
    result = subprocess.run([BINARY, "-c", server.config_path], timeout=30, capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert "log_file is not set" in result.stderr


def make_certificate(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def test_tls_serves_https_and_wss(make_server, workdir):
    cert, key = make_certificate(workdir)
    server = make_server(workers=2, tls_cert=cert, tls_key=key).start()
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    with urllib.request.urlopen(f"https://127.0.0.1:{server.port}/__heartbeat__",
                                context=context, timeout=5) as r:
        assert r.status == 200

    async def scenario():
        async with websockets.connect(f"wss://127.0.0.1:{server.port}/presence", ssl=context) as ws:
            await ws.send("{}")
            return json.loads(await ws.recv())
    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == {}


def test_a_bad_certificate_is_reported(make_server, workdir):
    bad = os.path.join(workdir, "bad.pem")
    with open(bad, "w") as f:
        f.write("not a certificate\n")
    server = make_server(workers=1, tls_cert=bad, tls_key=bad)
    server.start(wait=False)
    assert wait_for(lambda: "cannot create the server (check tls_cert and tls_key)"
                    in server.log_text(), 10), server.log_text()
    server.stop()


def test_admin_endpoint_can_be_turned_off(make_server):
    server = make_server(workers=1, admin_listen="off").start(wait=False)
    # Up and serving (its worker accepts), not merely not yet listening.
    assert wait_for(lambda: "accepting" in server.log_text() or server.proc.poll() is not None,
                    15), server.log_text()
    assert server.proc.poll() is None, server.log_text()
    import socket
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server.admin_port)) != 0


def test_the_launcher_reports_a_daemon_that_cannot_start(make_server):
    import socket
    server = make_server(workers=1)
    log_file = os.path.join(server.workdir, "presenced.log")
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    server.write_config(log_file=log_file, listen=f"127.0.0.1:{blocker.getsockname()[1]}")
    result = subprocess.run([BINARY, "-c", server.config_path], timeout=30, capture_output=True,
                            text=True)
    blocker.close()
    assert result.returncode == 1
    assert f"see {log_file}" in result.stderr
    assert "cannot listen" in open(log_file).read()


def test_a_daemon_started_with_a_relative_path_reloads(make_server):
    server = make_server(workers=1)
    log_file = os.path.join(server.workdir, "presenced.log")
    server.write_config(log_file=log_file)
    subprocess.run([BINARY, "-c", os.path.basename(server.config_path)], cwd=server.workdir,
                   timeout=30, check=True)
    pid = int(open(server.settings["pid_file"]).read())
    server.write_config(log_level="debug")
    os.kill(pid, signal.SIGHUP)
    assert wait_for(lambda: "configuration reloaded" in open(log_file).read(), 10), \
        open(log_file).read()
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not os.path.exists(server.settings["pid_file"]), 10)
