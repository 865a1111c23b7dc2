"""A corpus of odd and bad extract files (issue 14): each file is generated here, each case asserts
its exact outcome, and every refusal leaves the database exactly as it was.

The base trust is built from import files only (three CSUs, three specialties, one month of
spells and outpatients), so the same files also show an empty database reaching figures.
"""
from __future__ import annotations

import datetime as dt
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.formula import ArrayFormula

from opportunity_engine.store import db
from opportunity_engine.store.importer import import_files

TABLES = ("csus", "specialties", "metrics", "unit_costs", "benchmarks", "spells", "outpatients",
          "theatre_sessions", "workforce", "metric_facts", "realised_savings", "import_log", "audit_log")

CSUS = "csu_code,csu_name\nABD,Abdominal\nEMA,Emergency Medicine\nCAR,Cardiac\n"
SPECIALTIES = "specialty_code,specialty_name,csu_code\n100,General Surgery,ABD\n180,Emergency Medicine,EMA\n320,Cardiology,CAR\n"
SPELL_HEADER = "spell_id,csu_code,specialty_code,admission_date,discharge_date,admission_type,bads_eligible,procedure_date,readmitted_30d"
OP_HEADER = "appointment_id,csu_code,specialty_code,appointment_date,attendance_type,outcome,pifu,virtual"
WF_HEADER = "period,csu_code,staff_group,substantive_cost_gbp,bank_cost_gbp,agency_cost_gbp,contracted_wte,sickness_fte_days,available_fte_days"
MF_HEADER = "period,csu_code,specialty_code,metric_id,numerator,denominator"


def spell(i: str, csu: str = "ABD", spec: str = "100", adm: str = "2026-03-02", dis: str = "2026-03-07",
          kind: str = "elective") -> str:
    return f"{i},{csu},{spec},{adm},{dis},{kind},0,,0"


BASE_SPELLS = [spell(f"S{i}") for i in range(1, 5)] + [spell(f"E{i}", "EMA", "180", kind="non_elective")
                                                         for i in range(1, 4)] + [spell("C1", "CAR", "320")]
BASE_OPS = [f"A{i},ABD,100,2026-03-0{i},first,{'dna' if i == 1 else 'attended'},0,0" for i in range(1, 5)]


def spells_csv(rows: list[str]) -> str:
    return SPELL_HEADER + "\n" + "\n".join(rows) + "\n"


