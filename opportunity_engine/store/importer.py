"""Validated import of the DATA.md templates (CSV or .xlsx), one transaction per command.

Every file is staged as text, checked in SQL against its template's rules, and only then cast
and loaded. Any failure anywhere rolls the whole command back: the database is left exactly as it
was, and each problem is reported as file, spreadsheet row, column, value and rule.

Re-importing a period replaces it: activity files replace every month they contain, metric
facts replace (month, metric), reference files update by key. Metric facts derived from activity
are rebuilt for the months loaded, inside the same transaction.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import duckdb
import pandas as pd

from ..config import settings
from . import facts
from .db import bump_data_version
from .templates import ORDER, TEMPLATES, Column, Template

Progress = Callable[[str, float], None]
MAX_TEXT = 200
MAX_COUNT = 100_000_000
MAX_AMOUNT = 1e11


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


@dataclass
class FileLoad:
    file: str
    kind: str
    rows: int
    periods: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    loaded: list[FileLoad] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.issues

    def table(self) -> list[dict]:
        """The validation report as rows (file, row, column, value, rule) for the Data page."""
        return [{"file": i.file, "row": i.row, "column": i.column, "value": i.value, "rule": i.rule}
                for i in self.issues]

    def report(self) -> str:
        if self.ok:
            verb = "Checked (nothing committed yet)" if self.dry_run else "Loaded"
            lines = [f"{verb} {len(self.loaded)} file(s):"]
            for f in self.loaded:
                span = f" ({f.periods[0]} to {f.periods[-1]})" if f.periods else ""
                lines.append(f"  {f.file}: {f.rows:,} {f.kind} rows{span}")
            return "\n".join(lines)
        lines = [f"Rejected: {len(self.issues)} problem(s). Nothing was changed."]
        lines += [f"  {issue}" for issue in self.issues]
        return "\n".join(lines)


class _Reject(Exception):
    """A file-level problem that stops reading that file."""


# ---------------------------------------------------------------- reading files

def _cell_text(value) -> str:
    """An Excel cell as the text a CSV would hold (dates ISO, whole numbers without .0)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _read_header(path: Path) -> list[str]:
    if path.suffix.lower() == ".xlsx":
        return _xlsx_rows(path, header_only=True)[0][1]
    with path.open("rb") as fh:
        start = fh.read(4096)
    if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise _Reject("the file is UTF-16 text: save it as 'CSV UTF-8' (or as .xlsx)")
    if b"\x00" in start:
        raise _Reject("the file is binary, not CSV text")
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise _Reject("the file is not UTF-8 text: save it as 'CSV UTF-8' (or as .xlsx)")
    if "\x00" in first:
        raise _Reject("the file is binary, not CSV text")
    if not first.strip():
        raise _Reject("the file is empty: the first row must be the header")
    return [h.strip() for h in next(csv.reader([first]))]


def _xlsx_rows(path: Path, header_only: bool = False) -> list[tuple[int, list]]:
    from openpyxl import load_workbook  # imported here: only Excel imports pay for it

    try:
        book = load_workbook(path, read_only=True, data_only=False)
    except Exception:
        raise _Reject("the file is not a readable .xlsx workbook")
    try:
        sheet = book.worksheets[0]
        out = []
        for index, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            if index == 1:
                out.append((1, [_cell_text(v).strip() for v in row]))
                if header_only:
                    break
                continue
            if row is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                continue
            out.append((index, list(row)))
        if not out:
            raise _Reject("the workbook's first sheet is empty: the first row must be the header")
        return out
    finally:
        book.close()


def detect_kind(path: Path, header: list[str]) -> tuple[str | None, list[str]]:
    """The template whose columns the header matches, else the problems against the nearest one."""
    names = set(header)
    for kind, template in TEMPLATES.items():
        required = set(template.names)
        allowed = required | {c.name for c in template.optional}
        if required <= names <= allowed and len(header) == len(names):
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
    unexpected = [h for h in header if h not in set(template.names) | {c.name for c in template.optional}]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected column(s) {', '.join(unexpected)}")
    return None, [f"the header does not match the '{nearest}' template ({'; '.join(problems)}). "
                  f"Expected: {', '.join(template.names)}"]


