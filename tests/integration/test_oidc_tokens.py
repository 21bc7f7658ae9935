"""OpenID Connect and OAuth 2 tokens on the device channel (SPEC.md §3.1), against an issuer whose
keys are a JWKS file: every algorithm, the cache, the binding, the config checks. Tokens are
signed by panva's jose (tests/node). The real provider's tokens are test_oidc_provider.py's."""
import asyncio
import json
import os
import subprocess

import pytest
import websockets

import idp
import oidc
from conftest import BINARY, replies_then_close, wait_for

ISSUER = "https://op.test"
AUDIENCE = "presenced-devices"
ALGS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def exchange(url, *messages):
    async with websockets.connect(url, max_size=None) as ws:
        replies = []
        for message in messages:
            await ws.send(message)
            replies.append(json.loads(await ws.recv()))
        return replies


@pytest.fixture(scope="module")
def forge():
    f = oidc.Forge()
    yield f
    f.close()


@pytest.fixture(scope="module")
def keys(forge):
    return {alg: forge.key(alg, f"kid-{alg}") for alg in ALGS}


@pytest.fixture(scope="module")
def jwks_file(keys, tmp_path_factory):
    path = tmp_path_factory.mktemp("jwks") / "op.jwks"
    path.write_text(oidc.jwks(*keys.values()))
    return str(path)


@pytest.fixture
def tokserver(make_server, jwks_file):
    return make_server(log_level="debug", extra="\n".join([
        f"oidc_issuer {ISSUER} {jwks_file}", f"oidc_audience {AUDIENCE}",
        "oidc_audience https://presence.test"])).start()


def verify(server, email, token, raw=None):
    return run(exchange(server.ws_url, raw or oidc.update(email, token)))[0]


@pytest.mark.parametrize("alg", ALGS)
def test_each_algorithm_signs_in(tokserver, keys, alg):
    token = keys[alg].sign(oidc.claims(ISSUER, AUDIENCE, email=f"{alg.lower()}@example.com"))
    assert verify(tokserver, f"{alg.lower()}@example.com", token) == {"result": "OK"}


def test_an_access_token_for_a_resource(tokserver, keys):
    # RFC 9068: typ at+jwt, aud the resource, client_id, scope; no nonce, no azp.
    payload = oidc.claims(ISSUER, ["https://presence.test"], client_id="chat-app",
                          scope="openid email")
    token = keys["ES256"].sign(payload, typ="at+jwt")
    assert verify(tokserver, "alice@example.com", token) == {"result": "OK"}


def test_binding_then_updates_without_the_token(tokserver, keys):
    token = keys["EdDSA"].sign(oidc.claims(ISSUER, AUDIENCE))
    replies = run(exchange(tokserver.ws_url, oidc.update("alice@example.com", token),
                           oidc.update("alice@example.com", status="unavailable"),
                           oidc.update("alice@example.com", token, status="offline")))
    assert replies == [{"result": "OK"}] * 3
    users = json.loads(tokserver.admin("/users/alice@example.com"))
    assert users["status"] == "offline"


def test_a_repeated_token_is_answered_from_the_cache(tokserver, keys):
    token = keys["RS256"].sign(oidc.claims(ISSUER, AUDIENCE, email="cached@example.com"))
    for _ in range(6):
        assert verify(tokserver, "cached@example.com", token) == {"result": "OK"}
    # Workers publish their counters every second; both share the store's cache.
    assert wait_for(lambda: metric_sum(tokserver, "presenced_assertion_cache_hits_total") == 5)
    assert metric_sum(tokserver, "presenced_assertions_verified_total") == 1


