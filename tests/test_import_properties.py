"""Property tests of the importer (issue 14): random valid extracts, written the many ways trusts'
systems and Excel write them, load in full and give exactly the facts of the canonical file; one
random defect at a random row and column is refused naming that file, row (as a person counts
rows: header = row 1, blank lines included) and column, and the database is left unchanged.

The corpus (tests/test_import_corpus.py) pins one file per case; these tests combine the cases
(CRLF with a BOM, blank lines, shuffled and renamed columns and national codes at once) and put
the defect anywhere, which is where hand-written cases run out.
"""
from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from opportunity_engine.store import db, readers, shipped
from opportunity_engine.store.importer import import_files
from opportunity_engine.store.templates import TEMPLATES

KINDS = ("spells", "outpatients", "workforce", "metric_facts")
PAIRS = (("ABD", "100"), ("EMA", "180"), ("CAR", "320"))  # CSU and the specialty that belongs to it
STAFF = ("Nursing and midwifery", "Medical and dental", "Admin and clerical", "Allied health professionals")
METRICS = ("biosimilar_uptake", "generic_switch")  # imported metrics (facts come from files, not activity)
FIRST, LAST = dt.date(2024, 1, 1), dt.date(2026, 2, 28)  # generated activity; the base holds 2026-03 only
PERIODS = tuple(f"{y}-{m:02d}" for y, m in itertools.product((2024, 2025), range(1, 13))) + ("2026-01", "2026-02")
# Every example gets its own id prefix, so ids of earlier examples (left in cells a later one does
# not replace) never clash; hypothesis replays and shrinks with new prefixes too.
_prefix = itertools.count(1)

BASE = {
    "csus.csv": "csu_code,csu_name\nABD,Abdominal\nEMA,Emergency Medicine\nCAR,Cardiac\n",
    "specialties.csv": "specialty_code,specialty_name,csu_code\n100,General Surgery,ABD\n"
                       "180,Emergency Medicine,EMA\n320,Cardiology,CAR\n",
    "metrics.csv": "metric_id,metric_name,domain,numerator_label,denominator_label,direction,unit,cost_driver,"
                   "saving_type,overlap_group,min_volume\n"
                   "biosimilar_uptake,Biosimilar uptake,Medicines,Biosimilar doses,All doses,higher,doses,"
                   "biosimilar_dose,cash,,30\n"
                   "generic_switch,Generic switching,Medicines,Generic items,All items,higher,items,generic_item,"
                   "cash,,30\n",
    # One month (2026-03) already loaded: an id of it reused in another month must be refused.
    "spells.csv": "spell_id,csu_code,specialty_code,admission_date,discharge_date,admission_type,bads_eligible,"
                  "procedure_date,readmitted_30d\nB1,ABD,100,2026-03-02,2026-03-07,elective,0,,0\n"
                  "B2,EMA,180,2026-03-03,2026-03-04,non_elective,0,,1\n",
}


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    """One in-memory trust for the module, built from import files like a trust's first day."""
    folder = tmp_path_factory.mktemp("properties")
    connection = db.memory()
    shipped.ensure(connection)
    paths = []
    for name, text in BASE.items():
        (folder / name).write_text(text)
        paths.append(folder / name)
    result = import_files(connection, paths)
    assert result.ok, result.report()
    yield connection
    connection.close()


