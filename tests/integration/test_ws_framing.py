"""What both WebSocket channels (/presence and /myapps/<appid>) do with frames no client library
sends (SPEC.md, before §1): a header announcing more than max_message_size is answered from the
header alone, text that is not UTF-8 closes 1007, an unmasked frame closes 1002, and no string
carries U+0000. Bare-socket clients (raw_ws.py) write the frames."""
import json
import struct
import time

import pytest

from raw_ws import OP_CONTINUATION, OP_TEXT, RawWebSocket, frame, frame_header

APPSERVICE_PATH = "/myapps/00000000-0000-4000-8000-000000000000"
PATHS = ["/presence", APPSERVICE_PATH]


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory):
    """One server for the module; long keep-alives, so that nothing but the rule under test
    closes a connection."""
    from conftest import Server
    server = Server(str(tmp_path_factory.mktemp("framing")), ping_interval="120s",
                    ping_timeout="60s", max_message_size=4096).start()
    yield server
    server.stop()
    server.assert_clean_log()


def answered(ws):
    """The texts and the close code the server sends before it ends the connection, and how
    long that took."""
    started = time.monotonic()
    texts, code = ws.frames_until_close()
    return texts, code, time.monotonic() - started


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("announced", [1 << 62, 4097, 70000])
def test_a_header_announcing_too_much_is_answered_at_once(quiet_server, path, announced):
    ws = RawWebSocket(quiet_server.port, path)
    ws.send(frame_header(OP_TEXT, announced))  # and never a byte of the payload
    texts, code, waited = answered(ws)
    assert [t["errno"] for t in texts] == [14]
    assert code == 1009
    assert waited < 5


@pytest.mark.parametrize("path", PATHS)
def test_a_continuation_header_past_the_limit_is_answered_before_its_payload(quiet_server,
                                                                              path):
    ws = RawWebSocket(quiet_server.port, path)
    ws.send(frame(OP_TEXT, '{"pad":"' + "x" * 3000, fin=False))
    ws.send(frame_header(OP_CONTINUATION, 2000))
    texts, code, _ = answered(ws)
    assert [t["errno"] for t in texts] == [14] and code == 1009


def test_a_message_at_the_limit_in_fragments_is_taken(quiet_server):
    ws = RawWebSocket(quiet_server.port)
    body = '{"pad":"' + "x" * (4096 - 10) + '"}'
    assert len(body) == 4096
    ws.send(frame(OP_TEXT, body[:3000], fin=False))
    ws.send(frame(OP_CONTINUATION, body[3000:]))
    assert ws.recv_json()["errno"] == 11  # read whole: a message without its fields
    ws.close()


INVALID_UTF8 = {
    "surrogate": b"\xed\xa0\x80",
    "overlong": b"\xc0\xaf",
    "overlong-3": b"\xe0\x80\xaf",
    "above-U+10FFFF": b"\xf4\x90\x80\x80",
    "truncated": b"\xe2\x82",
    "truncated-at-end": None,
    "lone-continuation": b"\x80",
    "0xff": b"\xff",
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(INVALID_UTF8))
def test_text_that_is_not_utf8_is_errno_10_and_closes_1007(quiet_server, path, name):
    bad = INVALID_UTF8[name]
    if bad is None:
        payload = b'{"email":"a@example.com","status":"online"}\xf0\x9f\x98'
    else:
        payload = b'{"email":"a' + bad + b'@example.com","status":"online"}'
    ws = RawWebSocket(quiet_server.port, path)
    ws.send(frame(OP_TEXT, payload))
    texts, code, _ = answered(ws)
    assert [t["errno"] for t in texts] == [10] and code == 1007


@pytest.mark.parametrize("path", PATHS)
def test_invalid_utf8_split_across_fragments_is_caught(quiet_server, path):
    ws = RawWebSocket(quiet_server.port, path)
    ws.send(frame(OP_TEXT, b'{"a":"\xed', fin=False))
    ws.send(frame(OP_CONTINUATION, b'\xa0\x80"}'))
    texts, code, _ = answered(ws)
    assert [t["errno"] for t in texts] == [10] and code == 1007


