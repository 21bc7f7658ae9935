"""Apps and grants over HTTP (SPEC.md §4): sign-in with an assertion, sessions and CSRF, app
registration with a domain proof fetched from a real local HTTPS server, grants and PUIDs,
revocation, /getApps and polling."""
import json
import re
import urllib.parse
import urllib.request

from web_client import Browser
from web_fixtures import APP_DOMAIN, action, activated_app, app_page, domain_key, register, signed_in

def test_sign_in_sets_a_session_cookie_and_security_headers(site, ident):
    server = site()
    browser = Browser(server.port)
    status, headers, text = browser.get("/login")
    assert status == 200
    assert headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert "<script" not in text and "http://" not in text.split("</style>")[1]
    status, headers, _ = browser.sign_in(ident("alice@example.com", server.origin))
    assert status == 303 and headers["location"] == "/account"
    cookie = headers["set-cookie"]
    assert cookie.startswith("presenced_session=") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Secure" not in cookie  # plain HTTP here
    status, _, text = browser.get("/account")
    assert status == 200 and "alice@example.com" in text
    # Sign-out needs the CSRF token, then the session is gone.
    assert browser.post("/logout", {})[0] == 403
    status, headers, _ = browser.post("/logout", {"csrf": browser.csrf()})
    assert status == 303 and headers["location"] == "/login"
    status, headers, _ = browser.get("/account")
    assert status == 303 and headers["location"].startswith("/login?next=")


def test_sign_in_refusals(site, ident):
    server = site()
    browser = Browser(server.port)
    # An assertion made for another site.
    status, _, text = browser.sign_in(ident("alice@example.com", "https://elsewhere.test"))
    assert status == 403 and "audience" in text
    # No login token (a cross-site form post).
    other = Browser(server.port)
    status, _, _ = other.post("/login", {"assertion": ident("a@example.com", server.origin),
                                         "csrf": "forged"})
    assert status == 403
    # next may only be a path on this site.
    status, headers, _ = Browser(server.port).sign_in(ident("alice@example.com", server.origin),
                                                      next_path="//evil.test/x")
    assert status == 303 and headers["location"] == "/account"


def test_register_validate_activate_and_poll(site, ident, domain):
    server = site()
    dev = signed_in(server, ident, "dev@example.com")
    appid = register(dev)
    assert re.fullmatch(r"[0-9a-f-]{36}", appid)
    key = domain_key(dev, appid)
    # Activation needs a validated domain; a wrong proof does not validate.
    assert action(dev, appid, "activate")[0] == 409
    domain.proof = "not the key"
    assert action(dev, appid, "validate")[0] == 422
    domain.proof = key
    assert action(dev, appid, "validate")[0] == 303
    assert domain.server.requests[-1]["path"] == "/__presence"
    status, _, text = action(dev, appid, "activate")
    api_key = re.search(r'id="api-key">([^<]+)<', text).group(1)
    # Shown once: the app's page never shows it again.
    assert api_key not in app_page(dev, appid)
    status, _, body = dev.get(f"/myapps/{appid}/status?uid=x",
                              headers={"Authorization": f"Bearer {api_key}"})
    assert status == 200 and json.loads(body) == {"statuses": []}
    assert dev.get(f"/myapps/{appid}/status", headers={"Authorization": "Bearer nope"})[0] == 401
    # A rotated key replaces the old one.
    status, _, text = action(dev, appid, "rotate-key")
    new_key = re.search(r'id="api-key">([^<]+)<', text).group(1)
    assert dev.get(f"/myapps/{appid}/status",
                   headers={"Authorization": f"Bearer {api_key}"})[0] == 401
    assert dev.get(f"/myapps/{appid}/status",
                   headers={"Authorization": f"Bearer {new_key}"})[0] == 200
    assert action(dev, appid, "deactivate")[0] == 303
    assert dev.get(f"/myapps/{appid}/status",
                   headers={"Authorization": f"Bearer {new_key}"})[0] == 403


def test_validation_refuses_private_addresses_unless_configured(site, ident, domain):
    server = site(private=False)
    dev = signed_in(server, ident, "dev@example.com")
    appid = register(dev)
    domain.proof = domain_key(dev, appid)
    status, _, text = action(dev, appid, "validate")
    assert status == 502 and "not public" in text