def _stage(con: duckdb.DuckDBPyConnection, path: Path, header: list[str], table: str) -> int:
    """Copy the file into a temp table of text columns plus _row (its spreadsheet row number)."""
    if path.suffix.lower() == ".xlsx":
        rows = _xlsx_rows(path)[1:]
        records = []
        for row_no, values in rows:
            values = list(values) + [None] * (len(header) - len(values))
            if len(values) > len(header) and any(v not in (None, "") for v in values[len(header):]):
                raise _Reject(f"row {row_no} has values beyond the last header column")
            for col, value in zip(header, values):
                if isinstance(value, str) and value.startswith("="):
                    raise _Reject(f"row {row_no}, column {col} holds a formula ({value[:30]}): paste values only")
            records.append([row_no] + [_cell_text(v) for v in values[: len(header)]])
        frame = pd.DataFrame(records, columns=["_row"] + header, dtype=object)
        frame["_row"] = frame["_row"].astype("int64")
        con.register("_stage_frame", frame)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM _stage_frame")
        finally:
            con.unregister("_stage_frame")
    else:
        # The header has been matched against the template, so these names are known constants.
        columns = ", ".join(f"'{h}': 'VARCHAR'" for h in header)
        try:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE {table}_text AS
                    SELECT * FROM read_csv($path, header = true, auto_detect = false, columns = {{{columns}}},
                                           delim = ',', quote = '"', escape = '"', strict_mode = true)""",
                {"path": str(path)},
            )
        except duckdb.Error as exc:
            raise _Reject(_csv_error(str(exc)))
        # rowid follows file order (insertion order is preserved) but rows written inside a
        # transaction carry an offset, so number them by rank; the header is row 1.
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {table} AS
                        SELECT row_number() OVER (ORDER BY rowid) + 1 AS _row, * FROM {table}_text""")
        con.execute(f"DROP TABLE {table}_text")
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _csv_error(message: str) -> str:
    if "unicode" in message.lower() or "utf" in message.lower():
        return "the file is not UTF-8 text: save it as 'CSV UTF-8' (or as .xlsx)"
    line = re.search(r"[Ll]ine:? (\d+)", message)
    where = f"row {line.group(1)}: " if line else ""
    if "Expected Number of Columns" in message or "columns" in message.lower():
        return f"{where}the row does not have the same number of columns as the header"
    first = message.strip().splitlines()[0] if message.strip() else "unreadable"
    return f"{where}the file could not be read as CSV ({first[:160]})"


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
    """The template's columns present in this file, and the SQL that casts them to their types."""
    cols = [c for c in template.all_columns if c.name in header]
    return cols, ", ".join(f"{_typed(c)} AS {_q(c.name)}" for c in cols)


def _column_checks(col: Column) -> list[tuple[str, str]]:
    """(SQL condition that marks a bad row, rule text) for one column."""
    v = f"nullif(trim({_q(col.name)}), '')"
    checks = []
    if col.required:
        checks.append((f"{v} IS NULL", "a value is required"))
    present = f"{v} IS NOT NULL AND "
    if col.type == "date":
        checks.append((present + f"(NOT regexp_full_match({v}, '\\d{{4}}-\\d{{2}}-\\d{{2}}') OR try_cast({v} AS DATE) IS NULL)",
                       "must be a date written YYYY-MM-DD"))
        checks.append((present + f"try_cast({v} AS DATE) NOT BETWEEN DATE '1990-01-01' AND DATE '2100-12-31'",
                       "date is outside 1990 to 2100"))
    elif col.type == "period":
        checks.append((present + f"NOT regexp_full_match({v}, '\\d{{4}}-(0[1-9]|1[0-2])')",
                       "must be a period written YYYY-MM"))
    elif col.type == "flag":
        checks.append((present + f"{v} NOT IN ('0', '1')", "must be 0 or 1"))
    elif col.type == "count":
        checks.append((present + f"NOT regexp_full_match({v}, '-?[0-9]+')", "must be a whole number"))
        checks.append((present + f"try_cast({v} AS BIGINT) < 0", "must not be negative"))
        checks.append((present + f"try_cast({v} AS BIGINT) > {MAX_COUNT}", f"is implausibly large (over {MAX_COUNT:,})"))
    elif col.type in ("amount", "number"):
        checks.append((present + f"(try_cast({v} AS DOUBLE) IS NULL OR NOT isfinite(try_cast({v} AS DOUBLE)))",
                       "must be a number (no £ signs, commas or text)"))
        if col.type == "amount":
            checks.append((present + f"try_cast({v} AS DOUBLE) < 0", "must not be negative"))
        checks.append((present + f"abs(try_cast({v} AS DOUBLE)) > {MAX_AMOUNT:.0f}",
                       f"is implausibly large (over {MAX_AMOUNT:,.0f})"))
    elif col.type == "enum":
        choices = ", ".join("'" + c + "'" for c in col.choices)
        checks.append((present + f"{v} NOT IN ({choices})", f"must be one of: {', '.join(col.choices)}"))
    elif col.type == "id":
        checks.append((present + f"NOT regexp_full_match({v}, '[a-z][a-z0-9_]{{0,63}}')",
                       "must be lower-case letters, digits and _ (starting with a letter)"))
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
                                 "('approved', 'delivering', 'delivered'))",
                       "unknown scheme id, or the scheme is not approved yet"))
    return checks


