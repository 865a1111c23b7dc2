"""Demo generator (deterministic, calibrated, with outliers), schema migrations, CLI contract."""
from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from opportunity_engine.analysis.opportunities import Basis, opportunities, totals
from opportunity_engine.cli import main
from opportunity_engine.demo import generator as demo
from opportunity_engine.scope import Scope
from opportunity_engine.store import db

from .conftest import DEMO_AS_OF, ROOT

CHECKSUM_TABLES = ("spells", "outpatients", "theatre_sessions", "workforce", "metric_facts", "benchmarks",
                   "hrg_benchmarks", "hrg_facts")


def checksums(path) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*), sum(hash(x)) FROM {t} x").fetchone() for t in CHECKSUM_TABLES}


@pytest.mark.slow
def test_demo_is_deterministic_for_a_seed(small_demo, tmp_path):
    again = tmp_path / "again.duckdb"
    demo.build(again, seed=42, scale="small", as_of=DEMO_AS_OF)
    assert checksums(again) == checksums(small_demo)
    other = tmp_path / "other.duckdb"
    demo.build(other, seed=7, scale="small")
    assert checksums(other)["spells"] != checksums(small_demo)["spells"]


def test_demo_shape_and_calibration(small_demo):
    with db.connect(small_demo, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM csus").fetchone()[0] == 19
        assert con.execute("SELECT count(*) FROM specialties").fetchone()[0] == 60
        assert con.execute("SELECT count(DISTINCT period) FROM metric_facts").fetchone()[0] == 36
        values = dict(con.execute("""SELECT metric_id, sum(numerator) / sum(denominator) FROM metric_facts
                                     GROUP BY metric_id""").fetchall())
        # typical values from METRICS.md
        assert 2.0 < values["alos_elective"] < 4.5
        assert 0.05 < values["op_dna_rate"] < 0.11
        assert 1.5 < values["op_new_fu_ratio"] < 2.8
        assert 0.7 < values["daycase_rate_bads"] < 0.9
        assert 0.75 < values["theatre_capped_util"] < 0.9
        assert 0.02 < values["wf_agency_share"] < 0.07
        # every metric has an all-specialty benchmark (the CSU-wide metrics' own), with ordered percentiles
        assert con.execute("SELECT count(*) FROM benchmarks WHERE specialty_code = ''").fetchone()[0] == 18
        assert con.execute("SELECT count(*) FROM benchmarks WHERE NOT (p10 <= p25 AND p25 <= p50 AND p50 <= p75 AND p75 <= p90)").fetchone()[0] == 0
        df = opportunities(con, Scope.trust(), Basis())
    real = df[(df.rank_group == 0)]
    assert len(real) > 20, "clear outliers must exist"
    beats = df[(df.target_value.notna()) & (df.opportunity_gbp == 0) & ~df.low_volume]
    assert len(beats) > 20, "some units must beat their benchmark"
    assert set(df.benchmark_level.dropna()) == {"specialty", "all specialties"}
    # like for like: the all-specialty benchmark is the CSU-wide metrics' alone, and every specialty
    # the demo holds has its own peer row, so no demo unit goes unmeasured
    assert (df[df.benchmark_level == "all specialties"].specialty_code == "").all()
    assert df.target_value.notna().all()


@pytest.mark.slow
def test_demo_refuses_to_overwrite_a_real_database(tmp_path):
    path = tmp_path / "real.duckdb"
    db.connect(path).close()
    with pytest.raises(FileExistsError):
        demo.build(path, scale="small")
    demo.build(path, scale="small", force=True)


def test_older_database_is_upgraded_without_loss(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path), config=db.CONNECT_CONFIG)
    db.migrate(con, up_to=1)
    con.execute("INSERT INTO csus VALUES ('OLD', 'Kept CSU')")
    con.close()
    with db.connect(path) as upgraded:
        assert db.schema_version(upgraded) == db.LATEST_VERSION
        assert upgraded.execute("SELECT csu_name FROM csus WHERE csu_code = 'OLD'").fetchone()[0] == "Kept CSU"
        versions = [r[0] for r in upgraded.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()]
        assert versions == list(range(1, db.LATEST_VERSION + 1))


