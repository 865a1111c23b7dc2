"""The shortlist and plans workbook: schemes with drop-downs, CIP plan phasing as live formulas,
QIA with risk formulas and conditional formatting, tracking with native charts.

Finance will re-profile and re-total in Excel, so phasing, in-year totals, WRP coverage, QIA risk
scores and tracking variances are formulas over the cells, not pasted values. Text cells go
through ``formatting.safe_text`` so nothing a user typed can run as a formula.
"""
from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.formatting.rule import CellIsRule, ColorScaleRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.table import Table, TableStyleInfo

from ..analysis.catalogue import all_metrics
from ..delivery import plans, qia, schemes, tracking
from ..formatting import month
from ..users import User
from .export import (
    GBP,
    _put,
    definitions_sheet,
    header_row,
    new_book,
    to_bytes,
)
from .sheet_style import NHS_BLUE, finish_table, style_header

SCHEME_HEADERS = ("Scheme id", "CSU", "Specialty", "Metric", "Title", "Description", "Lead", "Finance category",
                  "Recurrent", "Saving type", "Status", "Origin", "Opportunity when created £",
                  "Actual when created", "Target when created", "Target basis", "Created by", "Created")
PLAN_FIXED = ("Scheme id", "Title", "CSU", "Status", "Committed", "Financial year", "Start month", "FYE £", "Profile")


def plans_workbook(con: duckdb.DuckDBPyConnection, user: User, financial_year: int, csu: str | None = None,
                   now: datetime | None = None, as_of: str | None = None) -> bytes:
    """All schemes in the user's scope (optionally one CSU) and their plans for ``financial_year``."""
    now = now or datetime.now()
    listing = schemes.listing(con, user, csu=csu)
    book, (cover, sheet_schemes, sheet_plan, sheet_targets, sheet_qia, sheet_tracking, sheet_defs) = new_book(
        "Cover", "Schemes", "CIP plan", "WRP targets", "QIA", "Tracking", "Metric definitions")

    _schemes_sheet(sheet_schemes, listing)
    plan_rows = _plan_sheet(con, sheet_plan, listing, financial_year)
    _targets_sheet(con, sheet_targets, user, financial_year, csu, plan_rows)
    _qia_sheet(con, sheet_qia, listing)
    tracked_to = as_of or tracking.last_complete_period()
    realised_end = _tracking_sheet(con, sheet_tracking, user, financial_year, listing, plan_rows, tracked_to)
    definitions_sheet(sheet_defs, all_metrics(con))

    _put(cover, 1, 1, "Shortlist and CIP plans").font = Font(bold=True, size=16, color=NHS_BLUE)
    rows = [("Prepared by", user.name), ("Generated", now.strftime("%Y-%m-%d %H:%M")), ("Scope", user.scope.label),
            ("CSU", csu or "All in scope"), ("Financial year", plans.fy_label(financial_year)),
            ("Tracked to", month(tracked_to)), ("Schemes", len(listing))]
    for r, (k, v) in enumerate(rows, start=3):
        _put(cover, r, 1, k).font = Font(bold=True)
        _put(cover, r, 2, v)
    last_plan = max(plan_rows.values(), default=1)
    fye, inyear, committed = _plan_col("FYE £"), _plan_col("In-year £"), _plan_col("Committed")
    base = 3 + len(rows) + 1
    at = {"committed": base + 3, "target": base + 6}  # rows of the figures below (after a heading row)
    figures = [
        ("Full-year effect, committed schemes", f"=SUMIFS('CIP plan'!{fye}2:{fye}{last_plan},'CIP plan'!{committed}2:{committed}{last_plan},\"Yes\")"),
        ("In-year £, committed schemes", f"=SUMIFS('CIP plan'!{inyear}2:{inyear}{last_plan},'CIP plan'!{committed}2:{committed}{last_plan},\"Yes\")"),
        ("In-year £, pipeline (not yet approved)", f"=SUMIFS('CIP plan'!{inyear}2:{inyear}{last_plan},'CIP plan'!{committed}2:{committed}{last_plan},\"No\")"),
        (f"In-year £, pipeline weighted by status ({_weights_words()})", _weighted_formula(last_plan)),
        ("WRP target", "=SUM('WRP targets'!C2:C1000)"),
        ("Still to find after committed and weighted pipeline", "=SUM('WRP targets'!J2:J1000)"),
        ("Realised to date", f"=SUM(Tracking!F2:F{realised_end})"),
    ]
    _put(cover, base, 1, "Totals").font = Font(bold=True, size=13)
    base += 1
    _put(cover, base, 1, "Figure")
    _put(cover, base, 2, "£ (live, from the sheets)")
    style_header(cover, base, 1, 2)
    for r, (k, formula) in enumerate(figures, start=base + 1):
        _put(cover, r, 1, k)
        cover.cell(row=r, column=2, value=formula).number_format = GBP
    r = base + len(figures) + 1
    _put(cover, r, 1, "Committed plan as a share of WRP target")
    cover.cell(row=r, column=2, value=f"=IF(B{at['target']}>0,B{at['committed']}/B{at['target']},\"\")").number_format = "0.0%"
    _put(cover, r + 2, 1, "Status, finance category, recurrent and saving type columns on the Schemes sheet have "
                          "drop-downs; changes made in this file are not sent back to Opportunity Explorer. "
                          "Months after the tracked-to month are left blank on the Tracking sheet."
         ).alignment = Alignment(wrap_text=True, vertical="top")
    cover.merge_cells(start_row=r + 2, start_column=1, end_row=r + 2, end_column=4)
    cover.row_dimensions[r + 2].height = 45
    return to_bytes(book)


