"""`init`: a ready, empty database for a trust (issue 14, point 1)."""
from __future__ import annotations

import csv
import io
import sys

from opportunity_engine import users
from opportunity_engine.analysis import catalogue
from opportunity_engine.cli import main
from opportunity_engine.config import DATA_DIR
from opportunity_engine.store import db
from opportunity_engine.store.importer import import_files


def _shipped_costs() -> int:
    with (DATA_DIR / "unit_costs.csv").open(newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def test_init_makes_a_ready_empty_database_with_an_admin(tmp_path, monkeypatch, capsys):
    path = tmp_path / "trust.duckdb"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-pass-phrase\n"))
    assert main(["init", "--db", str(path), "--admin", "Finance.Lead", "--name", "Finance Lead",
                 "--password-stdin"]) == 0
    out = capsys.readouterr().out
    shipped = len(catalogue.load_toml())
    assert f"{shipped} catalogue metrics, {_shipped_costs()} unit costs" in out
    with db.connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM metrics WHERE origin = 'catalogue'").fetchone()[0] == shipped
        assert con.execute("SELECT count(*) FROM unit_costs WHERE source <> ''").fetchone()[0] == _shipped_costs()
        assert con.execute("SELECT count(*) FROM csus").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM spells").fetchone()[0] == 0
        assert [(u.username, u.role) for u in users.list_users(con)] == [("finance.lead", "admin")]
    with db.connect(path) as con:  # signing in writes (the failure count), so not read-only
        assert users.attempt_sign_in(con, "finance.lead", "a-long-pass-phrase").ok
    # A second init would add a second first admin: refused, the file unchanged.
    monkeypatch.setattr(sys, "stdin", io.StringIO("another-pass-phrase\n"))
    assert main(["init", "--db", str(path), "--admin", "other", "--name", "Other", "--password-stdin"]) == 1
    assert "already has users" in capsys.readouterr().err


def test_init_without_a_terminal_or_options_makes_no_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "trust.duckdb"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["init", "--db", str(path)]) == 1
    assert "admin username is needed" in capsys.readouterr().err
    assert not path.exists()


def test_any_new_file_holds_the_shipped_catalogue_and_accepts_benchmarks(tmp_path):
    """The issue's first failure: benchmarks into a fresh database were refused as unknown metrics."""
    with db.connect(tmp_path / "fresh.duckdb") as con:
        assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] == len(catalogue.load_toml())
        bench = tmp_path / "benchmarks.csv"
        bench.write_text("metric_id,specialty_code,peer_group,p10,p25,p50,p75,p90,source\n"
                         "alos_non_elective,,peer,3,4,5,6,7,Model Hospital\n")
        result = import_files(con, [bench])
        assert result.ok, result.report()
        # The trust's own edits survive a reopen: only what is missing is added back.
        con.execute("UPDATE unit_costs SET unit_cost_gbp = 1, source = 'trust' WHERE cost_driver = 'bed_day'")
        con.execute("DELETE FROM metrics WHERE metric_id = 'op_dna_rate'")
    with db.connect(tmp_path / "fresh.duckdb") as con:
        assert con.execute("SELECT DISTINCT unit_cost_gbp, source FROM unit_costs WHERE cost_driver = 'bed_day'"
                           ).fetchall() == [(1.0, "trust")]
        assert con.execute("SELECT count(*) FROM metrics WHERE metric_id = 'op_dna_rate'").fetchone()[0] == 1
