"""Identity (SPEC.md §3): assertions made by a real test identity provider, verified by presenced
locally (support documents fetched from a real local HTTPS server) or by a stand-in verifier."""
import asyncio
import json
import time
import urllib.parse

import pytest
import websockets

import idp
from conftest import replies_then_close

AUDIENCE = "https://presence.test"
DOMAINS = ["idp.test", "deleg.test", "loop-a.test", "loop-b.test", "nodoc.test", "broken.test",
           "disabled.test", "big.test", "fxa.test", "accounts.example"]


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def keys():
    return {
        "issuer": idp.RSKey(2048),     # idp.test's domain key
        "issuer_ds": idp.DSKey(2048),  # a DS256 identity provider
        "fxa": idp.RSKey(2048),        # a trusted issuer with a key file
        "user_ds": idp.DSKey(1024),    # what Firefox signs assertions with: DS128
        "user_rs": idp.RSKey(2048),
        "user_ds256": idp.DSKey(2048),
        "intermediate": idp.RSKey(2048),
    }


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return idp.TestCA(str(tmp_path_factory.mktemp("ca")))


@pytest.fixture(scope="module")
def domains(ca, keys):
    """The identity providers' domains: one HTTPS server answering for all of them."""
    well_known = "/.well-known/browserid"
    routes = {
        ("idp.test", well_known): (200, idp.support_document(keys["issuer"])),
        ("deleg.test", well_known): (200, json.dumps({"authority": "idp.test"})),
        ("loop-a.test", well_known): (200, json.dumps({"authority": "loop-b.test"})),
        ("loop-b.test", well_known): (200, json.dumps({"authority": "loop-a.test"})),
        ("broken.test", well_known): (200, "{not json"),
        ("disabled.test", well_known): (200, json.dumps({"disabled": True})),
        ("big.test", well_known): (200, json.dumps({"authority": "idp.test", "pad": "x" * 70000})),
    }
    server = idp.HTTPSServer(ca, DOMAINS, routes)
    yield server
    server.stop()


def identity_config(ca, domains, **extra):
    lines = [f"audience {AUDIENCE}", f"ca_file {ca.ca_file}", domains.connect_to()]
    settings = {"extra": "\n".join(lines + extra.pop("lines", [])), "log_level": "debug"}
    settings.update(extra)
    return settings


@pytest.fixture
def idserver(make_server, ca, domains):
    return make_server(**identity_config(ca, domains)).start()


def update(email, assertion=None, status="online", device=None):
    message = {"email": email, "status": status}
    if assertion is not None:
        message["assertion"] = assertion
    if device is not None:
        message["device"] = device
    return json.dumps(message)


async def exchange(url, *messages):
    async with websockets.connect(url, max_size=None) as ws:
        replies = []
        for message in messages:
            await ws.send(message)
            replies.append(json.loads(await ws.recv()))
        return replies


def verify(server, email, assertion):
    return run(exchange(server.ws_url, update(email, assertion)))[0]


def test_firefox_shape_rs256_certificate_over_ds128_assertion(idserver, keys):
    a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    assert verify(idserver, "alice@idp.test", a) == {"result": "OK"}


def test_rs256_certificate_over_rs256_assertion(idserver, keys):
    a = idp.backed("bob@idp.test", keys["issuer"], keys["user_rs"], AUDIENCE)
    assert verify(idserver, "bob@idp.test", a) == {"result": "OK"}


def test_ds256_issuer_and_assertion(make_server, ca, domains, keys, tmp_path):
    key_file = tmp_path / "ds256.json"
    key_file.write_text(json.dumps(keys["issuer_ds"].public_json()))
    server = make_server(**identity_config(
        ca, domains, lines=[f"trusted_issuer dsidp.test {key_file}"])).start()
    a = idp.backed("carol@idp.test", keys["issuer_ds"], keys["user_ds256"], AUDIENCE,
                   iss="dsidp.test")
    assert verify(server, "carol@idp.test", a) == {"result": "OK"}


def test_chain_of_two_certificates(idserver, keys):
    first = idp.certificate(keys["issuer"], "idp.test", keys["intermediate"])
    second = idp.certificate(keys["intermediate"], "idp.test", keys["user_ds"], "dave@idp.test")
    a = first + "~" + second + "~" + idp.assertion(keys["user_ds"], AUDIENCE)
    assert verify(idserver, "dave@idp.test", a) == {"result": "OK"}


def test_a_chain_signed_out_of_order_is_refused(idserver, keys):
    first = idp.certificate(keys["issuer"], "idp.test", keys["intermediate"])
    second = idp.certificate(keys["issuer"], "idp.test", keys["user_ds"], "dave@idp.test")
    a = first + "~" + second + "~" + idp.assertion(keys["user_ds"], AUDIENCE)
    assert verify(idserver, "dave@idp.test", a)["errno"] == 34