def metric_sum(server, name):
    return sum(float(line.rsplit(" ", 1)[1]) for line in server.admin("/metrics").splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_email_mismatch_is_31_and_closes(tokserver, keys):
    token = keys["ES256"].sign(oidc.claims(ISSUER, AUDIENCE))
    (reply,), code = run(replies_then_close(tokserver.ws_url,
                                            oidc.update("mallory@example.com", token)))
    assert reply["errno"] == 31 and code == 1008


def test_the_email_is_compared_exactly(tokserver, keys):
    """presence(7): the e-mail is the credential's byte for byte, case included; a name given
    twice in a message counts with its last value."""
    token = keys["ES256"].sign(oidc.claims(ISSUER, AUDIENCE))  # alice@example.com
    for other in ("Alice@example.com", "alice@Example.com", "alice@example.com "):
        (reply,), code = run(replies_then_close(tokserver.ws_url, oidc.update(other, token)))
        assert reply["errno"] == 31 and code == 1008, (other, reply)
    fields = oidc.update("alice@example.com", token)[1:-1]  # "email": "alice@...", ...
    mallory = '"email":"mallory@example.com"'
    assert verify(tokserver, None, None, raw="{" + mallory + "," + fields + "}") == {
        "result": "OK"}
    (reply,), code = run(replies_then_close(tokserver.ws_url,
                                            "{" + fields + "," + mallory + "}"))
    assert reply["errno"] == 31 and code == 1008, reply


def test_token_and_assertion_together_is_11(tokserver, keys):
    token = keys["ES256"].sign(oidc.claims(ISSUER, AUDIENCE))
    reply = run(exchange(tokserver.ws_url, oidc.update("alice@example.com", token,
                                                       assertion="a~b")))[0]
    assert reply["errno"] == 11 and "together" in reply["error"]


def test_a_token_of_an_unconfigured_issuer(tokserver, keys):
    token = keys["ES256"].sign(oidc.claims("https://elsewhere.test", AUDIENCE))
    reply = verify(tokserver, "alice@example.com", token)
    assert reply["errno"] == 34 and "untrusted issuer" in reply["error"]


def test_errnos_of_the_claims(tokserver, keys):
    key = keys["ES256"]
    assert verify(tokserver, "alice@example.com",
                  key.sign(oidc.claims(ISSUER, "someone-else")))["errno"] == 32
    assert verify(tokserver, "alice@example.com",
                  key.sign(oidc.claims(ISSUER, AUDIENCE, ttl=-300)))["errno"] == 33
    reply = verify(tokserver, "alice@example.com",
                   key.sign(oidc.claims(ISSUER, AUDIENCE, email_verified=False)))
    assert reply["errno"] == 34 and reply["error"].startswith("invalid token:")


def test_a_one_megabyte_token(make_server, jwks_file):
    lines = "\n".join([f"oidc_issuer {ISSUER} {jwks_file}", f"oidc_audience {AUDIENCE}"])
    big = "A" * 1_000_000
    server = make_server(extra=lines).start()
    (reply,), code = run(replies_then_close(server.ws_url, oidc.update("alice@example.com", big)))
    assert reply["errno"] == 14 and code == 1009
    roomy = make_server(max_message_size="1M", extra=lines).start()
    reply = verify(roomy, "alice@example.com", big)
    assert reply["errno"] == 34 and "too long" in reply["error"]
    assert run(exchange(roomy.ws_url, "{}")) == [{}]


def config_check(tmp_path, text):
    path = tmp_path / "p.conf"
    path.write_text(text)
    result = subprocess.run([BINARY, "-t", "-c", str(path)], capture_output=True, text=True,
                            timeout=30)
    return result.returncode, result.stderr, str(path)


def test_config_checks_name_file_and_line(tmp_path, jwks_file):
    rc, err, path = config_check(tmp_path, f"oidc_issuer {ISSUER} {jwks_file}\n"
                                           f"oidc_audience {AUDIENCE}\n")
    assert rc == 0, err
    rc, err, path = config_check(tmp_path, f"workers 1\noidc_issuer {ISSUER} {jwks_file}\n")
    assert rc == 1 and err.startswith(f"{path}:2: oidc_issuer needs oidc_audience"), err
    rc, err, path = config_check(tmp_path, "oidc_audience x\noidc_issuer http://op.test\n")
    assert rc == 1 and err.startswith(f"{path}:2: oidc_issuer: 'http://op.test' must be an https"), err
    bad = tmp_path / "bad.jwks"
    bad.write_text('{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}')
    rc, err, path = config_check(tmp_path, f"oidc_audience x\n\noidc_issuer {ISSUER} {bad}\n")
    assert rc == 1 and err.startswith(f"{path}:3: oidc_issuer: {bad}: "), err
    rc, err, path = config_check(tmp_path, f"oidc_audience x\noidc_issuer {ISSUER} /nonexistent\n")
    assert rc == 1 and f"{path}:2: oidc_issuer: /nonexistent: No such file" in err, err
    rc, err, path = config_check(tmp_path, f"oidc_audience x\noidc_issuer {ISSUER}\n"
                                           f"oidc_issuer {ISSUER}\n")
    assert rc == 1 and err.startswith(f"{path}:3: oidc_issuer: {ISSUER} is already"), err


def test_logs_hold_no_token(tokserver, keys):
    token = keys["RS256"].sign(oidc.claims(ISSUER, AUDIENCE, email_verified=False))
    verify(tokserver, "alice@example.com", token)
    text = tokserver.log_text()
    assert "token refused (34)" in text
    assert token.split(".")[1] not in text and token.split(".")[2] not in text


def test_keys_from_discovery_then_jwks_uri(make_server, keys, tmp_path):
    # A plain local HTTPS server stands in for the issuer here; test_oidc_provider.py uses a real
    # OpenID provider.
    ca = idp.TestCA(str(tmp_path))
    discovery = json.dumps({"issuer": ISSUER, "jwks_uri": "https://keys.op.test/jwks",
                            "authorization_endpoint": f"{ISSUER}/auth"})
    op = idp.HTTPSServer(ca, ["op.test", "keys.op.test"], {
        ("op.test", "/.well-known/openid-configuration"): (200, discovery),
        ("keys.op.test", "/jwks"): (200, oidc.jwks(keys["ES256"], keys["EdDSA"]))})
    try:
        server = make_server(extra="\n".join([
            f"oidc_issuer {ISSUER}", f"oidc_audience {AUDIENCE}", f"ca_file {ca.ca_file}",
            op.connect_to()]), workers=1).start()
        for alg in ("ES256", "EdDSA"):
            token = keys[alg].sign(oidc.claims(ISSUER, AUDIENCE))
            assert verify(server, "alice@example.com", token) == {"result": "OK"}
        assert op.count("/.well-known/openid-configuration") == 1 and op.count("/jwks") == 1
        # A kid the keys lack, within 10 s of the last fetch: refused without a fetch.
        token = keys["RS256"].sign(oidc.claims(ISSUER, AUDIENCE))
        reply = verify(server, "alice@example.com", token)
        assert reply["errno"] == 34 and "no key" in reply["error"], reply
        assert op.count("/jwks") == 1
        # The issuer rotates in a new key: the same token gets in once the keys are fetched
        # again, which happens once however often it is tried.
        op.routes[("keys.op.test", "/jwks")] = (200, oidc.jwks(keys["RS256"], keys["ES256"]))
        assert wait_for(lambda: verify(server, "alice@example.com", token) == {"result": "OK"},
                        timeout=20, step=0.5)
        assert op.count("/jwks") == 2
        assert op.count("/.well-known/openid-configuration") == 2
    finally:
        op.stop()


def test_unreachable_issuer_is_35(make_server, keys, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    server = make_server(verify_timeout="2s", extra="\n".join([
        f"oidc_issuer {ISSUER}", f"oidc_audience {AUDIENCE}",
        f"connect_to op.test:443:127.0.0.1:{dead_port}"])).start()
    token = keys["ES256"].sign(oidc.claims(ISSUER, AUDIENCE))
    reply = verify(server, "alice@example.com", token)
    assert reply["errno"] == 35, reply
