"""Debian's headless Chromium under Selenium, as the browser tests start it: one profile
directory each (made here and removed when the browser quits, unless the test gives its own)."""
import os
import shutil
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
# A hidden page's timers must keep running for a device in it to keep its connection.
BACKGROUND_FLAGS = ("--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                    "--disable-backgrounding-occluded-windows")


class Chromium(webdriver.Chrome):
    def __init__(self, *flags, window="1000,800", profile=None):
        self.own_profile = profile is None
        self.profile = tempfile.mkdtemp(prefix="presenced-chromium-") if profile is None \
            else str(profile)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (*FLAGS, f"--user-data-dir={self.profile}", f"--window-size={window}",
                     *flags):
            options.add_argument(flag)
        try:
            super().__init__(service=Service("/usr/bin/chromedriver"), options=options)
        except BaseException:
            self.profile_remove()
            raise
        self.set_page_load_timeout(30)

    def quit(self):
        try:
            super().quit()
        finally:
            self.profile_remove()

    def profile_remove(self):
        if not self.own_profile:
            return
        # The browser's last processes may still be writing into it as they exit.
        for _ in range(30):
            shutil.rmtree(self.profile, ignore_errors=True)
            if not os.path.exists(self.profile):
                return
            time.sleep(0.1)
        raise AssertionError(f"Chromium's profile {self.profile} is left behind")
