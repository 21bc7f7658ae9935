"""OpenID Connect against a real OpenID provider (SPEC.md §3.1): panva's oidc-provider, OpenID
Certified, as a local HTTPS process with its own CA, reached through connect_to. Devices sign in
with its ID tokens and its RFC 9068 JWT access tokens; its key rotation is picked up without a
restart; an unreachable provider gives 35 and holds up no one else. What the provider would never
issue (bad claims, alg none, algorithm confusion...) is signed with its own keys by panva's jose."""
import asyncio
import json
import os
import socket
import subprocess
import tempfile
import time

import pytest
import websockets

import idp
import oidc
import op
from conftest import BINARY, Server, replies_then_close, wait_for

AUDIENCE_RESOURCE = "https://presence.test"
DEVICES = {"client_id": "devices", "client_secret": "devices-secret",
           "redirect_uris": ["https://app.test/callback"], "grant_types": ["authorization_code"],
           "response_types": ["code"]}
DEVICES_ED = dict(DEVICES, client_id="devices-ed", id_token_signed_response_alg="EdDSA")


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def exchange(url, *messages):
    async with websockets.connect(url, max_size=None) as ws:
        replies = []
        for message in messages:
            await ws.send(message)
            replies.append(json.loads(await ws.recv()))
        return replies


def verify(server, email, token):
    return run(exchange(server.ws_url, oidc.update(email, token)))[0]


@pytest.fixture(scope="module")
def tmp():
    with tempfile.TemporaryDirectory(prefix="presenced-op-") as d:
        yield d


@pytest.fixture(scope="module")
def ca(tmp):
    return idp.TestCA(tmp)


@pytest.fixture(scope="module")
def forge():
    f = oidc.Forge()
    yield f
    f.close()


@pytest.fixture(scope="module")
def op_keys(forge):
    return {"RS256": forge.key("RS256", "rsa-1"), "ES256": forge.key("ES256", "ec-1"),
            "EdDSA": forge.key("EdDSA", "ed-1")}


@pytest.fixture(scope="module")
def provider(ca, tmp, op_keys):
    p = op.OpenIDProvider(ca, tmp, [k.private for k in op_keys.values()], [DEVICES, DEVICES_ED])
    yield p
    p.stop()


def presenced_for(workdir, ca, provider_connect_to, **settings):
    os.makedirs(workdir, exist_ok=True)
    lines = [f"oidc_issuer {op.ISSUER}", "oidc_audience devices", "oidc_audience devices-ed",
             f"oidc_audience {AUDIENCE_RESOURCE}", f"ca_file {ca.ca_file}", provider_connect_to]
    return Server(workdir, log_level="debug", extra="\n".join(lines), **settings)


@pytest.fixture(scope="module")
def server(tmp, ca, provider):
    s = presenced_for(os.path.join(tmp, "presenced"), ca, provider.connect_to())
    s.start()
    yield s
    s.stop()
    s.assert_clean_log()


@pytest.fixture(scope="module")
def alice(provider):
    """What the provider gave alice@example.com signing in on the devices' app."""
    return op.tokens(provider, DEVICES, "alice@example.com", resource=AUDIENCE_RESOURCE)


def test_an_id_token_of_the_provider(server, alice):
    assert op.header(alice["id_token"])["alg"] == "RS256"
    assert verify(server, "alice@example.com", alice["id_token"]) == {"result": "OK"}


def test_an_eddsa_id_token(server, provider):
    issued = op.tokens(provider, DEVICES_ED, "erin@example.com")
    assert op.header(issued["id_token"])["alg"] == "EdDSA"
    assert verify(server, "erin@example.com", issued["id_token"]) == {"result": "OK"}


def test_a_jwt_access_token_for_the_resource(server, alice):
    token = alice["access_token"]
    head, claims = op.header(token), op.payload(token)
    assert head["typ"] == "at+jwt" and head["alg"] == "ES256"
    assert claims["aud"] == AUDIENCE_RESOURCE and claims["client_id"] == "devices"
    assert verify(server, "alice@example.com", token) == {"result": "OK"}


def test_the_keys_are_fetched_once_for_every_token(server, provider, alice):
    jwks = provider.jwks_path()
    before = provider.count(jwks)
    for token in (alice["id_token"], alice["access_token"]):
        assert verify(server, "alice@example.com", token) == {"result": "OK"}
    assert provider.count(jwks) == before


def test_email_verified_false_from_the_provider(server, provider):
    issued = op.tokens(provider, DEVICES, "unverified-bob@example.com")
    assert op.payload(issued["id_token"])["email_verified"] is False
    reply = verify(server, "unverified-bob@example.com", issued["id_token"])
    assert reply["errno"] == 34 and "not verified" in reply["error"]


