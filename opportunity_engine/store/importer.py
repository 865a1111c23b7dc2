"""Validated import of the DATA.md templates (CSV or .xlsx), one transaction per command.

Every file is staged as text (store/readers.py), the files of one kind are combined, checked in
SQL against the template's rules, and only then cast and loaded. Any failure anywhere rolls the
whole command back: the database is left exactly as it was, and each problem is reported as
file, spreadsheet row, column, value and rule.

Re-loading replaces exactly the (month × CSU) cells the files hold for that source: activity by
the month of discharge/appointment/session (workforce by its period), metric facts by (month ×
CSU × metric); other cells stay. Reference files update by key. Before anything changes the
result says, per source, which months and CSUs are covered and how many rows are added,
replaced and removed (``dry_run``); the commit repeats it. Metric facts derived from activity
are rebuilt for the cells loaded only, inside the same transaction.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ..config import settings
from . import codes, facts, limits, readers
from .db import bump_data_version, get_setting
from .statuses import COMMITTED, sql_list
from .templates import ORDER, TEMPLATES, Column, Template

Progress = Callable[[str, float], object]  # (message, fraction done); any return value is ignored
LEAVES = ("activity", "facts", "realised")  # template modes no other template's checks read
MAX_TEXT = 200
MAX_COUNT = 100_000_000
MAX_AMOUNT = 1e11
# Characters no code may hold: controls (C0, DEL, C1), no-break and zero-width spaces, soft hyphen,
# bidirectional marks and the BOM. They display as nothing, so "ABD" and "AB\u200bD" look the same.
_INVISIBLE_RANGES = ((0x0, 0x1F), (0x7F, 0xA0), (0xAD, 0xAD), (0x200B, 0x200F), (0x2028, 0x202F),
                     (0x205F, 0x206F), (0xFEFF, 0xFEFF))
INVISIBLE = "[" + "".join(rf"\x{{{lo:X}}}" + (rf"-\x{{{hi:X}}}" if hi != lo else "") for lo, hi in _INVISIBLE_RANGES) + "]"
# The same characters for Python's re, to spell them out in a refused value (``shown_value``).
_UNSEEN = re.compile("[" + "".join(re.escape(chr(lo)) + ("-" + re.escape(chr(hi)) if hi != lo else "")
                                   for lo, hi in _INVISIBLE_RANGES) + "]")
CONTROL = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\x{200B}-\x{200F}\x{202A}-\x{202E}\x{2060}-\x{2064}\x{FEFF}]"
NAME_COLUMNS = {"csus": "csu_name", "specialties": "specialty_name", "metrics": "metric_name"}


@dataclass(frozen=True)
class Issue:
    """One reason a file was rejected. ``row`` is the spreadsheet row (header = row 1)."""
    file: str
    row: int | None
    column: str | None
    value: str | None
    rule: str

    def __str__(self) -> str:
        parts = [self.file]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column {self.column}")
        if self.value is not None:
            shown = self.value if len(self.value) <= 40 else self.value[:37] + "..."
            parts.append(f"value {shown!r}")
        return ", ".join(parts) + f": {self.rule}"


def shown_value(value: str | None, most: int = 60) -> str | None:
    """A refused value as the report shows it: an invisible or control character spelled out
    (``M⟨U+200B⟩SK``: the cell looks exactly like ``MSK`` otherwise, so the rule would seem
    wrong; INVISIBLE holds every character CONTROL does), and a long value cut (a 200 KB field would fill the page)."""
    if value is None:
        return None
    cut = value if len(value) <= most else value[:most - 1] + "…"
    return _UNSEEN.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", cut)


@dataclass
class FileLoad:
    file: str
    kind: str
    rows: int
    periods: list[str] = field(default_factory=list)
    sheet: str | None = None  # the .xlsx sheet read
    peer_groups: list[str] = field(default_factory=list)  # benchmarks files: the groups they hold

    @property
    def label(self) -> str:
        return f"{self.file} (sheet '{self.sheet}')" if self.sheet else self.file


@dataclass
class Change:
    """What one source's files do to the database: the cells covered and the rows they change."""
    kind: str
    files: list[str]
    rows: int
    months: list[str]
    csus: list[str]
    added: int
    replaced: int
    removed: int

    def months_text(self) -> str:
        if not self.months:
            return "–"
        if len(self.months) == 1:
            return self.months[0]
        return f"{self.months[0]} to {self.months[-1]} ({len(self.months)} months)"

    def csus_text(self, limit: int = 8) -> str:
        if not self.csus:
            return "–"
        shown = ", ".join(self.csus[:limit])
        return shown + (f" and {len(self.csus) - limit} more" if len(self.csus) > limit else "") \
            + f" ({len(self.csus)} CSU{'s' if len(self.csus) != 1 else ''})"

    def __str__(self) -> str:
        return (f"{self.kind}: months {self.months_text()}; CSUs {self.csus_text()}: {self.added:,} added, "
                f"{self.replaced:,} replaced, {self.removed:,} removed")


