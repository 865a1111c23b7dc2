"""The opportunities workbook (openpyxl): cover, summary with a native chart, opportunities table
with the "how calculated" columns and a live £ formula, and metric definitions.

Money is exact here (the UI rounds to £1.2m / £45k). Every text cell goes through ``safe_text`` so
that nothing a user or an import wrote can run as a formula when the file is opened.
"""
from __future__ import annotations

import io
from datetime import datetime

import duckdb
import pandas as pd
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.table import Table, TableStyleInfo

from ..analysis.catalogue import all_metrics
from ..analysis.opportunities import (
    Basis,
    missing_targets_note,
    opportunities,
    resolve_peer_group,
    summarise,
)
from ..formatting import months, safe_text
from ..scope import Scope
from .sheet_style import NHS_BLUE, finish_table, fit_columns, style_header

GBP = '"£"#,##0;[Red]-"£"#,##0'
GBP_EXACT = '"£"#,##0.00;[Red]-"£"#,##0.00'
PCT = "0.0%"


def _put(ws, row: int, col: int, value, number_format: str | None = None):
    cell = ws.cell(row=row, column=col)
    if isinstance(value, str):
        cell.value = safe_text(value)
        cell.data_type = "s"
    elif value is None or (isinstance(value, float) and pd.isna(value)):
        cell.value = None
    elif hasattr(value, "item"):  # numpy scalar
        cell.value = value.item()
    else:
        cell.value = value
    if number_format:
        cell.number_format = number_format
    return cell


OPP_COLUMNS = [
    # header, source column, format
    ("CSU code", "csu_code", None), ("CSU", "csu_name", None), ("Specialty code", "specialty_code", None),
    ("Specialty", "specialty_name", None), ("Metric id", "metric_id", None), ("Metric", "metric_name", None),
    ("Domain", "domain", None), ("Better when", "direction", None),
    ("Numerator", "numerator", "#,##0.0"), ("Denominator", "denominator", "#,##0.0"),
    ("Actual", "actual", "value"), ("Target", "target_value", "value"),
    ("Gap (units)", "gap_units", "#,##0.0"), ("Gap unit", "unit", None),
    ("Unit cost £", "unit_cost_gbp", GBP_EXACT), ("Opportunity £", None, GBP),
    ("80% range low £", "opportunity_low_gbp", GBP), ("80% range high £", "opportunity_high_gbp", GBP),
    ("At median £", "opportunity_median_gbp", GBP), ("At top quartile £", "opportunity_top_quartile_gbp", GBP),
    ("At top decile £", "opportunity_top_decile_gbp", GBP), ("Saving type", "saving_type", None),
    ("Counted in net", "counted_in_net", None), ("Low volume", "low_volume", None),
    ("Significant", "significant", None), ("Significant on sampling error alone", "significant_naive", None),
    ("z (allowing for spread between units)", "z_adjusted", "0.00"), ("Benchmark level", "benchmark_level", None),
    ("Benchmark source", "benchmark_source", None), ("Peer group", "peer_group", None),
    # Like for like: what the target rests on; length of stay adjusted for case mix, and crude
    ("Target basis", "target_basis", None), ("Spells matched to an HRG", "casemix_share", "0%"),
    ("Length of stay index", "los_index", "0.00"), ("Crude target", "crude_target_value", "value"),
    ("Crude opportunity £", "crude_opportunity_gbp", GBP),
    ("Unit cost source", "unit_cost_source", None),
    ("From", "period_from", None), ("To", "period_to", None),
]


# Codes the engine keeps, written as the words a reader uses.
WORDS = {
    "saving_type": {"cash": "Cash-releasing", "productivity": "Productivity"},
    "direction": {"lower": "Lower", "higher": "Higher"},
    "target_basis": {"case mix": "Case mix (HRG)", "own history": "Own best quarter", "specialty": "Specialty",
                     "all specialties": "All specialties", "CSU-wide": "CSU-wide"},
}


