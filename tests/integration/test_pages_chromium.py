"""The pages in a real browser (Debian's headless Chromium driven by Selenium): sign in, open the
consent page as an app would send a user there, click Allow, land back on the app's URL with
Presence-UID, then revoke from /account. The consent page's screenshot is written to
build/screenshots/consent.png."""
import http.server
import json
import os
import re
import threading
import urllib.parse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from chromium import Chromium
from conftest import ROOT
from web_fixtures import APP_DOMAIN, activated_app, signed_in

SCREENSHOTS = os.path.join(ROOT, "build", "screenshots")


def chromium_start(host_rules):
    return Chromium("--disable-quic", "--host-resolver-rules=" + ", ".join(host_rules),
                    "--ignore-certificate-errors")


@pytest.fixture
def chromium(domain):
    # The app's domain is the test's HTTPS server; its CA is the test's own.
    driver = chromium_start([f"MAP {APP_DOMAIN}:443 127.0.0.1:{domain.server.port}"])
    yield driver
    driver.quit()


class EvilSite(http.server.BaseHTTPRequestHandler):
    """Where an open redirect would land: a page that says so."""

    def do_GET(self):
        body = b"<html><body><p id=evil>evil.test</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def evil_chromium():
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EvilSite)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    driver = chromium_start([f"MAP evil.test 127.0.0.1:{evil.server_address[1]}"])
    yield driver
    driver.quit()
    evil.shutdown()
    evil.server_close()


def test_sign_in_with_a_foreign_next_lands_on_our_own_site_in_chromium(site, ident,
                                                                        evil_chromium):
    """SPEC 6: Chromium strips a tab or a newline from a Location and reads a backslash as a
    slash; the 303 after sign-in must still keep it on this origin, whatever next said."""
    server = site()
    base = f"http://127.0.0.1:{server.port}"
    wait = WebDriverWait(evil_chromium, 20)
    # The control: Chromium does go to evil.test for a Location of //evil.test.
    evil_chromium.get("http://evil.test/")
    assert evil_chromium.find_element(By.ID, "evil").text == "evil.test"
    for foreign in ("/\t/evil.test/", "/\r\n/evil.test/", "/\\evil.test/", "//evil.test/"):
        evil_chromium.get(base + "/login")
        wait.until(expected_conditions.presence_of_element_located((By.ID, "assertion")))
        # next as a crafted form would send it (the page's own field is already checked);
        # the assertion set at once rather than typed key by key.
        evil_chromium.execute_script(
            "document.querySelector('input[name=next]').value = arguments[0];"
            "document.getElementById('assertion').value = arguments[1];",
            foreign, ident("alice@example.com", server.origin))
        evil_chromium.find_element(By.ID, "signin").click()
        wait.until(lambda d: urllib.parse.urlsplit(d.current_url).path != "/login")
        assert evil_chromium.current_url == base + "/account", (foreign, evil_chromium.current_url)
        assert "alice@example.com" in evil_chromium.find_element(By.TAG_NAME, "body").text


def test_sign_in_allow_and_revoke_in_chromium(site, ident, domain, chromium):
    server = site()
    dev = signed_in(server, ident, "dev@example.com")
    appid, _ = activated_app(dev, domain)
    base = f"http://127.0.0.1:{server.port}"
    redirect = f"https://{APP_DOMAIN}/welcome?room=7"
    consent = f"/grant/{appid}?" + urllib.parse.urlencode({"redirect": redirect, "id": "erin"})
    wait = WebDriverWait(chromium, 20)

    # The app sends the user to the consent page; not signed in, they sign in first.
    chromium.get(base + consent)
    wait.until(expected_conditions.presence_of_element_located((By.ID, "assertion")))
    assert "/login?next=" in chromium.current_url
    field = chromium.find_element(By.ID, "assertion")
    field.send_keys(ident("erin@example.com", server.origin))
    chromium.find_element(By.ID, "signin").click()

    wait.until(expected_conditions.presence_of_element_located((By.ID, "allow")))
    question = chromium.find_element(By.ID, "question").text
    assert question == "Allow Chat (chat.test), where you are erin, to see when you are present?"
    os.makedirs(SCREENSHOTS, exist_ok=True)
    chromium.save_screenshot(os.path.join(SCREENSHOTS, "consent.png"))
    assert os.path.getsize(os.path.join(SCREENSHOTS, "consent.png")) > 1000

    chromium.find_element(By.ID, "allow").click()
    wait.until(lambda d: d.current_url.startswith(f"https://{APP_DOMAIN}/"))
    match = re.fullmatch(r"https://chat\.test/welcome\?room=7&Presence-UID=([0-9a-f-]{36})",
                         chromium.current_url)
    assert match, chromium.current_url
    puid = match.group(1)

    chromium.get(base + "/getApps")
    assert json.loads(chromium.find_element(By.TAG_NAME, "body").text) == {
        "apps": [{"name": "Chat", "appid": appid, "uid": puid}]}

    chromium.get(base + "/account")
    # The revoke form's answer sends the browser to /account again: the page that asked must be
    # gone first (it has the same address), or its main could be read as it goes away
    # (StaleElementReferenceException).
    asked = chromium.find_element(By.TAG_NAME, "main")
    chromium.find_element(By.CSS_SELECTOR, "button.revoke").click()
    wait.until(expected_conditions.staleness_of(asked))
    wait.until(lambda d: d.current_url == base + "/account" and
               "None." in d.find_element(By.TAG_NAME, "main").text)
    chromium.get(base + "/getApps")
    assert json.loads(chromium.find_element(By.TAG_NAME, "body").text) == {"apps": []}