@pytest.mark.parametrize("path", PATHS)
def test_valid_utf8_is_taken(quiet_server, path):
    ws = RawWebSocket(quiet_server.port, path)
    # U+00E9, U+20AC, U+1F600 and U+10FFFF, raw and escaped: a message of unknown fields.
    ws.send(frame(OP_TEXT, '{"x":"\u00e9\u20ac\U0001F600\U0010FFFF","y":"\\ud83d\\ude00"}'
                  .encode()))
    assert ws.recv_json()["errno"] == 11  # parsed: a message without its fields
    ws.close()


@pytest.mark.parametrize("path", PATHS)
def test_an_unmasked_frame_closes_1002(quiet_server, path):
    ws = RawWebSocket(quiet_server.port, path)
    ws.send(frame(OP_TEXT, "{}", mask_key=None))
    texts, code, _ = answered(ws)
    assert texts == [] and code == 1002


def test_an_unmasked_frame_after_good_ones_closes_1002(quiet_server):
    ws = RawWebSocket(quiet_server.port)
    ws.send_text("{}")
    assert ws.recv_json() == {}
    ws.send(frame(OP_TEXT, "{}", mask_key=None))
    texts, code, _ = answered(ws)
    assert texts == [] and code == 1002


def test_frames_sent_before_the_handshake_answer_close_1002(quiet_server):
    ws = RawWebSocket(quiet_server.port, early=frame(OP_TEXT, "{}"))
    texts, code, _ = answered(ws)
    assert texts == [] and code == 1002


@pytest.mark.parametrize("message", [
    '{"email":"a@example.com\\u0000junk","status":"online"}',
    '{"email":"a@example.com","status":"online\\u0000"}',
    '{"email":"a@example.com","status":"online","device":"p\\u0000"}',
    '{"email":"a@example.com","status\\u0000junk":"online"}',
    '{"email":"a@example.com","status":"online","x":"\\u0000"}',
])
def test_no_string_of_a_device_carries_u0000(quiet_server, message):
    ws = RawWebSocket(quiet_server.port)
    ws.send_text(message)
    reply = ws.recv_json()
    assert reply["result"] == "KO" and reply["errno"] == 11, reply
    assert "U+0000" in reply["error"]
    ws.send_text("{}")
    assert ws.recv_json() == {}  # an error, not a close
    ws.close()


def test_no_string_of_an_appservice_carries_u0000(quiet_server):
    ws = RawWebSocket(quiet_server.port, APPSERVICE_PATH)
    # "auth\u0000x" was taken as "auth" (json-c's strings end at the first NUL).
    ws.send_text('{"action":"auth\\u0000x","token":"t"}')
    reply = ws.recv_json()
    assert reply["errno"] == 11 and "U+0000" in reply["error"], reply
    ws.close()


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00", "\\ud800\\u0041", "\\ud800x"])
def test_an_escaped_lone_surrogate_is_errno_10(quiet_server, escape):
    ws = RawWebSocket(quiet_server.port)
    ws.send_text('{"email":"a' + escape + '@example.com","status":"online"}')
    reply = ws.recv_json()
    assert reply["errno"] == 10, reply
    ws.send_text("{}")
    assert ws.recv_json() == {}
    ws.close()


def test_under_tls_the_same_rules_hold(make_server, workdir):
    """Under TLS the headers are read from what lws decrypts (worker/session/ws_tap.c)."""
    import ssl
    from test_operations import make_certificate
    cert, key = make_certificate(workdir)
    server = make_server(workers=1, tls_cert=cert, tls_key=key, ping_interval="120s").start()
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    ws = RawWebSocket(server.port, tls=context)
    ws.send_text("{}")
    assert ws.recv_json() == {}
    ws.send(frame_header(OP_TEXT, 1 << 62))
    texts, code, waited = answered(ws)
    assert [t["errno"] for t in texts] == [14] and code == 1009 and waited < 5
    ws = RawWebSocket(server.port, APPSERVICE_PATH, tls=context)
    ws.send(frame(OP_TEXT, "{}", mask_key=None))
    assert answered(ws)[:2] == ([], 1002)
