"""Web sign-in through a real OpenID provider in a real browser (Debian's headless Chromium driven
by Selenium): an app sends the user to the consent page, the login page lists the provider (its
screenshot: build/screenshots/login-oidc.png), the user signs in on the provider's own login and
consent pages (panva's oidc-provider), allows the app, sees the account, and signs out."""
import os
import re
import urllib.parse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

import oidc
import op
from chromium import Chromium
from conftest import ROOT
from web_client import Browser
from web_fixtures import APP_DOMAIN, activated_app

SCREENSHOTS = os.path.join(ROOT, "build", "screenshots")
WEB = {"client_id": "presenced-web", "client_secret": "browser-secret",
       "id_token_signed_response_alg": "EdDSA", "grant_types": ["authorization_code"],
       "response_types": ["code"]}


@pytest.fixture
def provider_site(make_server, ca, domain, tmp_path):
    forge = oidc.Forge()
    server = make_server()
    client = dict(WEB, redirect_uris=[f"{server.url}/login/oidc"])
    provider = op.OpenIDProvider(ca, str(tmp_path), [forge.key("EdDSA", "ed-web").private],
                                 [client])
    forge.close()
    secret = tmp_path / "secret"
    secret.write_text(WEB["client_secret"])
    server.write_config(public_url=server.url, dev_issuer="on", extra="\n".join([
        f"oidc_login {op.ISSUER} {WEB['client_id']} {secret} Example Accounts",
        f"ca_file {ca.ca_file}", provider.connect_to(), domain.server.connect_to(),
        "validate_private_addresses yes"]))
    server.start()
    yield server, provider
    provider.stop()


@pytest.fixture
def chromium(domain, provider_site):
    _, provider = provider_site
    rules = (f"MAP {APP_DOMAIN}:443 127.0.0.1:{domain.server.port}, "
             f"MAP {op.HOST}:443 127.0.0.1:{provider.port}")
    # The app's domain and the provider are the test's HTTPS servers (its own CA).
    driver = Chromium("--disable-quic", f"--host-resolver-rules={rules}",
                      "--ignore-certificate-errors")
    yield driver
    driver.quit()


def developer_app(server, domain):
    """A developer (signed in with the development issuer, over HTTP) registers an app."""
    dev = Browser(server.port)
    _, forms, _ = dev.forms("/login")
    fields = next(f["fields"] for f in forms if f["action"] == "/login/dev")
    status, _, _ = dev.post("/login/dev", dict(fields, email="dev@example.com"))
    assert status == 303
    appid, _ = activated_app(dev, domain)
    return appid


def test_sign_in_through_the_provider_allow_and_sign_out(provider_site, domain, chromium):
    server, provider = provider_site
    appid = developer_app(server, domain)
    base = server.url
    redirect = f"https://{APP_DOMAIN}/welcome?room=9"
    consent = f"/grant/{appid}?" + urllib.parse.urlencode({"redirect": redirect, "id": "frank"})
    wait = WebDriverWait(chromium, 30)

    # The app sends the user to the consent page; not signed in, they are on /login.
    chromium.get(base + consent)
    wait.until(expected_conditions.presence_of_element_located((By.ID, "provider-0")))
    assert "/login?next=" in chromium.current_url
    button = chromium.find_element(By.ID, "provider-0")
    assert button.text == "Sign in with Example Accounts"
    assert chromium.find_elements(By.ID, "dev-email")  # "Sign in as…" beside it
    assert not chromium.find_elements(By.ID, "assertion")  # no BrowserID set up here
    os.makedirs(SCREENSHOTS, exist_ok=True)
    shot = os.path.join(SCREENSHOTS, "login-oidc.png")
    chromium.save_screenshot(shot)
    assert os.path.getsize(shot) > 1000
    button.click()

    # The provider's own login page, then its consent page.
    wait.until(lambda d: d.current_url.startswith(f"{op.ISSUER}/interaction/"))
    wait.until(expected_conditions.presence_of_element_located((By.NAME, "login")))
    chromium.find_element(By.NAME, "login").send_keys("frank@example.com")
    chromium.find_element(By.NAME, "password").send_keys("any password")
    chromium.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    consent_form = (By.CSS_SELECTOR, "input[name=prompt][value=consent]")
    wait.until(lambda d: d.find_elements(*consent_form) or d.current_url.startswith(base))
    if not chromium.current_url.startswith(base):
        chromium.find_element(By.CSS_SELECTOR, "button[type=submit]").click()  # Continue

    # Back on presenced, signed in, on the consent page the app asked for.
    wait.until(expected_conditions.presence_of_element_located((By.ID, "allow")))
    assert chromium.current_url.startswith(base + f"/grant/{appid}")
    question = chromium.find_element(By.ID, "question").text
    assert question == "Allow Chat (chat.test), where you are frank, to see when you are present?"
    chromium.find_element(By.ID, "allow").click()
    wait.until(lambda d: d.current_url.startswith(f"https://{APP_DOMAIN}/"))
    assert re.fullmatch(r"https://chat\.test/welcome\?room=9&Presence-UID=([0-9a-f-]{36})",
                        chromium.current_url), chromium.current_url
    assert provider.count("/token") == 1

    chromium.get(base + "/account")
    header = chromium.find_element(By.TAG_NAME, "header").text
    assert "frank@example.com" in header
    assert "Chat" in chromium.find_element(By.TAG_NAME, "main").text
    chromium.find_element(By.CSS_SELECTOR, "header button[type=submit]").click()  # Sign out
    wait.until(lambda d: d.current_url.startswith(base + "/login"))
    chromium.get(base + "/account")
    wait.until(lambda d: "/login?next=" in d.current_url)
