"""“Download this view”: the Opportunities page's list, as filtered and sorted, as a workbook.

The cover names everything that shaped the list (filters, target, benchmark, peer group, window,
scope) so a file forwarded to a director can be read without the app. Money is exact; the total
on the cover is a live formula over the rows. Kept apart from the full opportunities workbook
(export.py), which it reuses for cell writing, styling and the metric definitions.
"""
from __future__ import annotations

from datetime import datetime

import duckdb
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from ..analysis.catalogue import all_metrics
from ..analysis.opportunities import Basis, opportunities, resolve_peer_group
from ..analysis.targets import BENCHMARK_LABELS, target_label
from ..config import settings
from ..formatting import months
from ..scope import Scope
from .export import GBP, PCT, _put, definitions_sheet, header_row, new_book, to_bytes
from .sheet_style import NHS_BLUE, finish_table, style_header
from .views import SAVING_TYPE_LABELS, Filters, filter_opportunities, flag_text

VIEW_COLUMNS = [
    # header, source column, number format ("value": the metric's own)
    ("Opportunity £ a year", "opportunity_gbp", GBP), ("CSU code", "csu_code", None), ("CSU", "csu_name", None),
    ("Specialty", "specialty_name", None), ("Metric", "metric_name", None), ("Domain", "domain", None),
    ("Actual", "actual", "value"), ("Target", "target_value", "value"), ("Gap a year", "gap_units", "#,##0.0"),
    ("Gap unit", "unit", None), ("Saving type", "saving_type", None), ("Flags", "flags", None),
    ("Counted in net", "counted_in_net", None),
]


def view_workbook(con: duckdb.DuckDBPyConnection, scope: Scope, basis: Basis, user: str, filters: Filters,
                  peer_group: str | None = None, now: datetime | None = None) -> bytes:
    """The rows the Opportunities page shows for ``filters`` (within ``scope``), largest first, as
    .xlsx bytes: cover (who, when, scope, filters, basis, window, total), the rows, definitions.
    ``peer_group`` defaults to the basis's own (or the configured default when it names none)."""
    df = filter_opportunities(opportunities(con, scope, basis, csu=filters.csu), filters)
    df = df.assign(flags=flag_text(df))
    now = now or datetime.now()
    peer_group = peer_group or resolve_peer_group(con, basis).peer_group or settings()["analysis"]["peer_group"]
    book, (cover, rows, defs) = new_book("Cover", "Opportunities", "Metric definitions")

    header_row(rows, [h for h, _, _ in VIEW_COLUMNS])
    for r, row in enumerate(df.to_dict("records"), start=2):
        for c, (_, source, fmt) in enumerate(VIEW_COLUMNS, start=1):
            value = row[source]
            if source == "counted_in_net":
                value = "Yes" if value else "No"
            elif source == "saving_type":
                value = SAVING_TYPE_LABELS.get(value, value)
            if fmt == "value":
                fmt = PCT if row["value_format"] == "percent" else "0.00"
            _put(rows, r, c, value, fmt)
    finish_table(rows, 1, len(VIEW_COLUMNS), len(df) + 1)
    definitions_sheet(defs, all_metrics(con))

    csu_names = dict(zip(df["csu_code"], df["csu_name"]))
    specialty_names = dict(zip(df["specialty_code"], df["specialty_name"]))
    _put(cover, 1, 1, "Opportunities: this view").font = Font(bold=True, size=16, color=NHS_BLUE)
    lines = [("Prepared by", user), ("Generated", now.strftime("%Y-%m-%d %H:%M")), ("Scope", scope.label),
             *filters.describe(csu_names, specialty_names),
             ("Target", target_label(basis.target)), ("Benchmark", BENCHMARK_LABELS[basis.benchmark]),
             ("Peer group", peer_group if basis.benchmark == "peer" else "not used (internal benchmark)"),
             ("Window", months(df["period_from"].min(), df["period_to"].max()) if len(df) else "no rows"),
             ("Sorted by", "Opportunity £, largest first"), ("Rows", len(df))]
    _put(cover, 3, 1, "What this list holds")
    _put(cover, 3, 2, "")
    style_header(cover, 3, 1, 2)
    for r, (name, value) in enumerate(lines, start=4):
        _put(cover, r, 1, name).font = Font(bold=True)
        _put(cover, r, 2, value)
    total_row = 4 + len(lines) + 1
    col = get_column_letter(1)
    net = get_column_letter(len(VIEW_COLUMNS))
    end = len(df) + 1
    _put(cover, total_row, 1, "Total of the rows, £ a year").font = Font(bold=True)
    cover.cell(row=total_row, column=2, value=f"=SUM(Opportunities!{col}2:{col}{end})" if len(df) else 0).number_format = GBP
    _put(cover, total_row + 1, 1, "Of which counted in net of overlap").font = Font(bold=True)
    cover.cell(row=total_row + 1, column=2, value=(f'=SUMIFS(Opportunities!{col}2:{col}{end},Opportunities!{net}2:{net}{end},"Yes")'
                                                   if len(df) else 0)).number_format = GBP
    note = total_row + 3
    _put(cover, note, 1, "A filtered list is not a total to quote: overlapping metrics (for example length of stay and "
                         "day-case rate) free the same resource. 'Counted in net' marks the rows the trust's net total "
                         "keeps.").alignment = Alignment(wrap_text=True)
    cover.merge_cells(start_row=note, start_column=1, end_row=note, end_column=4)
    cover.row_dimensions[note].height = 45
    return to_bytes(book)