def opportunities_workbook(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis, user: str,
                           csu: str | None = None, now: datetime | None = None) -> bytes:
    """The workbook for a scope (and optionally one CSU: the CSU briefing pack) as .xlsx bytes."""
    basis = resolve_peer_group(con, basis)  # the cover names the group the targets came from
    df = opportunities(con, scope, basis, csu=csu)
    metrics = all_metrics(con)
    now = now or datetime.now()
    book, (cover, opp, summary, defs) = new_book("Cover", "Opportunities", "Summary", "Metric definitions")

    # Opportunities: an Excel table, frozen header, £ formula = gap × unit cost.
    n = len(df)
    header_row(opp, [header for header, _, _ in OPP_COLUMNS])
    letter = {h: get_column_letter(i) for i, (h, _, _) in enumerate(OPP_COLUMNS, start=1)}
    for r, row in enumerate(df.itertuples(index=False), start=2):
        values = row._asdict()
        for c, (_, source, fmt) in enumerate(OPP_COLUMNS, start=1):
            if source is None:  # the one formula column, Opportunity £
                cell = opp.cell(row=r, column=c, value=f"={letter['Gap (units)']}{r}*{letter['Unit cost £']}{r}")
                cell.number_format = GBP
                continue
            value = values[source]
            if isinstance(value, bool) or source in ("counted_in_net", "low_volume", "significant", "significant_naive"):
                value = "Yes" if bool(value) else "No"
            value = WORDS.get(source, {}).get(value, value) if isinstance(value, str) else value
            if fmt == "value":
                fmt = PCT if values["value_format"] == "percent" else "0.00"
            _put(opp, r, c, value, fmt)
    last_col = get_column_letter(len(OPP_COLUMNS))
    if n:
        table = Table(displayName="Opportunities", ref=f"A1:{last_col}{n + 1}")
        table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
        opp.add_table(table)
    finish_table(opp, 1, len(OPP_COLUMNS), n + 1)

    # Summary: net and gross by CSU (or by specialty in a briefing pack) and a native bar chart.
    grain = ["specialty_code", "specialty_name"] if csu else ["csu_code", "csu_name"]
    label = "Specialty" if csu else "CSU"
    table_df = summarise(df, grain)
    _put(summary, 1, 1, f"Opportunity by {label} (£ a year, net of overlap)").font = Font(bold=True, size=13)
    summary_headers = (f"{label} code", label, "Net £ a year", "Gross £ a year", "Opportunities")
    for c, h in enumerate(summary_headers, start=1):
        _put(summary, 3, c, h)
    for r, row in enumerate(table_df.itertuples(index=False), start=4):
        _put(summary, r, 1, row[0])
        _put(summary, r, 2, row[1])
        _put(summary, r, 3, float(row.net_gbp), GBP)
        _put(summary, r, 4, float(row.gross_gbp), GBP)
        _put(summary, r, 5, int(row.opportunities))
    finish_table(summary, 3, len(summary_headers), 3 + len(table_df))
    if len(table_df):
        chart = BarChart()
        chart.type = "bar"
        chart.title = f"Net opportunity by {label}, £ a year"
        chart.y_axis.title = "£"
        chart.y_axis.numFmt = '"£"#,##0'
        shown = min(len(table_df), 20)
        data = Reference(summary, min_col=3, min_row=3, max_row=3 + shown)
        cats = Reference(summary, min_col=2, min_row=4, max_row=3 + shown)
        chart.add_data(data, titles_from_data=True)
        chart.set_categories(cats)
        chart.height, chart.width = 12, 22
        chart.legend = None
        summary.add_chart(chart, "G3")

    definitions_sheet(defs, metrics)

    # Cover: who, when, scope, basis, and one set of totals: live formulas over the table.
    title = "CSU briefing pack" if csu else "Opportunity Explorer export"
    _put(cover, 1, 1, title).font = Font(bold=True, size=16, color=NHS_BLUE)
    rows = [
        ("Prepared by", user), ("Generated", now.strftime("%Y-%m-%d %H:%M")), ("Scope", scope.label),
        ("CSU", csu or "All in scope"), ("Target", basis.label),
        ("Peer group", basis.peer_group if basis.benchmark == "peer" else "none (internal benchmark)"),
        ("Metrics without a target", missing_targets_note(df, basis) or "none: every metric has a target"),
        ("Period", months(df['period_from'].min(), df['period_to'].max()) if n else "no data"),
    ]
    for r, (k, v) in enumerate(rows, start=3):
        _put(cover, r, 1, k).font = Font(bold=True)
        _put(cover, r, 2, v)
    base = 3 + len(rows) + 1
    opp_col = letter["Opportunity £"]
    net_col = letter["Counted in net"]
    cash_col = letter["Saving type"]
    end = n + 1
    opp = f"Opportunities!{opp_col}2:{opp_col}{end}"
    net = f'Opportunities!{net_col}2:{net_col}{end},"Yes"'
    cash = f"Opportunities!{cash_col}2:{cash_col}{end}"
    figures = [
        ("Total opportunity, net of overlap", f"=SUMIFS({opp},{net})"),
        ("Total opportunity, gross", f"=SUM({opp})"),
        ("Cash-releasing (net)", f'=SUMIFS({opp},{net},{cash},"Cash-releasing")'),
        ("Productivity (net)", f'=SUMIFS({opp},{net},{cash},"Productivity")'),
    ]
    # The net total's 80 % range: each side's distance combined as independent errors (√Σd²).
    low_col, high_col = letter["80% range low £"], letter["80% range high £"]
    in_net = f'(Opportunities!{net_col}2:{net_col}{end}="Yes")'
    net_cell = f"B{base + 2}"  # the first figure's row
    figures += [
        ("Net total, 80% range low", (f"=MAX(0,{net_cell}-SQRT(SUMPRODUCT((Opportunities!{opp_col}2:{opp_col}{end}"
                                      f"-Opportunities!{low_col}2:{low_col}{end})^2*{in_net})))")),
        ("Net total, 80% range high", (f"={net_cell}+SQRT(SUMPRODUCT((Opportunities!{high_col}2:{high_col}{end}"
                                       f"-Opportunities!{opp_col}2:{opp_col}{end})^2*{in_net}))")),
    ]
    _put(cover, base, 1, "Totals").font = Font(bold=True, size=13)
    _put(cover, base + 1, 1, "Figure")
    _put(cover, base + 1, 2, "£ a year (live, from the Opportunities sheet)")
    style_header(cover, base + 1, 1, 2)
    for r, (k, formula) in enumerate(figures, start=base + 2):
        _put(cover, r, 1, k)
        cell = cover.cell(row=r, column=2, value=formula if n else 0)
        cell.number_format = GBP
    note_row = base + len(figures) + 3
    _put(cover, note_row, 1, "Net counts, for each CSU and specialty, only the largest opportunity among metrics "
                             "that free the same resource. Low-volume and not-significant gaps are flagged in the "
                             "Opportunities sheet. The 80% range of each opportunity comes from its unit's month-to-month "
                             "variation; the total's range treats the units' errors as independent.").alignment = Alignment(wrap_text=True)
    cover.merge_cells(start_row=note_row, start_column=1, end_row=note_row, end_column=4)
    cover.row_dimensions[note_row].height = 45
    return to_bytes(book)


