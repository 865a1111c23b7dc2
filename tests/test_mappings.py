"""Column mappings (issue 14, point 4): a trust's own extract columns mapped onto a template's,
saved under a name and reused next month from the CLI and the Data page; national codes in the
mapped columns load as the same figures as our words."""
from __future__ import annotations

import pytest

from opportunity_engine import cli
from opportunity_engine.store import db, mappings
from opportunity_engine.store.importer import import_files, matches_template

# A SUS-like extract: its own names, its own order, an extra column, national codes, a blank line.
SUS = ("PROVSPNO,TRETSPEF,CSU,ADMIDATE,DISDATE,ADMIMETH,CLASSPAT,BADS,OPDATE_01,READMIT,WARD\n"
       "S1,100,A,2025-04-01,2025-04-04,11,1,0,2025-04-02,0,W1\n"
       "\n"
       "S2,100,A,2025-04-02,2025-04-02,12,2,1,2025-04-02,0,W2\n"
       "S3,100,A,2025-04-03,2025-04-09,21,1,0,,1,W3\n")
OURS = ("spell_id,csu_code,specialty_code,admission_date,discharge_date,admission_type,bads_eligible,"
        "procedure_date,readmitted_30d\n"
        "S1,A,100,2025-04-01,2025-04-04,elective,0,2025-04-02,0\n"
        "S2,A,100,2025-04-02,2025-04-02,day_case,1,2025-04-02,0\n"
        "S3,A,100,2025-04-03,2025-04-09,non_elective,0,,1\n")
COLUMNS = {"spell_id": "PROVSPNO", "csu_code": "CSU", "specialty_code": "TRETSPEF", "admission_date": "ADMIDATE",
           "discharge_date": "DISDATE", "admission_type": "ADMIMETH", "patient_classification": "CLASSPAT",
           "bads_eligible": "BADS", "procedure_date": "OPDATE_01", "readmitted_30d": "READMIT"}


def _trust(con) -> None:
    con.execute("INSERT INTO csus VALUES ('A', 'Alpha')")
    con.execute("INSERT INTO specialties VALUES ('100', 'General Surgery', 'A')")


@pytest.fixture
def con():
    c = db.memory()
    _trust(c)
    yield c
    c.close()


def test_suggest_guesses_national_names_and_save_checks_the_mapping(con, tmp_path):
    path = tmp_path / "sus_apc.csv"
    path.write_text(SUS)
    found = mappings.file_columns(path)
    assert not matches_template(found)
    guess = mappings.suggest("spells", found)
    assert guess["spell_id"] == "provspno" and guess["specialty_code"] == "tretspef"
    assert guess["admission_type"] == "admimeth" and guess["patient_classification"] == "classpat"
    assert "bads_eligible" not in guess  # no alias for a local column name: the user chooses it
    with pytest.raises(mappings.MappingError, match="choose a column of the file for: bads_eligible"):
        mappings.save(con, "SUS APC", "spells", guess, "admin")
    with pytest.raises(mappings.MappingError, match="name"):
        mappings.save(con, "  ", "spells", COLUMNS, "admin")
    saved = mappings.save(con, "SUS APC", "spells", COLUMNS, "admin")
    assert mappings.get(con, "SUS APC") == saved and mappings.names(con) == ["SUS APC"]
    preview = mappings.preview(con, path, "spells", saved.columns, rows=2)
    assert list(preview.index) == [2, 4]  # spreadsheet rows: the blank line is row 3
    assert preview.loc[4, "admission_type"] == "12" and preview.loc[4, "patient_classification"] == "2"


def test_a_mapped_extract_in_national_codes_gives_the_same_figures_as_our_template(con, tmp_path):
    mapping = mappings.save(con, "SUS APC", "spells", COLUMNS, "admin")
    sus = tmp_path / "sus_apc.csv"
    sus.write_text(SUS)
    mapped = mappings.apply(con, sus, mapping, tmp_path / "mapped")
    result = import_files(con, [mapped], loaded_by="test")
    assert result.ok, result.report()
    via_mapping = con.execute("SELECT * FROM metric_facts ORDER BY ALL").fetchall()
    spells = con.execute("SELECT spell_id, admission_type FROM spells ORDER BY 1").fetchall()
    assert spells == [("S1", "elective"), ("S2", "day_case"), ("S3", "non_elective")]
    other = db.memory()
    _trust(other)
    ours = tmp_path / "spells.csv"
    ours.write_text(OURS)
    assert import_files(other, [ours], loaded_by="test").ok
    assert other.execute("SELECT * FROM metric_facts ORDER BY ALL").fetchall() == via_mapping


def test_a_bad_row_in_a_mapped_file_is_reported_at_its_own_row(con, tmp_path):
    mapping = mappings.save(con, "SUS APC", "spells", COLUMNS, "admin")
    sus = tmp_path / "sus_apc.csv"
    sus.write_text(SUS.replace("S3,100,A,2025-04-03,2025-04-09,21", "S3,100,A,2025-04-03,2025-04-09,99"))
    result = import_files(con, [mappings.apply(con, sus, mapping, tmp_path / "m")], loaded_by="test")
    assert not result.ok and (result.issues[0].row, result.issues[0].column) == (5, "admission_type")
    assert con.execute("SELECT count(*) FROM spells").fetchone()[0] == 0


