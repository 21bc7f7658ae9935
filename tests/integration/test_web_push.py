"""Web Push wake-ups (SPEC.md §7) against a stand-in push service (tests/node/push_service.mjs,
HTTPS with the test CA) that decrypts each message with Mozilla's http_ece and verifies its VAPID
token with jose: the plaintext is the notification, for an AppService's notify and an operator's
alike; 404 and 410 remove the subscription; 429 with Retry-After (seconds or an HTTP-date) is
retried after it, 5xx after a growing back-off; 413 is sent again without payload; a connected device gets no push; endpoints are https only and private addresses
refused unless validate_private_addresses; push_subscribe's refusals."""
import asyncio
import email.utils
import json
import time
import urllib.parse

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import http_get, wait_for
from push_service import push, write_vapid_key  # noqa: F401  (fixture)
from test_appservice import DEVICE_AUDIENCE, AppService, device, grant, run
from test_device_presence import admin_json
from web_fixtures import activated_app, signed_in

SUBJECT = "mailto:ops@presence.test"


@pytest.fixture
def vapid_file(tmp_path):
    return write_vapid_key(tmp_path / "vapid.pem")


@pytest.fixture
def push_site(site, ident, domain, push, vapid_file):
    """A presenced with Web Push on, push.test reached through connect_to, and an active app."""
    def factory(private=True, vapid=True, **settings):
        server = site(private=True, workers=2, **settings)
        lines = [server.settings["extra"], f"audience {DEVICE_AUDIENCE}", push.connect_to()]
        if vapid:
            lines += [f"vapid_key {vapid_file}", f"vapid_subject {SUBJECT}"]
        server.write_config(extra="\n".join(lines))
        server.stop()
        server.start()
        dev = signed_in(server, ident, "dev@example.com")
        server.appid, server.api_key = activated_app(dev, domain)
        if not private:
            # The app's domain is validated: from now on private addresses are refused.
            server.stop()
            server.write_config(extra=server.settings["extra"].replace(
                "validate_private_addresses yes", "validate_private_addresses no"))
            server.start()
        return server
    return factory


def metric(server, name):
    text = server.admin("/metrics")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"no metric {name}")


def user(server, email):
    status, body = admin_json(server, "/users/" + urllib.parse.quote(email))
    assert status == 200, body
    return body