def snapshot(con) -> dict:
    return {t: con.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {t} AS t").fetchone() for t in TABLES}


def base_files(folder: Path) -> list[Path]:
    files = {"csus.csv": CSUS, "specialties.csv": SPECIALTIES,
             "benchmarks.csv": "metric_id,specialty_code,peer_group,p10,p25,p50,p75,p90,source\n"
                               "alos_elective,100,peer,2,2.5,3,3.5,4,Model Hospital test\n",
             "spells.csv": spells_csv(BASE_SPELLS),
             "outpatients.csv": OP_HEADER + "\n" + "\n".join(BASE_OPS) + "\n"}
    out = []
    for name, text in files.items():
        (folder / name).write_text(text)
        out.append(folder / name)
    return out


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus-base")
    path = folder / "base.duckdb"
    with db.connect(path) as con:
        result = import_files(con, base_files(folder))
        assert result.ok, result.report()
        con.execute("""INSERT INTO schemes (title, csu_code, status, created_by, updated_by)
                       VALUES ('Discharge before noon', 'ABD', 'approved', 'test', 'test')""")
    return path


@pytest.fixture
def con(base_db, tmp_path):
    path = tmp_path / "case.duckdb"
    shutil.copy(base_db, path)
    connection = db.connect(path)
    yield connection
    connection.close()


# ---------------------------------------------------------------- .xlsx builders

def xlsx(path: Path, rows: list[list], title: str = "Data", extra: dict | None = None, hide_active: bool = False,
         active: int = 0, style_right: int = 0) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    for col in range(style_right):  # empty but formatted columns right of the header
        sheet.cell(row=1, column=len(rows[0]) + 1 + col).font = Font(bold=True)
    for name, sheet_rows in (extra or {}).items():
        other = book.create_sheet(name)
        for row in sheet_rows:
            other.append(row)
    book.active = active
    if hide_active:
        book.worksheets[active].sheet_state = "hidden"
    book.save(path)
    return path


def set_dimension(path: Path, ref: str) -> None:
    """Rewrite the stored <dimension> as some exporters leave it (stale)."""
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                data = re.sub(rb'<dimension ref="[^"]*"\s*/>', f'<dimension ref="{ref}"/>'.encode(), data)
            dst.writestr(item, data)
    tmp.replace(path)


def set_active_tab(path: Path, index: int) -> None:
    """Make a (hidden) sheet the active one, as openpyxl will not but other writers do."""
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/workbook.xml":
                data = re.sub(rb'activeTab="\d+"', f'activeTab="{index}"'.encode(), data)
            dst.writestr(item, data)
    tmp.replace(path)


def sheet_rows(text: str) -> list[list]:
    return [line.split(",") for line in text.strip().splitlines()]


def spells_rows(n: int) -> list[list]:
    return [SPELL_HEADER.split(",")] + [spell(f"X{i}", adm="2026-02-02", dis="2026-02-05").split(",")
                                        for i in range(n)]


# ---------------------------------------------------------------- the corpus

@dataclass
class Case:
    name: str
    files: dict[str, bytes | object]  # file name -> bytes, or a callable(path) writing the file
    # Accepted: the expected (table, count) pairs after the load. Refused: (file, row, column, rule part).
    loads: dict[str, int] | None = None
    refused: tuple[str, int | None, str | None, str] | None = None


def b(text: str) -> bytes:
    return text.encode("utf-8")


def new_spells(rows: list[str], header: str = SPELL_HEADER, sep: str = "\n") -> bytes:
    return b(header + sep + sep.join(rows) + sep)


FEB = [spell("F1", adm="2026-02-01", dis="2026-02-03"), spell("F2", adm="2026-02-04", dis="2026-02-06")]
BIG = "x" * 200_000

CASES: list[Case] = [
    # --- CSV: ordinary files that must load in full
    Case("crlf", {"spells.csv": new_spells(FEB, sep="\r\n")}, loads={"spells": 10}),
    Case("mixed line endings", {"spells.csv": b(SPELL_HEADER + "\r\n" + FEB[0] + "\n" + FEB[1] + "\r")},
         loads={"spells": 10}),
    Case("old Mac line endings", {"spells.csv": new_spells(FEB, sep="\r")}, loads={"spells": 10}),
    Case("BOM", {"spells.csv": b"\xef\xbb\xbf" + new_spells(FEB)}, loads={"spells": 10}),
    Case("trailing empty column", {"spells.csv": b(SPELL_HEADER + ",\n" + FEB[0] + ",\n" + FEB[1] + ",\n")},
         loads={"spells": 10}),
    Case("trailing empty columns, header only", {"spells.csv": b(SPELL_HEADER + ",,\n" + "\n".join(FEB) + "\n")},
         loads={"spells": 10}),
    Case("trailing separator on rows only", {"spells.csv": b(SPELL_HEADER + "\n" + FEB[0] + ",\n" + FEB[1] + ",,\n")},
         loads={"spells": 10}),
    Case("upper-case header", {"spells.csv": new_spells(FEB, header=SPELL_HEADER.upper())}, loads={"spells": 10}),
    Case("spaces for underscores", {"spells.csv": new_spells(FEB, header=SPELL_HEADER.replace("_", " ").title())},
         loads={"spells": 10}),
    Case("spaces around headers", {"spells.csv": new_spells(FEB, header=",".join(f"  {h} " for h in SPELL_HEADER.split(",")))},
         loads={"spells": 10}),
    Case("columns in another order", {"spells.csv": b("discharge_date,admission_date,spell_id,csu_code,specialty_code,"
                                                     "admission_type,bads_eligible,procedure_date,readmitted_30d\n"
                                                     "2026-02-03,2026-02-01,F1,ABD,100,elective,0,,0\n")},
         loads={"spells": 9}),
    Case("blank lines inside", {"spells.csv": b(SPELL_HEADER + "\n" + FEB[0] + "\n\n  \n" + FEB[1] + "\n")},
         loads={"spells": 10}),
    Case("blank lines at the end", {"spells.csv": new_spells(FEB) + b"\n\n\n"}, loads={"spells": 10}),
    Case("a blank line straight after the header, spaces as the last line", {"spells.csv": b(
        SPELL_HEADER + "\n\t\n" + FEB[0] + "\n" + FEB[1] + "\n  ")}, loads={"spells": 10}),
    Case("blank lines counted after a blank line straight after the header", {"spells.csv": b(
        SPELL_HEADER + "\n\n" + FEB[0] + "\n \n" + spell("F9", csu="ZZZ") + "\n")},
         refused=("spells.csv", 5, "csu_code", "unknown CSU code")),
    Case("rows of separators only (Excel's empty rows)", {"spells.csv": b(SPELL_HEADER + "\n" + FEB[0] + "\n,,,,,,,,\n"
                                                                          + FEB[1] + "\n")}, loads={"spells": 10}),
    Case("quoted names with commas and accents", {"csus.csv": b('csu_code,csu_name\nNEW,"Médecine, Urgences"\n')},
         loads={"csus": 4}),
    Case("quoted name over two lines", {"csus.csv": b('csu_code,csu_name\nNEW,"Two\nlines"\n')}, loads={"csus": 4}),
    Case("no final newline", {"spells.csv": new_spells(FEB)[:-1]}, loads={"spells": 10}),
    Case("spells split by CSU in two files", {"spells_abd.csv": new_spells(FEB),
                                              "spells_ema.csv": new_spells([spell("F3", "EMA", "180", "2026-02-01",
                                                                                   "2026-02-02", "non_elective")])},
         loads={"spells": 11}),
    Case("one CSU's month re-loaded: the other CSUs stay", {"spells.csv": new_spells([spell("S1", dis="2026-03-09")])},
         loads={"spells": 5}),  # ABD 2026-03 held S1-S4: now S1 only; EMA and CAR untouched
    Case("the same file again: idempotent", {"spells.csv": b(spells_csv(BASE_SPELLS))}, loads={"spells": 8}),
    # --- CSV: refused, with file, row, column and rule
    Case("Windows-1252 byte at its row", {"csus.csv": b("csu_code,csu_name\nN1,One\nN2,Two\n") + "N3,Caf\xe9\n".encode("cp1252")},
         refused=("csus.csv", 4, "csu_name", "not UTF-8")),
    Case("encoding error after blank lines", {"csus.csv": b("csu_code,csu_name\n\n\nN1,One\n") + "N3,Caf\xe9\n".encode("cp1252")},
         refused=("csus.csv", 5, "csu_name", "not UTF-8")),
    Case("NUL after the first 4 KB", {"csus.csv": b("csu_code,csu_name\n" + "".join(f"N{i},Name {i}\n" for i in range(400)))
                                      + b"NX,Bad\x00name\n"}, refused=("csus.csv", 402, "csu_name", "NUL")),
    Case("UTF-16", {"csus.csv": "csu_code,csu_name\nN1,One\n".encode("utf-16")}, refused=("csus.csv", 1, None, "UTF-16")),
    Case("binary", {"csus.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00binary"}, refused=("csus.csv", 1, None, "binary")),
    Case("oversized header field", {"csus.csv": b("csu_code,csu_name" + BIG + "\nN1,One\n")},
         refused=("csus.csv", 1, None, "longer than")),
    Case("oversized data field", {"csus.csv": b("csu_code,csu_name\nN1," + BIG + "\n")},
         refused=("csus.csv", 2, "csu_name", "longer than 200 characters")),
    Case("unclosed quote", {"csus.csv": b('csu_code,csu_name\nN1,"One\nN2,Two\n')},
         refused=("csus.csv", 2, None, "could not be read as CSV")),
    Case("a value beyond the header", {"csus.csv": b("csu_code,csu_name\nN1,One\nN2,Two,extra\n")},
         refused=("csus.csv", 3, None, "same number of columns")),
    Case("a value in a trailing unnamed column", {"csus.csv": b("csu_code,csu_name,\nN1,One,\nN2,Two,oops\n")},
         refused=("csus.csv", 3, None, "column without a header")),
    Case("blank lines counted in row numbers", {"spells.csv": b(SPELL_HEADER + "\n" + FEB[0] + "\n\n\n"
                                                                + spell("F9", csu="ZZZ") + "\n")},
         refused=("spells.csv", 5, "csu_code", "unknown CSU code")),
    Case("empty", {"csus.csv": b""}, refused=("csus.csv", 1, None, "empty")),
    Case("header only", {"csus.csv": b("csu_code,csu_name\n")}, refused=("csus.csv", None, None, "no data rows")),
    Case("unknown header", {"csus.csv": b("code,name\nN1,One\n")}, refused=("csus.csv", 1, None, "does not match")),
    Case("zero-width space in a code", {"spells.csv": new_spells([spell("F1", csu="AB\u200bD")])},
         refused=("spells.csv", 2, "csu_code", "invisible")),
    Case("no-break space in a code", {"csus.csv": b("csu_code,csu_name\nN\u00a01,One\n")},
         refused=("csus.csv", 2, "csu_code", "invisible")),
    Case("tab inside a code", {"csus.csv": b("csu_code,csu_name\nN\t1,One\n")},
         refused=("csus.csv", 2, "csu_code", "invisible")),
    Case("control character in a name", {"csus.csv": b("csu_code,csu_name\nN1,On\x07e\n")},
         refused=("csus.csv", 2, "csu_name", "control")),
    Case("formula text in a CSV", {"csus.csv": b("csu_code,csu_name\nN1,=HYPERLINK(\"x\")\n")},
         refused=("csus.csv", 2, "csu_name", "formula")),
    Case("one spell id twice across two files", {"spells_a.csv": new_spells([FEB[0]]), "spells_b.csv": new_spells([FEB[0]])},
         refused=("spells_b.csv", 2, "spell_id", "duplicate of row 2 of spells_a.csv")),
    Case("one spell id twice in a file", {"spells.csv": new_spells([FEB[0], FEB[1], FEB[0]])},
         refused=("spells.csv", 4, "spell_id", "duplicate of row 2")),
    Case("one code given two names", {"csus_a.csv": b("csu_code,csu_name\nN1,North\n"),
                                      "csus_b.csv": b("csu_code,csu_name\nN1,South\n")},
         refused=("csus_b.csv", 2, "csu_code", "given two names")),
    Case("spell already loaded for another CSU's month", {"spells.csv": new_spells([spell("E1", adm="2026-02-01",
                                                                                        dis="2026-02-03")])},
         refused=("spells.csv", 2, "spell_id", "already loaded for 2026-03, CSU EMA")),
    Case("outpatient row under another CSU's specialty", {"outpatients.csv": b(OP_HEADER + "\nA9,EMA,100,2026-03-05,first,attended,0,0\n")},
         refused=("outpatients.csv", 2, "specialty_code", "belongs to another CSU")),
    Case("metric facts under another CSU's specialty", {
        "metrics.csv": b("metric_id,metric_name,domain,numerator_label,denominator_label,direction,unit,cost_driver,"
                         "saving_type,overlap_group,min_volume\nbiosimilar_uptake,Biosimilar uptake,Medicines,Biosimilar "
                         "doses,All doses,higher,doses,biosimilar_dose,cash,,30\n"),
        "metric_facts.csv": b(MF_HEADER + "\n2026-03,CAR,100,biosimilar_uptake,1,2\n")},
        refused=("metric_facts.csv", 2, "specialty_code", "belongs to another CSU")),
    Case("workforce period 2999-04", {"workforce.csv": b(WF_HEADER + "\n2026-03,ABD,Nursing,100,10,5,3,2,60\n"
                                                                     "2999-04,ABD,Nursing,100,10,5,3,2,60\n")},
         refused=("workforce.csv", 3, "period", "plausible window")),
    Case("metric facts period 1900-01", {"metric_facts.csv": b(MF_HEADER + "\n1900-01,ABD,100,alos_elective,1,2\n")},
         refused=("metric_facts.csv", 2, "period", "plausible window")),
    Case("metric facts period 2099-12", {"metric_facts.csv": b(MF_HEADER + "\n2099-12,ABD,,op_dna_rate,1,2\n")},
         refused=("metric_facts.csv", 2, "period", "plausible window")),
    Case("admission in 1850", {"spells.csv": new_spells([spell("F1", adm="1850-01-01", dis="2026-02-01")])},
         refused=("spells.csv", 2, "admission_date", "plausible window")),
    Case("discharge years ahead", {"spells.csv": new_spells([spell("F1", adm="2026-02-01", dis="2031-01-01")])},
         refused=("spells.csv", 2, "discharge_date", "plausible window")),
    Case("realised savings of £50bn", {"realised_savings.csv": b("scheme_id,period,realised_gbp\n1,2026-06,50000000000\n")},
         refused=("realised_savings.csv", 2, "realised_gbp", "Tracking form's limit")),
    Case("realised savings for 2999-01", {"realised_savings.csv": b("scheme_id,period,realised_gbp\n1,2999-01,100\n")},
         refused=("realised_savings.csv", 2, "period", "plausible window")),
    Case("period written as a date", {"workforce.csv": b(WF_HEADER + "\n2026-03-01,ABD,Nursing,100,10,5,3,2,60\n")},
         refused=("workforce.csv", 2, "period", "YYYY-MM")),
    # --- .xlsx
    Case("xlsx stale dimension A1", {"spells.xlsx": lambda p: (xlsx(p, spells_rows(10)), set_dimension(p, "A1"))},
         loads={"spells": 18}),
    Case("xlsx stale dimension A1:I3", {"spells.xlsx": lambda p: (xlsx(p, spells_rows(10)), set_dimension(p, "A1:I3"))},
         loads={"spells": 18}),
    Case("xlsx empty formatted columns right of the header", {"spells.xlsx": lambda p: xlsx(p, spells_rows(3), style_right=5)},
         loads={"spells": 11}),
    Case("xlsx date cell in a period column", {"workforce.xlsx": lambda p: xlsx(p, [
        WF_HEADER.split(","), [dt.datetime(2026, 3, 1), "ABD", "Nursing", 100, 10, 5, 3, 2, 60]])},
         loads={"workforce": 1}),
    Case("xlsx dates and numbers as cells", {"spells.xlsx": lambda p: xlsx(p, [
        SPELL_HEADER.split(","), ["Q1", "ABD", 100, dt.date(2026, 2, 1), dt.datetime(2026, 2, 3), "elective", 0, None, 0]])},
         loads={"spells": 9}),
    Case("xlsx header in any case", {"csus.xlsx": lambda p: xlsx(p, [["CSU Code", "CSU Name"], ["N1", "North"]])},
         loads={"csus": 4}),
    Case("xlsx empty rows above the header", {"csus.xlsx": lambda p: xlsx(p, [[None], [None], ["csu_code", "csu_name"],
                                                                              ["N1", "North"], ["N2", None]])},
         refused=("csus.xlsx", 5, "csu_name", "a value is required")),
    Case("xlsx data on the only sheet with data (not the active one)", {"csus.xlsx": lambda p: xlsx(
        p, [], title="Notes", extra={"Extract": sheet_rows(CSUS)[:1] + [["N1", "North"]]})}, loads={"csus": 4}),
    Case("xlsx active sheet chosen over a notes sheet", {"csus.xlsx": lambda p: xlsx(
        p, [["Read me"], ["Loaded monthly"]], title="Notes", extra={"Extract": [["csu_code", "csu_name"], ["N1", "North"]]},
        active=1)}, loads={"csus": 4}),
    Case("xlsx formula", {"csus.xlsx": lambda p: xlsx(p, [["csu_code", "csu_name"], ["N1", '=CONCAT("No","rth")']])},
         refused=("csus.xlsx", 2, "csu_name", "formula")),
    Case("xlsx array formula", {"csus.xlsx": lambda p: xlsx(p, [["csu_code", "csu_name"],
                                                                ["N1", ArrayFormula("B2", '=UPPER("north")')]])},
         refused=("csus.xlsx", 2, "csu_name", "formula")),
    Case("xlsx hidden active sheet", {"csus.xlsx": lambda p: (xlsx(p, [["csu_code", "csu_name"], ["N1", "North"]],
                                                                   extra={"Other": [["x"]]}, hide_active=True),
                                                              set_active_tab(p, 0))},
         refused=("csus.xlsx", 1, None, "hidden")),
    Case("xlsx data only on a hidden sheet", {"csus.xlsx": lambda p: _hidden_data(p)},
         refused=("csus.xlsx", 1, None, "hidden sheet 'Extract'")),
    Case("xlsx two data sheets", {"csus.xlsx": lambda p: xlsx(p, [["csu_code", "csu_name"], ["N1", "North"]],
                                                              extra={"More": [["csu_code", "csu_name"], ["N2", "South"]]})},
         refused=("csus.xlsx", 1, None, "more than one data sheet")),
    Case("xlsx value right of the last header column", {"csus.xlsx": lambda p: xlsx(
        p, [["csu_code", "csu_name"], ["N1", "North", None, "stray"]])},
         refused=("csus.xlsx", 2, None, "right of the last header column")),
    Case("xlsx that is not a workbook", {"csus.xlsx": b"csu_code,csu_name\nN1,North\n"},
         refused=("csus.xlsx", 1, None, "not a readable .xlsx")),
    Case("xlsx zero-width space in a code", {"csus.xlsx": lambda p: xlsx(p, [["csu_code", "csu_name"], ["N\u200b1", "North"]])},
         refused=("csus.xlsx", 2, "csu_code", "invisible")),
]


def _hidden_data(path: Path) -> Path:
    xlsx(path, [], title="Cover", extra={"Extract": [["csu_code", "csu_name"], ["N1", "North"]]})
    from openpyxl import load_workbook

    book = load_workbook(path)
    book["Extract"].sheet_state = "hidden"
    book.save(path)
    return path


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_file(con, tmp_path, case: Case):
    paths = []
    for name, content in case.files.items():
        path = tmp_path / name
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)
        paths.append(path)
    before = snapshot(con)
    result = import_files(con, paths)
    if case.refused:
        file, row, column, rule = case.refused
        assert not result.ok, result.report()
        first = result.issues[0]
        assert (first.file, first.row, first.column) == (file, row, column), result.report()
        assert rule in first.rule, result.report()
        assert snapshot(con) == before
    else:
        assert result.ok, result.report()
        for table, count in case.loads.items():
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == count, result.report()