def test_only_the_owner_manages_an_app(site, ident, domain):
    server = site()
    dev = signed_in(server, ident, "dev@example.com")
    appid = register(dev)
    other = signed_in(server, ident, "mallory@example.com")
    assert other.get(f"/myapps/{appid}")[0] == 403
    assert other.post(f"/myapps/{appid}/delete", {"csrf": other.csrf()})[0] == 403
    # Missing CSRF token.
    assert dev.post(f"/myapps/{appid}/delete", {})[0] == 403
    assert dev.request("DELETE", f"/myapps/{appid}")[0] == 403
    status, _, _ = dev.request("DELETE", f"/myapps/{appid}",
                               headers={"X-CSRF-Token": dev.csrf()})
    assert status == 303
    assert dev.get(f"/myapps/{appid}")[0] == 404


def consent(browser, appid, redirect, userstring="bob"):
    query = urllib.parse.urlencode({"redirect": redirect, "id": userstring})
    return browser.forms(f"/grant/{appid}?{query}")


def test_grant_redirects_with_the_puid_and_revoke(site, ident, domain):
    server = site()
    dev = signed_in(server, ident, "dev@example.com")
    appid, api_key = activated_app(dev, domain)
    user = signed_in(server, ident, "bob@example.com")
    redirect = f"https://{APP_DOMAIN}/back?room=1#top"
    status, forms, text = consent(user, appid, redirect)
    assert status == 200
    assert "Allow <strong>Chat</strong>" in text and "bob" in text
    fields = next(f["fields"] for f in forms if f["action"] == f"/grant/{appid}")
    assert fields["redirect"] == redirect
    status, headers, _ = user.post(f"/grant/{appid}", {**fields, "decision": "allow"})
    assert status == 303
    location = headers["location"]
    match = re.fullmatch(r"https://chat\.test/back\?room=1&Presence-UID=([0-9a-f-]{36})#top",
                         location)
    assert match, location
    puid = match.group(1)
    # The same PUID on a re-grant; deny leaves the redirect alone.
    assert user.post(f"/grant/{appid}", {**fields, "decision": "allow"})[1]["location"] == location
    assert user.post(f"/grant/{appid}", {**fields, "decision": "deny"})[1]["location"] == redirect
    status, _, body = user.get("/getApps")
    assert json.loads(body) == {"apps": [{"name": "Chat", "appid": appid, "uid": puid}]}
    status, _, body = dev.get(f"/myapps/{appid}/status?uid={puid}&uid=nope",
                              headers={"Authorization": f"Bearer {api_key}"})
    # Never seen: offline, since not known.
    assert json.loads(body) == {"statuses": [{"uid": puid, "status": "offline", "since": None}]}
    # Revoke from /account, then a new grant gets a new PUID.
    status, forms, text = user.forms("/account")
    assert "Chat" in text
    revoke = next(f["fields"] for f in forms if f["action"] == f"/revoke/{appid}")
    assert user.post(f"/revoke/{appid}", revoke)[0] == 303
    assert json.loads(user.get("/getApps")[2]) == {"apps": []}
    _, headers, _ = user.post(f"/grant/{appid}", {**fields, "decision": "allow"})
    assert puid not in headers["location"] and "Presence-UID=" in headers["location"]


def test_an_explicit_443_is_the_same_origin(site, ident, domain):
    server = site()
    dev = signed_in(server, ident, "dev@example.com")
    appid, _ = activated_app(dev, domain)
    user = signed_in(server, ident, "bob@example.com")
    for redirect in (f"https://{APP_DOMAIN}:443/back?room=2", "https://CHAT.test:443",
                     f"https://{APP_DOMAIN}:443#top"):
        status, forms, _ = consent(user, appid, redirect)
        assert status == 200, redirect
        fields = next(f["fields"] for f in forms if f["action"] == f"/grant/{appid}")
        status, headers, _ = user.post(f"/grant/{appid}", {**fields, "decision": "allow"})
        assert status == 303, redirect
        base, _, fragment = redirect.partition("#")
        sep = "&" if "?" in base else "?"
        assert re.fullmatch(re.escape(base + sep) + r"Presence-UID=[0-9a-f-]{36}" +
                            (re.escape("#" + fragment) if fragment else ""),
                            headers["location"]), headers["location"]