async def command(ws, message):
    await ws.send(json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def subscribed_then_gone(server, ident, email, subscription, device_name="phone"):
    """A device subscribes to Web Push, then closes: it is no longer connected."""
    ws = await device(server, ident, email, device_name=device_name)
    reply = await command(ws, {"action": "push_subscribe", "subscription": subscription})
    assert reply == {"action": "push_subscribe", "result": "OK"}, reply
    await ws.close()
    assert wait_for(lambda: device_name not in [d["device"] for d in user(server, email)["devices"]],
                    10)


def pushes(push, sub_id, count, timeout=20):
    got = wait_for(lambda: len(push.messages(sub_id)) >= count and push.messages(sub_id), timeout)
    assert got and len(got) >= count, (got, open(push.log_path).read())
    return got


def away_subscriber(server, push, ident, name, *answers):
    """name@example.com, who granted the app, with a phone that subscribed to Web Push and went
    away (the push service answers its pushes with answers, then 201): (PUID, subscription id)."""
    email = f"{name}@example.com"
    _, puid = grant(server, ident, email, server.appid, name)
    sub_id, subscription = push.subscribe()
    if answers:
        push.answer(sub_id, *answers)
    run(subscribed_then_gone(server, ident, email, subscription))
    return puid, sub_id


def notify(server, puid, message, **fields):
    """The app notifies puid (source "s"), on a connection of its own."""
    async def scenario():
        app = await AppService.connect(server, server.appid, server.api_key)
        reply = await app.request({"action": "notify", "target": puid, "source": "s",
                                   "message": message, **fields})
        assert reply["result"] == "OK", reply
        await app.ws.close()
    run(scenario())


def test_the_push_is_the_notification_encrypted_and_signed(push_site, push, ident):
    server = push_site()
    _, bob = grant(server, ident, "bob@example.com", server.appid, "bob")
    sub_id, subscription = push.subscribe()
    status, headers, body = http_get(server.url + "/vapid")
    assert status == 200, body
    assert headers["Access-Control-Allow-Origin"] == "*"  # an app's page reads it
    public_key = json.loads(body)["publicKey"]
    assert len(public_key) == 87

    async def scenario():
        await subscribed_then_gone(server, ident, "bob@example.com", subscription)
        assert user(server, "bob@example.com")["push_subscriptions"] == ["phone"]
        app = await AppService.connect(server, server.appid, server.api_key)
        reply = await app.request({"action": "notify", "target": bob, "source": "Alice",
                                   "message": "Alice is ringing", "url": "https://chat.test/r/1",
                                   "ttl": 60, "id": "n1"})
        assert reply == {"action": "notify", "result": "OK", "id": "n1"}
        [message] = pushes(push, sub_id, 1)
        assert message["vapid"]["ok"], message["vapid"]
        assert (message["vapid"]["k"], message["vapid"]["sub"], message["vapid"]["aud"]) == (
            public_key, SUBJECT, "https://push.test")
        assert message["vapid"]["exp"] <= time.time() + 24 * 3600
        assert message["content_encoding"] == "aes128gcm" and message["urgency"] == "normal"
        assert 50 <= int(message["ttl"]) <= 60, message["ttl"]
        topic = message["topic"]
        assert 0 < len(topic) <= 32 and topic.replace("-", "").replace("_", "").isalnum()
        note = json.loads(message["plaintext"])
        assert (note["source"], note["message"], note["action"], note["app"]) == (
            "Alice", "Alice is ringing", "https://chat.test/r/1", "Chat")
        # The notification stays queued: the device, back, gets it with the same id.
        phone = await device(server, ident, "bob@example.com")
        delivered = json.loads(await asyncio.wait_for(phone.recv(), 10))["notifications"]
        assert [n["id"] for n in delivered] == [note["id"]]
        await phone.close()
        await app.ws.close()
        # The operator's notification, queued by the master, is pushed by a worker.
        assert wait_for(lambda: not user(server, "bob@example.com")["devices"], 10)
        status, body = admin_json(server, "/users/bob%40example.com/notifications",
                                  {"source": "operator", "message": "maintenance at noon"})
        assert status == 201, body
        second = pushes(push, sub_id, 2)[1]
        assert second["vapid"]["ok"] and second["topic"] == topic  # one topic per user
        assert json.loads(second["plaintext"])["message"] == "maintenance at noon"
        assert json.loads(second["plaintext"])["id"] == body["id"]
    run(scenario())
    assert wait_for(lambda: metric(server, "presenced_pushes_sent_total") == 2)
    assert metric(server, "presenced_pushes_failed_total") == 0


def test_410_removes_the_subscription(push_site, push, ident):
    server = push_site()
    carol, sub_id = away_subscriber(server, push, ident, "carol", {"status": 410})
    notify(server, carol, "first")
    [message] = pushes(push, sub_id, 1)
    assert message["answered"] == 410 and json.loads(message["plaintext"])["message"] == "first"
    assert wait_for(lambda: user(server, "carol@example.com")["push_subscriptions"] == [], 10)
    assert metric(server, "presenced_push_subscriptions_removed_total") == 1
    # Gone: the next notification queues no push at all.
    notify(server, carol, "second")
    assert metric(server, "presenced_pushes_queued_total") == 1
    assert len(push.messages(sub_id)) == 1


def test_429_is_retried_after_retry_after(push_site, push, ident):
    server = push_site()
    dan, sub_id = away_subscriber(server, push, ident, "dan", {"status": 429, "retry_after": "2"})
    notify(server, dan, "later", ttl=120)
    first, second = pushes(push, sub_id, 2)[:2]
    assert (first["answered"], second["answered"]) == (429, 201)
    # Not before the push service said: 2 s (its own clock for both).
    assert second["at_ms"] - first["at_ms"] >= 1990, (first["at_ms"], second["at_ms"])
    assert json.loads(second["plaintext"]) == json.loads(first["plaintext"])
    assert int(second["ttl"]) < 120
    assert wait_for(lambda: metric(server, "presenced_pushes_sent_total") == 1)
    assert metric(server, "presenced_push_retries_total") == 1


def test_a_retry_the_ttl_would_not_outlive_is_given_up(push_site, push, ident):
    """A 503 whose Retry-After (120 s) falls past the notification's TTL (20 s): given up at
    once (no retry scheduled), counted as failed, the subscription kept."""
    server = push_site()
    eve, sub_id = away_subscriber(server, push, ident, "eve",
                                  {"status": 503, "retry_after": "120"})
    notify(server, eve, "soon stale", ttl=20)
    assert pushes(push, sub_id, 1)[0]["answered"] == 503
    assert wait_for(lambda: metric(server, "presenced_pushes_failed_total") == 1, 20)
    assert metric(server, "presenced_push_retries_total") == 0
    assert user(server, "eve@example.com")["push_subscriptions"] == ["phone"]
    assert len(push.messages(sub_id)) == 1


def test_another_4xx_is_not_retried(push_site, push, ident):
    """A 400 (a push the service will never take): failed, not retried, the subscription kept
    (only 404 and 410 say it is gone)."""
    server = push_site()
    fin, sub_id = away_subscriber(server, push, ident, "fin", {"status": 400})
    notify(server, fin, "refused", ttl=60)
    assert pushes(push, sub_id, 1)[0]["answered"] == 400
    assert wait_for(lambda: metric(server, "presenced_pushes_failed_total") == 1, 20)
    assert metric(server, "presenced_push_retries_total") == 0
    assert user(server, "fin@example.com")["push_subscriptions"] == ["phone"]
    time.sleep(1.5)  # longer than the first back-off: still the one attempt
    assert len(push.messages(sub_id)) == 1


def test_404_removes_the_subscription(push_site, push, ident):
    server = push_site()
    ivy, sub_id = away_subscriber(server, push, ident, "ivy", {"status": 404})
    notify(server, ivy, "first")
    assert pushes(push, sub_id, 1)[0]["answered"] == 404
    assert wait_for(lambda: user(server, "ivy@example.com")["push_subscriptions"] == [], 10)
    assert metric(server, "presenced_push_subscriptions_removed_total") == 1
    assert len(push.messages(sub_id)) == 1  # not retried


def test_5xx_is_retried_after_a_growing_back_off(push_site, push, ident):
    """Without Retry-After, a 503 then a 500 are tried again after 1 s, then 2 s."""
    server = push_site()
    jon, sub_id = away_subscriber(server, push, ident, "jon", {"status": 503}, {"status": 500})
    notify(server, jon, "again", ttl=120)
    first, second, third = pushes(push, sub_id, 3)[:3]
    assert (first["answered"], second["answered"], third["answered"]) == (503, 500, 201)
    assert second["at_ms"] - first["at_ms"] >= 990, (first["at_ms"], second["at_ms"])
    assert third["at_ms"] - second["at_ms"] >= 1990, (second["at_ms"], third["at_ms"])
    assert json.loads(third["plaintext"])["message"] == "again"
    assert wait_for(lambda: metric(server, "presenced_pushes_sent_total") == 1)
    assert metric(server, "presenced_push_retries_total") == 2


def test_retry_after_as_an_http_date(push_site, push, ident):
    """Retry-After may be an HTTP-date (RFC 9110 §10.2.3): 4 s ahead is waited for, where the
    back-off alone would have tried again after 1 s."""
    server = push_site()
    kim, sub_id = away_subscriber(server, push, ident, "kim")
    push.answer(sub_id, {"status": 503,
                         "retry_after": email.utils.formatdate(time.time() + 4, usegmt=True)})
    notify(server, kim, "dated", ttl=120)
    first, second = pushes(push, sub_id, 2)[:2]
    assert (first["answered"], second["answered"]) == (503, 201)
    assert second["at_ms"] - first["at_ms"] >= 2900, (first["at_ms"], second["at_ms"])


def test_413_is_sent_again_without_payload(push_site, push, ident):
    server = push_site()
    erin, sub_id = away_subscriber(server, push, ident, "erin", {"status": 413, "if": "payload"})
    notify(server, erin, "big")
    first, second = pushes(push, sub_id, 2)[:2]
    assert first["answered"] == 413 and json.loads(first["plaintext"])["message"] == "big"
    assert second["answered"] == 201 and second["length"] == 0
    assert second["plaintext"] is None and second["content_encoding"] is None
    assert second["vapid"]["ok"]


def test_a_connected_device_gets_no_push(push_site, push, ident):
    server = push_site()
    _, fay = grant(server, ident, "fay@example.com", server.appid, "fay")
    _, gil = grant(server, ident, "gil@example.com", server.appid, "gil")
    fay_sub, fay_subscription = push.subscribe()
    gil_sub, gil_subscription = push.subscribe()

    async def scenario():
        phone = await device(server, ident, "fay@example.com")
        assert (await command(phone, {"action": "push_subscribe",
                                      "subscription": fay_subscription}))["result"] == "OK"
        await subscribed_then_gone(server, ident, "gil@example.com", gil_subscription)
        app = await AppService.connect(server, server.appid, server.api_key)
        assert (await app.request({"action": "notify", "target": fay, "source": "s",
                                   "message": "live"}))["result"] == "OK"
        live = json.loads(await asyncio.wait_for(phone.recv(), 10))["notifications"]
        assert live[0]["message"] == "live"
        # Gil's push, queued after Fay's notification, arrives; Fay's phone got none.
        assert (await app.request({"action": "notify", "target": gil, "source": "s",
                                   "message": "wake up"}))["result"] == "OK"
        assert json.loads(pushes(push, gil_sub, 1)[0]["plaintext"])["message"] == "wake up"
        assert push.messages(fay_sub) == []
        assert metric(server, "presenced_pushes_queued_total") == 1
        # Unsubscribed: nothing queued for the phone once it is gone.
        assert await command(phone, {"action": "push_unsubscribe"}) == {
            "action": "push_unsubscribe", "result": "OK"}
        await phone.close()
        assert wait_for(lambda: not user(server, "fay@example.com")["devices"], 10)
        assert (await app.request({"action": "notify", "target": fay, "source": "s",
                                   "message": "asleep"}))["result"] == "OK"
        assert metric(server, "presenced_pushes_queued_total") == 1
        await app.ws.close()
    run(scenario())
    assert push.messages(fay_sub) == []


def test_private_addresses_are_refused_unless_allowed(push_site, push, ident):
    server = push_site(private=False)
    hal, sub_id = away_subscriber(server, push, ident, "hal")
    notify(server, hal, "to 127.0.0.1")
    assert wait_for(lambda: metric(server, "presenced_pushes_failed_total") == 1, 20)
    assert push.messages(sub_id) == []
    assert "private addresses" in server.log_text()


def test_push_subscribe_refusals(push_site, push, ident):
    server = push_site()
    _, subscription = push.subscribe()

    async def scenario():
        ws = await asyncio.wait_for(__import__("websockets").connect(server.ws_url), 10)
        reply = await command(ws, {"action": "push_subscribe", "subscription": subscription})
        assert (reply["errno"], reply["action"]) == (30, "push_subscribe")
        await ws.close()
        phone = await device(server, ident, "ivy@example.com")
        bad = [
            ({"action": "push_subscribe"}, "subscription"),
            ({"action": "push_subscribe", "subscription": {**subscription, "endpoint":
                                                           "http://push.test/push/x"}},
             "endpoint"),
            ({"action": "push_subscribe", "subscription": {**subscription, "endpoint":
                                                           "https://user@push.test/push/x"}},
             "endpoint"),
            ({"action": "push_subscribe", "subscription": {
                **subscription, "keys": {**subscription["keys"], "p256dh": "AAAA"}}}, "p256dh"),
            ({"action": "push_subscribe", "subscription": {
                **subscription, "keys": {**subscription["keys"], "auth": "AAAA"}}}, "auth"),
        ]
        for message, field in bad:
            reply = await command(phone, message)
            assert reply["errno"] == 11 and reply["action"] == "push_subscribe", reply
            assert field in reply["error"], reply
        reply = await command(phone, {"action": "dance"})
        assert reply["errno"] == 13 and "action" not in reply, reply
        # A status update still works on the same connection.
        await phone.send(json.dumps({"email": "ivy@example.com", "status": "unavailable"}))
        assert json.loads(await phone.recv()) == {"result": "OK"}
        await phone.close()
    run(scenario())


def test_without_vapid_key_push_is_off(push_site, push, ident):
    server = push_site(vapid=False)
    _, subscription = push.subscribe()
    status, headers, body = http_get(server.url + "/vapid")
    assert status == 404 and json.loads(body)["error"]
    assert headers["Access-Control-Allow-Origin"] == "*"

    async def scenario():
        phone = await device(server, ident, "jo@example.com")
        reply = await command(phone, {"action": "push_subscribe", "subscription": subscription})
        assert (reply["errno"], reply["action"]) == (13, "push_subscribe")
        assert "vapid_key" in reply["error"]
        await phone.close()
    run(scenario())


def test_the_push_has_the_urgency_the_notification_asks(push_site, push, ident):
    """Urgency (RFC 8030 §5.3): "normal" unless the notification asks for another — a ring is
    "high", which a push service delivers to a phone saving its battery too."""
    server = push_site()
    lou, sub_id = away_subscriber(server, push, ident, "lou")
    notify(server, lou, "Alice is ringing", urgency="high")
    [message] = pushes(push, sub_id, 1)
    assert message["urgency"] == "high", message
    assert json.loads(message["plaintext"])["urgency"] == "high"
    status, body = admin_json(server, "/users/lou%40example.com/notifications",
                              {"source": "ops", "message": "digest", "urgency": "very-low"})
    assert status == 201, body
    assert pushes(push, sub_id, 2)[1]["urgency"] == "very-low"
    status, body = admin_json(server, "/users/lou%40example.com/notifications",
                              {"source": "ops", "message": "x", "urgency": "urgent"})
    assert status == 400 and "urgency" in body["error"], body

    async def scenario():
        app = await AppService.connect(server, server.appid, server.api_key)
        reply = await app.request({"action": "notify", "target": lou, "source": "s",
                                   "message": "x", "urgency": "urgent", "id": "u1"})
        assert (reply["errno"], reply["id"]) == (11, "u1") and "urgency" in reply["error"], reply
        await app.ws.close()
    run(scenario())
    assert len(push.messages(sub_id)) == 2