def test_version_2_shortlist_selections_become_schemes(tmp_path):
    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path), config=db.CONNECT_CONFIG)
    db.migrate(con, up_to=2)
    con.execute("INSERT INTO csus VALUES ('OLD', 'Kept CSU')")
    con.execute("""INSERT INTO shortlist_items (csu_code, specialty_code, metric_id, target, benchmark, actual,
                   target_value, opportunity_gbp, created_by) VALUES ('OLD', '100', 'alos_elective', 'median', 'peer',
                   4.0, 3.0, 40000, 'jo')""")
    con.close()
    with db.connect(path) as upgraded:
        row = upgraded.execute("""SELECT csu_code, metric_id, status, origin, snapshot_opportunity_gbp, created_by, version
                                  FROM schemes""").fetchall()
        assert row == [("OLD", "alos_elective", "idea", "opportunity", 40000.0, "jo", 1)]
        assert upgraded.execute("SELECT failed_sign_ins FROM users").fetchall() == []


def test_connections_never_autoload_extensions(tmp_path):
    with db.connect(tmp_path / "x.duckdb") as con:
        settings = dict(con.execute("""SELECT name, value FROM duckdb_settings()
            WHERE name IN ('autoinstall_known_extensions', 'autoload_known_extensions')""").fetchall())
    assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}