@dataclass
class ImportResult:
    loaded: list[FileLoad] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False
    # What a dry run checked: the data version it saw and each file's (path, size, mtime). A
    # commit handed this result skips the checks when both are unchanged (see import_files).
    checked_against: tuple | None = None

    @property
    def ok(self) -> bool:
        return not self.issues

    def table(self) -> list[dict]:
        """The validation report as rows (file, row, column, value, rule) for the Data page."""
        return [{"file": i.file, "row": i.row, "column": i.column, "value": shown_value(i.value), "rule": i.rule}
                for i in self.issues]

    def changes_table(self) -> list[dict]:
        """Per source: months and CSUs covered, rows added, replaced and removed (the Data page)."""
        return [{"source": c.kind, "files": ", ".join(c.files), "months": c.months_text(), "csus": c.csus_text(),
                 "rows": c.rows, "added": c.added, "replaced": c.replaced, "removed": c.removed}
                for c in self.changes]

    def report(self) -> str:
        if self.ok:
            verb = "Checked (nothing committed yet)" if self.dry_run else "Loaded"
            lines = [f"{verb} {len(self.loaded)} file(s):"]
            for f in self.loaded:
                span = f" ({f.periods[0]} to {f.periods[-1]})" if f.periods else ""
                groups = f"; peer groups: {', '.join(f.peer_groups)}" if f.peer_groups else ""
                lines.append(f"  {f.label}: {f.rows:,} {f.kind} rows{span}{groups}")
            lines.append("Changes:" if not self.dry_run else "Changes if committed:")
            lines += [f"  {c}" for c in self.changes]
            return "\n".join(lines)
        lines = [f"Rejected: {len(self.issues)} problem(s). Nothing was changed."]
        lines += [f"  {issue}" for issue in self.issues]
        return "\n".join(lines)


# ---------------------------------------------------------------- recognising files

def _allowed(template: Template) -> set[str]:
    return set(template.names) | {c.name for c in template.optional}


def matches_template(names: list[str]) -> bool:
    return any(set(t.names) <= set(names) <= _allowed(t) for t in TEMPLATES.values())


def detect_kind(path: Path, header: list[str]) -> tuple[str | None, list[str]]:
    """The template whose columns the (normalised) header matches, else the problems against the
    nearest one."""
    names = set(header)
    for kind, template in TEMPLATES.items():
        if set(template.names) <= names <= _allowed(template) and len(header) == len(names):
            return kind, []
    stem = path.stem.lower()
    by_name = [k for k in TEMPLATES if stem.startswith(k)]
    nearest = max(by_name or TEMPLATES, key=lambda k: (len(k) if by_name else 0,
                                                        len(names & set(TEMPLATES[k].names))))
    template = TEMPLATES[nearest]
    problems = []
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        problems.append(f"repeated column(s): {', '.join(duplicated)}")
    missing = [c for c in template.names if c not in names]
    unexpected = [h if len(h) <= 40 else h[:37] + "..." for h in header if h not in _allowed(template)]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected column(s) {', '.join(unexpected)}")
    if "" in header:
        problems.append("a column with no name between named ones")
    return None, [f"the header does not match the '{nearest}' template ({'; '.join(problems)}). "
                  f"Expected: {', '.join(template.names)}"]


# ---------------------------------------------------------------- rules in SQL

def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed(col: Column) -> str:
    raw = f"nullif(trim({_q(col.name)}), '')"
    return {
        "date": f"try_cast({raw} AS DATE)",
        "flag": f"try_cast({raw} AS TINYINT)",
        "count": f"CASE WHEN regexp_full_match({raw}, '-?[0-9]+') THEN try_cast({raw} AS BIGINT) END",
        "amount": f"try_cast({raw} AS DOUBLE)",
        "number": f"try_cast({raw} AS DOUBLE)",
    }.get(col.type, raw)


def _present(template: Template, header: list[str]) -> tuple[list[Column], str]:
    """The template's columns present in these files, and the SQL that casts them to their types."""
    cols = [c for c in template.all_columns if c.name in header]
    return cols, ", ".join(f"{_typed(c)} AS {_q(c.name)}" for c in cols)


def _trimmed(name: str) -> str:
    """The column of the checks' source holding a column's value trimmed, '' as NULL."""
    return _q(name + " trimmed")