def test_blank_lines_inside_quoted_values_stay_in_the_value(con, tmp_path):
    """A name typed over several lines in Excel, with an empty line between: the empty line is
    part of the value, not a blank row to fill with separators (it once became 'Two\\n,\\nlines'),
    while the blank lines between rows are still counted in row numbers."""
    path = tmp_path / "csus.csv"
    path.write_bytes(b('csu_code,csu_name\nNEW,"Two\n\nlines"\n\nN2,"Say ""hi""\n \nthere"\n'))
    result = import_files(con, [path])
    assert result.ok, result.report()
    names = dict(con.execute("SELECT csu_code, csu_name FROM csus WHERE csu_code IN ('NEW', 'N2')").fetchall())
    assert names == {"NEW": "Two\n\nlines", "N2": 'Say "hi"\n \nthere'}
    path.write_bytes(b('csu_code,csu_name\nNEW,"Two\n\nlines"\n\nN\u200b2,Bad\n'))
    refused = import_files(con, [path])
    assert (refused.issues[0].row, refused.issues[0].column) == (4, "csu_code"), refused.report()


def test_the_report_spells_out_invisible_characters_and_cuts_long_values(con, tmp_path):
    """The Data page's report table: a refused code with a zero-width space must not look exactly
    like the valid code it imitates, and a 200 KB value must not fill the page."""
    path = tmp_path / "csus.csv"
    path.write_bytes(b("csu_code,csu_name\nN\u200b1,One\nN2," + "x" * 500 + "\n"))
    rows = import_files(con, [path]).table()
    assert [(r["row"], r["column"], r["value"]) for r in rows] == [
        (2, "csu_code", "N⟨U+200B⟩1"), (3, "csu_name", "x" * 59 + "…")]


