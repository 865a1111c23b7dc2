"""The opportunities workbook reloaded with openpyxl: sheets, table, formats, formulas, chart,
scope, and text that can never run as a formula."""
from __future__ import annotations

import io
from datetime import datetime

import pytest
from openpyxl import load_workbook

from opportunity_engine.analysis.opportunities import Basis
from opportunity_engine.reports.export import GBP, opportunities_workbook
from opportunity_engine.scope import Scope

INJECTIONS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"]


@pytest.fixture
def con(tiny):
    return tiny


def workbook(con, scope=Scope.trust(), csu=None, user="Test User"):
    data = opportunities_workbook(con, scope, Basis(), user, csu=csu, now=datetime(2026, 1, 2, 3, 4))
    return load_workbook(io.BytesIO(data))


def cover_formula(book, label):
    cover = book["Cover"]
    return next(cover.cell(r, 2).value for r in range(1, 30) if cover.cell(r, 1).value == label)


def test_sheets_table_formats_and_live_formulas(con):
    book = workbook(con)
    assert book.sheetnames == ["Cover", "Opportunities", "Summary", "Metric definitions"]
    opp = book["Opportunities"]
    assert opp.freeze_panes == "A2"
    assert list(opp.tables) == ["Opportunities"] and opp.tables["Opportunities"].ref == "A1:AL6"
    headers = [c.value for c in opp[1]]
    gbp = headers.index("Opportunity £") + 1
    gap, cost = headers.index("Gap (units)") + 1, headers.index("Unit cost £") + 1
    first = opp.cell(2, gbp)
    assert first.value == f"={opp.cell(2, gap).column_letter}2*{opp.cell(2, cost).column_letter}2"
    assert first.number_format == GBP
    # A/100 elective LOS, 100 bed days x £400 = £40,000, ranked after the real gaps: the spread
    # between the three units' stays makes it not significant (test_opportunities' hand-worked tau²)
    actual = headers.index("Actual") + 1
    rows = {(opp.cell(r, 1).value, opp.cell(r, 3).value, opp.cell(r, 5).value): r for r in range(2, 7)}
    los = rows[("A", "100", "alos_elective")]
    assert opp.cell(los, gap).value * opp.cell(los, cost).value == pytest.approx(40_000)
    assert opp.cell(los, headers.index("Significant") + 1).value == "No"
    assert opp.cell(los, headers.index("Significant on sampling error alone") + 1).value == "Yes"
    assert opp.cell(los, headers.index("80% range low £") + 1).value == pytest.approx(40_000)  # one level month
    assert str(cover_formula(book, "Net total, 80% range low")).startswith("=MAX(0,B")
    rows = {opp.cell(r, 5).value: r for r in range(2, 7)}
    assert opp.cell(rows["daycase_rate_bads"], actual).number_format == "0.0%"
    cover = book["Cover"]
    labels = {cover.cell(r, 1).value: r for r in range(1, 20)}
    net_row = labels["Total opportunity, net of overlap"]
    assert cover.cell(net_row, 2).value.startswith("=SUMIFS(Opportunities!")
    assert cover.cell(net_row - 1, 2).value.startswith("£ a year")  # the live column has a heading
    assert all(cover.cell(r, 3).value is None for r in range(1, 20))  # one set of totals, not two
    assert cover.cell(labels["Prepared by"], 2).value == "Test User"
    summary = book["Summary"]
    assert len(summary._charts) == 1
    # CSU A net: 40,000 (elective LOS, beats day case in the overlap) + 2,400 + 6,000 agency
    assert summary.cell(4, 3).value == pytest.approx(48_400) and summary.cell(4, 1).value == "A"


def test_briefing_pack_holds_one_csu_only(con):
    book = workbook(con, csu="B")
    codes = {r[0] for r in book["Opportunities"].iter_rows(min_row=2, values_only=True)}
    assert codes == {"B"}
    assert book["Cover"].cell(1, 1).value == "CSU briefing pack"


def test_scope_limits_the_workbook(con):
    book = workbook(con, scope=Scope.of("B"))
    codes = {r[0] for r in book["Opportunities"].iter_rows(min_row=2, values_only=True)}
    assert codes == {"B"}


@pytest.mark.parametrize("text", INJECTIONS)
def test_text_never_becomes_a_formula(con, text):
    con.execute("UPDATE csus SET csu_name = ? WHERE csu_code = 'A'", [text])
    con.execute("UPDATE metrics SET definition = ? WHERE metric_id = 'alos_elective'", [text])
    book = workbook(con, user=text)
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    # XML does not keep a bare CR, so compare without the prefix and surrounding white space
    planted = [c for c in cells if isinstance(c.value, str) and c.value.lstrip("'").strip() == text.strip()]
    assert len(planted) >= 3  # the user on the cover, a CSU name, a definition
    for c in planted:
        assert c.value.startswith("'") and c.data_type == "s"
    # the only formulas in the workbook are the ones the builder wrote
    for c in cells:
        if c.data_type == "f":
            assert c.value.startswith(("=SUM", "=SUMIFS", "=")) and text not in c.value


