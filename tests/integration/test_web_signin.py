"""Web sign-in beside BrowserID (SPEC.md §3.1): through a real OpenID provider (oidc_login: the
authorization code flow with PKCE, the state bound to this browser, the nonce checked) and, with
the development issuer on, "Sign in as…". The provider is panva's oidc-provider (tests/node/op.mjs);
its own login and consent pages are gone through as a user would."""
import os
import re
import socket
import tempfile
import urllib.parse

import pytest

import idp
import oidc
import op
from web_client import Browser

WEB = {"client_id": "presenced-web", "client_secret": "web secret+/=",
       "id_token_signed_response_alg": "ES256", "grant_types":
       ["authorization_code"], "response_types": ["code"]}


@pytest.fixture(scope="module")
def tmp():
    with tempfile.TemporaryDirectory(prefix="presenced-signin-") as d:
        yield d


@pytest.fixture(scope="module")
def ca(tmp):
    return idp.TestCA(tmp)


@pytest.fixture(scope="module")
def forge():
    f = oidc.Forge()
    yield f
    f.close()


@pytest.fixture
def signin(make_server, ca, forge, tmp):
    """A presenced whose /login offers the provider, and that provider (its client registered
    with presenced's redirect URI)."""
    started = []

    def factory(provider_up=True, **settings):
        server = make_server(**settings)
        client = dict(WEB, redirect_uris=[f"{server.url}/login/oidc"])
        workdir = tempfile.mkdtemp(dir=tmp)
        provider = op.OpenIDProvider(ca, workdir, [forge.key("ES256", "ec-web").private],
                                     [client])
        started.append(provider)
        secret = os.path.join(workdir, "client-secret")
        with open(secret, "w") as f:
            f.write(WEB["client_secret"] + "\n")
        connect_to = provider.connect_to()
        if not provider_up:
            provider.stop()
        server.write_config(public_url=server.url, extra="\n".join([
            f"oidc_login {op.ISSUER} {WEB['client_id']} {secret} Example OP",
            f"ca_file {ca.ca_file}", connect_to]))
        server.start()
        return server, provider, client
    yield factory
    for p in started:
        p.stop()


def login_forms(browser, next_path="/account"):
    status, forms, text = browser.forms(f"/login?next={urllib.parse.quote(next_path)}")
    assert status == 200
    return forms, text


def through_provider(server, provider, browser, login="alice@example.com", next_path="/account",
                     abort=False, follow=True, nonce=None):
    """Starts the sign-in on presenced, goes through the provider's login and consent pages, and
    returns presenced's answer to the provider's redirect. nonce: sent to the provider instead
    of the one presenced asked for (the provider then puts it in the ID token)."""
    forms, _ = login_forms(browser, next_path)
    fields = next(f["fields"] for f in forms if f["action"] == "/login/oidc/start")
    status, headers, _ = browser.post("/login/oidc/start", fields)
    assert status == 303, status
    location = headers["location"]
    assert location.startswith(f"{op.ISSUER}/auth?"), location
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["scope"] == ["openid email"]
    assert query["redirect_uri"] == [f"{server.url}/login/oidc"]
    if nonce is not None:
        query["nonce"] = [nonce]
        location = urllib.parse.urlsplit(location)._replace(
            query=urllib.parse.urlencode(query, doseq=True)).geturl()
    agent = op.UserAgent(provider)
    target = urllib.parse.urlsplit(location)._replace(scheme="", netloc="").geturl()
    method, form = "GET", None
    for _ in range(12):
        status, headers, body = agent.request(method, target, form)
        method, form = "GET", None
        if status in (302, 303):
            location = headers["location"]
            if location.startswith(server.url):
                path = location[len(server.url):]
                return (browser.get(path) if follow else None), path
            target = urllib.parse.urlsplit(location)._replace(scheme="", netloc="").geturl()
            continue
        assert status == 200, re.sub(r"<style>.*?</style>", "", body, flags=re.S)[:1500]
        prompt = re.search(r'name="prompt" value="(\w+)"', body).group(1)
        action = urllib.parse.urlsplit(re.search(r'action="([^"]+)"', body).group(1)).path
        if abort:
            method, target = "GET", action + "/abort"
            continue
        method, target, form = "POST", action, {"prompt": prompt}
        if prompt == "login":
            form.update(login=login, password="any")
    raise AssertionError("the provider never sent the browser back")


def test_the_login_page_lists_the_provider(signin):
    server, _, _ = signin()
    forms, text = login_forms(Browser(server.port))
    assert "Sign in with Example OP" in text
    actions = [f["action"] for f in forms]
    assert "/login/oidc/start" in actions
    assert "/login" not in actions  # BrowserID is not set up here
    assert "/login/dev" not in actions