def _column_checks(col: Column, kind: str) -> list[tuple[str, str]]:
    """(SQL condition that marks a bad row, rule text) for one column, over a source holding the
    raw text and, as :func:`_trimmed`, the value trimmed with '' as NULL: each rule reads that
    once, rather than trimming the text again in every rule (a third of the checks' time)."""
    v = _trimmed(col.name)
    raw = _q(col.name)
    checks = []
    if col.type in ("text", "code", "id"):
        # A NUL is also an invisible/control character (below) and fails every typed column's parse.
        checks.append((f"starts_with(ltrim({raw}), '=')", "holds a formula where a value is expected: paste values only"))
    if col.required:
        checks.append((f"{v} IS NULL", "a value is required"))
    present = f"{v} IS NOT NULL AND "
    first_date, last_date = limits.date_window()
    first_period, last_period = limits.period_window()
    if col.type == "date":
        checks.append((present + f"(NOT regexp_full_match({v}, '\\d{{4}}-\\d{{2}}-\\d{{2}}') OR try_cast({v} AS DATE) IS NULL)",
                       "must be a date written YYYY-MM-DD"))
        checks.append((present + f"try_cast({v} AS DATE) NOT BETWEEN DATE '{first_date}' AND DATE '{last_date}'",
                       f"date {limits.window_rule()}"))
    elif col.type == "period":
        checks.append((present + f"NOT regexp_full_match({v}, '\\d{{4}}-(0[1-9]|1[0-2])')",
                       "must be a period written YYYY-MM"))
        checks.append((present + f"regexp_full_match({v}, '\\d{{4}}-(0[1-9]|1[0-2])') AND "
                                 f"{v} NOT BETWEEN '{first_period}' AND '{last_period}'",
                       f"period {limits.window_rule()}"))
    elif col.type == "flag":
        national = f" (or the national codes: {col.national})" if col.national else ""
        checks.append((present + f"{v} NOT IN ('0', '1')", f"must be 0 or 1{national}"))
    elif col.type == "count":
        checks.append((present + f"NOT regexp_full_match({v}, '-?[0-9]+')", "must be a whole number"))
        checks.append((present + f"try_cast({v} AS BIGINT) < 0", "must not be negative"))
        checks.append((present + f"try_cast({v} AS BIGINT) > {MAX_COUNT}", f"is implausibly large (over {MAX_COUNT:,})"))
        if col.maximum is not None:
            checks.append((present + f"try_cast({v} AS BIGINT) > {int(col.maximum)}", f"must be at most {int(col.maximum)}"))
    elif col.type in ("amount", "number"):
        checks.append((present + f"(try_cast({v} AS DOUBLE) IS NULL OR NOT isfinite(try_cast({v} AS DOUBLE)))",
                       "must be a number (no £ signs, commas or text)"))
        if col.type == "amount":
            checks.append((present + f"try_cast({v} AS DOUBLE) < 0", "must not be negative"))
        most = limits.MAX_REALISED_GBP if (kind, col.name) == ("realised_savings", "realised_gbp") else MAX_AMOUNT
        checks.append((present + f"abs(try_cast({v} AS DOUBLE)) > {most:.0f}",
                       f"is implausibly large (over {most:,.0f}" +
                       (", the Tracking form's limit)" if most != MAX_AMOUNT else ")")))
    elif col.type == "enum":
        choices = ", ".join("'" + c + "'" for c in col.choices)
        national = f" (or the national codes: {col.national})" if col.national else ""
        checks.append((present + f"{v} NOT IN ({choices})", f"must be one of: {', '.join(col.choices)}{national}"))
    elif col.type == "id":
        checks.append((present + f"NOT regexp_full_match({v}, '[a-z][a-z0-9_]{{0,63}}')",
                       "must be lower-case letters, digits and _ (starting with a letter)"))
    if col.type in ("code", "id", "enum"):
        checks.append((present + f"regexp_matches({v}, '{INVISIBLE}')",
                       "holds an invisible or control character (zero-width space, no-break space, tab, NUL ...): "
                       "retype the code"))
    elif col.type == "text":
        checks.append((present + f"regexp_matches({v}, '{CONTROL}')",
                       "holds a control, NUL or zero-width character: retype it"))
    if col.type in ("text", "code", "id"):
        checks.append((present + f"length({v}) > {MAX_TEXT}", f"is longer than {MAX_TEXT} characters"))
    if col.ref == "csu":
        checks.append((present + f"{v} NOT IN (SELECT csu_code FROM csus)",
                       "unknown CSU code (load it in a csus file first)"))
    elif col.ref == "specialty":
        checks.append((present + f"{v} NOT IN (SELECT specialty_code FROM specialties)",
                       "unknown specialty code (load it in a specialties file first)"))
    elif col.ref == "metric":
        checks.append((present + f"{v} NOT IN (SELECT metric_id FROM metrics)",
                       "unknown metric id (add it with a metrics file first)"))
    elif col.ref == "scheme":
        checks.append((present + f"try_cast({v} AS BIGINT) NOT IN (SELECT scheme_id FROM schemes WHERE status IN "
                                 f"{sql_list(COMMITTED)})",
                       "unknown scheme id, or the scheme is not approved yet"))
    return checks


