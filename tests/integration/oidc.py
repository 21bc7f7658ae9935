"""OpenID Connect helpers of the tests: tokens signed by panva's jose (tests/node/jose_forge.mjs,
one Node.js process per test module), and the claims a provider puts in them."""
import json
import os
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE_DIR = os.path.join(ROOT, "tests", "node")


class Forge:
    """A jose_forge.mjs process: keys, and tokens signed with them."""

    def __init__(self):
        self.proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "jose_forge.mjs")],
                                     cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.lock = threading.Lock()

    def ask(self, **request):
        with self.lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = json.loads(self.proc.stdout.readline())
        assert "error" not in reply, reply
        return reply

    def key(self, alg, kid):
        reply = self.ask(op="key", alg=alg, kid=kid)
        return Key(self, alg, kid, reply["private"], reply["public"])

    def unsecured(self, payload):
        return self.ask(op="unsecured", payload=payload)["token"]

    def hmac(self, secret, payload, alg="HS256", **header):
        return self.ask(op="hmac", secret=secret, alg=alg, header=header, payload=payload)["token"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class Key:
    def __init__(self, forge, alg, kid, private, public):
        self.forge, self.alg, self.kid = forge, alg, kid
        self.private, self.public = private, public

    def sign(self, payload, alg=None, **header):
        header.setdefault("kid", self.kid)
        if header["kid"] is None:
            del header["kid"]
        return self.forge.ask(op="sign", key=self.private, alg=alg or self.alg, header=header,
                              payload=payload)["token"]


def jwks(*keys):
    return json.dumps({"keys": [k.public for k in keys]})


def claims(iss, aud, email="alice@example.com", ttl=600, **extra):
    """What an ID token carries: iss, sub, aud, exp, iat, a verified e-mail; extra overrides
    (None removes a claim)."""
    now = int(time.time())
    payload = {"iss": iss, "sub": "user-1", "aud": aud, "exp": now + ttl, "iat": now,
               "email": email, "email_verified": True}
    payload.update(extra)
    return {k: v for k, v in payload.items() if v is not None}


def update(email, token=None, status="online", device=None, assertion=None):
    message = {"email": email, "status": status}
    if token is not None:
        message["token"] = token
    if assertion is not None:
        message["assertion"] = assertion
    if device is not None:
        message["device"] = device
    return json.dumps(message)


def tamper_payload(token, **changes):
    """The token's header and signature around a payload with changes made."""
    import base64
    head, payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(changes)
    raw = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{head}.{raw}.{sig}"


def flip_signature(token):
    import base64
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"