def test_expired_assertion(idserver, keys):
    a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE,
                   exp_ms=idp.now_ms() - 5 * 60 * 1000)
    reply = verify(idserver, "alice@idp.test", a)
    assert reply["errno"] == 33 and "expired" in reply["error"]


def test_expired_certificate(idserver, keys):
    a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE,
                   cert_exp_ms=idp.now_ms() - 5 * 60 * 1000)
    assert verify(idserver, "alice@idp.test", a)["errno"] == 33


def test_clock_skew_tolerates_a_just_expired_assertion(idserver, keys):
    a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE,
                   exp_ms=idp.now_ms() - 10 * 1000)  # clock_skew defaults to 60 s
    assert verify(idserver, "alice@idp.test", a) == {"result": "OK"}


def test_wrong_audience_is_refused_before_any_fetch(make_server, ca, keys, tmp_path):
    # Its own domain server: the test proves no request reached it.
    server_idp = idp.HTTPSServer(ca, ["idp.test"], {
        ("idp.test", "/.well-known/browserid"): (200, idp.support_document(keys["issuer"]))})
    try:
        server = make_server(**identity_config(ca, server_idp)).start()
        for aud in ("https://evil.test", "https://presence.test.evil.test",
                    "https://presence.test/path", "http://presence.test"):
            a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"], aud)
            assert verify(server, "alice@idp.test", a)["errno"] == 32, aud
        assert server_idp.count() == 0
        # Default ports equal none.
        a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"],
                       "https://presence.test:443")
        assert verify(server, "alice@idp.test", a) == {"result": "OK"}
    finally:
        server_idp.stop()


def test_one_flipped_signature_byte(idserver, keys):
    a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    cert, signed = a.split("~")
    assert verify(idserver, "alice@idp.test", cert + "~" + idp.flip_signature_byte(signed))[
        "errno"] == 34
    assert verify(idserver, "alice@idp.test", idp.flip_signature_byte(cert) + "~" + signed)[
        "errno"] == 34


def test_untrusted_issuer(idserver, keys):
    # Signed by idp.test's own key, but naming a root issuer that is not the e-mail's domain.
    a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE, iss="deleg.test")
    reply = verify(idserver, "alice@idp.test", a)
    assert reply["errno"] == 34 and "issuer" in reply["error"]


def test_issuer_key_mismatch(idserver, keys):
    a = idp.backed("alice@idp.test", keys["intermediate"], keys["user_ds"], AUDIENCE)
    assert verify(idserver, "alice@idp.test", a)["errno"] == 34


def test_email_mismatch_closes_1008(idserver, keys):
    a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    (reply,), code = run(replies_then_close(idserver.ws_url, update("mallory@idp.test", a)))
    assert reply["errno"] == 31
    assert code == 1008


@pytest.mark.parametrize("bad", [
    "",
    "no-tilde-here",
    "a.b.c~d.e.f",
    "%%%.e30.AA~x.y.z",
    idp.b64(b'{"alg":"RS256"}') + "." + idp.b64(b"{not json") + ".AAAA~" +
    idp.b64(b'{"alg":"DS128"}') + "." + idp.b64(b'{"aud":"x","exp":1}') + ".AAAA",
    idp.b64(b'{"alg":"none"}') + "." + idp.b64(b"{}") + ".AAAA~a.b.c",
    "~~~~~~~~~~",
])
def test_malformed_base64_and_json(idserver, bad):
    reply = verify(idserver, "alice@idp.test", bad)
    assert reply["errno"] == 34, reply


def test_a_one_megabyte_assertion(make_server, ca, domains):
    big = "A" * 1_000_000
    server = make_server(**identity_config(ca, domains)).start()
    (reply,), code = run(replies_then_close(server.ws_url, update("alice@idp.test", big)))
    assert reply["errno"] == 14 and code == 1009

    roomy = make_server(max_message_size="1M", **identity_config(ca, domains)).start()
    reply = verify(roomy, "alice@idp.test", big)
    assert reply["errno"] == 34 and "too long" in reply["error"]
    assert run(exchange(roomy.ws_url, "{}")) == [{}]