def _weights_words() -> str:
    return ", ".join(f"{status} {weight:.0%}" for status, weight in plans.pipeline_weights().items())


def _weighted_formula(last: int, criteria: str = "") -> str:
    """Σ in-year £ of pipeline plans (CIP plan rows 2..``last``) × the weight of their status, one
    SUMIFS per status; ``criteria`` adds SUMIFS conditions (e.g. the CSU)."""
    inyear, status = _plan_col("In-year £"), _plan_col("Status")
    parts = [f"SUMIFS('CIP plan'!{inyear}2:{inyear}{last},'CIP plan'!{status}2:{status}{last},"
             f"\"{schemes.STATUS_LABELS.get(name, name)}\"{criteria})*{weight:g}"
             for name, weight in plans.pipeline_weights().items()]
    return "=" + "+".join(parts)


def _schemes_sheet(ws, listing: pd.DataFrame) -> None:
    header_row(ws, SCHEME_HEADERS)
    for r, s in enumerate(listing.itertuples(index=False), start=2):
        values = (int(s.scheme_id), s.csu_name, s.specialty_name, s.metric_name, s.title, s.description, s.lead,
                  schemes.FINANCE_LABELS.get(s.finance_category, s.finance_category), "Yes" if s.recurrent else "No",
                  schemes.SAVING_LABELS.get(s.saving_type, s.saving_type),
                  schemes.STATUS_LABELS.get(s.status, s.status), schemes.ORIGIN_LABELS.get(s.origin, s.origin),
                  s.snapshot_opportunity_gbp, s.snapshot_actual, s.snapshot_target_value,
                  schemes.basis_words(s.snapshot_target, s.snapshot_benchmark, s.snapshot_peer_group),
                  s.created_by, s.created_at.strftime("%Y-%m-%d %H:%M") if pd.notna(s.created_at) else None)
        for c, v in enumerate(values, start=1):
            _put(ws, r, c, None if v is None or (isinstance(v, float) and pd.isna(v)) else v,
                 GBP if c == 13 else ("0.000" if c in (14, 15) else None))
    end = max(len(listing) + 1, 2)
    if len(listing):
        table = Table(displayName="Schemes", ref=f"A1:{get_column_letter(len(SCHEME_HEADERS))}{end}")
        table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
        ws.add_table(table)
    for col, options in (("K", [schemes.STATUS_LABELS[c] for c in schemes.STATUSES]),
                         ("H", [schemes.FINANCE_LABELS[c] for c in schemes.FINANCE_CATEGORIES]), ("I", ("Yes", "No")),
                         ("J", [schemes.SAVING_LABELS[c] for c in schemes.SAVING_TYPES])):
        dv = DataValidation(type="list", formula1='"' + ",".join(options) + '"', allow_blank=False,
                            showErrorMessage=True, errorTitle="Not a valid choice",
                            error="Pick a value from the list.")
        ws.add_data_validation(dv)
        dv.add(f"{col}2:{col}{max(end, 200)}")
    finish_table(ws, 1, len(SCHEME_HEADERS), end, freeze_col="B")


