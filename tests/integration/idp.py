"""A test identity provider: real keys, BrowserID certificates and backed assertions, and the real
local HTTPS servers (own CA) that stand in for identity providers' domains and remote verifiers."""
import base64
import datetime
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def now_ms():
    return int(time.time() * 1000)


class RSKey:
    """An RSA key that signs RS256."""

    def __init__(self, bits=2048):
        self.private = rsa.generate_private_key(65537, bits)
        self.alg = "RS256"

    def public_json(self):
        numbers = self.private.public_key().public_numbers()
        return {"algorithm": "RS", "n": str(numbers.n), "e": str(numbers.e)}

    def sign(self, data):
        return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())


class DSKey:
    """A DSA key: 1024/160 signs DS128 (SHA-1), 2048/256 signs DS256 (SHA-256)."""

    def __init__(self, bits=1024):
        self.private = dsa.generate_private_key(bits)
        self.alg = "DS128" if bits == 1024 else "DS256"
        self.qbytes = 20 if bits == 1024 else 32

    def public_json(self):
        numbers = self.private.public_key().public_numbers()
        params = numbers.parameter_numbers
        return {"algorithm": "DS", "p": format(params.p, "x"), "q": format(params.q, "x"),
                "g": format(params.g, "x"), "y": format(numbers.y, "x")}

    def sign(self, data):
        digest = hashes.SHA1() if self.alg == "DS128" else hashes.SHA256()
        r, s = decode_dss_signature(self.private.sign(data, digest))
        return r.to_bytes(self.qbytes, "big") + s.to_bytes(self.qbytes, "big")


def jws(payload, key):
    signing_input = b64(json.dumps({"alg": key.alg}).encode()) + "." + \
        b64(json.dumps(payload).encode())
    return signing_input + "." + b64(key.sign(signing_input.encode()))


def certificate(issuer_key, iss, subject_key, email=None, exp_ms=None):
    payload = {"iss": iss, "iat": now_ms() - 1000, "exp": exp_ms or now_ms() + 3600 * 1000,
               "public-key": subject_key.public_json()}
    if email is not None:
        payload["principal"] = {"email": email}
    return jws(payload, issuer_key)


def assertion(user_key, audience, exp_ms=None):
    return jws({"aud": audience, "exp": exp_ms or now_ms() + 120 * 1000}, user_key)


def backed(email, issuer_key, user_key, audience, iss=None, cert_exp_ms=None, exp_ms=None):
    """cert~assertion: the issuer (by default the e-mail's domain) certifies user_key."""
    iss = iss or email.split("@", 1)[1]
    cert = certificate(issuer_key, iss, user_key, email, cert_exp_ms)
    return cert + "~" + assertion(user_key, audience, exp_ms)


def flip_signature_byte(part):
    """The same JWS with one byte of its signature changed."""
    head, payload, sig = part.split(".")
    raw = bytearray(unb64(sig))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64(bytes(raw))}"


class TestCA:
    """A certificate authority of the test run, and server certificates for any host names."""

    def __init__(self, directory):
        self.directory = directory
        self.key = rsa.generate_private_key(65537, 2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "presenced test CA")])
        start = datetime.datetime.utcnow() - datetime.timedelta(days=1)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = os.path.join(directory, "ca.pem")
        with open(self.ca_file, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))

    def server_files(self, hosts):
        key = rsa.generate_private_key(65537, 2048)
        start = datetime.datetime.utcnow() - datetime.timedelta(days=1)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path = os.path.join(self.directory, f"{hosts[0]}.crt")
        key_path = os.path.join(self.directory, f"{hosts[0]}.key")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
        return cert_path, key_path


class HTTPSServer:
    """A real HTTPS server on 127.0.0.1 answering from a table, with a log of what it was asked.
    routes: {(host, path): (status, body_bytes_or_str[, content_type])} or a callable(handler,
    body) that returns (status, body); a path is matched without its query (browserid-local-verify
    asks for /.well-known/browserid?domain=...). Answers are application/json unless a route says
    otherwise."""

    def __init__(self, ca, hosts, routes=None, handler=None):
        self.routes = dict(routes or {})
        self.handler = handler
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                host = (self.headers.get("Host") or "").split(":")[0]
                with outer.lock:
                    outer.requests.append({"method": method, "host": host, "path": self.path,
                                           "headers": dict(self.headers), "body": body})
                content_type = "application/json"
                if outer.handler is not None:
                    status, reply = outer.handler(self, body)
                else:
                    route = outer.routes.get((host, self.path)) or \
                        outer.routes.get((host, self.path.split("?", 1)[0])) or (404, "not found")
                    status, reply = route[:2]
                    content_type = route[2] if len(route) > 2 else content_type
                if status is None:
                    return  # the handler chose not to answer
                reply = reply.encode() if isinstance(reply, str) else reply
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

        cert, key = ca.server_files(hosts)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.hosts = hosts
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def connect_to(self):
        """connect_to lines that send presenced's requests for these hosts here."""
        return "\n".join(f"connect_to {h}:443:127.0.0.1:{self.port}" for h in self.hosts)

    def count(self, path=None):
        with self.lock:
            return len([r for r in self.requests if path is None or r["path"] == path])

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def support_document(key):
    return json.dumps({"public-key": key.public_json(), "authentication": "/auth",
                       "provisioning": "/provision"})


def principal_of(backed_assertion):
    """The e-mail a backed assertion claims (read without any check, as a stand-in verifier)."""
    cert = backed_assertion.split("~")[-2]
    return json.loads(unb64(cert.split(".")[1]))["principal"]["email"]