def _row_checks(template: Template, names: list[str]) -> list[tuple[str, str, str]]:
    """(column, SQL condition over typed columns, rule) for rules that span columns."""
    tolerance = int(settings()["import"]["used_minutes_tolerance"])
    kind = template.kind
    checks: list[tuple[str, str, str]] = []
    if kind == "spells":
        checks += [
            ("discharge_date", "discharge_date < admission_date", "discharge date is before admission date"),
            ("procedure_date", "procedure_date < admission_date OR procedure_date > discharge_date",
             "procedure date is outside the spell (admission to discharge)"),
        ]
    elif kind == "theatre_sessions":
        checks += [
            ("used_minutes", f"used_minutes > planned_minutes + {tolerance}",
             f"used minutes exceed planned minutes by more than the tolerance of {tolerance}"),
            ("late_start_minutes", "late_start_minutes + early_finish_minutes > planned_minutes",
             "late-start plus early-finish minutes exceed planned minutes"),
        ]
    elif kind in ("benchmarks", "hrg_benchmarks"):
        checks.append(("p10", "NOT (p10 <= p25 AND p25 <= p50 AND p50 <= p75 AND p75 <= p90)",
                       "percentiles must be in order: p10 <= p25 <= p50 <= p75 <= p90"))
    elif kind == "metric_facts":
        derived = ", ".join("'" + m + "'" for m in facts.ACTIVITY_METRICS)
        checks += [
            ("denominator", "denominator = 0", "denominator must be above zero"),
            ("metric_id", f"metric_id IN ({derived})",
             "this metric is computed from activity data: import the activity, not facts"),
        ]
    elif kind == "metrics" and "capacity_divisor" in names:
        checks.append(("capacity_divisor", "capacity_divisor = 0", "capacity divisor must be above zero"))
    if template.mode in ("activity", "facts") and {"csu_code", "specialty_code"} <= set(names):
        # A specialty belongs to one CSU (the specialties file): a row filed under another CSU
        # would count its activity twice over, or in the wrong CSU's figures.
        checks.append(("specialty_code",
                       "specialty_code IN (SELECT specialty_code FROM specialties) AND "
                       "csu_code IN (SELECT csu_code FROM csus) AND "
                       "(specialty_code, csu_code) NOT IN (SELECT specialty_code, csu_code FROM specialties)",
                       "this specialty belongs to another CSU (see the specialties file): file the row under "
                       "that CSU, or move the specialty"))
    return checks


def _validate(con, template: Template, table: str, names: list[str], files: list[str], limit: int) -> list[Issue]:
    cols, typed = _present(template, names)
    checks: list[tuple[str | None, str, str]] = []
    for col in cols:
        checks += [(col.name, cond, rule) for cond, rule in _column_checks(col, template.kind)]
    source = ", ".join(f"{_q(c.name)}, nullif(trim({_q(c.name)}), '') AS {_trimmed(c.name)}" for c in cols)
    issues = _run_checks(con, f"SELECT _file, _row, {source} FROM {table}", checks, files, limit)
    row_checks = _row_checks(template, names)
    if row_checks and not issues:  # typed rules only over rows whose values parse
        issues += _run_checks(con, f"SELECT _file, _row, {typed} FROM {table}", row_checks, files, limit)
    issues += _duplicates(con, template, table, files, limit)
    return issues


def _duplicates(con, template: Template, table: str, files: list[str], limit: int) -> list[Issue]:
    """One id twice, within a file or across the files of one import; for reference data, one code
    given two names."""
    key = ", ".join(f"coalesce(trim({_q(k)}), '')" for k in template.key)
    repeated = con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} GROUP BY {key} HAVING count(*) > 1)").fetchone()[0]
    if not repeated:  # the common case, found by a cheap GROUP BY before the window query
        return []
    name_col = NAME_COLUMNS.get(template.kind)
    name_sql = f"trim({_q(name_col)})" if name_col else "NULL"
    rows = con.execute(f"""
        SELECT _file, _row, concat_ws(' / ', {key}) AS k, first_file, first_row, name, first_name, count(*) OVER ()
        FROM (SELECT _file, _row, {name_sql} AS name,
                     first_value(_file) OVER w AS first_file, first_value(_row) OVER w AS first_row,
                     first_value({name_sql}) OVER w AS first_name, {', '.join(_q(k) for k in template.key)}
              FROM {table} WINDOW w AS (PARTITION BY {key} ORDER BY _file, _row))
        WHERE NOT (_file = first_file AND _row = first_row) ORDER BY _file, _row LIMIT {limit}""").fetchall()
    issues = []
    for file_no, row, k, first_file, first_row, name, first_name, _ in rows:
        where = f"row {first_row}" + ("" if first_file == file_no else f" of {files[first_file]}")
        if name_col and name != first_name:
            rule = f"{template.key[0]} {k} is given two names: {first_name!r} in {where} and {name!r} here"
        else:
            rule = f"duplicate of {where}"
        issues.append(Issue(files[file_no], row, ", ".join(template.key), k, rule))
    if rows and rows[0][7] > limit:
        issues.append(Issue(files[rows[0][0]], None, ", ".join(template.key), None,
                            f"... and {rows[0][7] - limit:,} more duplicate rows"))
    return issues


