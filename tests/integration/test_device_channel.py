"""The /presence WebSocket: framing, keep-alives and the errno of bad messages."""
import asyncio
import json

import pytest
import websockets

from conftest import http_get, replies_then_close


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def exchange(url, message):
    async with websockets.connect(url) as ws:
        await ws.send(message)
        return json.loads(await ws.recv())


def test_keepalive_is_answered(server):
    assert run(exchange(server.ws_url, "{}")) == {}


@pytest.mark.parametrize("message,errno", [
    ("nope", 10),
    ("[1]", 10),
    ('{"status":"online"}', 11),
    ('{"email":"a@example.com","status":"busy"}', 12),
    ('{"email":"a@example.com","status":"online"}', 30),
])
def test_bad_messages_get_their_errno(server, message, errno):
    reply = run(exchange(server.ws_url, message))
    assert reply["result"] == "KO"
    assert reply["errno"] == errno
    assert isinstance(reply["error"], str) and reply["error"]


def test_binary_frames_are_refused(server):
    reply = run(exchange(server.ws_url, b"{}"))
    assert reply["errno"] == 10


def test_a_message_too_large_closes_1009(make_server):
    server = make_server(max_message_size=256).start()
    (reply,), code = run(replies_then_close(server.ws_url, '{"pad":"' + "x" * 300 + '"}'))
    assert reply["errno"] == 14
    assert code == 1009


def test_fragmented_messages_are_reassembled(server):
    async def scenario():
        async with websockets.connect(server.ws_url) as ws:
            await ws.send(iter(['{"email":"a@example.com",', '"status":"online"}']))
            return json.loads(await ws.recv())
    assert run(scenario())["errno"] == 30


def test_abuse_limit_closes_1008(make_server):
    server = make_server(abuse_limit=3).start()
    replies, code = run(replies_then_close(server.ws_url, *["nope"] * 4))
    assert all(r["errno"] == 10 for r in replies)
    assert code == 1008


def test_other_websocket_paths_are_refused(server):
    async def scenario():
        with pytest.raises(websockets.InvalidStatusCode) as refused:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/elsewhere"):
                pass
        return refused.value.status_code
    assert run(scenario()) == 404
    status, _, _ = http_get(server.url + "/presence")
    assert status == 400


def raw_handshake(port):
    import base64
    import os
    import socket
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /presence HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def test_a_silent_peer_is_pinged_then_dropped(make_server):
    import time
    server = make_server(ping_interval="1s", ping_timeout="1s").start()
    silent = raw_handshake(server.port)  # never answers a ping
    started = time.monotonic()

    async def polite():
        async with websockets.connect(server.ws_url, ping_interval=None) as ws:
            await asyncio.sleep(4)  # the client library answers pings by itself
            await ws.send("{}")
            return json.loads(await ws.recv())
    assert run(polite()) == {}
    frames = b""
    silent.settimeout(5)
    while True:
        chunk = silent.recv(4096)
        if not chunk:
            break
        frames += chunk
    waited = time.monotonic() - started
    assert frames[:1] == b"\x89", "the server sent no ping before dropping the peer"
    assert waited < 6, f"the silent peer was kept {waited:.1f}s"