def definitions_sheet(defs, metrics) -> None:
    """The metric catalogue as a sheet: what each number means, where it comes from, ideas."""
    def_headers = ("Metric id", "Metric", "Domain", "Definition", "Numerator", "Denominator", "Better when",
                   "Gap unit", "Cost driver", "Saving type", "Overlap group", "Minimum volume", "Data source",
                   "Benchmark source", "Scheme ideas")
    header_row(defs, def_headers)
    for r, m in enumerate(metrics.values(), start=2):
        for c, v in enumerate((m.metric_id, m.metric_name, m.domain, m.definition, m.numerator_label,
                               m.denominator_label, WORDS["direction"].get(m.direction, m.direction), m.unit,
                               m.cost_driver.replace("_", " "), WORDS["saving_type"].get(m.saving_type, m.saving_type),
                               m.overlap_group, m.min_volume, m.data_source, m.benchmark_source,
                               "; ".join(m.scheme_ideas)), start=1):
            _put(defs, r, c, v)
    finish_table(defs, 1, len(def_headers), len(metrics) + 1, freeze_col="C")


def new_book(*titles: str) -> tuple[Workbook, list]:
    """A workbook whose sheets are ``titles`` in order (the first is the one openpyxl starts with)."""
    book = Workbook()
    book.active.title = titles[0]
    return book, [book.active] + [book.create_sheet(t) for t in titles[1:]]


def header_row(ws, headers, row: int = 1) -> None:
    for c, h in enumerate(headers, start=1):
        _put(ws, row, c, h)
    style_header(ws, row, 1, len(headers))


def to_bytes(book: Workbook) -> bytes:
    """Widths from the content, each sheet printed one page wide and landscape, and serialise."""
    for sheet in book.worksheets:
        fit_columns(sheet)
        sheet.page_setup.orientation = "landscape"
        sheet.page_setup.fitToWidth = 1
        sheet.page_setup.fitToHeight = 0
        sheet.sheet_properties.pageSetUpPr.fitToPage = True
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