def _run_checks(con, source_sql: str, checks, files: list[str], limit: int) -> list[Issue]:
    if not checks:
        return []
    counts_sql = ", ".join(f"count(*) FILTER (WHERE coalesce({cond}, false))" for _, cond, _ in checks)
    counts = con.execute(f"SELECT {counts_sql} FROM ({source_sql})").fetchone()
    issues = []
    for (column, cond, rule), n in zip(checks, counts):
        if not n:
            continue
        value_sql = f"{_q(column)}::VARCHAR" if column else "NULL"
        hits = con.execute(f"SELECT _file, _row, {value_sql} FROM ({source_sql}) WHERE coalesce({cond}, false) "
                           f"ORDER BY _file, _row LIMIT {limit}").fetchall()
        for file_no, row, value in hits:
            issues.append(Issue(files[file_no], row, column, "" if value is None else value, rule))
        if n > limit:
            issues.append(Issue(files[hits[-1][0]], None, column, None,
                                f"... and {n - limit:,} more rows where the {column} {rule}"))
    return issues


# ---------------------------------------------------------------- what a load changes

def _cell_columns(template: Template) -> list[str]:
    """The columns of a cell, the unit re-loading replaces: (period, CSU), and the metric for facts."""
    return ["period", "csu_code", "metric_id"] if template.mode == "facts" else ["period", "csu_code"]


def _key_sql(template: Template, alias: str) -> str:
    return ", ".join(f"{alias}.{_q(k)}" for k in template.key)


def _prepare(con, template: Template, table: str, names: list[str]) -> str:
    """The typed rows (a temp table) with the period column every activity/facts table carries."""
    _, typed = _present(template, names)
    typed_table = f"{table}_typed"
    period = f", {template.period_expr} AS period" if template.period_expr and "period" not in names else ""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {typed_table} AS
                    SELECT *{period} FROM (SELECT _file, _row, {typed} FROM {table})""")
    if template.mode == "facts":
        con.execute(f"UPDATE {typed_table} SET specialty_code = coalesce(specialty_code, '')")
    if template.mode in ("activity", "facts"):
        cells = ", ".join(_cell_columns(template))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_cells AS SELECT DISTINCT {cells} FROM {typed_table}")
    return typed_table


def _compare(con, template: Template, typed: str, table: str, files: list[str],
             limit: int) -> tuple[list[Issue], Change]:
    """Against what is loaded: ids held by a cell this import does not replace (refused), and the
    rows added, replaced and removed, with the months and CSUs covered, before anything changes.

    Keys are unique within the files (checked) and within the table, so the ids held anywhere
    minus those held in the replaced cells are the clashes, and removed = the rows in the cells
    minus the replaced ones. That keeps the cost of one pass over the table's ids."""
    rows = con.execute(f"SELECT count(*) FROM {typed}").fetchone()[0]
    keys = ", ".join(_q(k) for k in template.key)
    in_cells = ""
    issues: list[Issue] = []
    removed = 0
    if template.mode in ("activity", "facts"):
        cells = ", ".join(_cell_columns(template))
        only_import = "source = 'import' AND " if template.mode == "facts" else ""
        in_cells = f"{only_import}({cells}) IN (SELECT {cells} FROM {table}_cells)"
    if template.mode == "activity" and template.key[0] != "period":
        key = _q(template.key[0])
        # Two semi-joins, not one join reading each loaded row's month and CSU: the ids held
        # anywhere (the one scan that grows with history, of the id column alone) and those held
        # in the cells replaced (pruned to their months by the zone maps). On the 5-year demo
        # 725 -> 335 ms for a month of outpatients.
        held = con.execute(f"SELECT count(*) FROM {template.table} t SEMI JOIN {typed} s ON t.{key} = s.{key}"
                           ).fetchone()[0]
        replaced = con.execute(f"""
            SELECT count(*) FROM (SELECT {key} FROM {template.table} WHERE {in_cells}) t
            SEMI JOIN {typed} s ON t.{key} = s.{key}""").fetchone()[0]
        clashing = held - replaced
        if clashing:
            hits = con.execute(f"""
                SELECT s._file, s._row, s.{key}, t.period, t.csu_code FROM {typed} s
                JOIN {template.table} t ON t.{key} = s.{key}
                WHERE (t.period, t.csu_code) NOT IN (SELECT period, csu_code FROM {table}_cells)
                ORDER BY s._file, s._row LIMIT {limit}""").fetchall()
            issues = [Issue(files[f], r, template.key[0], k, f"this id is already loaded for {p}, CSU {c}; load that "
                                                              "month and CSU too (in this import) to replace it")
                      for f, r, k, p, c in hits]
    elif template.mode in ("activity", "facts"):
        replaced = con.execute(f"""SELECT count(*) FROM {typed} s SEMI JOIN
                                   (SELECT {keys} FROM {template.table} WHERE {in_cells}) e USING ({keys})""").fetchone()[0]
    elif template.mode == "realised":
        replaced = con.execute(f"SELECT count(*) FROM {typed} SEMI JOIN realised_savings USING (scheme_id, period)"
                               ).fetchone()[0]
    else:
        select = ", ".join(f"coalesce({_q(k)}, '') AS {_q(k)}" if k == "specialty_code" else _q(k) for k in template.key)
        replaced = con.execute(f"SELECT count(*) FROM (SELECT {select} FROM {typed}) SEMI JOIN {template.table} "
                               f"USING ({keys})").fetchone()[0]
    if in_cells:
        removed = con.execute(f"SELECT count(*) FROM {template.table} WHERE {in_cells}").fetchone()[0] - replaced
    present = {c[0] for c in con.execute(f"SELECT * FROM {typed} LIMIT 0").description}
    months = ([r[0] for r in con.execute(f"SELECT DISTINCT period FROM {typed} ORDER BY 1").fetchall()]
              if "period" in present else [])
    if "csu_code" in present:
        csus = [r[0] for r in con.execute(f"SELECT DISTINCT csu_code FROM {typed} ORDER BY 1").fetchall()]
    elif template.mode == "realised":
        csus = [r[0] for r in con.execute(f"""SELECT DISTINCT csu_code FROM schemes
                                              WHERE scheme_id IN (SELECT scheme_id FROM {typed}) ORDER BY 1""").fetchall()]
    else:
        csus = []
    return issues, Change(template.kind, files, rows, months, csus, rows - replaced, replaced, removed)


