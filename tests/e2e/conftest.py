"""
The end-to-end tests' set-up: a signature-verifying document API per module, and for the browser
tests headless Chromium from Debian, driven by Selenium, with screenshots of failed tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Chromium's flags for a headless run as root in CI, with no network of its own beyond the test servers.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
#: Where failed browser tests leave a screenshot and the page's HTML.
ARTIFACTS = Path(os.environ.get("OUTAMATION_TEST_ARTIFACTS") or REPO / "test-artifacts")


@pytest.fixture(scope="module")
def receiver() -> Iterator[DocumentApiReceiver]:
    """The document API of a test module's Airflow: a real HTTP server verifying signatures."""
    with DocumentApiReceiver() as api:
        yield api


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _require_chromium() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    message = "Chromium is not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires the browser tests to run")
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for a test module, with a new empty profile."""
    _require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="outamation-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The module's Chromium; when the test fails, its screenshot and HTML go to :data:`ARTIFACTS`."""
    yield chromium
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        chromium.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
        (ARTIFACTS / f"{request.node.name}.html").write_text(chromium.page_source)
        print(f"screenshot of the failure: {ARTIFACTS / request.node.name}.png")
