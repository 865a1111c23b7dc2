"""Column mappings: a trust's own extract columns onto a template's, saved under a name.

A PAS or SUS extract has its own column names (ADMIMETH, TRETSPEF, ...). Rather than rewriting
every monthly file by hand, an admin maps the file's columns onto the template's once (the Data
page, with a preview of the first rows), saves the mapping under a name, and next month loads
with it (Data page, or ``import --mapping NAME``). Applying a mapping writes a copy of the file
with the template's header and the mapped columns, row for row (blank lines kept, so every row
number in a validation report is still the row of the trust's own file); the copy then goes
through the ordinary import with all its checks, national codes included.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from . import readers
from .templates import TEMPLATES

NAME_MAX = 60
# Column names of common national extracts (SUS/HES, CDS) and PAS reports, as readers.normalise
# writes them, with the template column each usually means: a first guess the user confirms.
ALIASES = {
    "spell_id": ("spell", "spell_number", "hospital_provider_spell_number", "provspno", "spell_no"),
    "appointment_id": ("attendance_id", "attendance_identifier", "attendid", "appointment", "appt_id"),
    "session_id": ("theatre_session_id", "session"),
    "csu_code": ("csu", "division", "directorate_code", "csu_id"),
    "specialty_code": ("treatment_function_code", "treatment_function", "tretspef", "specialty", "main_specialty"),
    "admission_date": ("admidate", "start_date_hospital_provider_spell", "date_of_admission", "admission_dt"),
    "discharge_date": ("disdate", "discharge_date_hospital_provider_spell", "date_of_discharge", "discharge_dt"),
    "admission_type": ("admission_method", "admimeth", "admission_method_code"),
    "patient_classification": ("classpat", "patient_classification_code"),
    "procedure_date": ("opdate_01", "primary_procedure_date", "date_of_procedure", "operation_date"),
    "appointment_date": ("apptdate", "appointment_dt", "attendance_date"),
    "attendance_type": ("first_attendance", "firstatt", "first_attendance_code"),
    "outcome": ("attended_or_did_not_attend", "attended", "atentype", "attendance_status", "attend"),
    "virtual": ("consultation_medium_used", "consultation_medium", "consmed", "consultation_mechanism"),
}


class MappingError(ValueError):
    """A mapping that cannot be saved or applied; the message says what to change."""


@dataclass(frozen=True)
class Mapping:
    """Template column -> the file's column (normalised names, as readers.normalise writes them)."""
    name: str
    kind: str
    columns: dict[str, str]

    def needed(self) -> set[str]:
        return set(self.columns.values())


def validate(kind: str, columns: dict[str, str], file_columns: list[str] | None = None) -> list[str]:
    """What is wrong with a mapping (empty when it can be used)."""
    if kind not in TEMPLATES:
        return [f"unknown template {kind!r}"]
    template = TEMPLATES[kind]
    allowed = {c.name for c in template.all_columns}
    used = {t: f for t, f in columns.items() if f}
    problems = [f"{t} is not a column of the {kind} template" for t in used if t not in allowed]
    missing = [c.name for c in template.columns if c.name not in used]
    if missing:
        problems.append(f"choose a column of the file for: {', '.join(missing)}")
    twice = sorted({f for f in used.values() if list(used.values()).count(f) > 1})
    if twice:
        problems.append(f"one file column mapped to two template columns: {', '.join(twice)}")
    if file_columns is not None:
        absent = [f for f in used.values() if f not in file_columns]
        if absent:
            problems.append(f"the file has no column {', '.join(absent)}")
    return problems


def suggest(kind: str, file_columns: list[str]) -> dict[str, str]:
    """A first guess: the file column with the template column's own name, else a known alias."""
    out: dict[str, str] = {}
    for col in TEMPLATES[kind].all_columns:
        for candidate in (col.name, *ALIASES.get(col.name, ())):
            if candidate in file_columns and candidate not in out.values():
                out[col.name] = candidate
                break
    return out


def save(con: duckdb.DuckDBPyConnection, name: str, kind: str, columns: dict[str, str], saved_by: str) -> Mapping:
    """Save (or replace) a named mapping; refused with the reason when it could not load a file."""
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise MappingError(f"give the mapping a name of 1 to {NAME_MAX} printable characters")
    columns = {t: readers.normalise(f) for t, f in columns.items() if f}
    problems = validate(kind, columns)
    if problems:
        raise MappingError("; ".join(problems))
    con.execute("""INSERT OR REPLACE INTO column_mappings (name, kind, columns, saved_by, saved_at)
                   VALUES (?, ?, ?, ?, current_timestamp)""", [name, kind, json.dumps(columns), saved_by])
    return Mapping(name, kind, columns)


