"""Dockerflow health as SPEC.md §6 says: /__heartbeat__ answers 503 naming the failing check
while the store refuses writes (a full map, a full disk), /__lbheartbeat__ stays plain
liveness except while the node drains for QUIT."""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import websockets

from conftest import TOOLS, http_get, wait_for


def heartbeat(server):
    status, _, body = http_get(server.url + "/__heartbeat__")
    return status, json.loads(body)


def test_heartbeat_names_a_full_map(make_server):
    server = make_server(map_size="1M", max_map_size="1M").start()
    assert heartbeat(server) == (200, {"status": "ok", "details": {},
                                       "checks": {"store": "ok", "store_writes": "ok"}})
    # A process that pins the store with a reader and fills the rest of the map.
    filler = subprocess.Popen([os.path.join(TOOLS, "store_tool"), server.settings["data_dir"],
                               "fill"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert filler.stdout.readline().strip() == "full"
        for _ in range(6):  # whichever worker answers
            status, body = heartbeat(server)
            assert status == 503, body
            assert body["status"] == "error"
            assert body["checks"] == {"store": "ok", "store_writes": "error"}
            assert "MDB_MAP_FULL" in body["details"]["store_writes"], body
        status, _, _ = http_get(server.url + "/__lbheartbeat__")
        assert status == 200, "the balancer's check does not depend on the store"
    finally:
        filler.stdin.close()
        filler.wait(timeout=10)
    # Room again: healthy once no worker has had a write refused for a few seconds.
    assert wait_for(lambda: all(heartbeat(server)[0] == 200 for _ in range(4)), timeout=20)


@pytest.fixture
def small_disk():
    """A 16 MiB tmpfs of our own, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tempfile.mkdtemp(prefix="presenced-disk-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", where], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False)
        shutil.rmtree(where, ignore_errors=True)


def fill_disk(path):
    """Writes zeros to path until the file system says it is full."""
    block = b"\0" * 65536
    with open(path, "wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError:
            pass


def test_heartbeat_names_a_full_disk(make_server, small_disk):
    server = make_server(data_dir=os.path.join(small_disk, "data"), map_size="1M",
                         max_map_size="1G").start()
    assert heartbeat(server)[0] == 200
    filler = os.path.join(small_disk, "filler")
    fill_disk(filler)
    try:
        for _ in range(6):
            status, body = heartbeat(server)
            assert status == 503, body
            assert body["checks"]["store_writes"] == "error", body
            assert "disk is full" in body["details"]["store_writes"] or \
                "No space left" in body["details"]["store_writes"], body
    finally:
        os.unlink(filler)
    assert wait_for(lambda: all(heartbeat(server)[0] == 200 for _ in range(4)), timeout=20)


def test_heartbeat_names_an_unreadable_store(server):
    from test_process_model import store_tool
    store_tool(server, "schema", "99")  # what a foreign writer or a bad upgrade would leave
    status, body = heartbeat(server)
    assert status == 503
    assert body["checks"]["store"] == "error" and "schema" in body["details"]["store"], body
    store_tool(server, "schema", "1")
    assert heartbeat(server)[0] == 200


def lb_poll(server, seconds):
    """Polls /__lbheartbeat__ for `seconds` or until the server exits: [(status, body)], with
    "refused" for a connection the port did not take."""
    answers = []
    deadline = time.monotonic() + seconds
    while server.proc.poll() is None and time.monotonic() < deadline:
        try:
            status, _, body = http_get(server.url + "/__lbheartbeat__", timeout=5)
            answers.append((status, body))
        except OSError:
            answers.append(("refused", ""))
        time.sleep(0.05)
    return answers


def test_lbheartbeat_is_503_while_the_node_drains_for_quit(make_server):
    server = make_server(workers=2, drain_grace="2s").start()
    assert lb_poll(server, 0.3) and set(lb_poll(server, 0.3)) == {(200, "{}")}

    async def scenario():
        device = await websockets.connect(server.ws_url, ping_interval=None)
        server.signal(signal.SIGQUIT)
        # Both workers heard it: every answer is now 503.
        assert wait_for(lambda: all(a == (503, '{"status":"draining"}')
                                    for a in lb_poll(server, 0.3)), timeout=10)
        # The grace serves as usual: the device is answered, a new one connects.
        await device.send("{}")
        assert json.loads(await asyncio.wait_for(device.recv(), 5)) == {}
        late = await websockets.connect(server.ws_url, ping_interval=None)
        await late.send("{}")
        assert json.loads(await asyncio.wait_for(late.recv(), 5)) == {}
        answers = await asyncio.get_running_loop().run_in_executor(None, lb_poll, server, 30)
        goodbyes = []
        for ws in (device, late):
            try:
                goodbyes.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["errno"])
            except websockets.ConnectionClosed:
                pass
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed:
                goodbyes.append(ws.close_code)
        return answers, goodbyes
    answers, goodbyes = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert server.proc.wait(timeout=10) == 0
    answered = [a for a in answers if a[0] != "refused"]
    assert set(answered) == {(503, '{"status":"draining"}')}, answers[:10]
    assert len(answered) >= 5, f"503 for only {len(answered)} polls: {answers[:10]}"
    assert goodbyes == [61, 1001, 61, 1001], goodbyes


def test_lbheartbeat_stays_200_through_a_reload(make_server):
    server = make_server(workers=2, drain_grace="2s").start()
    generation = server.status()["generation"]
    server.signal(signal.SIGHUP)
    answers = lb_poll(server, 1.0)
    assert wait_for(lambda: server.status()["generation"] != generation, timeout=10)
    answers += lb_poll(server, 1.0)
    assert set(answers) == {(200, "{}")}, answers
