"""The chat demo (examples/chat, what `make demo` runs) as two people would see it, in two headless
Chromium browsers: Alice and Bob join, sign in with presenced (the development issuer's "Sign in
as…") and allow the app on the consent page; Bob sees Alice online; Alice's tab goes hidden and
Bob sees her unavailable; Bob rings her and her page shows it; Alice closes her browser and Bob
sees her offline. A screenshot of each step lands in build/screenshots/ (chat-*.png)."""
import json
import os
import subprocess
import sys
import threading

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as shows
from selenium.webdriver.support.ui import WebDriverWait

from chromium import BACKGROUND_FLAGS, Chromium
from conftest import BINARY, ROOT, free_port

CTL = os.environ.get("PRESENCECTL_BIN", os.path.join(ROOT, "build", "asan", "presencectl"))
SCREENSHOTS = os.path.join(ROOT, "build", "screenshots")


@pytest.fixture
def presenced(make_server):
    server = make_server()
    # Its pages on localhost, the chat on 127.0.0.1: two hosts, so two sets of cookies.
    server.write_config(public_url=f"http://localhost:{server.port}", dev_issuer="on")
    return server.start()


@pytest.fixture
def demo(presenced, tmp_path):
    """examples/chat/demo.py against that presenced (it provisions the app with presencectl)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "examples", "chat", "demo.py"),
         "-c", presenced.config_path, "--port", str(port), "--state", str(tmp_path / "state"),
         "--presenced", BINARY, "--presencectl", CTL],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, ready = [], threading.Event()

    def read():
        for line in process.stdout:
            output.append(line)
            if "The chat room is at" in line:
                ready.set()
    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(60), "".join(output)
    yield f"http://127.0.0.1:{port}", tmp_path / "state"
    process.terminate()
    process.wait(timeout=20)
    assert "Traceback" not in "".join(output), "".join(output)


def browser(profile):
    # A hidden tab keeps its timers: the device keeps its connection.
    return Chromium("--host-resolver-rules=MAP localhost 127.0.0.1", *BACKGROUND_FLAGS,
                    window="900,700", profile=profile)


@pytest.fixture
def people(tmp_path):
    drivers = {name: browser(tmp_path / f"chromium-{name}") for name in ("alice", "bob")}
    yield drivers
    for driver in drivers.values():
        try:
            driver.quit()
        except Exception:
            pass


def shot(driver, name):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    path = os.path.join(SCREENSHOTS, f"chat-{name}.png")
    driver.save_screenshot(path)
    assert os.path.getsize(path) > 1000


def join(driver, url, name, email, shots=False):
    # Pages follow one another here (the chat, sign-in, consent, the chat again): an element
    # read as its page goes away is looked for again on the next.
    wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))
    driver.get(url + "/")
    wait.until(shows.visibility_of_element_located((By.ID, "join-form")))
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "email").send_keys(email)
    if shots:
        shot(driver, "1-join")
    driver.find_element(By.ID, "join-button").click()
    # presenced: not signed in, so its sign-in page first, then the consent page.
    wait.until(shows.presence_of_element_located((By.ID, "dev-email")))
    driver.find_element(By.ID, "dev-email").send_keys(email)
    if shots:
        shot(driver, "2-sign-in")
    driver.find_element(By.ID, "dev-signin").click()
    wait.until(shows.presence_of_element_located((By.ID, "allow")))
    question = driver.find_element(By.ID, "question").text
    assert question.startswith("Allow Chat (127.0.0.1)") and name in question, question
    if shots:
        shot(driver, "3-consent")
    driver.find_element(By.ID, "allow").click()
    wait.until(lambda d: d.current_url.startswith(url + "/") and
               d.find_element(By.ID, "my-status").text == "online")
    assert driver.find_element(By.ID, "my-name").text == name


# The page builds its member list again at every change (chat.js render()): an element found by
# one WebDriver call may be gone by the next (StaleElementReferenceException). So a member's line
# is found and used within one script, which runs between two of the page's own events.
MEMBER_TEXT = """const line = document.querySelector(`li[data-name="${CSS.escape(arguments[0])}"]`);
const part = line && line.querySelector(arguments[1]);
return part ? part.innerText : null;"""
# The ring button as a person would press it: only when shown and enabled.
MEMBER_RING = """const line = document.querySelector(`li[data-name="${CSS.escape(arguments[0])}"]`);
const button = line && line.querySelector("button");
if (!button || button.disabled || !button.getClientRects().length) return false;
button.click();
return true;"""


def status_of(driver, name):
    return driver.execute_script(MEMBER_TEXT, name, ".status")


def ring_label(driver, name):
    return driver.execute_script(MEMBER_TEXT, name, "button")


def ring(driver, name):
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(MEMBER_RING, name))


def test_the_chat_story_in_two_browsers(presenced, demo, people):
    url, state = demo
    alice, bob = people["alice"], people["bob"]
    join(alice, url, "Alice", "alice@example.com", shots=True)
    join(bob, url, "Bob", "bob@example.com")

    WebDriverWait(bob, 20).until(lambda d: status_of(d, "Alice") == "online")
    WebDriverWait(alice, 20).until(lambda d: status_of(d, "Bob") == "online")
    shot(bob, "4-bob-sees-alice-online")

    alice.minimize_window()  # her tab is hidden: presence.js says "unavailable"
    WebDriverWait(bob, 20).until(lambda d: status_of(d, "Alice") == "unavailable")
    shot(bob, "5-alice-unavailable")

    ring(bob, "Alice")
    WebDriverWait(bob, 20, poll_frequency=0.1).until(lambda d: ring_label(d, "Alice") == "Rung")
    WebDriverWait(alice, 20).until(lambda d: d.execute_script(
        "return !document.getElementById('ring').hidden"))
    assert alice.find_element(By.ID, "ring-text").get_attribute("textContent") == \
        "Bob is ringing you"
    alice.maximize_window()  # shown again: online
    alice.set_window_size(900, 700)
    WebDriverWait(bob, 20).until(lambda d: status_of(d, "Alice") == "online")
    shot(alice, "6-alice-is-rung")

    alice.quit()  # she closes: her device is gone
    WebDriverWait(bob, 20).until(lambda d: status_of(d, "Alice") == "offline")
    shot(bob, "7-alice-offline")

    # The app knows its members by PUID and name; no e-mail reached it.
    room = json.loads((state / "room.json").read_text())
    assert sorted(room["members"].values()) == ["Alice", "Bob"]
    assert "@" not in json.dumps(room)