# ---------------------------------------------------------------- loading

def _load(con, template: Template, typed: str, table: str, names: list[str], loaded_by: str) -> None:
    cols, _ = _present(template, names)
    present = [c.name for c in cols]
    if template.mode == "realised":
        # Audited like an entry in the app: one row per month, old → new.
        con.execute(f"""INSERT INTO audit_log (username, entity, entity_id, field, old_value, new_value)
                        SELECT $by, 'scheme', s.scheme_id::VARCHAR, 'realised.' || s.period, r.realised_gbp::VARCHAR,
                               s.realised_gbp::VARCHAR
                        FROM {typed} s LEFT JOIN realised_savings r USING (scheme_id, period)""", {"by": loaded_by})
        con.execute(f"""INSERT OR REPLACE INTO realised_savings (scheme_id, period, realised_gbp, entered_by)
                        SELECT scheme_id, period, realised_gbp, $by FROM {typed}""", {"by": loaded_by})
    elif template.mode == "activity":
        con.execute(f"""DELETE FROM {template.table}
                        WHERE (period, csu_code) IN (SELECT period, csu_code FROM {table}_cells)""")
        target = ", ".join(_q(n) for n in present + ([] if "period" in present else ["period"]))
        con.execute(f"INSERT INTO {template.table} ({target}) SELECT {target} FROM {typed}")
        facts.rebuild(con, template.kind, cells=f"{table}_cells")
    elif template.mode == "facts":
        con.execute(f"""DELETE FROM metric_facts WHERE source = 'import' AND (period, csu_code, metric_id) IN
                        (SELECT period, csu_code, metric_id FROM {table}_cells)""")
        con.execute(f"""INSERT INTO metric_facts (period, csu_code, specialty_code, metric_id, numerator, denominator, source)
                        SELECT period, csu_code, specialty_code, metric_id, numerator, denominator, 'import'
                        FROM {typed}""")
    elif template.kind == "metrics":
        _load_metrics(con, typed, cols)
    else:
        blankable = {"specialty_code"}
        select = ", ".join(f"coalesce({_q(n)}, '')" if n in blankable else _q(n) for n in present)
        con.execute(f"""INSERT OR REPLACE INTO {template.table} ({', '.join(_q(n) for n in present)})
                        SELECT {select} FROM {typed}""")


def _load_metrics(con, typed: str, cols: list[Column]) -> None:
    present = {c.name for c in cols}

    def opt(name: str, default_sql: str) -> str:
        return f"coalesce({_q(name)}, {default_sql})" if name in present else default_sql

    def listed(name: str) -> str:
        return (f"coalesce(list_filter(list_transform(string_split({_q(name)}, ';'), lambda x: trim(x)), lambda x: x <> ''), [])"
                if name in present else "[]::VARCHAR[]")

    con.execute(f"""
        INSERT OR REPLACE INTO metrics (metric_id, metric_name, domain, definition, numerator_label,
            denominator_label, direction, unit, value_format, cost_driver, saving_type, overlap_group,
            min_volume, funnel, capacity_unit, capacity_divisor, data_source, benchmark_source,
            scheme_ideas, quality_risks, origin)
        SELECT metric_id, metric_name, domain, {opt('definition', "''")}, numerator_label, denominator_label,
               direction, unit, {opt('value_format', "'ratio'")}, cost_driver, saving_type,
               coalesce(overlap_group, ''), min_volume, {opt('funnel', "'poisson'")},
               {opt('capacity_unit', "''")}, {opt('capacity_divisor', '1')}, {opt('data_source', "''")},
               {opt('benchmark_source', "''")}, {listed('scheme_ideas')}, {listed('quality_risks')}, 'import'
        FROM {typed}""")


# ---------------------------------------------------------------- one import command

@dataclass
class _Planned:
    path: Path
    kind: str
    header: readers.Header
    names: list[str]