def get(con: duckdb.DuckDBPyConnection, name: str) -> Mapping | None:
    row = con.execute("SELECT name, kind, columns FROM column_mappings WHERE name = ?", [name]).fetchone()
    return Mapping(row[0], row[1], json.loads(row[2])) if row else None


def names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM column_mappings ORDER BY name").fetchall()]


def listing(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("SELECT name, kind, saved_by, saved_at FROM column_mappings ORDER BY name").df()


def file_columns(path: Path) -> list[str]:
    """The file's own column names (normalised), whatever template they may match."""
    return readers.header_of(Path(path), lambda _names: True).names


def _rows(con: duckdb.DuckDBPyConnection, path: Path, limit: int | None = None) -> tuple[list[str], list[tuple]]:
    """The file's columns and its rows as (_row, values...), read by the import's own readers."""
    header = readers.header_of(path, lambda _names: True)
    names = header.names
    table = "_mapping_rows"
    try:
        if readers.is_xlsx(path):
            readers.stage_xlsx(con, path, header, names, table, set())
        else:
            readers.stage_csv(con, path, header, names, table)
        cols = ", ".join('"' + n.replace('"', '""') + '"' for n in names if not n.startswith("_blank_"))
        sql = f"SELECT _row, {cols} FROM {table} ORDER BY _row" + (f" LIMIT {int(limit)}" if limit else "")
        return [n for n in names if not n.startswith("_blank_")], con.execute(sql).fetchall()
    finally:
        for (view,) in con.execute("SELECT view_name FROM duckdb_views() WHERE temporary AND "
                                   "starts_with(view_name, '_mapping_rows')").fetchall():
            con.execute(f"DROP VIEW IF EXISTS {view}")
        for (tab,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary AND "
                                  "starts_with(table_name, '_mapping_rows')").fetchall():
            con.execute(f"DROP TABLE IF EXISTS {tab}")


def preview(con: duckdb.DuckDBPyConnection, path: Path, kind: str, columns: dict[str, str], rows: int = 5) -> pd.DataFrame:
    """The first rows of the file as they would load: the template's columns, from the mapped ones."""
    try:
        names, data = _rows(con, Path(path), rows)
    except (readers.Unreadable, duckdb.Error) as exc:
        raise MappingError(f"{Path(path).name} cannot be read: {exc}") from exc
    at = {n: i + 1 for i, n in enumerate(names)}
    out = {}
    for col in TEMPLATES[kind].all_columns:
        source = columns.get(col.name)
        if source:
            out[col.name] = ["" if r[at[source]] is None else str(r[at[source]]) for r in data] if source in at \
                else ["(no such column)"] * len(data)
    return pd.DataFrame(out, index=[r[0] for r in data]).rename_axis("Row")


def apply(con: duckdb.DuckDBPyConnection, path: Path, mapping: Mapping, folder: Path) -> Path:
    """A copy of ``path`` in ``folder`` (same file name) with the template's header and the mapped
    columns, row for row: the copy's row N is the original's row N."""
    path, folder = Path(path), Path(folder)
    names, data = _rows(con, path)
    problems = validate(mapping.kind, mapping.columns, names)
    if problems:
        raise MappingError(f"{path.name}: mapping '{mapping.name}' does not fit this file ({'; '.join(problems)})")
    at = {n: i + 1 for i, n in enumerate(names)}
    targets = [c.name for c in TEMPLATES[mapping.kind].all_columns if mapping.columns.get(c.name)]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / (path.stem + ".csv")
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(targets)
        line = 2
        for row in data:
            while line < row[0]:  # blank lines and rows the reader left out keep their numbers
                fh.write("\n")
                line += 1
            writer.writerow(["" if row[at[mapping.columns[t]]] is None else row[at[mapping.columns[t]]]
                             for t in targets])
            line += 1
    return out


def prepare(con: duckdb.DuckDBPyConnection, paths: list[Path], mapping: Mapping, folder: Path,
            matches) -> list[Path]:
    """The files to import with ``mapping``: each file whose header matches no template is mapped
    (``matches(names)`` says whether it does); the others load as they are."""
    out = []
    for raw in paths:
        path = Path(raw)
        if path.exists() and not matches(file_columns(path)):
            out.append(apply(con, path, mapping, folder))
        else:
            out.append(path)
    return out


def guess_kind(file_columns: list[str]) -> str:
    """The template a file most likely holds: the one with most columns suggested."""
    return max(TEMPLATES, key=lambda kind: (len(suggest(kind, file_columns)), -len(TEMPLATES[kind].columns)))


def unmatched(paths: list[Path], matches) -> list[tuple[Path, list[str]]]:
    """The files whose header matches no template, with their own column names (unreadable files
    are left to the import, which says why)."""
    out = []
    for path in paths:
        try:
            found = file_columns(path)
        except readers.Unreadable:
            continue
        if not matches(found):
            out.append((Path(path), found))
    return out