def test_grant_refusals(site, ident, domain):
    server = site()
    dev = signed_in(server, ident, "dev@example.com")
    appid, _ = activated_app(dev, domain)
    user = signed_in(server, ident, "bob@example.com")
    for redirect in ("https://evil.test/x", "http://chat.test/x", "https://chat.test.evil.test/",
                     "https://user@chat.test/", "javascript:alert(1)", "https://chat.test:8443/x",
                     "https://chat.test:444/", "https://chat.test:443@evil.test/",
                     "https://user:pw@chat.test:443/", "https://evil.test:443/",
                     "https://xchat.test:443/", "https://chat.test:/x", "https://chat.test:0443/",
                     "https://chat.test:443:443/", "https://chat.test./", "http://chat.test:443/"):
        assert consent(user, appid, redirect)[0] == 400, redirect
        status, headers, _ = user.post(f"/grant/{appid}", {
            "redirect": redirect, "decision": "allow", "csrf": user.csrf()})
        assert status == 400 and "location" not in headers, redirect
    good = f"https://{APP_DOMAIN}/back"
    assert user.post(f"/grant/{appid}", {"redirect": good, "decision": "allow"})[0] == 403
    assert consent(user, "00000000-0000-4000-8000-000000000000", good)[0] == 400
    unvalidated = register(dev, "Draft")
    assert consent(user, unvalidated, good)[0] == 400
    # Not signed in: the consent page sends to /login and back.
    query = urllib.parse.urlencode({"redirect": good, "id": "bob"})
    status, headers, _ = Browser(server.port).get(f"/grant/{appid}?{query}")
    assert status == 303 and headers["location"].startswith("/login?next=%2Fgrant%2F")


def test_an_operators_app_on_loopback_may_redirect_over_http_to_any_port(site, ident):
    """RFC 8252 §7.3's loopback redirects: an app the operator provisioned on localhost or
    127.0.0.1 (a web app on a developer's machine, as the chat demo is) is sent back over http,
    to any port of exactly that host; every other app stays https on its own origin."""
    server = site()
    user = signed_in(server, ident, "bob@example.com")
    made = {}
    for domain_name in ("127.0.0.1", "localhost"):
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.admin_port}/apps", method="POST",
            data=json.dumps({"name": "Demo", "domain": domain_name}).encode())
        with urllib.request.urlopen(request, timeout=10) as r:
            made[domain_name] = json.loads(r.read())["appid"]
    allowed = {"127.0.0.1": ["http://127.0.0.1:8290/joined", "http://127.0.0.1/",
                             "https://127.0.0.1:9/x", "HTTP://127.0.0.1:8290?x=1"],
               "localhost": ["http://localhost:8290/joined", "http://LOCALHOST:1/",
                             "https://localhost/"]}
    refused = {"127.0.0.1": ["http://localhost:8290/", "http://127.0.0.2:8290/",
                             "http://127.0.0.1.evil.test/", "http://user@127.0.0.1:8290/",
                             "http://127.0.0.1:8290@evil.test/", "ftp://127.0.0.1/",
                             "http://127.0.0.1:0/", "http://127.0.0.1:x/"],
               "localhost": ["http://127.0.0.1:8290/", "http://localhost.evil.test/",
                             "http://evil.test/#http://localhost/"]}
    for domain_name, appid in made.items():
        for redirect in allowed[domain_name]:
            status, forms, _ = consent(user, appid, redirect)
            assert status == 200, redirect
            fields = next(f["fields"] for f in forms if f["action"] == f"/grant/{appid}")
            status, headers, _ = user.post(f"/grant/{appid}", {**fields, "decision": "allow"})
            assert status == 303 and "Presence-UID=" in headers["location"], redirect
            assert headers["location"].startswith(redirect.split("?")[0]), headers["location"]
        for redirect in refused[domain_name]:
            assert consent(user, appid, redirect)[0] == 400, redirect
