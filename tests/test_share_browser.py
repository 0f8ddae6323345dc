"""A recipient in a real browser (headless Debian chromium): open link, type password, download."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from backend.shares.client import ShareClient, local_file_source
from backend.shares.server import start_share_service, stop_share_service

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _driver(download_dir: Path, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists(), "Debian chromium is required at /usr/bin/chromium"
    assert Path(CHROMEDRIVER).exists(), "chromedriver is required at /usr/bin/chromedriver"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.add_experimental_option("prefs", {
        "download.default_directory": str(download_dir),
        "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def _browse(url: str, password: str, download_dir: Path, profile: Path, name: str) -> bytes:
    from selenium.webdriver.common.by import By

    driver = _driver(download_dir, profile)
    try:
        driver.get(url)
        assert "A file has been shared with you" in driver.page_source
        assert driver.find_element(By.CSS_SELECTOR, ".name").text == name
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        target = download_dir / name
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            partial = list(download_dir.glob("*.crdownload"))
            if target.exists() and not partial:
                return target.read_bytes()
            time.sleep(0.1)
        raise AssertionError(f"no download appeared: {os.listdir(download_dir)}")
    finally:
        driver.quit()


async def test_browser_download_with_password(ferry_home, tmp_path):
    assert shutil.which("chromium") or Path(CHROMIUM).exists(), "chromium is missing"
    src = tmp_path / "report.pdf"
    src.write_bytes(os.urandom(2_500_000))
    handle, _ = await start_share_service("127.0.0.1:0")
    try:
        created = await ShareClient().create(
            local_file_source(src), name="report.pdf", size=src.stat().st_size,
            recipients=["doctor@example.org"],
        )
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        got = await asyncio.to_thread(
            _browse, created["links"][0]["url"], created["password"], downloads,
            tmp_path / "profile", "report.pdf",
        )
        assert got == src.read_bytes()
        share = (await ShareClient().list())[0]
        assert share["recipients"][0]["downloads"] == 1
    finally:
        await stop_share_service(handle)
