"""Import: every rule is reported with file, row, column and value; a rejection changes nothing."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from openpyxl import Workbook

from opportunity_engine.analysis.opportunities import Basis, opportunities
from opportunity_engine.cli import main
from opportunity_engine.scope import Scope
from opportunity_engine.store import db
from opportunity_engine.store.importer import import_files
from opportunity_engine.store.templates import TEMPLATES, example_row, header_row

from .conftest import build_tiny

TABLES = ("csus", "specialties", "metrics", "unit_costs", "benchmarks", "spells", "outpatients",
          "theatre_sessions", "workforce", "metric_facts", "import_log")


@pytest.fixture
def con(tmp_path):
    connection = db.connect(tmp_path / "t.duckdb")
    build_tiny(connection)
    yield connection
    connection.close()


def snapshot(con, tables: tuple[str, ...] = TABLES) -> dict:
    """Row count and an order-independent checksum of every table."""
    return {t: con.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {t} AS t").fetchone() for t in tables}


def csv_bytes(kind: str, rows: list[list[str]], header: list[str] | None = None) -> bytes:
    lines = [",".join(header or header_row(kind))] + [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_csv(path: Path, kind: str, rows: list[list[str]], header: list[str] | None = None) -> Path:
    path.write_bytes(csv_bytes(kind, rows, header))
    return path


SPELL = ["S1", "A", "100", "2025-03-01", "2025-03-04", "elective", "0", "2025-03-01", "0"]
SESSION = ["T1", "A", "100", "2025-03-03", "240", "200", "10", "20", "4", "0"]
BENCH = ["alos_elective", "100", "peer2", "1", "2", "3", "4", "5", "src"]


def with_value(base: list[str], kind: str, column: str, value: str) -> list[str]:
    out = list(base)
    out[header_row(kind).index(column)] = value
    return out


CASES = [
    # kind, good row, column, bad value, rule fragment
    ("spells", SPELL, "csu_code", "ZZZ", "unknown CSU code"),
    ("spells", SPELL, "specialty_code", "999", "unknown specialty code"),
    ("spells", SPELL, "admission_date", "01/03/2025", "must be a date written YYYY-MM-DD"),
    ("spells", SPELL, "admission_date", "2025-02-30", "must be a date written YYYY-MM-DD"),
    ("spells", SPELL, "discharge_date", "2025-02-01", "discharge date is before admission date"),
    ("spells", SPELL, "admission_type", "emergency", "must be one of: elective, day_case, non_elective"),
    ("spells", SPELL, "bads_eligible", "yes", "must be 0 or 1"),
    ("spells", SPELL, "readmitted_30d", "", "a value is required"),
    ("spells", SPELL, "procedure_date", "2025-04-01", "procedure date is outside the spell"),
    ("theatre_sessions", SESSION, "planned_minutes", "-240", "must not be negative"),
    ("theatre_sessions", SESSION, "cases", "4.5", "must be a whole number"),
    ("theatre_sessions", SESSION, "used_minutes", "400", "exceed planned minutes by more than the tolerance"),
    ("theatre_sessions", SESSION, "cases", "999999999999", "implausibly large"),
    ("benchmarks", BENCH, "p25", "6", "percentiles must be in order"),
    ("benchmarks", BENCH, "p50", "three", "must be a number"),
    ("benchmarks", BENCH, "metric_id", "no_such_metric", "unknown metric id"),
]


@pytest.mark.parametrize("kind,good,column,value,rule", CASES, ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CASES])
def test_each_rule_names_row_column_value_and_changes_nothing(con, tmp_path, kind, good, column, value, rule):
    second = with_value(good, kind, header_row(kind)[0], good[0] + "b") if kind != "benchmarks" else \
        with_value(good, kind, "peer_group", "peer3")
    path = write_csv(tmp_path / f"{kind}.csv", kind, [good, with_value(second, kind, column, value)])
    before = snapshot(con)
    result = import_files(con, [path])
    assert not result.ok
    expected_column = "p10" if rule.startswith("percentiles") else column
    hits = [i for i in result.issues if rule in i.rule]
    assert hits, result.report()
    assert hits[0].file == f"{kind}.csv" and hits[0].row == 3 and hits[0].column == expected_column
    if expected_column == column:
        assert hits[0].value == value
    assert snapshot(con) == before


def test_duplicate_ids_name_the_first_row(con, tmp_path):
    path = write_csv(tmp_path / "spells.csv", "spells", [SPELL, with_value(SPELL, "spells", "spell_id", "S2"), SPELL])
    result = import_files(con, [path])
    assert [(i.row, i.rule) for i in result.issues] == [(4, "duplicate of row 2")]


def test_a_bad_second_file_rolls_back_the_first(con, tmp_path):
    csus = write_csv(tmp_path / "csus.csv", "csus", [["C", "Gamma CSU"]])
    spells = write_csv(tmp_path / "spells.csv", "spells", [with_value(SPELL, "spells", "bads_eligible", "x")])
    before = snapshot(con)
    result = import_files(con, [spells, csus])
    assert not result.ok and snapshot(con) == before
    assert con.execute("SELECT count(*) FROM csus WHERE csu_code = 'C'").fetchone()[0] == 0


def test_reference_files_load_before_activity_in_one_command(con, tmp_path):
    csus = write_csv(tmp_path / "csus.csv", "csus", [["C", "Gamma CSU"]])
    specs = write_csv(tmp_path / "specialties.csv", "specialties", [["400", "Neurology", "C"]])
    spells = write_csv(tmp_path / "spells.csv", "spells", [["S9", "C", "400", "2025-03-01", "2025-03-02",
                                                            "non_elective", "0", "", "0"]])
    result = import_files(con, [spells, specs, csus])
    assert result.ok, result.report()
    assert [f.kind for f in result.loaded] == ["csus", "specialties", "spells"]


def test_reimport_of_a_period_replaces_it(con, tmp_path):
    rows = [with_value(SPELL, "spells", "spell_id", f"S{i}") for i in range(5)]
    path = write_csv(tmp_path / "spells.csv", "spells", rows)
    assert import_files(con, [path]).ok
    first = snapshot(con)
    assert import_files(con, [path]).ok
    again = snapshot(con)
    for table in ("spells", "metric_facts"):
        assert again[table] == first[table]  # not doubled
    fewer = write_csv(tmp_path / "spells.csv", "spells", rows[:2])
    assert import_files(con, [fewer]).ok
    assert con.execute("SELECT count(*) FROM spells WHERE period = '2025-03'").fetchone()[0] == 2
    facts = con.execute("""SELECT numerator, denominator FROM metric_facts
                           WHERE metric_id = 'readmission_30d' AND period = '2025-03' AND csu_code = 'A'""").fetchall()
    assert facts == [(0.0, 2.0)]


def test_an_id_loaded_for_another_month_is_refused(con, tmp_path):
    assert import_files(con, [write_csv(tmp_path / "spells.csv", "spells", [SPELL])]).ok
    moved = with_value(with_value(SPELL, "spells", "admission_date", "2025-04-01"), "spells", "discharge_date", "2025-04-02")
    moved = with_value(moved, "spells", "procedure_date", "")
    result = import_files(con, [write_csv(tmp_path / "spells.csv", "spells", [moved])])
    assert not result.ok
    assert result.issues[0].column == "spell_id" and "already loaded for 2025-03" in result.issues[0].rule


def test_a_new_metric_works_end_to_end_without_code(con, tmp_path):
    """Biosimilar uptake: 45 of 60 doses (75%) in A/100; peer p50 90% -> gap 9 doses x £120 = £1,080."""
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(
        "metric_id,metric_name,domain,numerator_label,denominator_label,direction,unit,cost_driver,"
        "saving_type,overlap_group,min_volume,value_format,funnel,scheme_ideas\n"
        "biosimilar_uptake,Biosimilar uptake,Medicines,Biosimilar doses,All doses,higher,doses,"
        "biosimilar_dose,cash,,30,percent,binomial,Switch clinic; Pharmacist review\n", encoding="utf-8")
    costs = write_csv(tmp_path / "unit_costs.csv", "unit_costs", [["biosimilar_dose", "", "120", "Trust pharmacy"]])
    bench = write_csv(tmp_path / "benchmarks.csv", "benchmarks",
                      [["biosimilar_uptake", "", "peer", "0.7", "0.8", "0.9", "0.95", "0.98", "Peer pharmacy data"]])
    facts = write_csv(tmp_path / "metric_facts.csv", "metric_facts",
                      [["2025-02", "A", "100", "biosimilar_uptake", "20", "30"],
                       ["2025-03", "A", "100", "biosimilar_uptake", "25", "30"]])
    result = import_files(con, [facts, bench, costs, metrics])
    assert result.ok, result.report()
    df = opportunities(con, Scope.trust(), Basis())
    r = df[df.metric_id == "biosimilar_uptake"].iloc[0]
    assert r.actual == pytest.approx(0.75) and r.target_value == pytest.approx(0.9)
    assert r.opportunity_gbp == pytest.approx(9 * 120) and r.saving_type == "cash"
    assert r.domain == "Medicines"
    ideas = con.execute("SELECT scheme_ideas FROM metrics WHERE metric_id = 'biosimilar_uptake'").fetchone()[0]
    assert ideas == ["Switch clinic", "Pharmacist review"]
    # metric facts re-import replaces (period, metric), never doubles
    assert import_files(con, [facts]).ok
    assert con.execute("SELECT count(*) FROM metric_facts WHERE metric_id = 'biosimilar_uptake'").fetchone()[0] == 2


def test_facts_for_an_activity_metric_are_refused(con, tmp_path):
    facts = write_csv(tmp_path / "metric_facts.csv", "metric_facts", [["2025-03", "A", "100", "alos_elective", "5", "1"]])
    result = import_files(con, [facts])
    assert not result.ok and "computed from activity" in result.issues[0].rule


@pytest.mark.parametrize("content,rule", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "binary"),
    ("csu_code,csu_name\nABD,Ab\xe9\n".encode("latin-1"), "not UTF-8"),
    (b"csu_code,csu_name\n", "no data rows"),
    (b"csu,name\nX,Y\n", "does not match"),
    (b"csu_code,csu_name\nX,Y,Z\n", "same number of columns"),
])
def test_unreadable_files_get_a_clear_message(con, tmp_path, content, rule):
    path = tmp_path / "csus.csv"
    path.write_bytes(content)
    before = snapshot(con)
    result = import_files(con, [path])
    assert not result.ok and any(rule in i.rule for i in result.issues), result.report()
    assert snapshot(con) == before


def test_excel_files_load_and_formulas_are_refused(con, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(header_row("spells"))
    sheet.append(["X1", "A", 100, dt.date(2025, 3, 1), dt.datetime(2025, 3, 3), "elective", 0, None, 1])
    good = tmp_path / "spells.xlsx"
    book.save(good)
    result = import_files(con, [good])
    assert result.ok, result.report()
    assert con.execute("SELECT specialty_code, discharge_date FROM spells WHERE spell_id = 'X1'").fetchone() == \
        ("100", dt.date(2025, 3, 3))
    sheet.append(["X2", "A", "100", "2025-03-01", "2025-03-02", "elective", "=1-1", None, 0])
    bad = tmp_path / "spells_formula.xlsx"
    book.save(bad)
    before = snapshot(con)
    result = import_files(con, [bad])
    assert not result.ok and "formula" in result.issues[0].rule and snapshot(con) == before


def test_template_examples_are_valid(con, tmp_path):
    """The example row shipped with each template passes the template's own rules."""
    order = ["csus", "specialties", "metrics", "unit_costs", "spells", "outpatients", "theatre_sessions", "workforce"]
    for kind in order:
        row = example_row(kind)
        if kind == "specialties":
            row = ["900", "Example", "A"]
        if kind == "csus":
            row = ["ABD", "Example CSU"]
        if kind in ("spells", "outpatients", "theatre_sessions", "workforce"):
            row = [("A" if h == "csu_code" else v) for h, v in zip(header_row(kind), row)]
        path = write_csv(tmp_path / f"{kind}.csv", kind, [row])
        result = import_files(con, [path])
        assert result.ok, result.report()
    assert set(TEMPLATES) >= set(order)