def test_the_browserid_form_stays_beside_the_provider_where_browserid_is_set_up(signin):
    server, _, _ = signin()
    server.stop()
    server.write_config(extra=server.settings["extra"] + f"\naudience {server.url}")
    server.start()
    forms, text = login_forms(Browser(server.port))
    assert "Sign in with Example OP" in text
    actions = [f["action"] for f in forms]
    assert "/login/oidc/start" in actions and "/login" in actions, actions


def test_sign_in_through_the_provider(signin):
    server, provider, _ = signin()
    browser = Browser(server.port)
    (status, headers, _), _ = through_provider(server, provider, browser, next_path="/myapps")
    assert status == 303 and headers["location"] == "/myapps", (status, headers)
    status, _, text = browser.get("/account")
    assert status == 200 and "alice@example.com" in text
    assert "presenced_oidc" not in browser.cookies  # the flow's cookie is gone
    assert provider.count("/token") == 1


def test_the_callback_in_another_browser_is_refused(signin):
    server, provider, _ = signin()
    victim, attacker = Browser(server.port), Browser(server.port)
    # The attacker starts a sign-in and stops before presenced redeems the code...
    _, path = through_provider(server, provider, attacker, login="mallory@example.com",
                               follow=False)
    # ...the same callback URL in the victim's browser (whose cookie is another's, or none).
    login_forms(victim)
    status, _, text = victim.get(path)
    assert status == 400 and "another browser" in text
    victim.cookies["presenced_oidc"] = attacker.cookies.get("presenced_oidc", "x") + "x"
    status, _, _ = victim.get(path)
    assert status in (400, 403)
    status, _, text = victim.get("/account")
    assert status == 303  # not signed in
    assert provider.count("/token") == 0  # the code was never redeemed
    # In the attacker's own browser the same answer does sign in: it is the state check alone
    # that told the two apart.
    status, headers, _ = attacker.get(path)
    assert status == 303 and headers["location"] == "/account"


def test_a_tampered_state_is_refused(signin):
    server, provider, _ = signin()
    browser = Browser(server.port)
    forms, _ = login_forms(browser)
    fields = next(f["fields"] for f in forms if f["action"] == "/login/oidc/start")
    browser.post("/login/oidc/start", fields)
    status, _, text = browser.get("/login/oidc?code=abc&state=" + "A" * 43)
    assert status == 403 and "does not belong to this browser" in text
    assert provider.count("/token") == 0


def test_an_answer_naming_another_issuer_is_refused(signin):
    """RFC 9207: a provider that names itself in its answer (iss) must be the one this sign-in
    went to, or a code from another provider (mix-up) would be redeemed at this one."""
    server, provider, _ = signin()

    def answer_naming(browser, issuer):
        _, path = through_provider(server, provider, browser, follow=False)
        split = urllib.parse.urlsplit(path)
        query = [(k, v) for k, v in urllib.parse.parse_qsl(split.query) if k != "iss"]
        return browser.get(split._replace(query=urllib.parse.urlencode(
            query + [("iss", issuer)])).geturl())
    browser = Browser(server.port)
    status, _, text = answer_naming(browser, "https://other-op.test")
    assert status == 403 and "another provider" in text, (status, text)
    assert provider.count("/token") == 0  # the code was never redeemed
    assert browser.get("/account")[0] == 303  # not signed in
    # The same answer naming the provider the sign-in went to is taken.
    browser = Browser(server.port)
    status, headers, _ = answer_naming(browser, op.ISSUER)
    assert status == 303 and headers["location"] == "/account", (status, headers)
    assert provider.count("/token") == 1


def test_an_id_token_for_another_nonce_is_refused(signin):
    """The state is this browser's, the code is redeemed, but the ID token names a nonce other
    than the one this sign-in sent (a token minted for another flow): no session."""
    server, provider, _ = signin()
    browser = Browser(server.port)
    (status, _, text), _ = through_provider(server, provider, browser, nonce="n-of-another-flow")
    assert provider.count("/token") == 1  # redeemed: only the nonce tells it apart
    assert status == 403 and "could not be verified" in text, (status, text)
    assert browser.get("/account")[0] == 303


def test_the_user_declines_at_the_provider(signin):
    server, provider, _ = signin()
    browser = Browser(server.port)
    (status, _, text), _ = through_provider(server, provider, browser, abort=True)
    assert status == 403 and "access_denied" in text
    assert provider.count("/token") == 0


def test_an_unverified_email_gets_no_session(signin):
    server, provider, _ = signin()
    browser = Browser(server.port)
    (status, _, text), _ = through_provider(server, provider, browser,
                                            login="unverified-eve@example.com")
    assert status == 403 and "could not be verified" in text
    assert browser.get("/account")[0] == 303