def test_a_mapping_that_does_not_fit_the_file_says_why(con, tmp_path):
    mapping = mappings.save(con, "SUS APC", "spells", COLUMNS, "admin")
    other = tmp_path / "other.csv"
    other.write_text("PROVSPNO,TRETSPEF\nS1,100\n")
    with pytest.raises(mappings.MappingError, match="the file has no column csu"):
        mappings.apply(con, other, mapping, tmp_path / "m")


def test_cli_import_with_a_saved_mapping_next_month(tmp_path, capsys):
    path = tmp_path / "trust.duckdb"
    with db.connect(path) as con:
        _trust(con)
        mappings.save(con, "SUS APC", "spells", COLUMNS, "admin")
    sus = tmp_path / "sus_apc_may.csv"
    sus.write_text(SUS.replace("2025-04", "2025-05"))
    assert cli.main(["import", "--db", str(path), "--quiet", str(sus)]) == 1  # without it: the header matches nothing
    assert "does not match" in capsys.readouterr().err
    assert cli.main(["import", "--db", str(path), "--quiet", "--mapping", "SUS APC", str(sus)]) == 0
    assert "sus_apc_may.csv" in capsys.readouterr().out
    with db.connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*), min(period) FROM spells").fetchone() == (3, "2025-05")
    assert cli.main(["import", "--db", str(path), "--mapping", "nope", str(sus)]) == 1
    assert "no column mapping 'nope' (saved: SUS APC)" in capsys.readouterr().err


def _data_page_with_upload():
    """pages/data.py with st.file_uploader answering the file named in $OE_TEST_UPLOAD (AppTest
    cannot drive the uploader itself; the Chromium test uploads for real)."""
    import os
    from pathlib import Path

    import streamlit as st

    class Uploaded:
        def __init__(self, path: Path):
            self.name, self._data = path.name, path.read_bytes()
            self.size = len(self._data)

        def getbuffer(self):
            return memoryview(self._data)

    st.file_uploader = lambda *args, **kwargs: [Uploaded(Path(os.environ["OE_TEST_UPLOAD"]))]
    root = Path(os.environ["OE_TEST_ROOT"])
    exec(compile((root / "pages" / "data.py").read_text(), str(root / "pages" / "data.py"), "exec"), {"__file__": str(root / "pages" / "data.py")})


def test_data_page_offers_the_mapping_saves_it_and_reuses_it(demo_copy, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    with db.connect(demo_copy) as c:
        spec = c.execute("SELECT specialty_code, csu_code FROM specialties ORDER BY 1 LIMIT 1").fetchone()
    sus = tmp_path / "sus_apc.csv"
    sus.write_text(SUS.replace(",100,A,", f",{spec[0]},{spec[1]},").replace("S1,", "NEW1,").replace("S2,", "NEW2,")
                   .replace("S3,", "NEW3,").replace("2025-04", "2026-04"))
    monkeypatch.setenv("OPPORTUNITY_DB", str(demo_copy))
    monkeypatch.setenv("OPPORTUNITY_COOKIE_KEY", "apptest-key")
    monkeypatch.setenv("OE_TEST_UPLOAD", str(sus))
    monkeypatch.setenv("OE_TEST_ROOT", str(ROOT))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_function(_data_page_with_upload, default_timeout=60)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "admin"
    at.run()
    assert not at.exception, at.exception
    assert any("does not match" in str(e.value) for e in at.error) or at.table
    assert at.selectbox(key="kind-sus_apc.csv").value == "spells"
    assert at.selectbox(key="map-sus_apc.csv-spells-spell_id").value == "provspno"
    assert at.selectbox(key="map-sus_apc.csv-spells-admission_type").value == "admimeth"
    preview = next(d.value for d in at.dataframe if "admission_type" in d.value.columns)
    assert list(preview["admission_type"]) == ["11", "12", "21"]
    assert any("bads_eligible" in str(w.value) for w in at.warning)  # the one column to choose by hand
    at.selectbox(key="map-sus_apc.csv-spells-bads_eligible").select("bads").run()
    at.selectbox(key="map-sus_apc.csv-spells-readmitted_30d").select("readmit").run()
    at.text_input(key="name-sus_apc.csv").input("SUS APC").run()
    at.button(key="save-sus_apc.csv").click().run()
    assert not at.exception, at.exception
    with db.connect(demo_copy) as c:  # the app's process holds it read-write: the same configuration
        assert mappings.get(c, "SUS APC").columns["bads_eligible"] == "bads"
    assert any("through the mapping 'SUS APC'" in str(c.value) for c in at.caption)
    assert any("passed every check" in str(s.value) for s in at.success), [str(e.value) for e in at.error]
    # Next month: a fresh session picks the saved mapping from the list
    again = AppTest.from_function(_data_page_with_upload, default_timeout=60)
    again.session_state["authentication_status"] = True
    again.session_state["username"] = "admin"
    again.run()
    again.selectbox(key="use-sus_apc.csv").select("SUS APC").run()
    assert any("passed every check" in str(s.value) for s in again.success)