def _plan_headers() -> list[str]:
    return list(PLAN_FIXED) + list(plans.MONTH_NAMES) + ["In-year £", "Milestones", "Metric target value"]


def _plan_col(header: str) -> str:
    return get_column_letter(_plan_headers().index(header) + 1)


def _plan_sheet(con, ws, listing: pd.DataFrame, financial_year: int) -> dict[int, int]:
    """One row per scheme with a plan this year; months are formulas of FYE, start and profile."""
    headers = _plan_headers()
    header_row(ws, headers)
    first_month = len(PLAN_FIXED) + 1
    start_col, fye_col = _plan_col("Start month"), _plan_col("FYE £")
    rows: dict[int, int] = {}
    r = 2
    for s in listing.itertuples(index=False):
        plan = plans.load_plan(con, int(s.scheme_id))
        if plan is None or plan.financial_year != financial_year:
            continue
        fixed = (int(s.scheme_id), s.title, s.csu_code, schemes.STATUS_LABELS.get(s.status, s.status),
                 "Yes" if s.status in schemes.COMMITTED else "No", plans.fy_label(plan.financial_year),
                 plan.start_month, plan.fye_gbp, plans.PROFILE_LABELS.get(plan.phasing, plan.phasing))
        for c, v in enumerate(fixed, start=1):
            _put(ws, r, c, v, GBP if c == 8 else None)
        for m in range(1, 13):
            col = first_month + m - 1
            value: float | str  # an amount, or a formula Excel recomputes when the start or FYE changes
            if plan.phasing == "custom":
                value = plan.monthly[m - 1]  # the custom values as saved (plans.phase returns them)
            elif plan.phasing == "ramp":
                value = (f"=IF({m}>=${start_col}{r},${fye_col}{r}/12*MIN(1,({m}-${start_col}{r}+1)/"
                         f"{plans.RAMP_MONTHS}),0)")
            else:
                value = f"=IF({m}>=${start_col}{r},${fye_col}{r}/12,0)"
            ws.cell(row=r, column=col, value=value).number_format = GBP
        first, last = get_column_letter(first_month), get_column_letter(first_month + 11)
        ws.cell(row=r, column=first_month + 12, value=f"=SUM({first}{r}:{last}{r})").number_format = GBP
        _put(ws, r, first_month + 13, plan.milestones)
        _put(ws, r, first_month + 14, plan.metric_target_value)
        rows[int(s.scheme_id)] = r
        r += 1
    if rows:
        _put(ws, r, 1, "Total").font = Font(bold=True)
        for col in [len(PLAN_FIXED) - 1] + list(range(first_month, first_month + 13)):
            letter = get_column_letter(col)
            cell = ws.cell(row=r, column=col, value=f"=SUM({letter}2:{letter}{r - 1})")
            cell.number_format, cell.font = GBP, Font(bold=True)
    finish_table(ws, 1, len(headers), max(r - 1, 2), freeze_col="C")
    return rows


