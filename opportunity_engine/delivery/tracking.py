"""Tracking delivery: realised savings against plan, RAG, and evidence from the data.

RAG rules (config.toml [tracking]): for a committed scheme (approved, delivering, delivered),
compare realised £ to date with planned £ to date, both over the months of the financial year up
to the last complete month (``as_of``):
- Green: realised ≥ 95% of planned;  Amber: ≥ 80%;  Red: below 80%;
- "Not due": nothing planned yet by ``as_of`` (the start month is still ahead).

Evidence: the scheme's driving metric (its CSU, specialty and metric) before and after the plan's
start month. XmR limits are set on the months before the start (at least
``min_baseline_months``); the months after are judged against them with NHS "Making Data Count"
rules (a point beyond a limit, a shift of 7 on one side of the mean, a trend of 7). The observed
change is priced with the opportunity maths: change in the rate × the denominator since the start
× the same unit cost the opportunity used, annualised to a full-year effect.

Evidence from the start: a change that began before the scheme started is not the scheme's doing.
It is found in the run of months on the better side of the baseline mean that leads up to the
start: the run holds a special cause on an XmR chart of the months before the start, or one of its
months lies beyond the limits of the months before the run (the improvement was under way). A
change that began more than ``start_grace_months`` (config, default 1) before the start is reported
("change began in Sep 2025, before the scheme started in Apr 2026") and is not credited: evidenced £ is 0.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from ..analysis.opportunities import Basis, kept_by, opportunities, trend
from ..analysis.stats import xmr
from ..config import settings
from ..errors import InvalidInput
from ..formatting import month
from ..scope import Scope, scope_filter
from ..store.db import scalar
from ..store.limits import MAX_REALISED_GBP, period_window
from ..store.statuses import IN_DELIVERY, sql_list
from ..users import User
from . import plans, schemes

PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def _cfg() -> dict:
    return settings().get("tracking", {})


def last_complete_period(today: dt.date | None = None) -> str:
    today = today or dt.date.today()
    first = today.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


def rag(planned_to_date: float, realised_to_date: float) -> str:
    if planned_to_date <= 0:
        return "Not due"
    ratio = realised_to_date / planned_to_date
    if ratio >= float(_cfg().get("green_at", 0.95)):
        return "Green"
    if ratio >= float(_cfg().get("amber_at", 0.80)):
        return "Amber"
    return "Red"


class AlreadyRecorded(InvalidInput):
    """The month already has a figure and the caller did not say to replace it."""


def record_realised(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int, period: str,
                    realised_gbp: float, replace: bool = True) -> None:
    """Enter (or correct) one month's realised saving of a committed scheme (audited).

    With ``replace=False`` a month that already has a figure is refused (AlreadyRecorded, naming
    the figure), so a form never overwrites £111,540 with £0 unless the person said to."""
    if not isinstance(period, str) or not PERIOD.fullmatch(period):
        raise InvalidInput(f"Period must be YYYY-MM (got {period!r}).")
    first, last = period_window()
    if not first <= period <= last:
        raise InvalidInput(f"Period {period} is outside the plausible window {first} to {last}.")
    try:
        value = float(realised_gbp)
    except (TypeError, ValueError):
        raise InvalidInput(f"Realised £ must be a number (got {realised_gbp!r}).") from None
    if not math.isfinite(value) or value < 0 or value > MAX_REALISED_GBP:
        raise InvalidInput(f"Realised £ must be between 0 and {MAX_REALISED_GBP:,.0f} (got {realised_gbp}).")
    with schemes.editing(con, user, scheme_id, None) as edit:  # monthly entries: no version claimed
        if edit.scheme.status not in schemes.COMMITTED:
            raise InvalidInput(f"Scheme {scheme_id} is {edit.scheme.status}: realised savings are recorded once it is approved.")
        old = con.execute("SELECT realised_gbp FROM realised_savings WHERE scheme_id = ? AND period = ?",
                          [int(scheme_id), period]).fetchone()
        if old is not None and not replace:
            raise AlreadyRecorded(f"{month(period)} already has £{old[0]:,.0f} recorded for scheme {scheme_id}; "
                                  "tick 'Replace it' to correct it.")
        con.execute("INSERT OR REPLACE INTO realised_savings VALUES (?, ?, ?, ?, current_timestamp)",
                    [int(scheme_id), period, value, user.username])
        edit.changes[f"realised.{period}"] = (old[0] if old else None, value)


def next_month_to_record(periods: list[str], recorded: set[str], as_of: str) -> str:
    """The month a realised-savings form should offer first: the earliest complete month (up to
    ``as_of``) of ``periods`` with no figure yet; else the latest complete one; else the first."""
    complete = [p for p in periods if p <= as_of]
    missing = [p for p in complete if p not in recorded]
    return missing[0] if missing else (complete[-1] if complete else periods[0])


def realised(con: duckdb.DuckDBPyConnection, scope: Scope, scheme_id: int | None = None) -> pd.DataFrame:
    return con.execute(f"""
        SELECT r.scheme_id, r.period, r.realised_gbp, r.entered_by, r.entered_at
        FROM realised_savings r JOIN schemes s USING (scheme_id)
        WHERE {scope_filter('s.csu_code')} AND ($scheme IS NULL OR r.scheme_id = $scheme)
        ORDER BY r.scheme_id, r.period""", {**scope.sql_params(), "scheme": scheme_id}).df()


def by_month(con: duckdb.DuckDBPyConnection, scope: Scope, financial_year: int,
             csu: str | None = None) -> pd.DataFrame:
    """Planned and realised £ per (scheme, month) of the year, committed schemes only (of one
    CSU of the scope when ``csu`` is given)."""
    scope = scope.narrow(csu)
    planned = plans.monthly_plan(con, scope, financial_year)
    done = realised(con, scope)
    out = planned.merge(done[["scheme_id", "period", "realised_gbp"]], on=["scheme_id", "period"], how="left")
    out["realised_gbp"] = out["realised_gbp"].fillna(0.0)
    return out


def scheme_summary(con: duckdb.DuckDBPyConnection, scope: Scope, financial_year: int,
                   as_of: str | None = None) -> pd.DataFrame:
    """One row per committed scheme: in-year plan, planned and realised to date, variance, RAG."""
    return summarise_months(by_month(con, scope, financial_year), as_of)


def summarise_months(months: pd.DataFrame, as_of: str | None = None) -> pd.DataFrame:
    """:func:`scheme_summary` from an already-loaded :func:`by_month` frame (a page that also
    charts the months loads them once)."""
    as_of = as_of or last_complete_period()
    cols = ["scheme_id", "title", "csu_code", "status", "in_year_gbp", "planned_to_date_gbp",
            "realised_to_date_gbp", "variance_gbp", "rag"]
    if months.empty:
        return pd.DataFrame(columns=cols)
    due = months[months["period"] <= as_of]
    out = months.groupby(["scheme_id", "title", "csu_code", "status"], as_index=False).agg(in_year_gbp=("planned_gbp", "sum"))
    out = out.merge(due.groupby("scheme_id", as_index=False).agg(planned_to_date_gbp=("planned_gbp", "sum"),
                                                                 realised_to_date_gbp=("realised_gbp", "sum")),
                    on="scheme_id", how="left").fillna({"planned_to_date_gbp": 0.0, "realised_to_date_gbp": 0.0})
    out["variance_gbp"] = out["realised_to_date_gbp"] - out["planned_to_date_gbp"]
    out["rag"] = [rag(p, r) for p, r in zip(out["planned_to_date_gbp"], out["realised_to_date_gbp"])]
    return out[cols]


@dataclass(frozen=True)
class TrackingTotals:
    in_year_gbp: float
    planned_to_date_gbp: float
    realised_to_date_gbp: float
    variance_gbp: float
    red: int
    amber: int
    green: int


def totals(summary: pd.DataFrame) -> TrackingTotals:
    """The headline figures of a scheme summary (Tracking page KPIs)."""
    rag_counts = summary["rag"].value_counts()
    return TrackingTotals(float(summary["in_year_gbp"].sum()), float(summary["planned_to_date_gbp"].sum()),
                          float(summary["realised_to_date_gbp"].sum()), float(summary["variance_gbp"].sum()),
                          int(rag_counts.get("Red", 0)), int(rag_counts.get("Amber", 0)), int(rag_counts.get("Green", 0)))


def to_date_by_csu(summary: pd.DataFrame) -> pd.DataFrame:
    """Planned and realised to date per CSU, long form (csu_code, series, gbp) for a grouped bar chart."""
    by_csu = summary.groupby("csu_code", as_index=False)[["planned_to_date_gbp", "realised_to_date_gbp"]].sum()
    out = by_csu.melt(id_vars="csu_code", var_name="series", value_name="gbp")
    out["series"] = out["series"].map({"planned_to_date_gbp": "Planned", "realised_to_date_gbp": "Realised"})
    return out


def cumulative_long(months: pd.DataFrame, as_of: str) -> pd.DataFrame:
    """Cumulative planned (whole year) and realised (up to ``as_of``) per month, long form for a line chart."""
    cumulative = monthly_totals(months)
    out = cumulative.melt(id_vars=["period"], value_vars=["cumulative_planned_gbp", "cumulative_realised_gbp"],
                          var_name="series", value_name="gbp")
    out["series"] = out["series"].map({"cumulative_planned_gbp": "Planned", "cumulative_realised_gbp": "Realised"})
    return out[(out["series"] == "Planned") | (out["period"] <= as_of)].reset_index(drop=True)


@dataclass(frozen=True)
class TrackingView:
    """What the Tracking page shows for a scope, year and CSU: the plan and realised months, the
    schemes' summary (none: nothing committed), the headline totals and the two charts' data."""
    months: pd.DataFrame
    summary: pd.DataFrame
    totals: TrackingTotals | None
    cumulative: pd.DataFrame
    by_csu: pd.DataFrame


@kept_by(schemes.records_version)
def tracking_view(con: duckdb.DuckDBPyConnection, scope: Scope, financial_year: int, csu: str | None,
                  as_of: str) -> TrackingView:
    """Read once per change to the records (a few pandas passes over every committed scheme's
    months were most of the page's server time)."""
    months = by_month(con, scope, financial_year, csu=csu)
    summary = summarise_months(months, as_of)
    if summary.empty:
        return TrackingView(months, summary, None, pd.DataFrame(), pd.DataFrame())
    return TrackingView(months, summary, totals(summary), cumulative_long(months, as_of), to_date_by_csu(summary))


def monthly_totals(months: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Planned vs realised per month (optionally per CSU), with cumulative columns for the chart."""
    keys = (by or []) + ["month", "month_name", "period"]
    out = months.groupby(keys, as_index=False)[["planned_gbp", "realised_gbp"]].sum().sort_values(keys)
    group = out.groupby(by) if by else out
    out["cumulative_planned_gbp"] = group["planned_gbp"].cumsum()
    out["cumulative_realised_gbp"] = group["realised_gbp"].cumsum()
    return out


@dataclass
class Evidence:
    scheme_id: int
    # "signal of improvement", "change before the start", "signal of deterioration", "mixed signals",
    # "no signal", "not enough data", "no driving metric", "no plan"
    status: str
    message: str
    series: pd.DataFrame = field(default_factory=pd.DataFrame)
    start_period: str | None = None
    before_value: float | None = None
    after_value: float | None = None
    months_after: int = 0
    change_units: float | None = None   # gap units freed since the start (positive = better)
    evidenced_gbp: float | None = None  # what the observed change is worth over the months since the start
    evidenced_fye_gbp: float | None = None  # the same, annualised
    unit_cost_gbp: float | None = None
    realised_gbp: float = 0.0
    fye_claimed_gbp: float | None = None
    change_began: str | None = None  # first month of a change that began before the start (not credited)
    metric_name: str = ""            # what the chart shows: the driving metric of one unit
    unit_label: str = ""
    value_format: str = ""


@kept_by(schemes.records_version)
def evidence(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int) -> Evidence:
    scheme = schemes.get(con, user, scheme_id)
    plan = plans.load_plan(con, scheme_id)
    realised_total = float(scalar(con, "SELECT coalesce(sum(realised_gbp), 0) FROM realised_savings WHERE scheme_id = ?",
                                  [int(scheme_id)]))
    if not scheme.metric_id or plan is None:
        why = ("This scheme was created by hand, with no driving metric" if not scheme.metric_id
               else "This scheme has no CIP plan yet, so there is no start month")
        return Evidence(scheme_id, "no driving metric" if not scheme.metric_id else "no plan",
                        why + ": the data cannot test it.",
                        realised_gbp=realised_total, fye_claimed_gbp=plan.fye_gbp if plan else None)
    start = plans.period_of(plan.financial_year, plan.start_month)
    series = trend(con, user.scope, scheme.metric_id, scheme.csu_code, scheme.specialty_code)
    direction, metric_name, value_format = _metric(con, scheme.metric_id)
    out = assess_series(series, start, direction, _unit_cost(con, user, scheme),
                        scheme_id=scheme.scheme_id, realised_gbp=realised_total, fye_claimed_gbp=plan.fye_gbp)
    out.metric_name, out.value_format = metric_name, value_format
    out.unit_label = _unit_label(con, scheme)
    return out


def _metric(con: duckdb.DuckDBPyConnection, metric_id: str) -> tuple[str, str, str]:
    """(direction, name, value format) of a metric."""
    row = con.execute("SELECT direction, metric_name, value_format FROM metrics WHERE metric_id = ?",
                      [metric_id]).fetchone()
    if row is None:
        raise ValueError(f"The scheme's metric {metric_id!r} is no longer in the catalogue.")
    return str(row[0]), str(row[1]), str(row[2])


def _unit_label(con: duckdb.DuckDBPyConnection, scheme: schemes.Scheme) -> str:
    """'General Surgery, Emergency and Acute Medicine': the unit the evidence chart is about."""
    csu = con.execute("SELECT csu_name FROM csus WHERE csu_code = ?", [scheme.csu_code]).fetchone()
    csu_name = csu[0] if csu else scheme.csu_code
    if not scheme.specialty_code:
        return f"{csu_name} (CSU-wide)"
    spec = con.execute("SELECT specialty_name FROM specialties WHERE specialty_code = ?",
                       [scheme.specialty_code]).fetchone()
    return f"{spec[0] if spec else scheme.specialty_code}, {csu_name}"


def change_began(periods: list[str], values: list[float], start: str, direction: str) -> str | None:
    """The first month of an improvement that was under way before ``start``, else None.

    Both signs look at the run of months on the better side that leads up to the start (module
    docstring): on an XmR chart of the months before the start, the run holds a special cause; or,
    judged against limits from the months before the run itself (at least ``min_baseline_months``),
    one of its months is beyond them. Three months below the mean by chance are not a change;
    months beyond the limits of the months before them are.
    """
    n_before = sum(p < start for p in periods)
    pre = xmr(values[:n_before])
    if pre is None:
        return None

    def better(v: float, mean: float) -> bool:
        return v < mean if direction == "lower" else v > mean

    j = n_before
    while j > 0 and better(values[j - 1], pre.mean):
        j -= 1
    if j == n_before:
        return None  # the last month before the start is not on the better side: nothing under way
    began = any(pre.special_cause[j:n_before])
    if not began and j >= int(_cfg().get("min_baseline_months", 6)):
        earlier = xmr(values[:n_before], baseline=j)
        began = earlier is not None and any(
            (v < earlier.lcl if direction == "lower" else v > earlier.ucl) for v in values[j:n_before])
    if not began:
        return None
    grace = int(_cfg().get("start_grace_months", 1))
    return periods[j] if _months_between(periods[j], start) > grace else None


def _months_between(a: str, b: str) -> int:
    return (int(b[:4]) - int(a[:4])) * 12 + int(b[5:7]) - int(a[5:7])


def _unit_cost(con: duckdb.DuckDBPyConnection, user: User, scheme: schemes.Scheme) -> float | None:
    """The unit cost the opportunity maths uses for this grain (specialty, else all-specialty)."""
    rows = opportunities(con, user.scope, Basis(), csu=scheme.csu_code, specialty=scheme.specialty_code,
                         metric=scheme.metric_id)
    if not rows.empty and not pd.isna(rows.iloc[0].unit_cost_gbp):
        return float(rows.iloc[0].unit_cost_gbp)
    return scheme.snapshot_unit_cost_gbp


def assess_series(series: pd.DataFrame, start: str, direction: str, unit_cost: float | None,
                  scheme_id: int = 0, realised_gbp: float = 0.0, fye_claimed_gbp: float | None = None) -> Evidence:
    """Pure: judge a monthly series (period, numerator, denominator) before vs after ``start``."""
    series = series[["period", "numerator", "denominator"]].copy()
    series["value"] = series["numerator"] / series["denominator"].where(series["denominator"] > 0)
    series = series.dropna(subset=["value"]).reset_index(drop=True)
    before, after = series[series["period"] < start], series[series["period"] >= start]
    need = int(_cfg().get("min_baseline_months", 6))
    base = Evidence(scheme_id, "not enough data", "", start_period=start, realised_gbp=realised_gbp,
                    fye_claimed_gbp=fye_claimed_gbp, unit_cost_gbp=unit_cost, months_after=len(after))
    chart = None if len(before) < need or after.empty else xmr(list(series["value"]), baseline=len(before))
    if chart is None:
        latest = series["period"].max() if len(series) else "none"
        base.message = (f"Needs at least {need} months of data before the start ({start}) and one after; "
                        f"there are {len(before)} before and {len(after)} after (latest data: {latest}). "
                        "Load newer activity on the Data page to test it.")
        base.series = series.assign(phase=["before" if p < start else "after" for p in series["period"]])
        return base
    series["phase"] = ["before" if p < start else "after" for p in series["period"]]
    series["mean"], series["ucl"], series["lcl"] = chart.mean, chart.ucl, chart.lcl
    series["special_cause"] = chart.special_cause
    better = (series["value"] < chart.mean) if direction == "lower" else (series["value"] > chart.mean)
    after_mask = series["phase"] == "after"
    improving = bool((series["special_cause"] & better & after_mask).any())
    worsening = bool((series["special_cause"] & ~better & after_mask).any())
    base.before_value = float(before["numerator"].sum() / before["denominator"].sum())
    base.after_value = float(after["numerator"].sum() / after["denominator"].sum())
    change_rate = base.before_value - base.after_value if direction == "lower" else base.after_value - base.before_value
    base.change_units = change_rate * float(after["denominator"].sum())
    if unit_cost is not None:
        base.evidenced_gbp = base.change_units * unit_cost
        base.evidenced_fye_gbp = base.evidenced_gbp * 12 / len(after)
    base.series = series
    began = change_began(list(series["period"]), list(series["value"]), start, direction)
    if began is not None and not worsening:
        base.status, base.change_began = "change before the start", began
        base.message = (f"Change began in {month(began)}, before the scheme started in {month(start)}: not credited. "
                        "The data show an improvement that was already under way, so they cannot say how much of it "
                        "the scheme made.")
        if base.evidenced_gbp is not None:
            base.evidenced_gbp, base.evidenced_fye_gbp = 0.0, 0.0
        return base
    if improving and not worsening:
        base.status, base.message = "signal of improvement", (
            "The metric has moved the right way beyond what normal variation explains (special cause since the start).")
    elif worsening and not improving:
        base.status, base.message = "signal of deterioration", (
            "The metric has moved the wrong way beyond normal variation since the start.")
    elif improving and worsening:
        base.status, base.message = "mixed signals", "Special causes both ways since the start: look at the chart."
    else:
        base.status, base.message = "no signal", (
            "Since the start the metric is within its normal variation: the data do not yet show the scheme working.")
    return base


@kept_by(schemes.records_version)
def evidenced_by_scheme(con: duckdb.DuckDBPyConnection, user: User) -> dict[int, float]:
    """Evidenced full-year £ of each delivering or delivered scheme that came from an
    opportunity (the Adoption page's "value evidenced by the data")."""
    ids = [r[0] for r in con.execute(f"""
        SELECT scheme_id FROM schemes s WHERE origin = 'opportunity' AND status IN {sql_list(IN_DELIVERY)}
          AND {scope_filter('s.csu_code')}""", user.scope.sql_params()).fetchall()]
    out = {}
    for scheme_id in ids:
        ev = evidence(con, user, scheme_id)
        if ev.evidenced_fye_gbp is not None:
            out[scheme_id] = max(0.0, ev.evidenced_fye_gbp)
    return out