def test_reload_report_announces_exactly_what_changes(con, tmp_path):
    """ABD 2026-03 holds S1-S4: a file with S1 (changed) and S9 replaces 1, adds 1, removes 3; EMA and
    CAR, and ABD's other months, are untouched, and the database changes only as announced."""
    path = tmp_path / "spells.csv"
    path.write_bytes(new_spells([spell("S1", dis="2026-03-09"), spell("S9")]))
    others = con.execute("SELECT count(*), sum(hash(s)) FROM spells s WHERE csu_code <> 'ABD'").fetchone()
    checked = import_files(con, [path], dry_run=True)
    assert checked.ok and checked.dry_run
    (change,) = checked.changes
    assert (change.kind, change.months, change.csus, change.added, change.replaced, change.removed) == \
        ("spells", ["2026-03"], ["ABD"], 1, 1, 3)
    assert con.execute("SELECT count(*) FROM spells").fetchone()[0] == 8  # the check changed nothing
    done = import_files(con, [path])
    assert [str(c) for c in done.changes] == [str(c) for c in checked.changes]
    assert "spells: months 2026-03; CSUs ABD (1 CSU): 1 added, 1 replaced, 3 removed" in done.report()
    assert con.execute("SELECT count(*), sum(hash(s)) FROM spells s WHERE csu_code <> 'ABD'").fetchone() == others
    assert sorted(r[0] for r in con.execute("SELECT spell_id FROM spells WHERE csu_code = 'ABD'").fetchall()) == ["S1", "S9"]
    # Facts were rebuilt for the cell: ABD 100's elective LOS is now (7 + 5) / 2 = 6 days.
    num, den = con.execute("""SELECT numerator, denominator FROM metric_facts WHERE metric_id = 'alos_elective'
                              AND csu_code = 'ABD' AND period = '2026-03'""").fetchone()
    assert (num, den) == (12, 2)