def _targets_sheet(con, ws, user: User, financial_year: int, csu: str | None, plan_rows: dict[int, int]) -> None:
    headers = ("CSU code", "CSU", "WRP target £", "Committed in-year £", "Gap to target £", "Coverage", "Source",
               "Pipeline in-year £", "Pipeline weighted £", "Still to find after weighted pipeline £")
    header_row(ws, headers)
    targets = plans.wrp_targets(con, user.scope, financial_year)
    if csu:
        targets = targets[targets.csu_code == csu]
    last = max(plan_rows.values(), default=1)
    inyear, csu_col, committed = _plan_col("In-year £"), _plan_col("CSU"), _plan_col("Committed")
    for r, t in enumerate(targets.itertuples(index=False), start=2):
        _put(ws, r, 1, t.csu_code)
        _put(ws, r, 2, t.csu_name)
        _put(ws, r, 3, None if pd.isna(t.target_gbp) else float(t.target_gbp), GBP)
        ws.cell(row=r, column=4, value=f"=SUMIFS('CIP plan'!{inyear}2:{inyear}{last},'CIP plan'!{csu_col}2:{csu_col}{last},"
                                       f"A{r},'CIP plan'!{committed}2:{committed}{last},\"Yes\")").number_format = GBP
        ws.cell(row=r, column=5, value=f"=MAX(0,C{r}-D{r})").number_format = GBP
        ws.cell(row=r, column=6, value=f'=IF(C{r}>0,D{r}/C{r},"")').number_format = "0%"
        _put(ws, r, 7, t.source)
        ws.cell(row=r, column=8, value=f"=SUMIFS('CIP plan'!{inyear}2:{inyear}{last},'CIP plan'!{csu_col}2:{csu_col}{last},"
                                       f"A{r},'CIP plan'!{committed}2:{committed}{last},\"No\")").number_format = GBP
        ws.cell(row=r, column=9, value=_weighted_formula(last, f",'CIP plan'!{csu_col}2:{csu_col}{last},A{r}")
                ).number_format = GBP
        ws.cell(row=r, column=10, value=f"=MAX(0,C{r}-D{r}-I{r})").number_format = GBP
    finish_table(ws, 1, len(headers), len(targets) + 1)


def _qia_sheet(con, ws, listing: pd.DataFrame) -> None:
    headers = ("Scheme id", "Title", "Domain", "Consequence (1-5)", "Likelihood (1-5)", "Risk score", "Mitigations")
    header_row(ws, headers)
    r = 2
    signoffs = []
    for s in listing.itertuples(index=False):
        assessment = qia.assess(con, int(s.scheme_id))
        for row in qia.table(assessment).itertuples(index=False):
            for c, v in enumerate((int(s.scheme_id), s.title, row.domain_label, int(row.consequence),
                                   int(row.likelihood)), start=1):
                _put(ws, r, c, v)
            ws.cell(row=r, column=6, value=f"=D{r}*E{r}")
            _put(ws, r, 7, row.mitigations)
            r += 1
        signoffs += [(int(s.scheme_id), s.title, qia.SIGNOFF_LABELS[role], name, str(day))
                     for role, (name, day) in assessment.signoffs.items()]
    limit = qia.threshold()
    scored_end = r - 1
    if r > 2:
        ws.conditional_formatting.add(f"F2:F{r - 1}", CellIsRule(operator="greaterThan", formula=[str(limit)],
                                                                 fill=PatternFill("solid", fgColor="F4B6B6"),
                                                                 font=Font(bold=True, color="9C0006")))
        ws.conditional_formatting.add(f"F2:F{r - 1}", ColorScaleRule(start_type="num", start_value=1, start_color="FFFFFF",
                                                                     end_type="num", end_value=25, end_color="F8696B"))
    _put(ws, r + 1, 1, f"Risk above {limit} needs the medical director's and chief nurse's sign-off.").font = Font(italic=True)
    r += 3
    header_row(ws, ("Scheme id", "Title", "Sign-off", "Name", "Date"), row=r)
    for i, row in enumerate(signoffs, start=r + 1):
        for c, v in enumerate(row, start=1):
            _put(ws, i, c, v)
    style_header(ws, 1, 1, len(headers))
    ws.freeze_panes = "A2"
    ws.print_title_rows = "1:1"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(scored_end, 2)}"


