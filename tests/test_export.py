"""The opportunities workbook reloaded with openpyxl: sheets, table, formats, formulas, chart,
scope, and text that can never run as a formula."""
from __future__ import annotations

import io
from datetime import datetime

import pytest
from openpyxl import load_workbook

from opportunity_engine.export import GBP, opportunities_workbook
from opportunity_engine.opportunities import Basis
from opportunity_engine.scope import Scope

INJECTIONS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"]


@pytest.fixture
def con(tiny):
    return tiny


def workbook(con, scope=Scope.trust(), csu=None, user="Test User"):
    data = opportunities_workbook(con, scope, Basis(), user, csu=csu, now=datetime(2026, 1, 2, 3, 4))
    return load_workbook(io.BytesIO(data))


def test_sheets_table_formats_and_live_formulas(con):
    book = workbook(con)
    assert book.sheetnames == ["Cover", "Opportunities", "Summary", "Metric definitions"]
    opp = book["Opportunities"]
    assert opp.freeze_panes == "A2"
    assert list(opp.tables) == ["Opportunities"] and opp.tables["Opportunities"].ref == "A1:AB6"
    headers = [c.value for c in opp[1]]
    gbp = headers.index("Opportunity £") + 1
    gap, cost = headers.index("Gap (units)") + 1, headers.index("Unit cost £") + 1
    first = opp.cell(2, gbp)
    assert first.value == f"={opp.cell(2, gap).column_letter}2*{opp.cell(2, cost).column_letter}2"
    assert first.number_format == GBP
    # the first row is the largest: A/100 elective LOS, 100 bed days x £400 = £40,000
    assert opp.cell(2, gap).value * opp.cell(2, cost).value == pytest.approx(40_000)
    actual = headers.index("Actual") + 1
    rows = {opp.cell(r, 5).value: r for r in range(2, 7)}
    assert opp.cell(rows["daycase_rate_bads"], actual).number_format == "0.0%"
    cover = book["Cover"]
    labels = {cover.cell(r, 1).value: r for r in range(1, 20)}
    net_row = labels["Total opportunity, net of overlap"]
    assert cover.cell(net_row, 2).value.startswith("=SUMIFS(Opportunities!")
    assert cover.cell(net_row, 3).value == pytest.approx(48_400)
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