def test_plans_workbook_has_dropdowns_live_phasing_qia_formatting_and_charts(small_demo):
    from opportunity_engine.reports.export_plans import plans_workbook
    from opportunity_engine.store import db
    from opportunity_engine.users import get_user

    with db.connect(small_demo, read_only=True) as c:
        finance = get_user(c, "finance")
        fy = c.execute("SELECT financial_year FROM cip_plans p JOIN schemes s USING (scheme_id) "
                       "WHERE s.status = 'delivering'").fetchone()[0]
        book = load_workbook(io.BytesIO(plans_workbook(c, finance, fy, now=datetime(2026, 11, 1))))
        csu_book = load_workbook(io.BytesIO(plans_workbook(c, get_user(c, "csu"), fy)))
    assert book.sheetnames == ["Cover", "Schemes", "CIP plan", "WRP targets", "QIA", "Tracking", "Metric definitions"]
    schemes_ws = book["Schemes"]
    assert "Schemes" in schemes_ws.tables
    lists = {str(dv.sqref).split(":")[0]: dv.formula1 for dv in schemes_ws.data_validations.dataValidation}
    assert lists["K2"] == '"Idea,Shortlisted,Planning,Approved,Delivering,Delivered,Rejected"'
    plan = book["CIP plan"]
    headers = [c.value for c in plan[1]]
    apr, total = headers.index("Apr") + 1, headers.index("In-year £") + 1
    assert str(plan.cell(row=2, column=apr).value).startswith("=IF(1>=$G2,$H2/12")
    assert plan.cell(row=2, column=total).value == f"=SUM({plan.cell(row=2, column=apr).column_letter}2:" \
                                                   f"{plan.cell(row=2, column=apr + 11).column_letter}2)"
    assert plan.cell(row=2, column=8).number_format == GBP
    assert str(book["WRP targets"]["D2"].value).startswith("=SUMIFS('CIP plan'!")
    qia_ws = book["QIA"]
    assert qia_ws["F2"].value == "=D2*E2"
    assert len(qia_ws.conditional_formatting) >= 1
    tracking_ws = book["Tracking"]
    assert str(tracking_ws["E2"].value).startswith("='CIP plan'!") and tracking_ws["G2"].value in ("=F2-E2", None)
    assert len(tracking_ws._charts) == 2
    assert str(book["Cover"]["B11"].value).startswith("=SUMIFS(") or any(
        str(c.value).startswith("=SUMIFS(") for row in book["Cover"].iter_rows() for c in row)
    # a CSU user's workbook holds only their CSU's schemes
    assert {r[1].value for r in csu_book["Schemes"].iter_rows(min_row=2)} == {"Emergency and Acute Medicine"}


def test_plans_workbook_neutralises_formula_text_in_every_user_field(tiny):
    from opportunity_engine.delivery import plans, qia, schemes, workflow
    from opportunity_engine.reports.export_plans import plans_workbook
    from opportunity_engine.users import User

    fin = User("fin", "=HYPERLINK(\"x\")", "", "finance", ())
    for evil in INJECTIONS:
        s = schemes.create(tiny, fin, evil + " title", "A", description=evil, lead=evil)
        s = workflow.update(tiny, fin, s.scheme_id, s.version, status="shortlisted")
        plans.save_plan(tiny, fin, s.scheme_id, s.version, 2026, 1, 1200, milestones=evil)
        s = schemes.get(tiny, fin, s.scheme_id)
        qia.save_scores(tiny, fin, s.scheme_id, s.version, {d: (2, 2, evil) for d in qia.DOMAINS})
        s = schemes.get(tiny, fin, s.scheme_id)
        qia.sign_off(tiny, fin, s.scheme_id, s.version, "clinical", evil + "signer", "2026-04-01")
    plans.set_wrp_target(tiny, fin, "A", 2026, 1000, "=cmd|' /C calc'!A0")
    book = load_workbook(io.BytesIO(plans_workbook(tiny, fin, 2026)))
    formula_like = ("=", "+", "-", "@", "\t", "\r")
    texts = []
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.data_type == "s":
                    texts.append(cell.value)
                    assert not cell.value.startswith(formula_like), f"{ws.title}!{cell.coordinate}: {cell.value!r}"
    for evil in INJECTIONS:  # title, description, lead, milestones and mitigations all arrive, neutralised
        stored = "'" + evil.replace("\r", "\n")  # XML turns a CR into a LF; the quote still leads
        assert texts.count(stored) >= 3  # description, lead, milestones/mitigations
        assert ("'" + evil + " title") in texts or (evil.strip() + " title") in texts  # titles are trimmed
    assert "'=cmd|' /C calc'!A0" in texts and "'=HYPERLINK(\"x\")" in texts
    assert "'=1+1signer" in texts  # QIA sign-off names


