"""National codes (NHS Data Dictionary) accepted beside the templates' words (issue 14, point 4).

Every code is loaded in one spells file and one outpatients file, and each row is checked for the
word it became and for the figure it moves: a day case (admission method 11 + patient
classification 2) counts in the day-case rate, an emergency (21) in non-elective length of stay,
a DNA (3 or 7) in the DNA rate, a telephone follow-up (first attendance 4) as virtual.
"""
from __future__ import annotations

import pytest

from opportunity_engine.store import codes, db
from opportunity_engine.store.importer import import_files
from opportunity_engine.store.templates import csv_template

SPELL_HEADER = ("spell_id,csu_code,specialty_code,admission_date,discharge_date,admission_type,bads_eligible,"
                "procedure_date,readmitted_30d,patient_classification\n")
OP_HEADER = "appointment_id,csu_code,specialty_code,appointment_date,attendance_type,outcome,pifu,virtual\n"


@pytest.fixture
def con():
    c = db.memory()
    c.execute("INSERT INTO csus VALUES ('A', 'Alpha')")
    c.execute("INSERT INTO specialties VALUES ('100', 'General Surgery', 'A')")
    yield c
    c.close()


def _load(con, tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return import_files(con, [path], loaded_by="test")


METHODS = [c.code for c in codes.ADMISSION_METHOD.codes]


def test_every_admission_method_and_patient_classification(con, tmp_path):
    rows, expected = [], {}
    for i, method in enumerate(METHODS):
        rows.append(f"M{i},A,100,2025-04-01,2025-04-03,{method},1,2025-04-01,0,1")
        expected[f"M{i}"] = "elective" if method in ("11", "12", "13") else "non_elective"
    rows += ["D1,A,100,2025-04-02,2025-04-02,11,1,2025-04-02,0,2",      # elective + day case -> day_case
             "D2,A,100,2025-04-02,2025-04-02,elective,1,,0,2",          # our word + day case -> day_case
             "D3,A,100,2025-04-02,2025-04-02,day_case,1,,0,1",          # classification 1 wins: ordinary
             "D4,A,100,2025-04-02,2025-04-04,21,0,,0,2",                # emergency is never a day case
             "D5,A,100,2025-04-02,2025-04-04,31,0,,0,5",                # mother and baby: as the method says
             "D6,A,100,2025-04-02,2025-04-02,12,1,,0,"]                 # no classification: as the method says
    expected |= {"D1": "day_case", "D2": "day_case", "D3": "elective", "D4": "non_elective", "D5": "non_elective",
                 "D6": "elective"}
    result = _load(con, tmp_path, "spells.csv", SPELL_HEADER + "\n".join(rows) + "\n")
    assert result.ok, result.report()
    stored = dict(con.execute("SELECT spell_id, admission_type FROM spells").fetchall())
    assert stored == expected
    assert "patient_classification" not in {d[0] for d in con.execute("SELECT * FROM spells LIMIT 0").description}
    # The figures: day cases D1 and D2 among every BADS-eligible elective or day-case spell
    bads = con.execute("""SELECT numerator, denominator FROM metric_facts WHERE metric_id = 'daycase_rate_bads'""").fetchone()
    electives = sum(1 for k, v in expected.items() if v in ("elective", "day_case") and k not in ("D4", "D5"))
    assert bads == (2, electives)
    ne = con.execute("SELECT denominator FROM metric_facts WHERE metric_id = 'alos_non_elective'").fetchone()[0]
    assert ne == sum(1 for v in expected.values() if v == "non_elective")


@pytest.mark.parametrize("classification", ["3", "4"])
def test_regular_attenders_are_refused_with_what_to_do(con, tmp_path, classification):
    result = _load(con, tmp_path, "spells.csv", SPELL_HEADER
                   + "S1,A,100,2025-04-01,2025-04-01,11,0,,0,1\n"
                   + f"S2,A,100,2025-04-01,2025-04-01,11,0,,0,{classification}\n")
    assert not result.ok
    issue = result.issues[0]
    assert (issue.file, issue.row, issue.column, issue.value) == ("spells.csv", 3, "patient_classification", classification)
    assert "leave patient classification 3 and 4 out" in issue.rule
    assert con.execute("SELECT count(*) FROM spells").fetchone()[0] == 0


def test_every_outpatient_code(con, tmp_path):
    """Attendance status 5, 6 attended; 7, 3 DNA; 2 patient cancelled; 4 hospital cancelled.
    First attendance 1, 2 face to face; 3, 4 telephone/telemedicine (virtual whatever the medium says).
    Consultation medium 01 face to face, 02-13 not."""
    rows = ["O5,A,100,2025-04-01,1,5,0,01", "O6,A,100,2025-04-01,2,6,0,02", "O7,A,100,2025-04-01,2,7,0,01",
            "O2,A,100,2025-04-01,1,2,0,01", "O3,A,100,2025-04-01,2,3,0,01", "O4,A,100,2025-04-01,2,4,0,01",
            "F3,A,100,2025-04-01,3,5,0,01", "F4,A,100,2025-04-01,4,5,1,01", "W1,A,100,2025-04-01,first,attended,0,1",
            *(f"C{m},A,100,2025-04-01,2,5,0,{m}" for m in ("03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13"))]
    result = _load(con, tmp_path, "outpatients.csv", OP_HEADER + "\n".join(rows) + "\n")
    assert result.ok, result.report()
    got = {r[0]: r[1:] for r in con.execute("SELECT appointment_id, attendance_type, outcome, virtual FROM outpatients").fetchall()}
    assert got["O5"] == ("first", "attended", 0) and got["O6"] == ("follow_up", "attended", 1)
    assert got["O7"][1] == "dna" and got["O3"][1] == "dna"
    assert got["O2"][1] == "patient_cancelled" and got["O4"][1] == "hospital_cancelled"
    assert got["F3"] == ("first", "attended", 1) and got["F4"] == ("follow_up", "attended", 1)
    assert got["W1"] == ("first", "attended", 0)  # a 1 in a column of codes is consultation medium 01: face to face
    assert all(got[f"C{m}"][2] == 1 for m in ("03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13"))
    facts = dict(con.execute("SELECT metric_id, numerator FROM metric_facts").fetchall())
    assert facts["op_dna_rate"] == 2 and facts["op_hospital_cancel"] == 1
    # virtual among attended: O6, F3, F4 and the 11 other media
    assert facts["op_virtual_rate"] == 14


def test_our_flags_stay_flags(con, tmp_path):
    result = _load(con, tmp_path, "outpatients.csv", OP_HEADER + "A1,A,100,2025-04-01,first,attended,0,1\n"
                   "A2,A,100,2025-04-01,follow_up,dna,0,0\n")
    assert result.ok, result.report()
    assert dict(con.execute("SELECT appointment_id, virtual FROM outpatients").fetchall()) == {"A1": 1, "A2": 0}


@pytest.mark.parametrize("column, row, value, words", [
    ("outcome", "X,A,100,2025-04-01,1,0,0,0", "0", "appointment in the future"),
    ("attendance_type", "X,A,100,2025-04-01,5,5,0,0", "5", "administrative event"),
    ("virtual", "X,A,100,2025-04-01,1,5,0,98", "98", "write 0 or 1"),
])
def test_codes_the_metrics_cannot_place_are_refused(con, tmp_path, column, row, value, words):
    result = _load(con, tmp_path, "outpatients.csv", OP_HEADER + row + "\n")
    assert not result.ok
    issue = result.issues[0]
    assert (issue.row, issue.column, issue.value) == (2, column, value) and words in issue.rule


def test_an_unknown_code_names_the_national_codes_accepted(con, tmp_path):
    result = _load(con, tmp_path, "spells.csv", SPELL_HEADER + "S1,A,100,2025-04-01,2025-04-01,99,0,,0,\n")
    assert not result.ok
    assert "admission method 11-13" in result.issues[0].rule and result.issues[0].value == "99"


def test_the_accepted_codes_are_listed_for_download():
    text = codes.accepted_csv().decode()
    assert text.startswith("template,column,data_item,code,meaning,loaded_as\n")
    assert "spells,admission_type,Admission method,2A," in text and "outpatients,outcome,Attended or did not attend,7," in text
    assert len(codes.accepted()) == sum(len(c.codes) for c in codes.CODE_LISTS)
    assert b"patient_classification" not in csv_template("spells")  # optional: the template stays minimal