def _row_checks(template: Template) -> list[tuple[str, str, str]]:
    """(column, SQL condition over typed columns, rule) for rules that span columns."""
    tolerance = int(settings()["import"]["used_minutes_tolerance"])
    kind = template.kind
    if kind == "spells":
        return [
            ("discharge_date", "discharge_date < admission_date", "discharge date is before admission date"),
            ("procedure_date", "procedure_date < admission_date OR procedure_date > discharge_date",
             "procedure date is outside the spell (admission to discharge)"),
        ]
    if kind == "theatre_sessions":
        return [
            ("used_minutes", f"used_minutes > planned_minutes + {tolerance}",
             f"used minutes exceed planned minutes by more than the tolerance of {tolerance}"),
            ("late_start_minutes", "late_start_minutes + early_finish_minutes > planned_minutes",
             "late-start plus early-finish minutes exceed planned minutes"),
        ]
    if kind == "benchmarks":
        return [("p10", "NOT (p10 <= p25 AND p25 <= p50 AND p50 <= p75 AND p75 <= p90)",
                 "percentiles must be in order: p10 <= p25 <= p50 <= p75 <= p90")]
    if kind == "metric_facts":
        derived = ", ".join("'" + m + "'" for m in facts.ACTIVITY_METRICS)
        return [
            ("denominator", "denominator = 0", "denominator must be above zero"),
            ("metric_id", f"metric_id IN ({derived})",
             "this metric is computed from activity data: import the activity, not facts"),
        ]
    if kind == "metrics":
        return [("capacity_divisor", "capacity_divisor = 0", "capacity divisor must be above zero")] \
            if "capacity_divisor" in template.names else []
    return []


def _validate(con, template: Template, table: str, header: list[str], file: str, limit: int) -> list[Issue]:
    cols, typed = _present(template, header)
    checks: list[tuple[str | None, str, str]] = []
    for col in cols:
        checks += [(col.name, cond, rule) for cond, rule in _column_checks(col)]
    row_checks = _row_checks(template)
    issues = _run_checks(con, f"SELECT _row, {', '.join(_q(c.name) for c in cols)} FROM {table}",
                         checks, file, limit)
    if row_checks:
        typed_sql = f"SELECT _row, {typed} FROM {table}"
        issues += _run_checks(con, typed_sql, row_checks, file, limit)
    key = ", ".join(f"coalesce(trim({_q(k)}), '')" for k in template.key)
    dups = con.execute(f"""
        SELECT _row, concat_ws(' / ', {key}) AS k, first_row, count(*) OVER () AS n FROM (
            SELECT _row, {', '.join(_q(k) for k in template.key)}, min(_row) OVER (PARTITION BY {key}) AS first_row
            FROM {table}) WHERE _row > first_row ORDER BY _row LIMIT {limit}""").fetchall()
    for row, k, first_row, n in dups:
        issues.append(Issue(file, row, ", ".join(template.key), k, f"duplicate of row {first_row}"))
    if dups and dups[0][3] > limit:
        issues.append(Issue(file, None, ", ".join(template.key), None,
                            f"... and {dups[0][3] - limit:,} more duplicate rows"))
    return issues