def snapshot(con) -> dict:
    """Every table of the database (temporary staging tables aside): row count and content hash."""
    tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()]
    assert {"spells", "metric_facts", "import_log", "audit_log"} <= set(tables)
    return {t: con.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {t} AS t").fetchone() for t in tables}


def facts_of(con, kind: str) -> dict:
    """What a load leaves behind: the source table and every metric fact (derived or imported)."""
    table = TEMPLATES[kind].table
    return {t: con.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {t} AS t").fetchone()
            for t in (table, "metric_facts", "hrg_facts")}


# ---------------------------------------------------------------- valid rows

def _day(draw, first: dt.date = FIRST, last: dt.date = LAST) -> dt.date:
    return first + dt.timedelta(days=draw(st.integers(0, (last - first).days)))


@st.composite
def spell_rows(draw, prefix: str, least: int = 1) -> list[dict]:
    rows = []
    for i in range(draw(st.integers(least, 12))):
        csu, spec = draw(st.sampled_from(PAIRS))
        admitted = _day(draw, last=LAST - dt.timedelta(days=30))
        stay = draw(st.integers(0, 30))
        procedure = draw(st.none() | st.integers(0, stay))
        rows.append({"spell_id": f"{prefix}S{i}", "csu_code": csu, "specialty_code": spec,
                     "admission_date": admitted.isoformat(),
                     "discharge_date": (admitted + dt.timedelta(days=stay)).isoformat(),
                     "admission_type": draw(st.sampled_from(("elective", "day_case", "non_elective"))),
                     "bads_eligible": draw(st.sampled_from("01")),
                     "procedure_date": "" if procedure is None else (admitted + dt.timedelta(days=procedure)).isoformat(),
                     "readmitted_30d": draw(st.sampled_from("01"))})
    return rows


@st.composite
def outpatient_rows(draw, prefix: str, least: int = 1) -> list[dict]:
    rows = []
    for i in range(draw(st.integers(least, 12))):
        csu, spec = draw(st.sampled_from(PAIRS))
        rows.append({"appointment_id": f"{prefix}A{i}", "csu_code": csu, "specialty_code": spec,
                     "appointment_date": _day(draw).isoformat(),
                     "attendance_type": draw(st.sampled_from(("first", "follow_up"))),
                     "outcome": draw(st.sampled_from(("attended", "dna", "patient_cancelled", "hospital_cancelled"))),
                     "pifu": draw(st.sampled_from("01")), "virtual": draw(st.sampled_from("01"))})
    return rows


def _amount(draw, low: int = 0, high: int = 2_000_000) -> str:
    whole = draw(st.integers(low, high))
    return str(whole) if draw(st.booleans()) else f"{whole}.{draw(st.integers(0, 99)):02d}"


@st.composite
def workforce_rows(draw, prefix: str, least: int = 1) -> list[dict]:
    keys = draw(st.lists(st.tuples(st.sampled_from(PERIODS), st.sampled_from([p[0] for p in PAIRS]),
                                   st.sampled_from(STAFF)), min_size=least, max_size=12, unique=True))
    return [{"period": period, "csu_code": csu, "staff_group": group, "substantive_cost_gbp": _amount(draw),
             "bank_cost_gbp": _amount(draw), "agency_cost_gbp": _amount(draw), "contracted_wte": _amount(draw, 0, 900),
             "sickness_fte_days": _amount(draw, 0, 500), "available_fte_days": _amount(draw, 1, 20_000)}
            for period, csu, group in keys]


@st.composite
def metric_fact_rows(draw, prefix: str, least: int = 1) -> list[dict]:
    keys = draw(st.lists(st.tuples(st.sampled_from(PERIODS), st.sampled_from(PAIRS), st.booleans(),
                                   st.sampled_from(METRICS)), min_size=least, max_size=12,
                         unique_by=lambda k: (k[0], k[1][0], k[1][1] if k[2] else "", k[3])))
    return [{"period": period, "csu_code": csu, "specialty_code": spec if with_spec else "", "metric_id": metric,
             "numerator": _amount(draw, 0, 1000), "denominator": _amount(draw, 1, 1000)}
            for period, (csu, spec), with_spec, metric in keys]


ROWS = {"spells": spell_rows, "outpatients": outpatient_rows, "workforce": workforce_rows,
        "metric_facts": metric_fact_rows}


# ---------------------------------------------------------------- files as trusts write them

@dataclass
class Style:
    """How one file is written: everything a trust's system or Excel varies without changing data."""
    order: list[int]  # column order (indices into the template's columns)
    headers: list[str]  # header cell as written, per template column
    endings: list[str]  # line ending per line (header first)
    bom: bool
    blank_after: dict[int, str]  # data row index → a blank line written after it ('' , spaces, commas)
    header_trailing: int  # empty header cells after the last column
    row_trailing: list[int]  # empty fields after each data row's last value
    quoted: list[bool]  # per column: values in double quotes
    final_newline: bool
    national: bool  # spells/outpatients in NHS Data Dictionary codes instead of our words


def _header_variant(name: str, how: str) -> str:
    return {"as is": name, "upper": name.upper(), "title": name.replace("_", " ").title(),
            "padded": f"  {name} ", "spaced": name.replace("_", " "),
            "mixed": " " + name.replace("_", " ").capitalize() + "\t"}[how]


@st.composite
def styles(draw, kind: str, n_rows: int) -> Style:
    names = list(TEMPLATES[kind].names)
    ending = draw(st.sampled_from(("\n", "\r\n", "\r", "mixed")))
    lines = n_rows + 1 + n_rows  # header, rows, and room for a blank line after each
    endings = [draw(st.sampled_from(("\n", "\r\n", "\r"))) if ending == "mixed" else ending for _ in range(lines)]
    blank_rows = draw(st.lists(st.integers(0, n_rows - 1), max_size=3, unique=True))
    return Style(order=draw(st.permutations(range(len(names)))),
                 headers=[_header_variant(n, draw(st.sampled_from(("as is", "upper", "title", "padded", "spaced",
                                                                    "mixed")))) for n in names],
                 endings=endings, bom=draw(st.booleans()),
                 blank_after={i: draw(st.sampled_from(("", "   ", ",,,", ","))) for i in blank_rows},
                 header_trailing=draw(st.integers(0, 2)),
                 row_trailing=[draw(st.integers(0, 2)) for _ in range(n_rows)],
                 quoted=[draw(st.booleans()) for _ in names], final_newline=draw(st.booleans()),
                 national=kind in ("spells", "outpatients") and draw(st.booleans()))


CANONICAL = Style([], [], [], False, {}, 0, [], [], True, False)


def _national(kind: str, rows: list[dict]) -> list[dict]:
    """The same rows in national codes (admission method with patient classification; attendance
    status, first attendance, consultation medium), as a PAS or SUS extract carries them."""
    out = []
    for row in rows:
        row = dict(row)
        if kind == "spells":
            row["patient_classification"] = "2" if row["admission_type"] == "day_case" else "1"
            row["admission_type"] = {"elective": "12", "day_case": "11", "non_elective": "21"}[row["admission_type"]]
        else:
            row["attendance_type"] = {"first": "1", "follow_up": "2"}[row["attendance_type"]]
            row["outcome"] = {"attended": "5", "dna": "3", "patient_cancelled": "2",
                              "hospital_cancelled": "4"}[row["outcome"]]
            row["virtual"] = {"0": "01", "1": "02"}[row["virtual"]]
        out.append(row)
    return out


def write_csv(path: Path, kind: str, rows: list[dict], style: Style = CANONICAL,
              raw: dict[tuple[int, str], bytes] | None = None) -> dict[int, int]:
    """Write ``rows`` in ``style``; ``raw`` puts bytes (not text) in a cell. Returns each data row's
    spreadsheet row (what a person opening the file sees: header 1, blank lines counted)."""
    names = list(TEMPLATES[kind].names)
    if style.national:
        rows = _national(kind, rows)
        if kind == "spells":
            names.append("patient_classification")
    order = style.order + ([len(style.order)] if len(names) > len(style.order) else []) if style.order \
        else list(range(len(names)))
    headers = style.headers + names[len(style.headers):] if style.headers else names
    quoted = style.quoted + [False] * (len(names) - len(style.quoted)) if style.quoted else [False] * len(names)
    endings = iter(style.endings or itertools.repeat("\n"))
    lines: list[bytes] = [",".join(headers[i] for i in order).encode() + b"," * style.header_trailing]
    row_of: dict[int, int] = {}
    for index, row in enumerate(rows):
        cells = []
        for i in order:
            value = raw[(index, names[i])] if raw and (index, names[i]) in raw else row[names[i]].encode()
            cells.append(b'"' + value + b'"' if quoted[i] else value)
        lines.append(b",".join(cells) + b"," * (style.row_trailing[index] if style.row_trailing else 0))
        row_of[index] = len(lines)
        if index in style.blank_after:
            lines.append(style.blank_after[index].encode())
    out = bytearray(b"\xef\xbb\xbf" if style.bom else b"")
    previous = ""
    for number, line in enumerate(lines):
        ending = next(endings)
        if previous == "\r" and not line and ending.startswith("\n"):
            ending = "\r\n"  # "\r" then "\n" is one line break (CRLF), in Excel too: keep the blank line
        out += line
        if number < len(lines) - 1 or style.final_newline:
            out += ending.encode()
        previous = ending
    path.write_bytes(bytes(out))
    return row_of


def write_xlsx(path: Path, kind: str, rows: list[dict], style: Style) -> None:
    """The same rows as Excel saves them: numbers and dates as cells, a period typed as 2026-04 read
    by Excel as the date 1 April 2026, empty rows; header spelling and column order as in ``style``."""
    names = list(TEMPLATES[kind].names)
    types = {c.name: c.type for c in TEMPLATES[kind].columns}
    book = Workbook()
    sheet = book.active
    sheet.append([style.headers[i] for i in style.order])
    for index, row in enumerate(rows):
        cells = []
        for i in style.order:
            value: object = row[names[i]]
            if value == "":
                value = None
            elif types[names[i]] == "date":
                value = dt.date.fromisoformat(str(value))
            elif types[names[i]] == "period":
                value = dt.datetime(int(str(value)[:4]), int(str(value)[5:]), 1)
            elif types[names[i]] in ("amount", "number", "count", "flag"):
                value = float(str(value)) if "." in str(value) else int(str(value))
            cells.append(value)
        sheet.append(cells)
        if index in style.blank_after:
            sheet.append([None])
    book.save(path)


# ---------------------------------------------------------------- valid files load in full

@pytest.mark.slow
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(KINDS), as_xlsx=st.booleans(), streamed=st.booleans())
def test_any_way_of_writing_valid_rows_loads_them_all_with_the_canonical_facts(con, tmp_path, data, kind, as_xlsx,
                                                                               streamed):
    prefix = f"P{next(_prefix)}"
    rows = data.draw(ROWS[kind](prefix), label="rows")
    style = data.draw(styles(kind, len(rows)), label="style")
    canonical = tmp_path / f"{kind}.csv"
    write_csv(canonical, kind, rows)
    first = import_files(con, [canonical])
    assert first.ok, first.report()
    assert [f.rows for f in first.loaded] == [len(rows)]
    expected = facts_of(con, kind)

    variant = tmp_path / f"{kind}_{prefix}.{'xlsx' if as_xlsx else 'csv'}"
    if as_xlsx:
        style.national = False  # national codes are text: the CSV variant covers them
        write_xlsx(variant, kind, rows, style)
    else:
        write_csv(variant, kind, rows, style)
    # streamed: read in parts of a few rows, as a sheet too large for python-calamine to hold at once is
    before = readers.STREAM_ABOVE, readers.CHUNK
    if streamed:
        readers.STREAM_ABOVE, readers.CHUNK = 0, 500
    try:
        again = import_files(con, [variant])
    finally:
        readers.STREAM_ABOVE, readers.CHUNK = before
    assert again.ok, again.report()
    assert [f.rows for f in again.loaded] == [len(rows)], again.report()
    (change,) = again.changes
    assert (change.added, change.replaced, change.removed) == (0, len(rows), 0), again.report()
    assert facts_of(con, kind) == expected, again.report()