def test_admin_text_in_the_opportunities_workbook_is_neutral(tiny):
    """Unit cost sources and scheme ideas are typed by an admin in the app: never formulas in Excel."""
    from opportunity_engine.delivery import library
    from opportunity_engine.store import costs
    from opportunity_engine.users import User

    admin = User("adm", "@admin", "", "admin", ())
    costs.set_unit_cost(tiny, admin, "bed_day", "100", 400, "=WEBSERVICE(\"http://x\")")
    library.set_ideas(tiny, admin, "alos_elective", ["+evil idea", "@sum(1)"])
    data = opportunities_workbook(tiny, Scope.trust(), Basis(), admin.name)
    book = load_workbook(io.BytesIO(data))
    texts = [c.value for ws in book.worksheets for row in ws.iter_rows() for c in row
             if isinstance(c.value, str) and c.data_type == "s"]
    assert not [t for t in texts if t.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'=WEBSERVICE(\"http://x\")" in texts and "'@admin" in texts
    assert any(t.startswith("'+evil idea") for t in texts)


@pytest.mark.slow
@pytest.mark.skipif(not __import__("shutil").which("soffice"), reason="LibreOffice not installed (optional check)")
def test_workbooks_open_and_recalculate_in_libreoffice(small_demo, tmp_path):
    """Where LibreOffice is installed: both workbooks open headless, recalculate, and their live
    formulas give the engine's own totals (a file Excel would need to repair fails to convert)."""
    import subprocess

    from opportunity_engine.analysis.opportunities import opportunities, totals
    from opportunity_engine.delivery import plans
    from opportunity_engine.reports.export_plans import plans_workbook
    from opportunity_engine.store import db
    from opportunity_engine.users import get_user

    with db.connect(small_demo, read_only=True) as c:
        finance = get_user(c, "finance")
        fy = c.execute("SELECT max(financial_year) FROM cip_plans").fetchone()[0]
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "opps.xlsx").write_bytes(opportunities_workbook(c, Scope.trust(), Basis(), "Test"))
        (tmp_path / "in" / "plans.xlsx").write_bytes(plans_workbook(c, finance, fy))
        net_range = totals(opportunities(c, Scope.trust(), Basis()))
        net = net_range.net_gbp
        trust = plans.trust_total(plans.totals_by_csu(c, finance.scope, fy))
        committed = trust["in_year_gbp"]
    run = subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp_path}/profile", "--convert-to",
                          "xlsx", "--outdir", str(tmp_path / "out"), str(tmp_path / "in" / "opps.xlsx"),
                          str(tmp_path / "in" / "plans.xlsx")], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    opps = load_workbook(tmp_path / "out" / "opps.xlsx", data_only=True)["Cover"]
    figures = {r[0]: r[1] for r in opps.iter_rows(values_only=True) if r and r[0]}
    assert figures["Total opportunity, net of overlap"] == pytest.approx(net, rel=1e-9)
    assert figures["Net total, 80% range low"] == pytest.approx(net_range.net_low_gbp, rel=1e-9)
    assert figures["Net total, 80% range high"] == pytest.approx(net_range.net_high_gbp, rel=1e-9)
    assert figures["Net total, 80% range low"] < net < figures["Net total, 80% range high"]
    cover = load_workbook(tmp_path / "out" / "plans.xlsx", data_only=True)["Cover"]
    figures = {r[0]: r[1] for r in cover.iter_rows(values_only=True) if r and r[0]}
    assert figures["In-year £, committed schemes"] == pytest.approx(committed, rel=1e-9)
    weighted = next(v for k, v in figures.items() if str(k).startswith("In-year £, pipeline weighted by status"))
    assert weighted == pytest.approx(trust["pipeline_weighted_gbp"], rel=1e-9)
    assert figures["Still to find after committed and weighted pipeline"] == pytest.approx(
        trust["gap_after_pipeline_gbp"], rel=1e-9)


def _header_cells(ws, row):
    return [c for c in ws[row] if c.value is not None]


