"""Health endpoints, the admin endpoint and its Prometheus text."""
import http.client
import json
import re

from prometheus_client.parser import text_string_to_metric_families

from conftest import first_line, http_get


def test_heartbeat_is_ok_while_the_store_works(server):
    status, headers, body = http_get(server.url + "/__heartbeat__")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"status": "ok", "checks": {"store": "ok", "store_writes": "ok"},
                                "details": {}}


def test_lbheartbeat_and_version(server):
    status, _, body = http_get(server.url + "/__lbheartbeat__")
    assert status == 200
    status, _, body = http_get(server.url + "/__version__")
    assert status == 200
    version = json.loads(body)
    assert set(version) == {"source", "version", "commit", "build"}
    assert version["version"]
    # Where the source is: the build's SOURCE_URL (its git remote, else the tree built).
    assert re.match(r"(https?|git|ssh|file)://\S+$|[^/\s]+@[^:\s]+:\S+$", version["source"]), version


def test_version_names_the_configured_source_url(make_server):
    server = make_server(source_url='https://example.test/presenced.git?"quoted"').start()
    status, _, body = http_get(server.url + "/__version__")
    assert status == 200
    assert json.loads(body)["source"] == 'https://example.test/presenced.git?"quoted"'


def test_unknown_path_is_a_json_404(server):
    status, headers, body = http_get(server.url + "/nothing-here")
    assert status == 404
    assert json.loads(body)["error"]
    assert headers.get("x-content-type-options") == "nosniff"


def test_admin_is_not_on_the_public_port(server):
    status, _, _ = http_get(server.url + "/metrics")
    assert status == 404
    status, _, _ = http_get(server.url + "/status")
    assert status == 404
    # Nor any of what presencectl(1) asks the admin endpoint: each is a 404 on the public port,
    # and nothing was done (no drain, no notification queued, no app made).
    body = json.dumps({"source": "x", "message": "y", "name": "App", "domain": "app.test"})
    for method, path in (("POST", "/drain"), ("GET", "/apps"), ("POST", "/apps"),
                         ("GET", "/apps/00000000-0000-4000-8000-000000000000"),
                         ("GET", "/users/alice@example.com"),
                         ("POST", "/users/alice@example.com/notifications"),
                         ("POST", "/users/alice@example.com/kick")):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request(method, path, body=body if method == "POST" else None,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 404, (method, path, response.status)
    assert server.status()["state"] == "running"
    assert json.loads(server.admin("/apps"))["apps"] == []
    assert '"pending_notifications":0' in server.admin("/users/alice@example.com")


def test_status_lists_the_workers(server):
    status = server.status()
    assert status["state"] == "running"
    assert len(status["workers"]) == 2
    assert sorted(w["slot"] for w in status["workers"]) == [0, 1]
    assert all(w["pid"] > 0 and w["state"] == "ready" for w in status["workers"])


def test_metrics_is_valid_prometheus_text(server):
    for _ in range(5):
        http_get(server.url + "/__lbheartbeat__")
    text = server.admin("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("presenced_workers", "presenced_connections", "presenced_websockets",
                 "presenced_worker_restarts", "presenced_store_map_size_bytes",
                 "presenced_http_requests", "presenced_build_info"):
        assert name in families, f"{name} missing from /metrics:\n{text}"
    ready = [s for s in families["presenced_workers"].samples if s.labels["state"] == "ready"]
    assert ready[0].value == 2
    assert families["presenced_store_map_size_bytes"].samples[0].value > 0
    # Every line is a comment or "name{labels} value": nothing a scraper would choke on.
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or \
            line.split(" ")[-1].replace(".", "", 1).isdigit(), line


def test_admin_unknown_path_and_method(server):
    status, _, _ = http_get(f"http://127.0.0.1:{server.admin_port}/nothing")
    assert status == 404


def test_head_sends_headers_only_and_keep_alive_goes_on(server):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("HEAD", "/__heartbeat__")
    head = conn.getresponse()
    assert head.status == 200 and head.read() == b""
    assert int(head.getheader("content-length")) > 0
    conn.request("GET", "/__lbheartbeat__")
    get = conn.getresponse()
    assert get.status == 200 and get.read() == b"{}"


def test_post_to_a_health_endpoint_is_405(server):
    import urllib.request
    request = urllib.request.Request(server.url + "/__heartbeat__", data=b"a=b", method="POST")
    try:
        urllib.request.urlopen(request, timeout=5)
        raise AssertionError("POST accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 405


def test_an_admin_body_over_64_kib_is_413(server):
    """presenced(8): the admin endpoint reads at most 64 KiB of a body (libevent's 413)."""
    def post(size):
        body = json.dumps({"source": "ops", "message": "x" * size})
        conn = http.client.HTTPConnection("127.0.0.1", server.admin_port, timeout=10)
        conn.request("POST", "/users/big%40example.com/notifications", body=body,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode()
        conn.close()
        return response.status, text
    assert post(70 * 1024)[0] == 413
    status, text = post(60 * 1024)  # read, then refused by the notification's own limit
    assert status == 400 and json.loads(text)["error"], text
    assert '"pending_notifications":0' in server.admin("/users/big@example.com")


def test_admin_request_headers_over_16_kib_are_refused(server):
    """The admin endpoint keeps at most 16 KiB of a request's headers (libevent buffered any
    amount: 1 MB of headers was read and answered 200)."""
    def get(header_bytes):
        return first_line(server.admin_port, b"GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: " +
                          b"a" * header_bytes + b"\r\n\r\n")
    assert get(8 * 1024) == b"HTTP/1.1 200 OK"
    assert get(1024 * 1024) != b"HTTP/1.1 200 OK"
    assert server.status()["state"] == "running"


def test_the_public_ports_request_limits(server):
    """presence(7): a request's line and headers may take about 4 KB (a longer one is closed
    without an answer), a body 32 KiB (a larger one gets 413)."""
    def get(query_bytes):
        return first_line(server.port, b"GET /__lbheartbeat__?q=" + b"a" * query_bytes +
                          b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert get(3000) == b"HTTP/1.1 200 OK"
    assert get(5000) == b""
    body = b"csrf=x&next=%2F&pad=" + b"a" * (40 * 1024)
    assert first_line(server.port, b"POST /login HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body) == \
        b"HTTP/1.1 413 Request Entity Too Large"
    assert get(10) == b"HTTP/1.1 200 OK"