def _run_checks(con, source_sql: str, checks, file: str, limit: int) -> list[Issue]:
    if not checks:
        return []
    counts_sql = ", ".join(f"count(*) FILTER (WHERE coalesce({cond}, false))" for _, cond, _ in checks)
    counts = con.execute(f"SELECT {counts_sql} FROM ({source_sql})").fetchone()
    issues = []
    for (column, cond, rule), n in zip(checks, counts):
        if not n:
            continue
        value_sql = f"{_q(column)}::VARCHAR" if column else "NULL"
        for row, value in con.execute(
            f"SELECT _row, {value_sql} FROM ({source_sql}) WHERE coalesce({cond}, false) ORDER BY _row LIMIT {limit}"
        ).fetchall():
            issues.append(Issue(file, row, column, "" if value is None else value, rule))
        if n > limit:
            issues.append(Issue(file, None, column, None, f"... and {n - limit:,} more rows where the {column} {rule}"))
    return issues


# ---------------------------------------------------------------- loading

def _periods(con, template: Template, table: str, header: list[str]) -> list[str]:
    _, typed = _present(template, header)
    rows = con.execute(f"SELECT DISTINCT {template.period_expr} AS p FROM (SELECT {typed} FROM {table}) ORDER BY p").fetchall()
    return [r[0] for r in rows]


def _clashes(con, template: Template, table: str, periods: list[str], file: str, limit: int) -> list[Issue]:
    """Activity ids already loaded for months this file does not replace."""
    if template.mode != "activity" or template.key[0] == "period":
        return []
    key = template.key[0]
    rows = con.execute(f"""
        SELECT s._row, trim(s.{_q(key)}), t.period FROM {table} s
        JOIN {template.table} t ON t.{_q(key)} = trim(s.{_q(key)})
        WHERE NOT list_contains($periods, t.period) ORDER BY s._row LIMIT {limit}""",
        {"periods": periods}).fetchall()
    return [Issue(file, r, key, k, f"this id is already loaded for {p}; re-import {p} to replace it")
            for r, k, p in rows]


def _load(con, template: Template, table: str, header: list[str], periods: list[str], loaded_by: str) -> None:
    cols, typed = _present(template, header)
    names = [c.name for c in cols]
    if template.mode == "realised":
        # Audited like an entry in the app: one row per month, old → new.
        con.execute(f"""INSERT INTO audit_log (username, entity, entity_id, field, old_value, new_value)
                        SELECT $by, 'scheme', s.scheme_id::VARCHAR, 'realised.' || s.period, r.realised_gbp::VARCHAR,
                               s.realised_gbp::VARCHAR
                        FROM (SELECT {typed} FROM {table}) s
                        LEFT JOIN realised_savings r USING (scheme_id, period)""", {"by": loaded_by})
        con.execute(f"""INSERT OR REPLACE INTO realised_savings (scheme_id, period, realised_gbp, entered_by)
                        SELECT scheme_id, period, realised_gbp, $by FROM (SELECT {typed} FROM {table})""",
                    {"by": loaded_by})
    elif template.mode == "activity":
        con.execute(f"DELETE FROM {template.table} WHERE list_contains($periods, period)", {"periods": periods})
        target = ", ".join(_q(n) for n in names)
        extra = "" if "period" in names else f", {template.period_expr}"
        con.execute(f"""INSERT INTO {template.table} ({target}{', period' if extra else ''})
                        SELECT {target}{extra} FROM (SELECT {typed} FROM {table})""")
        facts.rebuild(con, template.kind, periods)
    elif template.mode == "facts":
        con.execute(f"""DELETE FROM metric_facts WHERE source = 'import' AND (period, metric_id) IN
                        (SELECT DISTINCT trim(period), trim(metric_id) FROM {table})""")
        con.execute(f"""INSERT INTO metric_facts (period, csu_code, specialty_code, metric_id, numerator, denominator, source)
                        SELECT period, csu_code, coalesce(specialty_code, ''), metric_id, numerator, denominator, 'import'
                        FROM (SELECT {typed} FROM {table})""")
    elif template.kind == "metrics":
        _load_metrics(con, table, cols, typed)
    else:
        blankable = {"specialty_code"}
        select = ", ".join(f"coalesce({_q(n)}, '')" if n in blankable else _q(n) for n in names)
        con.execute(f"""INSERT OR REPLACE INTO {template.table} ({', '.join(_q(n) for n in names)})
                        SELECT {select} FROM (SELECT {typed} FROM {table})""")