# ---------------------------------------------------------------- one defect, refused exactly

@dataclass
class Defect:
    name: str
    column: str  # the template column the defect is written in
    value: str | bytes  # what the cell holds instead (bytes: not text)
    reported: str | None = None  # the column the refusal names, when not ``column``
    rule: str = ""  # a part of the rule the refusal states


def _defects(kind: str, rows: list[dict], index: int) -> list[Defect]:
    """The defects one row of ``kind`` can carry (row ``index``; a duplicate needs an earlier row)."""
    row = rows[index]
    key = TEMPLATES[kind].key
    common = [
        Defect("NUL", key[0] if kind in ("spells", "outpatients") else "csu_code", b"AB\x00D", rule="NUL"),
        Defect("Windows-1252 byte", "csu_code", b"Caf\xe9", rule="not UTF-8"),
        Defect("zero-width space in a code", "csu_code", row["csu_code"][:1] + "\u200b" + row["csu_code"][1:],
               rule="invisible"),
        # Inside the code: around it, a no-break space is trimmed like any space (the code loads as meant).
        Defect("no-break space in a code", "csu_code", row["csu_code"][:2] + "\u00a0" + row["csu_code"][2:],
               rule="invisible"),
        Defect("unknown CSU", "csu_code", "XYZ", rule="unknown CSU code"),
        Defect("formula text", "csu_code", "=VLOOKUP(A2:B9)", rule="formula"),
    ]
    if index > 0:  # the row repeats an earlier row's key: refused at the later one
        earlier = rows[index - 1]
        common.append(Defect("duplicate key", key[0], "", reported=", ".join(key), rule="duplicate of row"))
        common[-1].value = "|".join(earlier[k] for k in key)
    if kind == "spells":
        admitted = dt.date.fromisoformat(row["admission_date"])
        return common + [
            Defect("impossible date", "admission_date", f"{admitted.year}-02-30", rule="YYYY-MM-DD"),
            Defect("date as Excel shows it", "discharge_date", admitted.strftime("%d/%m/%Y"), rule="YYYY-MM-DD"),
            Defect("admission in 1850", "admission_date", "1850-01-01", rule="plausible window"),
            Defect("discharge before admission", "discharge_date", (admitted - dt.timedelta(days=1)).isoformat(),
                   rule="before admission"),
            Defect("specialty of another CSU", "specialty_code", "180" if row["csu_code"] != "EMA" else "100",
                   rule="belongs to another CSU"),
            Defect("flag 2", "bads_eligible", "2", rule="must be 0 or 1"),
            Defect("unknown admission type", "admission_type", "emergency", rule="must be one of"),
            Defect("id already loaded for another month", "spell_id", "B1", rule="already loaded for 2026-03, CSU ABD"),
            Defect("formula in an id", "spell_id", "=A1", rule="formula"),
        ]
    if kind == "outpatients":
        return common + [
            Defect("impossible date", "appointment_date", "2025-13-01", rule="YYYY-MM-DD"),
            Defect("appointment in 2999", "appointment_date", "2999-01-01", rule="plausible window"),
            Defect("specialty of another CSU", "specialty_code", "320" if row["csu_code"] != "CAR" else "100",
                   rule="belongs to another CSU"),
            Defect("unknown outcome", "outcome", "seen", rule="must be one of"),
            Defect("flag 2", "pifu", "2", rule="must be 0 or 1"),
        ]
    money = [
        Defect("negative amount", "bank_cost_gbp" if kind == "workforce" else "numerator", "-5", rule="not be negative"),
        Defect("pound sign", "agency_cost_gbp" if kind == "workforce" else "denominator", "£1200",
               rule="must be a number"),
        Defect("period 2999-04", "period", "2999-04", rule="plausible window"),
        Defect("period 1900-01", "period", "1900-01", rule="plausible window"),
        Defect("month 13", "period", "2025-13", rule="YYYY-MM"),
        Defect("period written as a date", "period", "2025-04-01", rule="YYYY-MM"),
    ]
    if kind == "workforce":
        return common + money + [Defect("control character in a name", "staff_group", "Nurs\x07ing", rule="control")]
    return common + money + [
        Defect("unknown metric", "metric_id", "no_such_metric", rule="unknown metric id"),
        Defect("activity metric", "metric_id", "alos_elective", rule="computed from activity"),
        Defect("zero denominator", "denominator", "0", rule="above zero"),
        Defect("specialty of another CSU", "specialty_code", "180" if row["csu_code"] != "EMA" else "100",
               rule="belongs to another CSU"),
    ]