def test_cli_opportunities_matches_the_engine(small_demo, capsys):
    assert main(["opportunities", "--db", str(small_demo), "--target", "top_quartile", "--format", "csv"]) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"specialty_code": str})
    with db.connect(small_demo, read_only=True) as con:
        engine = opportunities(con, Scope.trust(), Basis(target="top_quartile"))
    for column in ("csu_code", "metric_id", "numerator", "denominator", "actual", "target_value", "gap_units",
                   "unit_cost_gbp", "opportunity_gbp", "saving_type", "low_volume", "significant"):
        assert column in printed.columns
    assert printed.opportunity_gbp.sum() == pytest.approx(engine.opportunity_gbp.sum(), rel=1e-12)
    assert main(["opportunities", "--db", str(small_demo), "--csu", "ABD", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["csu_code"] for r in rows} == {"ABD"}


def test_cli_reproduces_hand_worked_figures(tmp_path, capsys):
    from .conftest import build_tiny

    path = tmp_path / "tiny.duckdb"
    with db.connect(path) as con:
        build_tiny(con)
    assert main(["opportunities", "--db", str(path), "--format", "json"]) == 0
    rows = {(r["csu_code"], r["specialty_code"], r["metric_id"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("A", "100", "alos_elective")]["opportunity_gbp"] == pytest.approx(40_000)
    assert rows[("A", "100", "daycase_rate_bads")]["opportunity_gbp"] == pytest.approx(14_000)
    assert main(["opportunities", "--db", str(path), "--target", "top_decile", "--from", "2025-01",
                 "--to", "2025-03", "--format", "json"]) == 0
    rows = {(r["csu_code"], r["specialty_code"], r["metric_id"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("A", "100", "alos_elective")]["opportunity_gbp"] == pytest.approx(80_000)
    assert main(["opportunities", "--db", str(path), "--target", "best_35", "--format", "json"]) == 0
    rows = {(r["csu_code"], r["specialty_code"], r["metric_id"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("A", "100", "alos_elective")]["opportunity_gbp"] == pytest.approx(52_000)
    with pytest.raises(SystemExit) as refused:
        main(["opportunities", "--db", str(path), "--target", "best_95"])
    assert refused.value.code == 2 and "best_N with N from 10 to 90" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    run = subprocess.run([sys.executable, "-m", "opportunity_engine", "opportunities", "--db",
                          str(tmp_path / "missing.duckdb")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1 and "No database" in run.stderr and "Traceback" not in run.stderr


def test_trust_scope_totals_equal_sum_of_csu_scopes(small_demo):
    with db.connect(small_demo, read_only=True) as con:
        trust = totals(opportunities(con, Scope.trust(), Basis()))
        csus = [r[0] for r in con.execute("SELECT csu_code FROM csus").fetchall()]
        per_csu = sum(totals(opportunities(con, Scope.of(c), Basis())).net_gbp for c in csus)
        assert per_csu == pytest.approx(trust.net_gbp)
        for c in csus[:3]:
            df = opportunities(con, Scope.of(c), Basis())
            assert set(df.csu_code) <= {c}


@pytest.mark.slow
def test_cli_users_add_list_reset_remove(demo_copy, monkeypatch, capsys):
    from opportunity_engine import users

    def stdin(text):
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    stdin("s3cret-pass\n")
    assert main(["users", "add", "jo.bloggs", "--db", str(demo_copy), "--name", "Jo Bloggs", "--role", "csu",
                 "--csu", "EMA", "--csu", "ABD", "--password-stdin"]) == 0
    assert main(["users", "list", "--db", str(demo_copy)]) == 0
    out = capsys.readouterr().out
    assert "jo.bloggs\tcsu\tABD,EMA\tJo Bloggs" in out and "s3cret" not in out
    with db.connect(demo_copy) as con:
        stored = con.execute("SELECT password_hash FROM users WHERE username = 'jo.bloggs'").fetchone()[0]
        assert stored.startswith("$2b$12$") and users.get_user(con, "jo.bloggs").scope.csus == {"ABD", "EMA"}
    stdin("n3w-pass\n")
    assert main(["users", "reset-password", "jo.bloggs", "--db", str(demo_copy), "--password-stdin"]) == 0
    with db.connect(demo_copy) as con:
        new = con.execute("SELECT password_hash FROM users WHERE username = 'jo.bloggs'").fetchone()[0]
        assert new != stored and users.attempt_sign_in(con, "jo.bloggs", "n3w-pass").ok
    # a csu user without a CSU, an unknown CSU and a duplicate are refused with a message
    stdin("x\n")
    assert main(["users", "add", "nocsu", "--db", str(demo_copy), "--name", "N", "--role", "csu",
                 "--password-stdin"]) == 1
    stdin("x\n")
    assert main(["users", "add", "bad", "--db", str(demo_copy), "--name", "N", "--role", "csu", "--csu", "ZZZ",
                 "--password-stdin"]) == 1
    assert "unknown CSU" in capsys.readouterr().err
    assert main(["users", "remove", "jo.bloggs", "--db", str(demo_copy)]) == 0
    assert main(["users", "remove", "jo.bloggs", "--db", str(demo_copy)]) == 1


def test_cli_export_plans_with_a_users_scope(small_demo, tmp_path, capsys):
    from openpyxl import load_workbook

    out = tmp_path / "plans.xlsx"
    assert main(["export-plans", "--db", str(small_demo), "--fy", "2025", "--out", str(out)]) == 0
    trust = {r[1] for r in load_workbook(out)["Schemes"].iter_rows(min_row=2, values_only=True)}
    assert len(trust) > 1
    mine = tmp_path / "mine.xlsx"
    assert main(["export-plans", "--db", str(small_demo), "--as-user", "csu", "--out", str(mine)]) == 0
    assert {r[1] for r in load_workbook(mine)["Schemes"].iter_rows(min_row=2, values_only=True)} == \
        {"Emergency and Acute Medicine"}
    assert main(["export-plans", "--db", str(small_demo), "--as-user", "csu", "--csu", "ABD",
                 "--out", str(tmp_path / "x.xlsx")]) == 1
    assert "not available to you" in capsys.readouterr().err


@pytest.mark.parametrize("as_of, first, last", [
    (dt.date(2026, 12, 1), dt.date(2023, 12, 1), dt.date(2026, 11, 30)),
    (dt.date(2026, 12, 31), dt.date(2023, 12, 1), dt.date(2026, 11, 30)),  # the month in progress is not complete
    (dt.date(2026, 4, 1), dt.date(2023, 4, 1), dt.date(2026, 3, 31)),
    (dt.date(2027, 1, 15), dt.date(2024, 1, 1), dt.date(2026, 12, 31)),
])
def test_demo_data_end_at_the_last_complete_month_before_the_build_date(as_of, first, last):
    assert demo.data_window("small", as_of)[1:] == (first, last)
    assert demo.data_window("large", as_of)[1] == first.replace(year=first.year - 2)


def test_demo_built_on_a_date_ends_the_month_before(small_demo):
    with duckdb.connect(str(small_demo), read_only=True) as con:
        assert con.execute("SELECT min(period), max(period) FROM metric_facts").fetchone() == ("2023-12", "2026-11")


def test_duckdbs_allocator_hands_freed_memory_back(tmp_path):
    """Every connection runs DuckDB's allocator with its background threads, which return the pages
    queries freed to the system (without them the app server grew with each monthly refresh)."""
    for con in (db.connect(tmp_path / "new.duckdb"), db.memory()):
        with con:
            assert con.execute("SELECT current_setting('allocator_background_threads')").fetchone() == (True,)
