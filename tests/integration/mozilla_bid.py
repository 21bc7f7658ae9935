"""Mozilla's BrowserID libraries as a test peer: tests/node/browserid.js (browserid-crypto signing,
browserid-local-verify verifying) run as one Node.js process, asked one JSON line at a time."""
import json
import os
import select
import subprocess
import time

NODE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "node")
HELPER = os.path.join(NODE_DIR, "browserid.js")


class Key:
    """A key pair that lives in the helper; public is its BrowserID JSON."""

    def __init__(self, helper, reply):
        self.helper = helper
        self.id = reply["key"]
        self.public = reply["public"]
        self.modulus_bits = reply["modulus_bits"]
        self.modulus_bytes = (self.modulus_bits + 7) // 8 if self.modulus_bits else None

    def public_json(self):
        return self.public


class BrowserIDCrypto:
    def __init__(self):
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "browserid-crypto")):
            raise RuntimeError("tests/node/node_modules is missing: run make node-deps")
        self.proc = subprocess.Popen(["node", HELPER], cwd=NODE_DIR, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.buffer = ""

    def call(self, timeout=120, **request):
        """One request, its answer; a generous timeout, as key generation is slow on a busy
        machine (the helper answers as soon as it is done)."""
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while "\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"browserid.js did not answer {request['op']}")
            chunk = os.read(self.proc.stdout.fileno(), 65536).decode()
            if not chunk:
                raise RuntimeError("browserid.js exited")
            self.buffer += chunk
        line, self.buffer = self.buffer.split("\n", 1)
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise RuntimeError("browserid.js: " + reply["error"])
        return reply

    def keypair(self, algorithm, keysize, bits=None):
        """jwcrypto's key pair; bits asks for an RSA modulus of exactly that size."""
        return Key(self, self.call(op="keypair", algorithm=algorithm, keysize=keysize, bits=bits))

    def certify(self, issuer, iss, subject, email=None, **options):
        """A certificate by issuer's key naming iss, certifying subject's public key."""
        reply = self.call(op="certify", issuer=issuer.id, iss=iss, subject=subject.id,
                          email=email, **options)
        return reply["cert"], reply["signature_bytes"]

    def assertion(self, key, audience, **options):
        reply = self.call(op="assert", key=key.id, audience=audience, **options)
        return reply["assertion"], reply["signature_bytes"]

    def backed(self, issuer, iss, user, email, audience, cert_options=None, **options):
        cert, _ = self.certify(issuer, iss, user, email, **(cert_options or {}))
        signed, _ = self.assertion(user, audience, **options)
        return cert + "~" + signed

    def verify(self, assertion, audience, server=None, ca=None, **options):
        """browserid-local-verify's verdict, its support documents fetched from server (an
        idp.HTTPSServer) through the test CA."""
        hosts = {h: server.port for h in server.hosts} if server is not None else {}
        return self.call(op="verify", assertion=assertion, audience=audience, hosts=hosts,
                         ca=ca.ca_file if ca is not None else None, **options)

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