def test_cli_dry_run_changes_nothing(base_db, tmp_path, capsys):
    from opportunity_engine.cli import main

    path = tmp_path / "copy.duckdb"
    shutil.copy(base_db, path)
    spells = tmp_path / "spells.csv"
    spells.write_bytes(new_spells(FEB))
    assert main(["import", "--db", str(path), "--quiet", "--dry-run", str(spells)]) == 0
    out = capsys.readouterr().out
    assert "Checked (nothing committed yet)" in out
    assert "spells: months 2026-02; CSUs ABD (1 CSU): 2 added, 0 replaced, 0 removed" in out
    with db.connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM spells").fetchone()[0] == 8


def test_empty_database_to_figures_with_import_files_only(tmp_path, monkeypatch, capsys):
    """init, then the trust's files through the command line, then figures: ABD General Surgery's
    4 elective spells of 5 nights against a peer median of 3 give a gap of (5 - 3) × 4 = 8 bed
    days, at the shipped £345 a bed day £2,760."""
    import io
    import json
    import sys

    from opportunity_engine.cli import main

    path = tmp_path / "trust.duckdb"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-pass-phrase\n"))
    assert main(["init", "--db", str(path), "--admin", "lead", "--name", "Finance Lead", "--password-stdin"]) == 0
    files = [str(p) for p in base_files(tmp_path)]
    assert main(["import", "--db", str(path), "--quiet", *files]) == 0
    capsys.readouterr()
    assert main(["opportunities", "--db", str(path), "--format", "json"]) == 0
    rows = {(r["csu_code"], r["specialty_code"], r["metric_id"]): r for r in json.loads(capsys.readouterr().out)}
    row = rows[("ABD", "100", "alos_elective")]
    assert (row["numerator"], row["denominator"], row["actual"], row["target_value"]) == (20, 4, 5.0, 3.0)
    assert row["gap_units"] == pytest.approx(8.0)
    assert row["unit_cost_gbp"] == 345
    assert row["opportunity_gbp"] == pytest.approx(2760.0)
    # The DNA rate came from the outpatients file: 1 DNA in 4 booked appointments.
    dna = rows[("ABD", "100", "op_dna_rate")]
    assert (dna["numerator"], dna["denominator"]) == (1, 4)


XLSX_CASES = [c for c in CASES if any(name.endswith(".xlsx") for name in c.files)]


@pytest.mark.parametrize("case", XLSX_CASES, ids=[c.name for c in XLSX_CASES])
def test_corpus_xlsx_streamed(con, tmp_path, monkeypatch, case: Case):
    """Every .xlsx case again as a sheet too large for python-calamine to hold at once: read in parts
    (here of a few rows each, so rows of one file fall in several parts), with the same outcome, row
    numbers and refusals."""
    from opportunity_engine.store import readers

    monkeypatch.setattr(readers, "STREAM_ABOVE", 0)
    monkeypatch.setattr(readers, "CHUNK", 300)
    test_corpus_file(con, tmp_path, case)