def test_no_email_when_the_scope_asked_none(server, provider):
    redirect = DEVICES["redirect_uris"][0]
    code, verifier = op.sign_in(provider, "devices", redirect, "carol@example.com",
                                scope="openid")
    issued = op.redeem(provider, "devices", DEVICES["client_secret"], code, verifier, redirect)
    assert "email" not in op.payload(issued["id_token"])
    reply = verify(server, "carol@example.com", issued["id_token"])
    assert reply["errno"] == 34 and "no email" in reply["error"]


def test_email_mismatch_is_31(server, alice):
    (reply,), code = run(replies_then_close(server.ws_url,
                                            oidc.update("bob@example.com", alice["id_token"])))
    assert reply["errno"] == 31 and code == 1008


def test_token_and_assertion_together_is_11(server, alice):
    reply = run(exchange(server.ws_url, oidc.update("alice@example.com", alice["id_token"],
                                                    assertion="x~y")))[0]
    assert reply["errno"] == 11


def test_one_megabyte_input(server):
    big = "A" * 1_000_000
    (reply,), code = run(replies_then_close(server.ws_url, oidc.update("alice@example.com", big)))
    assert reply["errno"] == 14 and code == 1009


# What the provider would never issue, signed with its own keys.

def forged(op_keys, key="RS256", **claims):
    iss, aud = claims.pop("iss", op.ISSUER), claims.pop("aud", "devices")
    return op_keys[key].sign(oidc.claims(iss, aud, **claims))


def test_refused_expired(server, op_keys):
    reply = verify(server, "alice@example.com", forged(op_keys, ttl=-120))
    assert reply["errno"] == 33 and "expired" in reply["error"]


def test_refused_not_yet_valid(server, op_keys):
    reply = verify(server, "alice@example.com", forged(op_keys, nbf=int(time.time()) + 300))
    assert reply["errno"] == 33 and "nbf" in reply["error"]


def test_refused_issued_in_the_future(server, op_keys):
    reply = verify(server, "alice@example.com", forged(op_keys, iat=int(time.time()) + 300))
    assert reply["errno"] == 33


def test_refused_wrong_aud(server, op_keys):
    reply = verify(server, "alice@example.com", forged(op_keys, aud="another-app"))
    assert reply["errno"] == 32


def test_refused_azp_of_another_party(server, op_keys):
    reply = verify(server, "alice@example.com",
                   forged(op_keys, aud=["devices", "another-app"], azp="another-app"))
    assert reply["errno"] == 32 and "azp" in reply["error"]


def test_refused_wrong_iss(server, op_keys):
    reply = verify(server, "alice@example.com", forged(op_keys, iss="https://evil.test"))
    assert reply["errno"] == 34 and "untrusted issuer" in reply["error"]


def test_refused_unknown_kid(server, forge):
    stranger = forge.key("RS256", "not-of-the-provider")
    token = stranger.sign(oidc.claims(op.ISSUER, "devices"))
    reply = verify(server, "alice@example.com", token)
    assert reply["errno"] == 34 and "no key" in reply["error"]


def test_refused_alg_none(server, forge):
    token = forge.unsecured(oidc.claims(op.ISSUER, "devices"))
    assert token.endswith(".")
    reply = verify(server, "alice@example.com", token)
    assert reply["errno"] == 34 and "alg none" in reply["error"]


@pytest.mark.parametrize("form", ["jwk", "pem"])
def test_refused_hs256_keyed_with_the_rsa_public_key(server, op_keys, forge, form):
    public = op_keys["RS256"].public
    if form == "jwk":
        secret = json.dumps(public)
    else:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
        n = int.from_bytes(idp.unb64(public["n"]), "big")
        e = int.from_bytes(idp.unb64(public["e"]), "big")
        secret = RSAPublicNumbers(e, n).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    token = forge.hmac(secret, oidc.claims(op.ISSUER, "devices"), kid="rsa-1")
    reply = verify(server, "alice@example.com", token)
    assert reply["errno"] == 34 and "HMAC" in reply["error"]


def test_refused_alg_that_does_not_fit_the_key(server, op_keys):
    # ES256, signed with the provider's EC key, naming its RSA key.
    token = op_keys["ES256"].sign(oidc.claims(op.ISSUER, "devices"), kid="rsa-1")
    reply = verify(server, "alice@example.com", token)
    assert reply["errno"] == 34 and "does not fit" in reply["error"]


def test_refused_crit(server, op_keys):
    token = op_keys["RS256"].sign(oidc.claims(op.ISSUER, "devices"), crit=["exp"],
                                  exp=int(time.time()) + 60)
    reply = verify(server, "alice@example.com", token)
    assert reply["errno"] == 34 and "crit" in reply["error"]