def test_an_unreachable_provider(signin):
    server, _, _ = signin(provider_up=False, verify_timeout="2s")
    browser = Browser(server.port)
    forms, _ = login_forms(browser)
    fields = next(f["fields"] for f in forms if f["action"] == "/login/oidc/start")
    status, _, text = browser.post("/login/oidc/start", fields)
    assert status == 503 and "cannot be reached" in text


def test_sign_in_as_with_the_development_issuer(make_server):
    server = make_server(dev_issuer="on").start()
    browser = Browser(server.port)
    forms, text = login_forms(browser, "/myapps")
    assert "Sign in as" in text and "anyone can sign in as anyone" in text
    assert "/login" not in [f["action"] for f in forms]
    fields = next(f["fields"] for f in forms if f["action"] == "/login/dev")
    status, _, text = browser.post("/login/dev", dict(fields, email="not an address"))
    assert status == 400 and "not an e-mail address" in text
    # The page comes again with a new form token.
    from web_client import FormReader
    reader = FormReader()
    reader.feed(text)
    fields = next(f["fields"] for f in reader.forms if f["action"] == "/login/dev")
    status, headers, _ = browser.post("/login/dev", dict(fields, email="dev@example.com"))
    assert status == 303 and headers["location"] == "/myapps"
    assert "dev@example.com" in browser.get("/account")[2]
    # Without the login form's token, nothing.
    other = Browser(server.port)
    assert other.post("/login/dev", {"email": "dev@example.com", "csrf": "x"})[0] == 403


def test_no_sign_in_as_without_the_development_issuer(make_server):
    server = make_server().start()
    browser = Browser(server.port)
    forms, text = login_forms(browser)
    assert "Sign in as" not in text and "/login" in [f["action"] for f in forms]
    assert browser.post("/login/dev", {"email": "dev@example.com"})[0] == 404


def test_config_checks_of_oidc_login(tmp_path):
    import subprocess
    from conftest import BINARY
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")

    def check(text):
        path = tmp_path / "p.conf"
        path.write_text(text)
        r = subprocess.run([BINARY, "-t", "-c", str(path)], capture_output=True, text=True,
                           timeout=30)
        return r.returncode, r.stderr.replace(str(path), "FILE")
    assert check(f"oidc_login https://op.test web {secret} Mozilla accounts\n")[0] == 0
    assert check(f"oidc_login https://op.test web {secret}\n")[0] == 0
    rc, err = check(f"\noidc_login https://op.test web {empty}\n")
    assert rc == 1 and err.startswith(f"FILE:2: oidc_login: {empty}: no secret"), err
    rc, err = check("oidc_login https://op.test web /nonexistent\n")
    assert rc == 1 and err.startswith("FILE:1: oidc_login: /nonexistent:"), err
    rc, err = check(f"oidc_login http://op.test web {secret}\n")
    assert rc == 1 and err.startswith("FILE:1: oidc_login: 'http://op.test' must be"), err
    jwks = tmp_path / "op.jwks"
    jwks.write_text('{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}')
    rc, err = check(f"oidc_audience web\noidc_issuer https://op.test {jwks}\n"
                    f"oidc_login https://op.test web {secret}\n")
    assert rc == 1 and "FILE:3: oidc_login: https://op.test has a JWKS_FILE" in err, err
    assert check(f"oidc_audience web\noidc_issuer https://op.test\n"
                 f"oidc_login https://op.test web {secret}\n")[0] == 0
    rc, err = check("oidc_login https://op.test web\n")
    assert rc == 1 and "expected ISSUER CLIENT_ID SECRET_FILE [LABEL]" in err, err


def test_stopping_while_a_sign_in_waits_on_the_provider(make_server, ca, tmp_path):
    # The provider accepts and never answers; the server stops meanwhile: nothing the sign-in
    # held may be used once it is gone (the sanitizers watch the log).
    import signal
    import threading
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    silent.settimeout(20)
    try:
        secret = tmp_path / "secret"
        secret.write_text("s\n")
        server = make_server(verify_timeout="30s", workers=1)
        server.write_config(public_url=server.url, extra="\n".join([
            f"oidc_login {op.ISSUER} web {secret}", f"ca_file {ca.ca_file}",
            f"connect_to {op.HOST}:443:127.0.0.1:{silent.getsockname()[1]}"]))
        server.start()
        browser = Browser(server.port)
        forms, _ = login_forms(browser)
        fields = next(f["fields"] for f in forms if f["action"] == "/login/oidc/start")

        def start():
            try:
                browser.post("/login/oidc/start", fields)
            except OSError:
                pass  # the server stopped: no answer
        threading.Thread(target=start, daemon=True).start()
        connection, _ = silent.accept()  # the worker now waits on the provider
        server.signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0
        connection.close()
    finally:
        silent.close()