def _names(kind: str) -> list[str]:
    """Every defect name for ``kind`` (from sample rows), so each is tried, none left to chance."""
    sample = {"spells": {"admission_date": "2025-01-01"}, "outpatients": {}, "workforce": {}, "metric_facts": {}}[kind]
    rows = [{"csu_code": "ABD", **sample, **{k: "x" for k in TEMPLATES[kind].key if k not in sample}}] * 2
    return [d.name for d in _defects(kind, rows, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("kind,name", [(k, n) for k in KINDS for n in _names(k)])
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_defect_anywhere_is_refused_at_its_file_row_and_column_and_nothing_changes(con, tmp_path, data, kind,
                                                                                        name):
    prefix = f"P{next(_prefix)}"
    duplicate = name == "duplicate key"
    rows = data.draw(ROWS[kind](prefix, 2 if duplicate else 1), label="rows")
    style = data.draw(styles(kind, len(rows)), label="style")
    style.national = False  # the defects are written in our words
    index = data.draw(st.integers(1 if duplicate else 0, len(rows) - 1), label="row")
    (defect,) = [d for d in _defects(kind, rows, index) if d.name == name]
    raw: dict[tuple[int, str], bytes] = {}
    bad = [dict(r) for r in rows]
    if duplicate:
        for k, v in zip(TEMPLATES[kind].key, str(defect.value).split("|")):
            bad[index][k] = v
    elif isinstance(defect.value, bytes):
        raw[(index, defect.column)] = defect.value
    else:
        bad[index][defect.column] = defect.value
    if name == "discharge before admission":
        bad[index]["procedure_date"] = ""  # else the procedure date is outside the spell too
    # A good file of another kind beside it: the refusal must name the bad file, and load neither.
    good = tmp_path / "csus_extra.csv"
    good.write_text(f"csu_code,csu_name\n{prefix}N,New CSU {prefix}\n")
    path = tmp_path / f"{kind}_{prefix}.csv"
    row_of = write_csv(path, kind, bad, style, raw)
    before = snapshot(con)

    result = import_files(con, [good, path])

    assert not result.ok, f"{name} loaded"
    where = {(i.file, i.row, i.column) for i in result.issues}
    assert where == {(path.name, row_of[index], defect.reported or defect.column)}, f"{name}:\n{result.report()}"
    assert any(defect.rule in i.rule for i in result.issues), f"{name}:\n{result.report()}"
    assert snapshot(con) == before
    assert con.execute("SELECT count(*) FROM csus WHERE csu_code = ?", [f"{prefix}N"]).fetchone()[0] == 0


def test_row_numbers_of_the_writer_count_blank_lines_and_line_endings(tmp_path):
    """The helper the properties trust: its row numbers are what a person counts."""
    rows = [{"csu_code": "A", "csu_name": "x"}, {"csu_code": "B", "csu_name": "y"}]
    style = Style([0, 1], ["csu_code", "csu_name"], ["\r", "\r", "\n", "\r\n"], True, {0: ""}, 0, [0, 0],
                  [False, False], True, False)
    path = tmp_path / "csus.csv"
    assert write_csv(path, "csus", rows, style) == {0: 2, 1: 4}
    assert path.read_bytes() == b"\xef\xbb\xbfcsu_code,csu_name\rA,x\r\r\nB,y\r\n"
    assert re.split(rb"\r\n|\r|\n", path.read_bytes()[3:])[:4] == [b"csu_code,csu_name", b"A,x", b"", b"B,y"]
