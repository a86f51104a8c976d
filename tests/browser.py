"""Pages in a real browser: headless Chromium driven by Selenium (``setup.sh test`` installs both on
Debian); a test that needs it is skipped, saying what is missing, where neither can be installed."""

from __future__ import annotations

import base64
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def chromium(width: int = 1200, height: int = 900):
    """A headless Chromium with console and network logs on; quits on leaving."""
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (bash setup.sh test installs it)")
    if not chrome or not driver_bin:
        pytest.skip("no Chromium and chromedriver here (Debian: apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
              f"--window-size={width},{height}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_bin), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def no_console_errors(driver) -> bool:
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    return True


def check_page(driver, page: Path, movies: int = 0) -> None:
    """Open ``page``; assert it is not blank, every image and ``movies`` videos load, no console error,
    no request but to files and data URIs, no sideways scrolling on a phone (390 px) and a PDF print."""
    driver.get(page.as_uri())
    ready = driver.execute_script("""
        return Promise.all([...document.querySelectorAll('video')].map(v => new Promise(r => {
          if (v.readyState >= 1) return r(v.readyState);
          v.addEventListener('loadedmetadata', () => r(v.readyState)); v.addEventListener('error', () => r(-1));
          v.load(); setTimeout(() => r(v.readyState), 8000); })));""")
    assert len(ready) == movies and all(r >= 1 for r in ready), f"movies not loaded: {ready}"
    images = driver.execute_script("return [...document.images].map(i => [i.complete && i.naturalWidth > 0, i.alt])")
    assert all(ok for ok, _ in images), images
    assert len(driver.find_element("tag name", "body").text) > 200  # not blank
    no_console_errors(driver)
    sent = [e["message"] for e in driver.get_log("performance") if "Network.requestWillBeSent" in e["message"]]
    leaving = [u for u in re.findall(r'"url":"([^"]+)"', "".join(sent)) if not u.startswith(("file:", "data:"))]
    assert sent and leaving == [], leaving
    driver.set_window_size(390, 844)  # a phone: only tables scroll sideways, in their own boxes
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    pdf = base64.b64decode(driver.print_page())
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000
