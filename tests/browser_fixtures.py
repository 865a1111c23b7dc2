"""What every Chromium test shares (the fixtures themselves, ``server`` and ``browser``, are in
conftest.py): the guard that skips without Debian's Chromium, and the helpers that wait for a
page, sign in, choose an option and keep a screenshot. One copy, so the end-to-end, security,
accessibility and hostile-text browser tests drive the app the same way."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tools.app_harness import CHROMIUM

from .conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"

playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("Chromium is missing: `make test` installs Debian's chromium package")
    pytest.skip("Debian chromium not installed (make test installs it)", allow_module_level=True)


def settle(page, timeout: float = 30) -> None:
    """Wait until the script has finished and nothing is stale, held for about a second."""
    deadline = time.time() + timeout
    calm_since = None
    while time.time() < deadline:
        ready = page.evaluate("""() => {
            const app = document.querySelector('[data-testid="stApp"]');
            if (!app) return false;
            if (app.getAttribute('data-test-script-state') === 'running') return false;
            if (document.querySelector('[data-testid="stStatusWidget"], [data-testid="stSkeleton"], '
                                       + '[data-testid="stSpinner"], [data-stale="true"]')) return false;
            return true; }""")
        if ready:
            calm_since = calm_since or time.time()
            if time.time() - calm_since > 1.0:
                return
        else:
            calm_since = None
        time.sleep(0.15)
    raise AssertionError("page did not settle")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, url: str, username: str, path: str = "") -> None:
    """Open ``path``; sign in unless the browser's cookie already did (both are correct)."""
    page.goto(url + path)
    settle(page)
    if page.get_by_role("textbox", name="Username").count() == 0:
        return
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    settle(page)


def choose(page, label: str, option_text: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option_text).first.click()
    settle(page)


def unit_costs_upload(page, main, folder: Path):
    """A one-row unit_costs file and a function that drops it on the Data page's uploader and waits
    for the check to pass: the memory and staging tests both upload it again and again."""
    good = folder / "unit_costs.csv"
    good.write_text("cost_driver,specialty_code,unit_cost_gbp,source\nbed_day,,352,Trust costing 2026/27\n",
                    encoding="utf-8")

    def upload() -> None:
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(good))
        settle(page, timeout=90)
        main.get_by_text("All files passed every check").wait_for()

    return good, upload