def _assert_finished(ws, header_row: int = 1):
    """What finance needs of a sheet they send: a bold filled header on every column, frozen under the
    header, repeated on printed pages, a filter, landscape one page wide."""
    headers = _header_cells(ws, header_row)
    assert headers, ws.title
    filled = {c.column for row in ws.iter_rows(min_row=header_row + 1) for c in row if c.value is not None}
    for col in sorted(filled | {c.column for c in headers}):
        cell = ws.cell(header_row, col)
        if ws.title == "QIA" and col > 7 or ws.cell(header_row + 1, col).value is None and cell.value is None:
            continue  # a column used only further down (the QIA's sign-off table has its own header)
        assert cell.value not in (None, ""), f"{ws.title}: column {col} has no heading"
        assert cell.font.b and cell.fill.fgColor.rgb.endswith("005EB8"), f"{ws.title}!{cell.coordinate}"
    assert ws.freeze_panes and int(ws.freeze_panes[1:]) == header_row + 1, ws.title
    assert ws.print_title_rows.replace("$", "") == f"{header_row}:{header_row}", ws.title
    assert ws.tables or ws.auto_filter.ref, ws.title
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth == 1, ws.title


def _assert_widths_fit(ws, min_row: int = 2):
    """No column narrower than its widest short text: a 35-character CSU name is read whole."""
    for row in ws.iter_rows(min_row=min_row):
        for cell in row:
            if isinstance(cell.value, str) and not cell.value.startswith("=") and len(cell.value) <= 55:
                width = ws.column_dimensions[cell.column_letter].width
                assert width >= len(cell.value), f"{ws.title}!{cell.coordinate} {cell.value!r} in width {width}"


def test_opportunities_workbook_reads_and_prints_well(small_demo):
    from opportunity_engine.store import db

    with db.connect(small_demo, read_only=True) as c:
        book = load_workbook(io.BytesIO(opportunities_workbook(c, Scope.trust(), Basis(), "Test")))
    _assert_finished(book["Opportunities"])
    _assert_finished(book["Summary"], header_row=3)
    _assert_finished(book["Metric definitions"])
    for name in ("Opportunities", "Summary"):
        _assert_widths_fit(book[name])
    assert book["Summary"]["A1"].value.startswith("Opportunity by CSU")
    words = {r[0] for r in book["Opportunities"].iter_cols(min_row=2, values_only=True)
             if r and r[0] in ("cash", "productivity", "Cash-releasing", "Productivity")}
    saving = [c.value for c in book["Opportunities"][1]].index("Saving type")
    values = {row[saving] for row in book["Opportunities"].iter_rows(min_row=2, values_only=True)}
    assert values <= {"Cash-releasing", "Productivity"} and not words - {"Cash-releasing", "Productivity"}


def test_plans_workbook_reads_and_prints_well(small_demo):
    """Words not codes, no internal columns, months not yet reached blank (not red), every table sheet
    finished like the opportunities workbook."""
    from opportunity_engine.delivery import plans, schemes
    from opportunity_engine.reports.export_plans import plans_workbook
    from opportunity_engine.store import db
    from opportunity_engine.users import get_user

    with db.connect(small_demo, read_only=True) as c:
        finance = get_user(c, "finance")
        fy = c.execute("SELECT financial_year FROM cip_plans p JOIN schemes s USING (scheme_id) "
                       "WHERE s.status = 'delivering'").fetchone()[0]
        tracked_to = plans.period_of(fy, 8)  # November: December to March not yet reached
        book = load_workbook(io.BytesIO(plans_workbook(c, finance, fy, as_of=tracked_to)))
    for name in ("Schemes", "CIP plan", "WRP targets", "QIA", "Tracking", "Metric definitions"):
        _assert_finished(book[name])
    for name in ("Schemes", "CIP plan", "WRP targets", "Tracking"):
        _assert_widths_fit(book[name])
    ws = book["Schemes"]
    headers = [c.value for c in ws[1]]
    assert "Version" not in headers
    column = {h: [r[i] for r in ws.iter_rows(min_row=2, values_only=True)] for i, h in enumerate(headers)}
    assert set(column["Status"]) <= set(schemes.STATUS_LABELS.values())
    assert set(column["Finance category"]) <= set(schemes.FINANCE_LABELS.values())
    assert set(column["Saving type"]) <= set(schemes.SAVING_LABELS.values())
    codes = {"pay", "non_pay", "productivity", "cash", "rejected", "delivering", "idea", "manual", "even", "ramp"}
    texts = {c.value for sheet in book.worksheets for row in sheet.iter_rows() for c in row
             if isinstance(c.value, str)}
    assert not texts & codes, texts & codes
    tracking_ws = book["Tracking"]
    rows = list(tracking_ws.iter_rows(min_row=2, max_col=7, values_only=True))
    later = [r for r in rows if r[3] and r[3] > tracked_to]
    earlier = [r for r in rows if r[3] and r[3] <= tracked_to]
    assert later and earlier
    assert all(r[5] is None and r[6] is None for r in later)  # realised and variance blank
    assert all(r[5] is not None and r[6] == f"=F{i}-E{i}" for i, r in enumerate(rows, start=2) if r[3] and r[3] <= tracked_to)
