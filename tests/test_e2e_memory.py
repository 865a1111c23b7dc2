"""Issue 14 point 6 in a real browser: an upload's bytes leave Streamlit's upload store after the
commit while the tab stays open (they stayed until the session ended: +8 MB a monthly refresh in
tools/bench_refresh.py), and when a closed tab's session has ended (Streamlit's own shutdown of
a dropped session, checked here so that an upgrade that loses it is seen).

The server writes its memory report (OPPORTUNITY_MEMORY_REPORT) after every collection, which
runs every second here; a closed tab's session is dropped one second after it disconnects."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .browser_fixtures import settle, sign_in, unit_costs_upload

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def memory_server(app_database, workdir):
    from tools.app_harness import running_app

    (workdir / "uploads").mkdir()
    report = workdir / "memory.jsonl"
    env = {"OPPORTUNITY_STAGING": str(workdir / "uploads"), "OPPORTUNITY_MEMORY_REPORT": str(report),
           "OPPORTUNITY_HOUSEKEEPING_SECONDS": "1", "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "1"}
    with running_app(app_database, workdir, env_extra=env, log=workdir / "server.log") as url:
        yield url, report


def _uploads_held(report: Path, after: float, want, timeout: float = 30) -> int:
    """The upload store's bytes in the first report written after ``after`` that satisfies ``want``."""
    deadline = time.time() + timeout
    seen = None
    while time.time() < deadline:
        if report.exists():
            for line in report.read_text().splitlines():
                entry = json.loads(line)
                if entry["t"] > after and "uploads_bytes" in entry:
                    seen = entry["uploads_bytes"]
                    if want(seen):
                        return seen
        time.sleep(0.5)
    raise AssertionError(f"the upload store held {seen} bytes")


def test_uploads_leave_the_servers_memory_after_commit_and_after_the_tab_closes(memory_server, browser, tmp_path):
    url, report = memory_server
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    sign_in(page, url, "admin", "/data")
    main = page.locator('[data-testid="stMain"]')
    good, upload = unit_costs_upload(page, main, tmp_path)
    size = good.stat().st_size

    upload()
    assert _uploads_held(report, time.time(), lambda held: held == size) == size
    main.get_by_role("button", name="Commit to the database").click()
    main.get_by_text("Loaded 1 file(s)").wait_for(timeout=90_000)
    settle(page, timeout=90)
    assert _uploads_held(report, time.time(), lambda held: True) == 0  # the tab is still open

    upload()  # and left in the uploader when the tab closes
    assert _uploads_held(report, time.time(), lambda held: held == size) == size
    context.close()
    time.sleep(2)  # past the 1-second life of a disconnected session
    other = browser.new_context()  # Streamlit reaps expired stored sessions when it stores another
    settle_page = other.new_page()
    settle_page.goto(url)
    settle(settle_page)
    other.close()
    assert _uploads_held(report, time.time(), lambda held: held == 0) == 0