def test_refused_tampered_payload(server, alice):
    token = oidc.tamper_payload(alice["id_token"], email="mallory@example.com")
    reply = verify(server, "mallory@example.com", token)
    assert reply["errno"] == 34 and "signature" in reply["error"]


def test_refused_flipped_signature(server, provider):
    issued = op.tokens(provider, DEVICES, "dave@example.com")
    reply = verify(server, "dave@example.com", oidc.flip_signature(issued["id_token"]))
    assert reply["errno"] == 34 and "signature" in reply["error"]


def test_refused_email_verified_false_forged(server, op_keys):
    reply = verify(server, "alice@example.com", forged(op_keys, email_verified=False))
    assert reply["errno"] == 34


def test_refused_no_email_forged(server, op_keys):
    reply = verify(server, "alice@example.com", forged(op_keys, email=None, email_verified=None))
    assert reply["errno"] == 34 and "no email" in reply["error"]


def test_refused_one_megabyte_with_room(tmp, ca, provider):
    roomy = presenced_for(os.path.join(tmp, "roomy"), ca, provider.connect_to(),
                          max_message_size="1M")
    roomy.start()
    try:
        reply = verify(roomy, "alice@example.com", "A" * 1_000_000)
        assert reply["errno"] == 34 and "too long" in reply["error"]
    finally:
        roomy.stop()
        roomy.assert_clean_log()


def test_key_rotation_is_picked_up_without_a_restart(ca, forge, make_server):
    workdir = tempfile.mkdtemp(prefix="presenced-rotation-")
    old = forge.key("RS256", "rsa-old")
    provider = op.OpenIDProvider(ca, workdir, [old.private], [DEVICES])
    try:
        server = make_server(log_level="debug", workers=1)  # one worker: one key cache to count
        server.write_config(extra="\n".join([
            f"oidc_issuer {op.ISSUER}", "oidc_audience devices", f"ca_file {ca.ca_file}",
            provider.connect_to()]))
        server.start()
        before = op.tokens(provider, DEVICES, "alice@example.com")["id_token"]
        assert verify(server, "alice@example.com", before) == {"result": "OK"}
        jwks = provider.jwks_path()
        assert provider.count(jwks) == 1
        # The provider rotates: a new key signs, the old one is still published.
        new = forge.key("RS256", "rsa-new")
        provider.restart([new.private, old.private])
        after = op.tokens(provider, DEVICES, "bob@example.com")["id_token"]
        assert op.header(after)["kid"] == "rsa-new"
        # Within 10 s of a worker's last fetch the new kid is refused; then it is fetched again
        # and the token gets in, with no restart and no reload.
        assert wait_for(lambda: verify(server, "bob@example.com", after) == {"result": "OK"},
                        timeout=25, step=0.5)
        assert verify(server, "alice@example.com", before) == {"result": "OK"}
        assert verify(server, "bob@example.com", after) == {"result": "OK"}
        assert provider.count(jwks) == 2  # fetched again once, however often it was tried
    finally:
        provider.stop()


def test_an_unreachable_provider_is_35_and_holds_up_no_one(ca, make_server, op_keys):
    # A listener that never answers: the TLS handshake waits until verify_timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        server = make_server(verify_timeout="5s", dev_issuer="on")
        server.write_config(extra="\n".join([
            f"oidc_issuer {op.ISSUER}", "oidc_audience devices", f"ca_file {ca.ca_file}",
            f"connect_to {op.HOST}:443:127.0.0.1:{silent.getsockname()[1]}"]))
        server.start()
        dev_token = subprocess.run([BINARY, "-c", server.config_path, "token", "bob@example.com"],
                                   capture_output=True, text=True, check=True).stdout.strip()
        token = op_keys["RS256"].sign(oidc.claims(op.ISSUER, "devices"))

        async def both():
            pending = asyncio.ensure_future(exchange(server.ws_url,
                                                     oidc.update("alice@example.com", token)))
            await asyncio.sleep(0.3)  # alice's verification is under way (it waits 5 s)
            others = await asyncio.gather(*[
                exchange(server.ws_url, oidc.update("bob@example.com", dev_token,
                                                    device=f"d{i}"), "{}")
                for i in range(4)])
            alice_still_waiting = not pending.done()
            return (await pending)[0], others, alice_still_waiting
        reply, others, alice_still_waiting = run(both())
        assert reply["errno"] == 35, reply
        assert all(o == [{"result": "OK"}, {}] for o in others), others
        assert alice_still_waiting  # the others were answered while alice's fetch hung
    finally:
        silent.close()