def _read_plan(paths: Iterable[str | Path], result: ImportResult) -> list[_Planned]:
    plan = []
    for raw_path in paths:
        path = Path(raw_path)
        name = path.name
        if not path.exists():
            result.issues.append(Issue(name, None, None, None, "file not found"))
            continue
        if path.suffix.lower() not in (".csv", ".xlsx"):
            result.issues.append(Issue(name, None, None, None, "only .csv and .xlsx files can be imported"))
            continue
        try:
            header = readers.header_of(path, matches_template)
        except readers.Unreadable as reject:
            result.issues.append(Issue(name, reject.row or 1, reject.column, None, str(reject)))
            continue
        names = header.names
        kind, problems = detect_kind(path, names)
        if kind is None:
            where = f" on sheet '{header.sheet}'" if header.sheet else ""
            result.issues += [Issue(name, header.row, None, None, p.replace("the header", f"the header{where}", 1))
                              for p in problems]
            continue
        plan.append(_Planned(path, kind, header, names))
    return plan


def _stage_kind(con, kind: str, group: list[_Planned], table: str, result: ImportResult,
                say: Progress, base: float) -> list[str] | None:
    """Stage every file of one kind and combine them into ``table`` (_file = index into the names)."""
    template = TEMPLATES[kind]
    periods = {c.name for c in template.all_columns if c.type == "period"}
    union = []
    for index, item in enumerate(group):
        name = item.path.name
        part = f"{table}_{index}"
        say(f"Reading {name}", base)
        try:
            if readers.is_xlsx(item.path):
                readers.stage_xlsx(con, item.path, item.header, item.names, part, periods)
            else:
                readers.stage_csv(con, item.path, item.header, item.names, part)
        except readers.Unreadable as reject:
            result.issues.append(Issue(name, reject.row, reject.column, None, str(reject)))
            continue
        if con.execute(f"SELECT 1 FROM {part} LIMIT 1").fetchone() is None:
            result.issues.append(Issue(name, None, None, None, "the file has a header but no data rows"))
            continue
        # National codes (admission method 11, attendance status 5, ...) become the template's words.
        refused = codes.normalise(con, kind, part, item.names)
        item.names = [n for n in item.names if n not in codes.STAGING_ONLY.get(kind, ())]
        if refused:
            result.issues += [Issue(name, p.row, p.column, p.value, p.rule) for p in refused]
            continue
        groups = ([r[0] for r in con.execute(f'SELECT DISTINCT trim("peer_group") FROM {part} ORDER BY 1').fetchall()]
                  if kind == "benchmarks" and "peer_group" in item.names else [])
        result.loaded.append(FileLoad(name, kind, 0, [], item.header.sheet, groups))  # rows counted once typed
        union.append(f"SELECT {index} AS _file, * FROM {part}")
    if len(union) < len(group):
        return None
    con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS " + " UNION ALL BY NAME ".join(union))
    names: list[str] = []
    for item in group:
        names += [n for n in item.names if n not in names]
    return names


def _fingerprint(paths: list[Path]) -> tuple:
    """Each file's (path, size, modification time): the very files a dry run read, or not."""
    out = []
    for path in paths:
        stat = path.stat()
        out.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def import_files(con: duckdb.DuckDBPyConnection, paths: Iterable[str | Path], loaded_by: str = "command line",
                 progress: Progress | None = None, dry_run: bool = False,
                 checked: ImportResult | None = None) -> ImportResult:
    """Validate and load files as one transaction: all load, or nothing changes.

    ``dry_run`` validates and works out the changes exactly as the commit does, inside the
    transaction, then rolls it back: the Data page's report before anything is committed uses the
    very same checks as the commit, and the commit repeats the report. Reference data (CSUs,
    specialties, metrics, ...) is loaded before the rollback, because later files of the import
    are checked against it; activity, facts and realised savings are not (no file reads them,
    and their load and facts rebuild were a fifth of the wait for the report).

    ``checked`` is that dry run's result. When the files are the very ones it read and no import
    has committed since (the data version, read inside the commit's transaction; an import
    committing meanwhile writes the same row, so one of the two fails and changes nothing), the
    commit loads without running the checks and the comparison again, and repeats the dry run's
    report: they were half of the wait after Commit. Realised savings are always checked again,
    as a scheme's status changes without an import."""
    limit = int(settings()["import"]["max_errors_per_rule"])
    say = progress or (lambda message, fraction: None)
    result = ImportResult()
    plan = _read_plan(paths, result)
    if result.issues:
        return result
    kinds = sorted({p.kind for p in plan}, key=ORDER.index)
    order = {p.path.name: i for i, p in enumerate(plan)}
    staged: list[tuple[str, str, list[str], list[str]]] = []  # kind, table, names, files
    try:
        # Staged outside the transaction: a reader that fails (DuckDB's CSV reader on an odd file,
        # before the careful reader takes over) must not abort the import's transaction.
        for step, kind in enumerate(kinds):
            group = [p for p in plan if p.kind == kind]
            table = f"_stage_{step}"
            names = _stage_kind(con, kind, group, table, result, say, step / len(kinds))
            if names is not None:
                staged.append((kind, table, names, [p.path.name for p in group]))
        if not result.issues:
            _check_and_load(con, staged, result, loaded_by, limit, say, dry_run,
                            _fingerprint([p.path for p in plan]), checked)
    except Exception as exc:  # anything unexpected: roll back and say so, never a traceback
        try:
            con.rollback()
        except duckdb.Error:
            pass  # no transaction was open
        if isinstance(exc, (duckdb.TransactionException, duckdb.ConstraintException)) and "data_version" in str(exc):
            # Two imports committing at once both write the data version: the later one fails whole.
            why = "another import was committed while this one ran, so nothing was changed: check the files again"
        else:
            why = f"the import failed and nothing was changed ({type(exc).__name__}: {str(exc)[:200]})"
        result.issues.append(Issue(plan[0].path.name if len(plan) == 1 else "import", None, None, None, why))
    finally:
        for (name,) in con.execute("""SELECT view_name FROM duckdb_views()
                                      WHERE temporary AND starts_with(view_name, '_stage_')""").fetchall():
            con.execute(f"DROP VIEW IF EXISTS {name}")
        for (name,) in con.execute("""SELECT table_name FROM duckdb_tables()
                                      WHERE temporary AND starts_with(table_name, '_stage_')""").fetchall():
            con.execute(f"DROP TABLE IF EXISTS {name}")
    if result.issues:
        result.loaded, result.changes = [], []
        result.issues.sort(key=lambda i: (order.get(i.file, 0),
                                          i.row if i.row is not None else 1 << 62))
    return result


