"""National codes (NHS Data Dictionary) accepted beside the templates' own words.

A PAS or SUS extract carries national codes: admission method 11/12/13/21…, patient
classification 2 for a day case, attended-or-did-not-attend 5/6/7/2/3/4, first attendance 1-4 and
consultation medium 01-13. Each is translated here, in the staging table, into the words the
templates use (``elective``, ``day_case``, ``dna`` …) before the rules run, so one definition of
every metric serves both. A code the Data Dictionary has but our metrics cannot place (a regular
day attender, an appointment in the future, consultation medium "other") is refused with what to
do about it, never guessed. Codes outside the Data Dictionary are left as written, so the
template's own rule reports them with their row.

Definitions checked against the NHS Data Dictionary (ADMISSION METHOD, PATIENT CLASSIFICATION,
ATTENDED OR DID NOT ATTEND, FIRST ATTENDANCE, CONSULTATION MEDIUM USED / CONSULTATION MECHANISM).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class Code:
    code: str
    meaning: str          # the Data Dictionary's words
    word: str | None      # our template's word; None = refused
    why: str = ""         # for a refused code: what to do about it


@dataclass(frozen=True)
class CodeList:
    """The national codes one template column accepts."""
    kind: str          # template
    column: str        # template column the codes are written in
    data_item: str     # the Data Dictionary's name for it
    codes: tuple[Code, ...]

    def lookup(self) -> dict[str, Code]:
        return {c.code.upper(): c for c in self.codes}


_EMERGENCY = (("21", "Emergency: via A&E"), ("22", "Emergency: via general practitioner"),
              ("23", "Emergency: via bed bureau"), ("24", "Emergency: via consultant clinic"),
              ("25", "Emergency: via mental health crisis resolution team"),
              ("26", "Emergency: other (older code)"), ("27", "Emergency: other (older code)"),
              ("28", "Emergency: other means"), ("2A", "Emergency: A&E of another provider"),
              ("2B", "Emergency: transfer from another provider"), ("2C", "Emergency: baby born at home"),
              ("2D", "Emergency: other"))

ADMISSION_METHOD = CodeList("spells", "admission_type", "Admission method", (
    Code("11", "Elective: waiting list", "elective"),
    Code("12", "Elective: booked", "elective"),
    Code("13", "Elective: planned", "elective"),
    *(Code(c, m, "non_elective") for c, m in _EMERGENCY),
    Code("31", "Maternity: ante-partum", "non_elective"),
    Code("32", "Maternity: post-partum", "non_elective"),
    Code("81", "Other: transfer from another provider, not an emergency", "non_elective"),
    Code("82", "Other: birth of a baby in this provider", "non_elective"),
    Code("83", "Other: baby born outside the provider, not at home", "non_elective"),
))

PATIENT_CLASSIFICATION = CodeList("spells", "patient_classification", "Patient classification", (
    Code("1", "Ordinary admission", "ordinary"),
    Code("2", "Day case admission", "day_case"),
    Code("3", "Regular day admission", None, "regular day and night attenders are not admissions for these "
                                             "metrics: leave patient classification 3 and 4 out of the spells file"),
    Code("4", "Regular night admission", None, "regular day and night attenders are not admissions for these "
                                               "metrics: leave patient classification 3 and 4 out of the spells file"),
    Code("5", "Mother and baby using delivery facilities only", "ordinary"),
))

ATTENDANCE_STATUS = CodeList("outpatients", "outcome", "Attended or did not attend", (
    Code("5", "Attended on time, or late but before the care professional was ready", "attended"),
    Code("6", "Arrived late, after the care professional was ready, but was seen", "attended"),
    Code("7", "Arrived late and could not be seen", "dna"),
    Code("2", "Cancelled by, or on behalf of, the patient", "patient_cancelled"),
    Code("3", "Did not attend, no advance warning given", "dna"),
    Code("4", "Cancelled or postponed by the health care provider", "hospital_cancelled"),
    Code("0", "Not applicable: the appointment is in the future", None,
         "an appointment in the future has no outcome yet: leave it out until it has taken place"),
))

FIRST_ATTENDANCE = CodeList("outpatients", "attendance_type", "First attendance", (
    Code("1", "First attendance face to face", "first"),
    Code("2", "Follow-up attendance face to face", "follow_up"),
    Code("3", "First telephone or telemedicine consultation (virtual = 1)", "first"),
    Code("4", "Follow-up telephone or telemedicine consultation (virtual = 1)", "follow_up"),
    Code("5", "Referral to treatment clock stop administrative event", None,
         "an administrative event is not an appointment: leave first attendance 5 out"),
))

CONSULTATION_MEDIUM = CodeList("outpatients", "virtual", "Consultation medium used / consultation mechanism", (
    Code("01", "Face to face", "0"),
    Code("02", "Telephone", "1"),
    Code("03", "Telemedicine (video)", "1"),
    Code("04", "Talk type for a person unable to speak", "1"),
    Code("05", "Email", "1"),
    Code("06", "Short message service (SMS) text messaging", "1"),
    Code("07", "On-line triage", "1"),
    Code("08", "Online instant messaging", "1"),
    Code("09", "Text message (asynchronous)", "1"),
    Code("10", "Instant messaging (synchronous)", "1"),
    Code("11", "Video consultation", "1"),
    Code("12", "Message board (asynchronous)", "1"),
    Code("13", "Chat room (synchronous)", "1"),
    Code("98", "Other (not listed)", None,
         "'other' does not say whether the appointment was virtual: write 0 or 1 for these rows"),
))

CODE_LISTS = (ADMISSION_METHOD, PATIENT_CLASSIFICATION, ATTENDANCE_STATUS, FIRST_ATTENDANCE, CONSULTATION_MEDIUM)
# Columns read only to translate codes, never stored.
STAGING_ONLY = {"spells": ("patient_classification",)}


@dataclass(frozen=True)
class Problem:
    row: int
    column: str
    value: str
    rule: str


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _v(column: str) -> str:
    return f"upper(trim({_q(column)}))"


def _case(codes: CodeList, column: str, only_mapped: bool = True) -> tuple[str, list[str]]:
    """SQL CASE turning the codes into words, and the list of mapped codes (for a WHERE)."""
    mapped = [c for c in codes.codes if c.word is not None]
    whens = " ".join(f"WHEN '{c.code.upper()}' THEN '{c.word}'" for c in mapped)  # constants of this module
    return f"CASE {_v(column)} {whens} END", [c.code.upper() for c in mapped]


def _refused(con, table: str, codes: CodeList, column: str, limit: int) -> list[Problem]:
    out = []
    for code in (c for c in codes.codes if c.word is None):
        rows = con.execute(f"SELECT _row, {_q(column)} FROM {table} WHERE {_v(column)} = $code ORDER BY _row LIMIT {limit}",
                           {"code": code.code.upper()}).fetchall()
        out += [Problem(r, column, v, f"{codes.data_item} {code.code} ({code.meaning.lower()}): {code.why}")
                for r, v in rows]
    return out


def _map(con, table: str, codes: CodeList, column: str) -> None:
    case, mapped = _case(codes, column)
    con.execute(f"UPDATE {table} SET {_q(column)} = {case} WHERE list_contains($codes, {_v(column)})",
                {"codes": mapped})


def normalise(con: duckdb.DuckDBPyConnection, kind: str, table: str, names: list[str],
              limit: int = 20) -> list[Problem]:
    """Translate national codes into the template's words in a staged text table, in place.

    Returns the rows refused (a code our metrics cannot place). Columns of STAGING_ONLY are
    dropped from the table once read; the caller drops them from its column list too."""
    problems: list[Problem] = []
    present = set(names)
    if not _has_codes(con, kind, table, present):
        return problems
    # The staged rows are a view over the file (no copy); a file with codes is copied once into a
    # table the translations can update, and the view then reads that table.
    view = table
    table = f"{view}_codes"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {view}")
    try:
        problems = _translate(con, kind, table, present, limit)
    finally:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {table}")
    return problems


_WORDS = {"admission_type": ("elective", "day_case", "non_elective"), "attendance_type": ("first", "follow_up"),
          "outcome": ("attended", "dna", "patient_cancelled", "hospital_cancelled"), "virtual": ("0", "1")}


def _has_codes(con, kind: str, table: str, present: set[str]) -> bool:
    """Whether the file holds anything to translate (one scan; files in our words are not copied)."""
    if kind == "spells" and "patient_classification" in present:
        return True
    columns = {"spells": ("admission_type",), "outpatients": ("attendance_type", "outcome", "virtual")}.get(kind, ())
    # The bare text against our words: DuckDB filters that in the scan (10 ms for a month of
    # outpatients, against 86 ms with trim). A padded or quoted-empty value then counts as a code:
    # such a file takes the copy-and-translate path, which trims and leaves our words alone.
    tests = [f"{_q(c)} NOT IN ({', '.join(repr(w) for w in _WORDS[c])})" for c in columns if c in present]
    if not tests:
        return False
    found = con.execute(f"SELECT 1 FROM {table} WHERE {' OR '.join(tests)} LIMIT 1").fetchone()
    return found is not None


def _translate(con, kind: str, table: str, present: set[str], limit: int) -> list[Problem]:
    problems: list[Problem] = []
    if kind == "spells":
        if "admission_type" in present:
            _map(con, table, ADMISSION_METHOD, "admission_type")
        if "patient_classification" in present:
            problems += _refused(con, table, PATIENT_CLASSIFICATION, "patient_classification", limit)
            if "admission_type" in present:
                # Patient classification decides day case or not, for elective admissions only: an
                # emergency admission is never a day case (SUS treats it as ordinary).
                pc = f"coalesce({_case(PATIENT_CLASSIFICATION, 'patient_classification')[0]}, " \
                     f"lower(trim({_q('patient_classification')})))"
                con.execute(f"""UPDATE {table} SET admission_type = CASE WHEN {pc} = 'day_case' THEN 'day_case'
                                    ELSE 'elective' END
                                WHERE trim(admission_type) IN ('elective', 'day_case')
                                  AND {pc} IN ('day_case', 'ordinary')""")
            con.execute(f"ALTER TABLE {table} DROP COLUMN patient_classification")
    elif kind == "outpatients":
        if "virtual" in present:
            # Consultation medium codes in the virtual column: when any value is not our 0/1 flag,
            # the whole file's column is read as codes (so a 1 stripped of its 0 is face to face).
            found = con.execute(f"""SELECT count(*) FILTER (WHERE trim(virtual) NOT IN ('0', '1', ''))
                                            FROM {table}""").fetchone()
            as_codes = bool(found and found[0])
            if as_codes:
                con.execute(f"""UPDATE {table} SET virtual = lpad(trim(virtual), 2, '0')
                                WHERE regexp_full_match(trim(virtual), '[0-9]')""")
                problems += _refused(con, table, CONSULTATION_MEDIUM, "virtual", limit)
                _map(con, table, CONSULTATION_MEDIUM, "virtual")
        if "attendance_type" in present:
            problems += _refused(con, table, FIRST_ATTENDANCE, "attendance_type", limit)
            if "virtual" in present:  # first attendance 3 and 4 say the consultation was not face to face
                con.execute(f"UPDATE {table} SET virtual = '1' WHERE trim(attendance_type) IN ('3', '4')")
            _map(con, table, FIRST_ATTENDANCE, "attendance_type")
        if "outcome" in present:
            problems += _refused(con, table, ATTENDANCE_STATUS, "outcome", limit)
            _map(con, table, ATTENDANCE_STATUS, "outcome")
    return sorted(problems, key=lambda p: p.row)


def accepted() -> list[dict[str, str]]:
    """Every accepted code as rows (template, column, data item, code, meaning, loaded as)."""
    return [{"template": cl.kind, "column": cl.column, "data_item": cl.data_item, "code": c.code,
             "meaning": c.meaning, "loaded_as": c.word if c.word is not None else f"refused: {c.why}"}
            for cl in CODE_LISTS for c in cl.codes]


def accepted_csv() -> bytes:
    """The accepted national codes as a CSV to download beside the templates."""
    buffer = io.StringIO()
    rows = accepted()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
