"""The /presence WebSocket: framing, keep-alives and the errno of bad messages."""
import asyncio
import json

import pytest
import websockets

from conftest import http_get


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

    async def scenario():
        async with websockets.connect(server.ws_url) as ws:
            await ws.send('{"pad":"' + "x" * 300 + '"}')
            reply = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return reply, ws.close_code
    reply, code = run(scenario())
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

    async def scenario():
        async with websockets.connect(server.ws_url) as ws:
            replies = []
            for _ in range(4):
                await ws.send("nope")
                replies.append(json.loads(await ws.recv()))
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return replies, ws.close_code
    replies, code = run(scenario())
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
