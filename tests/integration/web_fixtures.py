"""Fixtures and helpers of the web and AppService tests: a trusted identity provider, the test
CA, an app's domain served over HTTPS, a presenced configured for them, and the steps a developer
takes (sign in, register, validate, activate)."""
import json
import re

import pytest

import idp
from web_client import Browser

APP_DOMAIN = "chat.test"


@pytest.fixture(scope="module")
def ident(tmp_path_factory):
    issuer, user = idp.RSKey(2048), idp.DSKey(1024)
    key_file = tmp_path_factory.mktemp("issuer") / "idp.json"
    key_file.write_text(json.dumps(issuer.public_json()))

    def assertion(email, audience):
        return idp.backed(email, issuer, user, audience, iss="idp.test")
    assertion.key_file = str(key_file)
    return assertion


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return idp.TestCA(str(tmp_path_factory.mktemp("ca")))


class AppDomain:
    """The app's domain: a real HTTPS server whose /__presence the test sets."""

    def __init__(self, ca):
        self.proof = ""
        self.server = idp.HTTPSServer(ca, [APP_DOMAIN, "other.test"], handler=self.answer)

    def answer(self, handler, body):
        if handler.path == "/__presence":
            return 200, self.proof
        return 404, "not found"


@pytest.fixture(scope="module")
def domain(ca):
    d = AppDomain(ca)
    yield d
    d.server.stop()


@pytest.fixture
def site(make_server, ident, ca, domain):
    def factory(private=True, **settings):
        server = make_server(**settings)
        server.write_config(public_url=f"http://127.0.0.1:{server.port}", extra="\n".join([
            f"trusted_issuer idp.test {ident.key_file}", f"ca_file {ca.ca_file}",
            domain.server.connect_to(),
            f"validate_private_addresses {'yes' if private else 'no'}"]))
        server.start()
        server.origin = f"http://127.0.0.1:{server.port}"
        return server
    return factory


def signed_in(server, ident, email):
    browser = Browser(server.port)
    status, headers, _ = browser.sign_in(ident(email, server.origin))
    assert status == 303 and headers["location"] == "/account", (status, headers)
    return browser


def register(browser, name="Chat", app_domain=APP_DOMAIN):
    status, headers, _ = browser.post("/myapps", {
        "name": name, "domain": app_domain, "description": "A chat room",
        "csrf": browser.csrf("/myapps")})
    assert status == 303, (status, headers)
    return headers["location"].rsplit("/", 1)[1]


def app_page(browser, appid):
    status, _, text = browser.get(f"/myapps/{appid}")
    assert status == 200
    return text


def domain_key(browser, appid):
    return re.search(r'id="domain-key">([^<]+)<', app_page(browser, appid)).group(1)


def action(browser, appid, name):
    return browser.post(f"/myapps/{appid}/{name}", {"csrf": browser.csrf(f"/myapps/{appid}")})


def activated_app(browser, domain):
    appid = register(browser)
    domain.proof = domain_key(browser, appid)
    status, headers, _ = action(browser, appid, "validate")
    assert status == 303, (status, headers)
    status, _, text = action(browser, appid, "activate")
    assert status == 200
    api_key = re.search(r'id="api-key">([^<]+)<', text).group(1)
    return appid, api_key
