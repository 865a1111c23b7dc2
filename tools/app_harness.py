"""The app run as the tests and the app benchmark run it: a signed-in AppTest session, and a
Streamlit server of its own driven by Debian's Chromium.

Here, not in tests/, so that tools/bench_app.py measures exactly what the page and browser tests
exercise without importing the test suite (the tests import these from here).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
CHROMIUM = "/usr/bin/chromium"
# True once the page is drawn and idle: the script has finished and nothing is stale or spinning.
READY_JS = """() => { const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-script-state') !== 'running' &&
      !document.querySelector('[data-testid="stStatusWidget"], [data-testid="stSkeleton"], '
        + '[data-testid="stSpinner"], [data-stale="true"]'); }"""
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def signed_in(username: str, page: str | None = None, **params: str) -> AppTest:
    """An AppTest of app.py signed in as ``username``, run once, on ``page`` with query ``params``."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    at.session_state["name"] = username
    import ui
    from opportunity_engine import users

    at.session_state[ui.SESSION_KEY] = users.start_session(ui.cursor(), username)  # as a sign-in would
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_app(db_source: Path, workdir: Path, env_extra: dict[str, str] | None = None,
                log: Path | None = None) -> Iterator[str]:
    """A streamlit server of its own on a copy of the database; yields its URL. ``log`` keeps
    the server's stderr (the app's JSON log) for a test to read."""
    db_path = workdir / "e2e.duckdb"
    shutil.copy(db_source, db_path)
    port = free_port()
    env = {**os.environ, "OPPORTUNITY_DB": str(db_path), "OPPORTUNITY_COOKIE_KEY": "e2e-test-key", **(env_extra or {})}
    err = log.open("w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", APP, "--server.port", str(port),
                             "--server.headless", "true", "--server.runOnSave", "false",
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("streamlit did not start") from None
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