def _load_metrics(con, table: str, cols: list[Column], typed: str) -> None:
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
        FROM (SELECT {typed} FROM {table})""")


def import_files(con: duckdb.DuckDBPyConnection, paths: Iterable[str | Path], loaded_by: str = "command line",
                 progress: Progress | None = None, dry_run: bool = False) -> ImportResult:
    """Validate and load files as one transaction: all load, or nothing changes.

    ``dry_run`` validates and loads inside the transaction, then rolls it back: the Data page's
    validation report before anything is committed uses the very same code path as the commit."""
    limit = int(settings()["import"]["max_errors_per_rule"])
    say = progress or (lambda message, fraction: None)
    result = ImportResult()
    plan: list[tuple[Path, str, list[str]]] = []
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
            header = _read_header(path)
        except _Reject as reject:
            result.issues.append(Issue(name, 1, None, None, str(reject)))
            continue
        kind, problems = detect_kind(path, header)
        if kind is None:
            result.issues += [Issue(name, 1, None, None, p) for p in problems]
            continue
        plan.append((path, kind, header))
    if result.issues:
        return result
    plan.sort(key=lambda item: ORDER.index(item[1]))
    con.begin()
    try:
        for step, (path, kind, header) in enumerate(plan):
            template = TEMPLATES[kind]
            name = path.name
            table = f"_stage_{step}"
            base = step / len(plan)
            say(f"Reading {name}", base)
            try:
                rows = _stage(con, path, header, table)
            except _Reject as reject:
                result.issues.append(Issue(name, None, None, None, str(reject)))
                continue
            if rows == 0:
                result.issues.append(Issue(name, None, None, None, "the file has a header but no data rows"))
                continue
            say(f"Checking {rows:,} rows of {name}", base + 0.3 / len(plan))
            issues = _validate(con, template, table, header, name, limit)
            periods: list[str] = []
            if not issues and template.period_expr:
                periods = _periods(con, template, table, header)
                issues = _clashes(con, template, table, periods, name, limit)
            if issues or result.issues:
                result.issues += issues
                continue
            say(f"Loading {name}", base + 0.6 / len(plan))
            _load(con, template, table, header, periods, loaded_by)
            con.execute(
                """INSERT INTO import_log (kind, file_name, row_count, period_from, period_to, loaded_by)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                [kind, name, rows, periods[0] if periods else None, periods[-1] if periods else None, loaded_by])
            result.loaded.append(FileLoad(name, kind, rows, periods))
        if result.issues:
            # Roll back at once: a file that failed to parse may have aborted the transaction,
            # and the rollback drops the staging tables with everything else.
            con.rollback()
            result.loaded = []
            order = {path.name: i for i, (path, _, _) in enumerate(plan)}
            result.issues.sort(key=lambda i: (order.get(i.file, 0), i.row if i.row is not None else 1 << 62))
        elif dry_run:
            con.rollback()
            result.dry_run = True
            say("Checked: nothing committed yet", 1.0)
        else:
            for step in range(len(plan)):
                con.execute(f"DROP TABLE IF EXISTS _stage_{step}")
            bump_data_version(con)
            con.commit()
            say("Done", 1.0)
    except Exception as exc:  # anything unexpected: roll back and say so, never a traceback
        con.rollback()
        result.loaded = []
        result.issues.append(Issue(plan[0][0].name if len(plan) == 1 else "import", None, None, None,
                                   f"the import failed and nothing was changed ({type(exc).__name__}: {str(exc)[:200]})"))
    return result


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
