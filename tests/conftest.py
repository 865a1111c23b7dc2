"""Shared fixtures: a tiny hand-built trust for the maths, and a small demo database."""
from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from opportunity_engine.analysis import catalogue
from opportunity_engine.demo import generator as demo
from opportunity_engine.store import db

ROOT = Path(__file__).resolve().parents[1]
# Every chart a page draws in the tests (AppTest here, the browser tests' servers inherit it) is
# checked against the Vega-Lite schema; the served app skips the check (ui.CHECK_CHARTS).
os.environ["OPPORTUNITY_CHECK_CHARTS"] = "1"
# The day the tests' demo database is built "on": its data end the month before (Nov 2026), so no
# figure a test checks depends on the day the tests run.
DEMO_AS_OF = dt.date(2026, 12, 1)


def build_tiny(con) -> None:
    """The hand-worked trust of tests/test_opportunities.py (figures worked in its docstring)."""
    catalogue.install_shipped(con)
    con.execute("DELETE FROM unit_costs")  # a file database opens with the shipped costs: use only these
    con.executemany("INSERT INTO csus VALUES (?, ?)", [("A", "Alpha CSU"), ("B", "Beta CSU")])
    con.executemany("INSERT INTO specialties VALUES (?, ?, ?)",
                    [("100", "General Surgery", "A"), ("300", "Small Specialty", "A"), ("200", "Cardiology", "B")])
    con.executemany("INSERT INTO unit_costs VALUES (?, ?, ?, ?)", [
        ("bed_day", "", 300, "all-specialty bed day"), ("bed_day", "100", 400, "surgical bed day"),
        ("daycase_conversion", "", 700, "conversion"), ("agency_premium", "", 0.4, "premium"),
    ])
    con.executemany("INSERT INTO benchmarks VALUES (?, ?, 'peer', ?, ?, ?, ?, ?, 'test')", [
        ("alos_elective", "100", 2.0, 2.5, 3.0, 3.5, 4.0),
        ("alos_elective", "200", 2.2, 2.7, 3.2, 3.7, 4.2),
        ("alos_elective", "300", 2.2, 2.7, 3.2, 3.7, 4.2),
        # Peers' figure for all specialties of a metric given specialty by specialty: never a
        # specialty's target (like for like), so unused here.
        ("alos_elective", "", 9.0, 9.5, 9.9, 10.5, 11.0),
        # Day case is given for all specialties only (one standard for every service): it applies to each.
        ("daycase_rate_bads", "", 0.6, 0.7, 0.8, 0.85, 0.9),
        ("wf_agency_share", "", 0.02, 0.027, 0.035, 0.045, 0.06),
    ])
    rows = [
        # period, csu, specialty, metric, numerator, denominator
        ("2025-02", "A", "100", "alos_elective", 200, 50), ("2025-03", "A", "100", "alos_elective", 200, 50),
        ("2023-01", "A", "100", "alos_elective", 1000, 100),  # outside the latest-12-month window
        ("2025-03", "B", "200", "alos_elective", 300, 100),
        ("2025-03", "A", "300", "alos_elective", 40, 10),
        ("2025-03", "A", "100", "daycase_rate_bads", 60, 100),
        ("2025-03", "A", "", "wf_agency_share", 50_000, 1_000_000),
    ]
    con.executemany("INSERT INTO metric_facts VALUES (?, ?, ?, ?, ?, ?, 'activity')", rows)


@pytest.fixture
def tiny():
    con = db.memory()
    build_tiny(con)
    yield con
    con.close()


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    """A small-scale demo database, built once per test session (read it; copy it to change it)."""
    path = tmp_path_factory.mktemp("demo") / "small.duckdb"
    demo.build(path, seed=42, scale="small", as_of=DEMO_AS_OF)
    return path


@pytest.fixture
def demo_copy(small_demo, tmp_path) -> Path:
    path = tmp_path / "copy.duckdb"
    shutil.copy(small_demo, path)
    return path


# --- the Chromium tests' server and browser (helpers in tests/browser_fixtures.py) -------------

@pytest.fixture(scope="module")
def app_database(small_demo) -> Path:
    """The database a browser test module's server runs on (copied first); a module overrides
    this fixture to plant records of its own."""
    return small_demo


@pytest.fixture(scope="module")
def workdir(request, tmp_path_factory) -> Path:
    """The module's server folder: its database copy, upload staging (uploads/) and log (server.log)."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def server(app_database, workdir):
    """A Streamlit server of the module's own (tools.app_harness.running_app); yields its URL."""
    from tools.app_harness import running_app

    (workdir / "uploads").mkdir()
    with running_app(app_database, workdir, env_extra={"OPPORTUNITY_STAGING": str(workdir / "uploads")},
                     log=workdir / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium for the module (tests open contexts and pages of their own)."""
    from playwright.sync_api import sync_playwright

    from tools.app_harness import ARGS, CHROMIUM

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()