def test_delegation_to_an_authority(idserver, keys):
    # deleg.test delegates to idp.test: its users' certificates are signed with idp.test's key.
    a = idp.backed("erin@deleg.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    assert verify(idserver, "erin@deleg.test", a) == {"result": "OK"}


def test_delegation_loop_stops(idserver, keys, domains):
    before = domains.count()
    a = idp.backed("x@loop-a.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    reply = verify(idserver, "x@loop-a.test", a)
    assert reply["errno"] == 34 and "delegation" in reply["error"]
    assert domains.count() - before == 7  # the domain itself, then 6 delegations


@pytest.mark.parametrize("domain", ["nodoc.test", "broken.test", "disabled.test", "big.test"])
def test_domains_without_a_usable_document(idserver, keys, domain):
    a = idp.backed(f"x@{domain}", keys["issuer"], keys["user_ds"], AUDIENCE)
    assert verify(idserver, f"x@{domain}", a)["errno"] == 34


def test_unreachable_identity_provider_is_35(make_server, ca, keys):
    # connect_to a port nobody listens on.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    server = make_server(extra="\n".join([f"audience {AUDIENCE}", f"ca_file {ca.ca_file}",
                                          f"connect_to idp.test:443:127.0.0.1:{dead_port}"]),
                         verify_timeout="2s").start()
    a = idp.backed("alice@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    assert verify(server, "alice@idp.test", a)["errno"] == 35


def test_trusted_issuer_with_a_key_file(make_server, ca, domains, keys, tmp_path):
    key_file = tmp_path / "fxa.json"
    key_file.write_text(idp.support_document(keys["fxa"]))
    a = idp.backed("1234@accounts.example", keys["fxa"], keys["user_ds"], AUDIENCE,
                   iss="fxa.test")
    # Untrusted, the issuer would have to be on accounts.example's delegation chain: that domain
    # has no support document.
    untrusting = make_server(**identity_config(ca, domains)).start()
    assert verify(untrusting, "1234@accounts.example", a)["errno"] == 34
    trusting = make_server(**identity_config(
        ca, domains, lines=[f"trusted_issuer fxa.test {key_file}"])).start()
    assert verify(trusting, "1234@accounts.example", a) == {"result": "OK"}


def test_a_repeated_assertion_costs_no_fetch_on_any_worker(make_server, ca, keys):
    server_idp = idp.HTTPSServer(ca, ["idp.test"], {
        ("idp.test", "/.well-known/browserid"): (200, idp.support_document(keys["issuer"]))})
    try:
        server = make_server(**identity_config(ca, server_idp)).start()
        a = idp.backed("frank@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
        assert verify(server, "frank@idp.test", a) == {"result": "OK"}
        assert server_idp.count() == 1

        async def many():
            # Twenty connections at once spread over both workers; the cache answers all.
            return await asyncio.gather(*[exchange(server.ws_url, update("frank@idp.test", a))
                                          for _ in range(20)])
        assert all(r == [{"result": "OK"}] for r in run(many()))
        assert server_idp.count() == 1
        # Workers publish their counters every second.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            hits = metric_sum(server, "presenced_assertion_cache_hits_total")
            if hits >= 20:
                break
            time.sleep(0.2)
        assert hits == 20
        assert metric_sum(server, "presenced_assertions_verified_total") == 1
    finally:
        server_idp.stop()


def metric_sum(server, name):
    total = 0
    for line in server.admin("/metrics").splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_session_binding(idserver, keys):
    a = idp.backed("gina@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    other = idp.backed("gina@idp.test", keys["issuer"], keys["user_rs"], AUDIENCE)

    replies, code = run(replies_then_close(
        idserver.ws_url,
        update("gina@idp.test"),                          # 30: nothing verified yet
        update("gina@idp.test", a),                       # binds
        update("gina@idp.test", status="unavailable"),    # assertion omitted
        update("gina@idp.test", a, status="offline"),     # repeated
        update("gina@idp.test", other),                   # a new one: verified
        update("hank@idp.test")))                         # another e-mail: 31, 1008
    assert replies[0]["errno"] == 30
    assert replies[1:5] == [{"result": "OK"}] * 4
    assert replies[5]["errno"] == 31 and code == 1008


# Remote verification: a stand-in verifier that reads the principal without checking anything
# and behaves as the e-mail's local part says.
class Verifier:
    def __init__(self, ca, protocol):
        self.protocol = protocol
        self.server = idp.HTTPSServer(ca, ["verifier.test"], handler=self.answer)

    def answer(self, handler, body):
        if self.protocol == "v1":
            form = urllib.parse.parse_qs(body.decode())
            assertion, audience = form["assertion"][0], form["audience"][0]
        else:
            request = json.loads(body)
            assertion, audience = request["assertion"], request["audience"]
        email = idp.principal_of(assertion)
        mode = email.split("@")[0]
        if mode == "hang":
            time.sleep(10)
            return None, None
        if mode == "slow":
            time.sleep(2)
        if mode == "broken":
            return 503, "unavailable"
        if mode == "refused":
            return 200, json.dumps({"status": "failure", "reason": "signature mismatch"})
        if mode == "otheraud":
            audience = "https://elsewhere.test"
        return 200, json.dumps({"status": "okay", "email": email, "audience": audience,
                                "expires": idp.now_ms() + 60000, "issuer": "idp.test"})

    def config(self, ca, path):
        return {"extra": "\n".join([
            f"audience {AUDIENCE}", f"ca_file {ca.ca_file}", self.server.connect_to(),
            f"verifier https://verifier.test{path} {self.protocol}",
            "trusted_issuer fxa.test"]), "verify_timeout": "1500ms"}


@pytest.fixture(params=["v1", "v2"])
def verifier(request, ca):
    v = Verifier(ca, request.param)
    yield v
    v.server.stop()


def remote(make_server, ca, verifier, **extra):
    settings = verifier.config(ca, "/verify" if verifier.protocol == "v1" else "/v2")
    settings.update(extra)
    return make_server(**settings)


def test_remote_verifier_okay(make_server, ca, keys, verifier):
    server = remote(make_server, ca, verifier).start()
    a = idp.backed("ok@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    assert verify(server, "ok@idp.test", a) == {"result": "OK"}
    request = verifier.server.requests[-1]
    assert request["method"] == "POST"
    if verifier.protocol == "v1":
        assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
        assert urllib.parse.parse_qs(request["body"].decode()) == {
            "assertion": [a], "audience": [AUDIENCE]}
    else:
        assert request["headers"]["Content-Type"] == "application/json"
        assert json.loads(request["body"]) == {"assertion": a, "audience": AUDIENCE,
                                               "trustedIssuers": ["fxa.test"]}
    # Cached: the verifier is not asked again.
    asked = verifier.server.count()
    assert verify(server, "ok@idp.test", a) == {"result": "OK"}
    assert verifier.server.count() == asked


@pytest.mark.parametrize("local,errno", [("refused", 34), ("otheraud", 32), ("broken", 35)])
def test_remote_verifier_refusals(make_server, ca, keys, verifier, local, errno):
    server = remote(make_server, ca, verifier).start()
    a = idp.backed(f"{local}@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    assert verify(server, f"{local}@idp.test", a)["errno"] == errno


def test_remote_verifier_audience_checked_first(make_server, ca, keys, verifier):
    server = remote(make_server, ca, verifier).start()
    a = idp.backed("ok@idp.test", keys["issuer"], keys["user_ds"], "https://evil.test")
    assert verify(server, "ok@idp.test", a)["errno"] == 32
    assert verifier.server.count() == 0


def test_slow_verifier_blocks_nobody(make_server, ca, keys, verifier):
    # One worker, so both connections share its loop; the verifier answers within the timeout.
    server = remote(make_server, ca, verifier, workers=1, verify_timeout="4s").start()
    a = idp.backed("slow@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)

    async def scenario():
        async with websockets.connect(server.ws_url) as slow, \
                websockets.connect(server.ws_url) as other:
            started = time.monotonic()
            await slow.send(update("slow@idp.test", a))
            await slow.send("{}")  # queued behind the verification: answered after it
            pings = []
            for _ in range(5):
                t = time.monotonic()
                await other.send("{}")
                assert json.loads(await other.recv()) == {}
                pings.append(time.monotonic() - t)
                await asyncio.sleep(0.1)
            first = json.loads(await slow.recv())
            second = json.loads(await slow.recv())
            return first, second, time.monotonic() - started, pings
    first, second, elapsed, pings = run(scenario())
    assert first == {"result": "OK"} and second == {}
    assert elapsed >= 1.9
    assert max(pings) < 1.0, pings


def test_closing_while_verifying(make_server, ca, keys, verifier):
    server = remote(make_server, ca, verifier, workers=1).start()
    a = idp.backed("hang@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)

    async def leave_early():
        for _ in range(3):
            async with websockets.connect(server.ws_url) as ws:
                await ws.send(update("hang@idp.test", a))
                await asyncio.sleep(0.1)
    run(leave_early())
    time.sleep(2)  # past verify_timeout: the abandoned requests would have answered by now
    assert run(exchange(server.ws_url, "{}")) == [{}]
    assert server.proc.poll() is None


def test_silent_verifier_times_out_35(make_server, ca, keys, verifier):
    server = remote(make_server, ca, verifier).start()
    a = idp.backed("hang@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    started = time.monotonic()
    reply = verify(server, "hang@idp.test", a)
    assert reply["errno"] == 35
    assert time.monotonic() - started < 5


def test_logs_hold_no_assertion(idserver, keys):
    a = idp.backed("ivan@idp.test", keys["issuer"], keys["user_ds"], AUDIENCE)
    verify(idserver, "ivan@idp.test", a)
    cert, signed = a.split("~")
    verify(idserver, "ivan@idp.test", cert + "~" + idp.flip_signature_byte(signed))
    text = idserver.log_text()
    for part in a.split("~"):
        for piece in part.split("."):
            assert piece not in text