def _tracking_sheet(con, ws, user: User, financial_year: int, listing: pd.DataFrame,
                    plan_rows: dict[int, int], tracked_to: str) -> int:
    """Planned (a reference into the CIP plan sheet) vs realised per scheme and month, a monthly
    summary of SUMIFS with cumulative columns, and two native charts.

    Months after ``tracked_to`` have no realised figure yet: their realised and variance cells stay
    blank (a red -£5,000 for a month not yet reached reads as a miss)."""
    headers = ("Scheme id", "Title", "CSU", "Month", "Planned £", "Realised £", "Variance £")
    header_row(ws, headers)
    in_listing = set(int(i) for i in listing.scheme_id)
    months = tracking.by_month(con, user.scope, financial_year)
    months = months[months.scheme_id.isin(in_listing) & months.scheme_id.isin(plan_rows)]
    r = 2
    first_month = len(PLAN_FIXED) + 1
    for row in months.itertuples(index=False):
        for c, v in enumerate((int(row.scheme_id), row.title, row.csu_code, row.period), start=1):
            _put(ws, r, c, v)
        plan_cell = f"'CIP plan'!{get_column_letter(first_month + row.month - 1)}{plan_rows[int(row.scheme_id)]}"
        ws.cell(row=r, column=5, value=f"={plan_cell}").number_format = GBP
        reached = row.period <= tracked_to
        _put(ws, r, 6, float(row.realised_gbp) if reached else None, GBP)
        ws.cell(row=r, column=7, value=f"=F{r}-E{r}" if reached else None).number_format = GBP
        r += 1
    end = max(r - 1, 2)
    # Monthly summary to the right, with cumulative columns for the chart.
    col0 = 9
    for c, h in enumerate(("Month", "Planned £", "Realised £", "Cumulative planned £", "Cumulative realised £"), start=col0):
        _put(ws, 1, c, h)
    style_header(ws, 1, col0, col0 + 4)
    for m in range(1, 13):
        rr = m + 1
        period = plans.period_of(financial_year, m)
        reached = period <= tracked_to
        _put(ws, rr, col0, period)
        ws.cell(row=rr, column=col0 + 1, value=f"=SUMIFS($E$2:$E${end},$D$2:$D${end},I{rr})").number_format = GBP
        ws.cell(row=rr, column=col0 + 2,
                value=f"=SUMIFS($F$2:$F${end},$D$2:$D${end},I{rr})" if reached else None).number_format = GBP
        ws.cell(row=rr, column=col0 + 3, value=f"=SUM($J$2:J{rr})").number_format = GBP
        ws.cell(row=rr, column=col0 + 4, value=f"=SUM($K$2:K{rr})" if reached else None).number_format = GBP
    cats = Reference(ws, min_col=col0, min_row=2, max_row=13)
    bars = BarChart()
    bars.title = f"Planned vs realised by month, {plans.fy_label(financial_year)}"
    bars.y_axis.numFmt = '"£"#,##0'
    bars.add_data(Reference(ws, min_col=col0 + 1, max_col=col0 + 2, min_row=1, max_row=13), titles_from_data=True)
    bars.set_categories(cats)
    bars.height, bars.width = 9, 20
    ws.add_chart(bars, "O2")
    line = LineChart()
    line.title = "Cumulative planned vs realised"
    line.y_axis.numFmt = '"£"#,##0'
    line.add_data(Reference(ws, min_col=col0 + 3, max_col=col0 + 4, min_row=1, max_row=13), titles_from_data=True)
    line.set_categories(cats)
    line.height, line.width = 9, 20
    ws.add_chart(line, "O21")
    finish_table(ws, 1, len(headers), end)
    return end
