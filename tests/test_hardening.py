"""Hardening (issue 5): a corpus of malformed import files, a real kill during an import, backup."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from openpyxl import Workbook

from opportunity_engine.store import db
from opportunity_engine.store.importer import import_files
from opportunity_engine.store.templates import header_row

from .conftest import ROOT, build_tiny
from .test_importer import BENCH, SESSION, SPELL, csv_bytes, snapshot, with_value

TABLES = (  # the importer's tables plus the app's own records
          "csus", "specialties", "metrics", "unit_costs", "benchmarks", "spells", "outpatients", "theatre_sessions",
          "workforce", "metric_facts", "import_log", "realised_savings", "schemes", "audit_log")


def csv(kind: str, *rows: list[str], header: list[str] | None = None) -> bytes:
    return csv_bytes(kind, list(rows), header)


OP = ["OP1", "A", "100", "2025-03-02", "first", "attended", "0", "0"]
WF = ["2025-03", "A", "Nursing", "100000", "5000", "2000", "30", "40", "600"]
METRIC = ["new_metric", "New metric", "Domain", "num", "den", "lower", "units", "new_cost", "cash", "", "30"]
put = with_value  # (row, kind, column, value): the row with one cell replaced


def xlsx(rows: list[list], formula_at: tuple[int, int] | None = None) -> bytes:
    book = Workbook()
    ws = book.active
    for r in rows:
        ws.append(r)
    if formula_at:
        ws.cell(row=formula_at[0], column=formula_at[1], value="=1+1")
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def big_spells(n: int, bad_last: bool) -> bytes:
    lines = [",".join(header_row("spells"))]
    lines += [f"S{i},A,100,2025-03-01,2025-03-04,elective,0,,0" for i in range(n)]
    if bad_last:
        lines.append(f"S{n},A,100,2025-03-05,2025-03-01,elective,0,,0")  # discharge before admission
    return ("\n".join(lines) + "\n").encode()


# (file name, content, a fragment the message must contain)
CORPUS = [
    ("misspelt_header.csv", csv("spells", SPELL, header=["spell_ident"] + header_row("spells")[1:]), "spell_ident"),
    ("missing_column.csv", csv("spells", SPELL[:-1], header=header_row("spells")[:-1]), "readmitted_30d"),
    ("no_known_header.csv", b"a,b,c\n1,2,3\n", "header"),
    ("empty.csv", b"", "empty"),
    ("header_only.csv", csv("spells"), "no data rows"),
    ("binary.csv", bytes(range(256)) * 40, "binary"),
    ("png_renamed.xlsx", b"\x89PNG\r\n\x1a\n" + os.urandom(2000), "not a readable .xlsx"),
    ("utf16.csv", csv("spells", SPELL).decode().encode("utf-16"), "UTF-16"),
    ("latin1.csv", csv("csus", ["X1", "Caf\xe9 CSU"]).decode().encode("latin-1"), "UTF-8"),
    ("uk_dates.csv", csv("spells", put(SPELL, "spells", "admission_date", "01/03/2025")), "YYYY-MM-DD"),
    ("impossible_date.csv", csv("spells", put(SPELL, "spells", "admission_date", "2025-02-30")), "YYYY-MM-DD"),
    ("ancient_date.csv", csv("spells", put(SPELL, "spells", "admission_date", "1850-01-01")), "plausible window"),
    ("discharge_before_admission.csv", csv("spells", put(SPELL, "spells", "discharge_date", "2025-02-01")), "before admission"),
    ("negative_minutes.csv", csv("theatre_sessions", put(SESSION, "theatre_sessions", "planned_minutes", "-240")), "negative"),
    ("huge_count.csv", csv("theatre_sessions", put(SESSION, "theatre_sessions", "cases", "99999999999")), "implausibly large"),
    ("huge_amount.csv", csv("workforce", put(WF, "workforce", "agency_cost_gbp", "1e15")), "implausibly large"),
    ("negative_amount.csv", csv("workforce", put(WF, "workforce", "bank_cost_gbp", "-5")), "negative"),
    ("pound_sign.csv", csv("workforce", put(WF, "workforce", "bank_cost_gbp", "£5000")), "must be a number"),
    ("nan_amount.csv", csv("workforce", put(WF, "workforce", "bank_cost_gbp", "nan")), "must be a number"),
    ("bad_period.csv", csv("workforce", put(WF, "workforce", "period", "2025-13")), "YYYY-MM"),
    ("duplicate_ids.csv", csv("spells", SPELL, SPELL), "duplicate of row 2"),
    ("unknown_csu.csv", csv("outpatients", put(OP, "outpatients", "csu_code", "ZZZ")), "unknown CSU"),
    ("unknown_specialty.csv", csv("outpatients", put(OP, "outpatients", "specialty_code", "999")), "unknown specialty"),
    ("bad_enum.csv", csv("outpatients", put(OP, "outpatients", "outcome", "no-show")), "must be one of"),
    ("bad_flag.csv", csv("outpatients", put(OP, "outpatients", "pifu", "yes")), "0 or 1"),
    ("over_tolerance.csv", csv("theatre_sessions", put(SESSION, "theatre_sessions", "used_minutes", "500")), "tolerance"),
    ("percentiles_out_of_order.csv", csv("benchmarks", put(BENCH, "benchmarks", "p75", "2.5")), "in order"),
    ("unknown_metric.csv", csv("benchmarks", put(BENCH, "benchmarks", "metric_id", "nope")), "unknown metric"),
    ("metric_bad_direction.csv", csv("metrics", put(METRIC, "metrics", "direction", "down")), "lower, higher"),
    ("metric_bad_id.csv", csv("metrics", put(METRIC, "metrics", "metric_id", "New Metric")), "lower-case"),
    ("facts_for_activity_metric.csv", csv("metric_facts", ["2025-03", "A", "100", "alos_elective", "5", "2"]), "computed from activity"),
    ("facts_zero_denominator.csv", csv("metric_facts", ["2025-03", "A", "100", "wf_agency_share", "5", "0"]), "above zero"),
    ("realised_unknown_scheme.csv", csv("realised_savings", ["999", "2026-04", "100"]), "unknown scheme"),
    ("ragged_row.csv", csv("spells", SPELL + ["extra", "fields"]), "row 2: the row does not have the same number"),
    ("unterminated_quote.csv", csv("csus", ['"X1', "Name"]), "could not be read as csv"),
    ("nul_bytes.csv", csv("csus", ["X1", "Bad\x00Name"]), "binary"),
    ("formula.xlsx", xlsx([header_row("csus"), ["X1", "Name"]], formula_at=(2, 2)), "formula"),
    ("empty_sheet.xlsx", xlsx([]), "sheet is empty"),
    ("notes.txt", b"spell_id\n1\n", ".csv and .xlsx"),
    ("very_large_bad_last_row.csv", big_spells(300_000, bad_last=True), "row 300002"),
]


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "tiny.duckdb"
    with db.connect(path) as con:
        build_tiny(con)
    return path


def test_corpus_has_at_least_thirty_files():
    assert len(CORPUS) >= 30 and len({name for name, _, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("name,content,fragment", CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_file_is_rejected_clearly_and_changes_nothing(tiny_file, tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with db.connect(tiny_file) as con:
        before = snapshot(con, TABLES)
        result = import_files(con, [path])
        after = snapshot(con, TABLES)
    assert not result.ok, f"{name} was accepted"
    report = result.report()
    assert "Traceback" not in report and name in report, report
    assert fragment.lower() in report.lower(), report
    assert "TransactionException" not in report and "failed and nothing was changed" not in report, report
    assert after == before


def _table_sums(path: Path) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        return snapshot(con, ("outpatients", "metric_facts", "import_log"))


@pytest.mark.slow
def test_a_process_killed_during_an_import_leaves_the_database_consistent(demo_copy, tmp_path):
    """A real SIGKILL while the CLI is loading a large file: the next open sees the database
    exactly as before the import (the transaction never committed) and passes its checks."""
    before = _table_sums(demo_copy)
    with duckdb.connect(str(demo_copy), read_only=True) as con:
        big = tmp_path / "outpatients.csv"
        con.execute(f"""COPY (SELECT appointment_id || '-k' || r AS appointment_id, csu_code, specialty_code,
                                     appointment_date, attendance_type, outcome, pifu, virtual
                              FROM outpatients, range(8) AS t(r)) TO '{big}' (HEADER)""")
    proc = subprocess.Popen([sys.executable, "-m", "opportunity_engine", "import", "--db", str(demo_copy), str(big)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    killed_during = None
    for line in proc.stderr:  # progress lines: kill it once it is loading inside the transaction
        if "Checking" in line or "Loading" in line:
            time.sleep(0.3)
            killed_during = line.strip()
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and killed_during, "the import finished before it could be killed"
    assert _table_sums(demo_copy) == before
    with db.connect(demo_copy) as con:  # opens read-write (replays or discards the WAL) and still works
        from opportunity_engine.analysis.opportunities import (
            Basis,
            compute_opportunities,
        )
        from opportunity_engine.scope import Scope

        assert con.execute("SELECT count(*) FROM metric_facts").fetchone()[0] == before["metric_facts"][0]
        assert len(compute_opportunities(con, Scope.trust(), Basis())) > 100
        for table in TABLES:  # every table scans end to end
            con.execute(f"SELECT * FROM {table}").fetchall()


def test_backup_writes_a_consistent_copy(demo_copy, tmp_path):
    from opportunity_engine.cli import main

    out = tmp_path / "backups" / "copy.duckdb"
    assert main(["backup", "--db", str(demo_copy), "--out", str(out)]) == 0
    tables = ("csus", "schemes", "cip_plans", "qia_scores", "realised_savings", "users", "metric_facts", "audit_log")
    with duckdb.connect(str(demo_copy), read_only=True) as a, duckdb.connect(str(out), read_only=True) as b:
        for t in tables:
            q = f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {t} AS t"
            assert a.execute(q).fetchone() == b.execute(q).fetchone(), t
        assert db.schema_version(b) == db.LATEST_VERSION
    assert main(["backup", "--db", str(demo_copy), "--out", str(out)]) == 1  # never overwrites a backup