@pytest.mark.slow
def test_cli_import_exit_codes(tmp_path, capsys):
    path = tmp_path / "cli.duckdb"
    with db.connect(path) as c:
        build_tiny(c)
    good = write_csv(tmp_path / "spells.csv", "spells", [SPELL])
    assert main(["import", "--quiet", "--db", str(path), str(good)]) == 0
    bad = write_csv(tmp_path / "bad_spells.csv", "spells", [with_value(SPELL, "spells", "csu_code", "ZZ")])
    assert main(["import", "--quiet", "--db", str(path), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad_spells.csv, row 2, column csu_code, value 'ZZ': unknown CSU code" in err
    assert "Traceback" not in err


def test_dry_run_reports_and_changes_nothing(con, tmp_path):
    good = write_csv(tmp_path / "spells.csv", "spells", [SPELL])
    before = snapshot(con)
    checked = import_files(con, [good], dry_run=True)
    assert checked.ok and checked.dry_run and checked.loaded[0].rows == 1
    assert "nothing committed" in checked.report() and snapshot(con) == before
    assert import_files(con, [good]).ok and snapshot(con) != before


def test_realised_savings_import_is_checked_and_audited(con, tmp_path):
    from opportunity_engine.delivery import plans, qia, schemes, tracking, workflow
    from opportunity_engine.users import User

    fin = User("fin", "F", "", "finance", ())
    s = schemes.create(con, fin, "X", "A")
    idea = schemes.create(con, fin, "Still an idea", "A")
    for status in ("shortlisted", "planning"):
        s = workflow.update(con, fin, s.scheme_id, s.version, status=status)
    plans.save_plan(con, fin, s.scheme_id, s.version, 2026, 1, 12_000)
    s = schemes.get(con, fin, s.scheme_id)
    qia.save_scores(con, fin, s.scheme_id, s.version, {d: (1, 1, "") for d in qia.DOMAINS})
    for role in qia.TRI_TEAM:
        s = schemes.get(con, fin, s.scheme_id)
        qia.sign_off(con, fin, s.scheme_id, s.version, role, "N", dt.date(2026, 4, 1))
    s = workflow.update(con, fin, s.scheme_id, schemes.get(con, fin, s.scheme_id).version, status="approved")
    bad = write_csv(tmp_path / "realised_savings.csv", "realised_savings",
                    [[str(s.scheme_id), "2026-04", "1000"], [str(idea.scheme_id), "2026-04", "5"],
                     [str(s.scheme_id), "2026-13", "1"], [str(s.scheme_id), "2026-05", "-4"]])
    result = import_files(con, [bad])
    assert [(i.row, i.column) for i in result.issues] == [(3, "scheme_id"), (4, "period"), (5, "realised_gbp")]
    assert "not approved yet" in result.issues[0].rule and tracking.realised(con, fin.scope).empty
    good = write_csv(tmp_path / "realised_savings.csv", "realised_savings",
                     [[str(s.scheme_id), "2026-04", "1000"], [str(s.scheme_id), "2026-05", "900.50"]])
    assert import_files(con, [good], loaded_by="importer").ok
    assert list(tracking.realised(con, fin.scope).realised_gbp) == [1000, 900.5]
    history = schemes.history(con, fin, s.scheme_id)
    assert {"realised.2026-04", "realised.2026-05"} <= set(history.field)
    assert set(history[history.field.str.startswith("realised")].username) == {"importer"}


def test_uploads_over_the_limit_or_of_the_wrong_type_get_a_clear_message(tmp_path):
    from opportunity_engine.store.importer import stage_uploads

    files = [("spells march.csv", 10, b"spell_id\n"), ("huge.csv", 301 * 1024 * 1024, b""),
             ("report.pdf", 10, b"%PDF"), ("../../etc/passwd", 5, b"x")]
    paths, problems = stage_uploads(files, tmp_path, limit_mb=300)
    assert [p.name for p in paths] == ["spells_march.csv"] and paths[0].parent == tmp_path
    assert problems[0].startswith("huge.csv: 301 MB is over the 300 MB limit")
    assert "report.pdf: only .csv and .xlsx" in problems[1]
    assert "passwd" in problems[2] and not (tmp_path.parent / "passwd").exists()


def test_commit_after_a_fresh_check_skips_the_checks_and_repeats_its_report(con, tmp_path, monkeypatch):
    """The Data page's Commit hands over its check: same files, no import since, so the commit loads
    without validating again (half of the wait), and says exactly what the check said."""
    from opportunity_engine.store import importer

    good = write_csv(tmp_path / "spells.csv", "spells", [SPELL])
    checked = import_files(con, [good], dry_run=True)
    assert checked.ok and checked.checked_against is not None

    def refuse(*args, **kwargs):
        raise AssertionError("validated again")

    monkeypatch.setattr(importer, "_validate", refuse)
    monkeypatch.setattr(importer, "_compare", refuse)
    done = import_files(con, [good], checked=checked)
    assert done.ok, done.report()
    assert [str(c) for c in done.changes] == [str(c) for c in checked.changes]
    assert con.execute("SELECT count(*) FROM spells WHERE spell_id = 'S1'").fetchone()[0] == 1


def test_commit_checks_again_when_the_file_or_the_data_changed_since_the_check(con, tmp_path):
    """A check is stale once the file is rewritten or another import has committed: the commit then
    validates from scratch, so an id loaded meanwhile for another CSU is refused, not duplicated."""
    good = write_csv(tmp_path / "spells.csv", "spells", [SPELL])
    checked = import_files(con, [good], dry_run=True)
    (tmp_path / "other").mkdir()
    other = write_csv(tmp_path / "other" / "spells.csv", "spells",
                      [with_value(with_value(SPELL, "spells", "csu_code", "B"), "spells", "specialty_code", "200")])
    assert import_files(con, [other]).ok  # S1 now held by CSU B
    before = snapshot(con)
    done = import_files(con, [good], checked=checked)
    assert not done.ok and "already loaded" in done.report(), done.report()
    assert snapshot(con) == before
    # a rewritten file is read afresh even at the same data version
    checked = import_files(con, [good], dry_run=True)
    write_csv(good, "spells", [with_value(SPELL, "spells", "csu_code", "ZZ")])
    done = import_files(con, [good], checked=checked)
    assert not done.ok and "unknown CSU code" in done.report()
    assert snapshot(con) == before


def test_an_import_committing_between_the_check_and_the_commit_wins_and_the_commit_changes_nothing(con, tmp_path):
    """The data version is read inside the commit's transaction; an import that commits after that
    read writes the same settings row, so the later commit fails whole instead of loading against
    checks that no longer hold."""
    good = write_csv(tmp_path / "spells.csv", "spells", [SPELL])
    checked = import_files(con, [good], dry_run=True)
    (tmp_path / "b").mkdir()
    other = write_csv(tmp_path / "b" / "spells.csv", "spells",
                      [with_value(with_value(SPELL, "spells", "csu_code", "B"), "spells", "specialty_code", "200")])
    rival = con.cursor()
    fired = []

    def meanwhile(message: str, fraction: float) -> None:
        if message.startswith("Checking") and not fired:  # inside the commit's transaction
            fired.append(import_files(rival, [other]))

    done = import_files(con, [good], checked=checked, progress=meanwhile)
    assert fired and fired[0].ok
    assert not done.ok and "another import was committed while this one ran" in done.report(), done.report()
    assert con.execute("SELECT count(*) FROM spells WHERE spell_id = 'S1'").fetchone()[0] == 1
