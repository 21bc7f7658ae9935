"""A real OpenID provider for the tests — panva's oidc-provider (tests/node/op.mjs) as a local
HTTPS process with the test CA's certificate for op.test — and a client that signs a user in
through its own login and consent pages (its development interactions), then redeems the code
(PKCE S256) for an ID token and, with a resource indicator, an RFC 9068 JWT access token."""
import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

from oidc import NODE_DIR

HOST = "op.test"
ISSUER = f"https://{HOST}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenIDProvider:
    """oidc-provider on 127.0.0.1:port answering as https://op.test."""

    def __init__(self, ca, workdir, jwks, clients, resource="https://presence.test",
                 access_token_alg="ES256"):
        self.ca, self.workdir = ca, workdir
        self.cert, self.key = ca.server_files([HOST])
        self.port = free_port()
        self.clients, self.resource, self.access_token_alg = clients, resource, access_token_alg
        self.requests = []
        self.lock = threading.Lock()
        self.proc = None
        self.start(jwks)

    def start(self, jwks):
        """Starts (or, after stop, starts again on the same port) with these private keys."""
        path = os.path.join(self.workdir, "op.json")
        with open(path, "w") as f:
            json.dump({"issuer": ISSUER, "port": self.port, "cert": self.cert, "key": self.key,
                       "jwks": {"keys": jwks}, "clients": self.clients,
                       "resource": self.resource, "access_token_alg": self.access_token_alg}, f)
        self.proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "op.mjs"), path],
                                     cwd=NODE_DIR, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(self.workdir, "op.log"), "ab"),
                                     text=True)
        first = self.proc.stdout.readline()
        assert first.strip() == "listening", first + open(os.path.join(self.workdir,
                                                                        "op.log")).read()
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            with self.lock:
                self.requests.append(line.strip())

    def count(self, path):
        with self.lock:
            return len([r for r in self.requests if r.split(" ", 1)[1] == path])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, jwks):
        self.stop()
        self.start(jwks)

    def connect_to(self):
        return f"connect_to {HOST}:443:127.0.0.1:{self.port}"

    def jwks_path(self):
        """The path of its jwks_uri, as its discovery document names it."""
        status, _, body = UserAgent(self).request("GET", "/.well-known/openid-configuration")
        assert status == 200, body
        return urllib.parse.urlsplit(json.loads(body)["jwks_uri"]).path


class UserAgent:
    """HTTPS to op.test (reached at 127.0.0.1:port, its certificate checked for op.test), with
    the cookies it sets."""

    def __init__(self, op):
        self.op = op
        self.context = ssl.create_default_context(cafile=op.ca.ca_file)
        self.cookies = {}

    def request(self, method, target, form=None, headers=None):
        conn = http.client.HTTPSConnection(HOST, 443, context=self.context, timeout=10)
        conn.sock = self.context.wrap_socket(
            socket.create_connection(("127.0.0.1", self.op.port), timeout=10),
            server_hostname=HOST)
        head = dict(headers or {})
        if self.cookies:
            head["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            head["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, target, body=body, headers=head)
        response = conn.getresponse()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                if val == "" or "expires=Thu, 01 Jan 1970" in value:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val
        text = response.read().decode()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def sign_in(op, client_id, redirect_uri, login, resource=None, nonce="n-0S6_WzA2Mj",
            scope="openid email"):
    """The authorization code flow as a user would go through it, login and consent pages
    included. Returns (code, verifier)."""
    verifier, challenge = pkce_pair()
    query = {"client_id": client_id, "response_type": "code", "scope": scope,
             "redirect_uri": redirect_uri, "state": secrets.token_urlsafe(8), "nonce": nonce,
             "code_challenge": challenge, "code_challenge_method": "S256"}
    if resource is not None:
        query["resource"] = resource
    agent = UserAgent(op)
    target = "/auth?" + urllib.parse.urlencode(query)
    method, form = "GET", None
    for _ in range(12):
        status, headers, body = agent.request(method, target, form)
        method, form = "GET", None
        if status in (302, 303):
            location = headers["location"]
            if location.startswith(redirect_uri):
                params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
                assert "code" in params, location
                return params["code"][0], verifier
            target = urllib.parse.urlsplit(location)._replace(scheme="", netloc="").geturl()
            continue
        assert status == 200, (status, body[:500])
        prompt = re.search(r'name="prompt" value="(\w+)"', body).group(1)
        action = urllib.parse.urlsplit(re.search(r'action="([^"]+)"', body).group(1)).path
        method, target = "POST", action
        form = {"prompt": prompt}
        if prompt == "login":
            form.update(login=login, password="any")
    raise AssertionError("no code after the login and consent pages")


def redeem(op, client_id, secret, code, verifier, redirect_uri, resource=None):
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    if resource is not None:
        form["resource"] = resource
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    status, _, body = UserAgent(op).request("POST", "/token", form,
                                            {"Authorization": f"Basic {basic}"})
    assert status == 200, body
    return json.loads(body)


def tokens(op, client, login, resource=None):
    """An ID token (and, with resource, a JWT access token) for login, from client (a dict of
    client_id, client_secret, redirect_uris)."""
    redirect = client["redirect_uris"][0]
    code, verifier = sign_in(op, client["client_id"], redirect, login, resource)
    return redeem(op, client["client_id"], client["client_secret"], code, verifier, redirect,
                  resource)


def payload(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def header(token):
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def wait_count(op, path, want, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and op.count(path) < want:
        time.sleep(0.05)
    return op.count(path)