def _check_and_load(con, staged, result: ImportResult, loaded_by: str, limit: int, say: Progress,
                    dry_run: bool, fingerprint: tuple, checked: ImportResult | None) -> None:
    """Check every source's combined rows, work out and record the changes, load: one transaction.
    ``checked``: a dry run whose checks and changes stand if it saw these files at this data
    version (see import_files)."""
    con.begin()
    seen = (get_setting(con, "data_version", "0"), fingerprint)
    if dry_run:
        result.checked_against = seen
    still = checked is not None and checked.ok and checked.dry_run and checked.checked_against == seen
    known = {c.kind: c for c in checked.changes} if still and checked is not None else {}
    for step, (kind, table, names, files) in enumerate(staged):
        template = TEMPLATES[kind]
        base = step / len(staged)
        say(f"Checking {kind}", base + 0.3 / len(staged))
        if kind in known and template.mode != "realised":
            typed = _prepare(con, template, table, names)
            issues, change = [], known[kind]
        else:
            issues = _validate(con, template, table, names, files, limit)
            if not issues:
                typed = _prepare(con, template, table, names)
                issues, change = _compare(con, template, typed, table, files, limit)
        if issues or result.issues:
            result.issues += issues
            continue
        result.changes.append(change)
        has_period = "period" in {d[0] for d in con.execute(f"SELECT * FROM {typed} LIMIT 0").description}
        per_file = {file_no: (n, first, last) for file_no, n, first, last in con.execute(
            f"""SELECT _file, count(*), {'min(period), max(period)' if has_period else 'NULL, NULL'}
                FROM {typed} GROUP BY _file""").fetchall()}
        for f in (f for f in result.loaded if f.kind == kind):
            f.rows, first, last = per_file[files.index(f.file)]
            f.periods = [first, last] if first else []
        if dry_run and template.mode in LEAVES:
            continue  # nothing later in the import reads these rows: loading them is the commit's work
        say(f"Loading {kind}", base + 0.6 / len(staged))
        _load(con, template, typed, table, names, loaded_by)
        for f in (f for f in result.loaded if f.kind == kind):
            con.execute("""INSERT INTO import_log (kind, file_name, row_count, period_from, period_to, loaded_by)
                           VALUES (?, ?, ?, ?, ?, ?)""",
                        [kind, f.file, f.rows, f.periods[0] if f.periods else None,
                         f.periods[-1] if f.periods else None, loaded_by])
    if result.issues:
        con.rollback()
    elif dry_run:
        con.rollback()
        result.dry_run = True
        say("Checked: nothing committed yet", 1.0)
    else:
        bump_data_version(con)
        con.commit()
        say("Done", 1.0)


def stage_uploads(files: Iterable[tuple[str, int, bytes | memoryview]], folder: Path,
                  limit_mb: int) -> tuple[list[Path], list[str]]:
    """Write browser uploads (name, size, content) into ``folder`` under sanitised names.

    Returns the paths to import and a message for each file refused before reading it: over the
    size limit, or not .csv/.xlsx. The names are the user's, so the validation report names them."""
    import re

    paths, problems = [], []
    for name, size, content in files:
        clean = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).name) or "upload.csv"
        if size > limit_mb * 1024 * 1024:
            problems.append(f"{name}: {size / 1024 / 1024:,.0f} MB is over the {limit_mb} MB limit. "
                            "Split it by month and load the parts.")
        elif Path(clean).suffix.lower() not in (".csv", ".xlsx"):
            problems.append(f"{name}: only .csv and .xlsx files can be loaded (this is "
                            f"{Path(clean).suffix or 'a file without an extension'}).")
        else:
            path = folder / clean
            path.write_bytes(bytes(content))
            paths.append(path)
    return paths, problems
