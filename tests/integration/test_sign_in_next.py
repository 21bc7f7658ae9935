"""SPEC 6: the sign-in's next is a local path only. Browsers strip tab, LF and CR anywhere in a
URL and read a backslash as a slash, so "/<tab>/evil.test" is "//evil.test", another site: every
such next, however it is encoded, sends the user to /account instead. (The same in a real
browser: test_pages_chromium.py.)"""
import http.client
import urllib.parse

from web_client import Browser

# Values as the form field carries them once decoded.
REFUSED = [
    "/\t/evil.test/x", "/\n/evil.test/x", "/\r/evil.test/x", "/\r\n/evil.test/x",
    "\t//evil.test/x", "/\t\\evil.test/x", "/\\evil.test/x", "//evil.test/x", "\\\\evil.test/x",
    "\\/evil.test/x", "https://evil.test/x", "javascript:alert(1)", "evil.test", " /x",
    # Escapes a proxy or an app decoding paths again would turn into one of the above.
    "/%09/evil.test/x", "/%0a/evil.test/x", "/%0D/evil.test/x", "/%2F%2Fevil.test/x",
    "/%2f/evil.test/x", "/%5Cevil.test/x", "/%5c%5cevil.test/x",
    "/a\x7f", "/a\x01b", "/a\u0085b", "/" + "a" * 1500,
]
ALLOWED = [
    "/account", "/myapps", "/a//b",
    "/grant/1f0c?redirect=https%3A%2F%2Fchat.test%2Fwelcome&id=erin",
]


def login_form(browser):
    status, forms, _ = browser.forms("/login")
    assert status == 200
    return next(f["fields"] for f in forms if f["action"] == "/login")


def post_raw(browser, body):
    """POST /login with the body as given (its encoding is the point of the test)."""
    conn = http.client.HTTPConnection("127.0.0.1", browser.port, timeout=15)
    cookies = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    conn.request("POST", "/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookies})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, response.getheader("location")


def sign_in_with_next(server, ident, encoded_next):
    browser = Browser(server.port)
    fields = login_form(browser)
    body = "&".join([
        "assertion=" + urllib.parse.quote(ident("alice@example.com", server.origin), safe=""),
        "csrf=" + urllib.parse.quote(fields["csrf"], safe=""),
        "next=" + encoded_next])
    return post_raw(browser, body)


def test_a_next_a_browser_reads_as_another_site_goes_to_account(site, ident):
    server = site()
    for value in REFUSED:
        status, location = sign_in_with_next(server, ident, urllib.parse.quote(value, safe=""))
        assert (status, location) == (303, "/account"), (value, location)
    # Double-encoded escapes in the body: the field holds "/%2F%2F..." once decoded.
    for encoded in ("/%252F%252Fevil.test", "/%2509/evil.test", "/%255Cevil.test"):
        assert sign_in_with_next(server, ident, encoded) == (303, "/account"), encoded


def test_a_local_next_is_followed(site, ident):
    server = site()
    for value in ALLOWED:
        status, location = sign_in_with_next(server, ident, urllib.parse.quote(value, safe=""))
        assert (status, location) == (303, value), value


def test_the_login_page_does_not_carry_a_foreign_next(site):
    """GET /login?next=... puts next in the form: a foreign one is replaced there already."""
    server = site()
    for value in REFUSED[:12] + ["/%2F%2Fevil.test", "/%09/evil.test"]:
        status, forms, _ = Browser(server.port).forms("/login?next=" +
                                                      urllib.parse.quote(value, safe=""))
        assert status == 200
        fields = next(f["fields"] for f in forms if f["action"] == "/login")
        # lws cuts a query value at a decoded CR or LF: what is left ("/") is local.
        assert fields["next"] in ("/account", "/"), (value, fields)
    _, forms, _ = Browser(server.port).forms("/login?next=%2Fmyapps")
    assert next(f["fields"] for f in forms if f["action"] == "/login")["next"] == "/myapps"
