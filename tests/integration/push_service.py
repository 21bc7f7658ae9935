"""A stand-in Web Push service for the tests (tests/node/push_service.mjs): HTTPS with the test
CA's certificate for push.test, every message decrypted with Mozilla's http_ece and its VAPID
token verified with jose; the test makes subscriptions, sets the answers and reads what arrived on
a plain-HTTP control port."""
import json
import os
import socket
import subprocess
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oidc import NODE_DIR

HOST = "push.test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PushService:
    def __init__(self, ca, workdir):
        self.cert, self.key = ca.server_files([HOST])
        self.port, self.control_port = free_port(), free_port()
        path = os.path.join(workdir, "push_service.json")
        with open(path, "w") as f:
            json.dump({"host": HOST, "port": self.port, "control_port": self.control_port,
                       "cert": self.cert, "key": self.key}, f)
        self.log_path = os.path.join(workdir, "push_service.log")
        self.proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "push_service.mjs"), path],
                                     cwd=NODE_DIR, stdout=subprocess.PIPE,
                                     stderr=open(self.log_path, "ab"), text=True)
        first = self.proc.stdout.readline()
        assert first.strip() == "listening", first + open(self.log_path).read()

    def _control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}",
                                         data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    def subscribe(self):
        """A new subscription: (its id, the object a browser would give the device)."""
        made = self._control("POST", "/subscriptions")
        return made["id"], made["subscription"]

    def answer(self, sub_id, *answers):
        """The next answers to this subscription's pushes, in order (then 201)."""
        self._control("POST", f"/subscriptions/{sub_id}/answers", list(answers))

    def messages(self, sub_id):
        return self._control("GET", f"/subscriptions/{sub_id}/messages")

    def connect_to(self):
        return f"connect_to {HOST}:443:127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def push(ca, tmp_path):
    """The push service of a test (needs web_fixtures' ca fixture)."""
    service = PushService(ca, str(tmp_path))
    yield service
    service.stop()


def write_vapid_key(path):
    """A fresh P-256 VAPID key, PEM, at path; returns the path as a string."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    return str(path)
