"""Display-ready frames for the pages: the engine formats, the page only renders.

Every function takes an opportunities frame (already scoped) and returns a small frame whose
money columns are both exact (for sorting and charts) and formatted (£1.2m) for reading.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import pandas as pd

from ..analysis.opportunities import Basis, Totals, missing_targets_note, summarise, totals
from ..analysis.targets import target_label
from ..formatting import gbp_short, metric_value, month, months, units

SAVING_TYPE_LABELS = {"cash": "Cash-releasing", "productivity": "Productivity"}


def flag_text(df: pd.DataFrame) -> pd.Series:
    out = []
    for low, sig, target in zip(df["low_volume"], df["significant"], df["target_value"]):
        parts = []
        if pd.isna(target):
            parts.append("No benchmark")
        else:
            if low:
                parts.append("Low volume")
            if not sig:
                parts.append("Not significant")
        out.append(", ".join(parts))
    return pd.Series(out, index=df.index, dtype="object")


def window(df: pd.DataFrame) -> str:
    """The months the figures cover: 'Apr 2025 to Mar 2026', or a note when metrics' sources end
    in different months (each metric then has its own latest 12 months)."""
    spans = df[["period_from", "period_to"]].drop_duplicates()
    if len(spans) == 1:
        return months(spans.iloc[0, 0], spans.iloc[0, 1])
    return (f"latest 12 months of each metric (ending between {month(df['period_to'].min())} "
            f"and {month(df['period_to'].max())})")


def by_specialty(df: pd.DataFrame) -> pd.DataFrame:
    out = summarise(df, ["specialty_code", "specialty_name"])
    out["net"] = out["net_gbp"].map(gbp_short)
    out["gross"] = out["gross_gbp"].map(gbp_short)
    return out


def by_domain(df: pd.DataFrame) -> pd.DataFrame:
    out = summarise(df, ["domain"])
    out["net"] = out["net_gbp"].map(gbp_short)
    return out


def heatmap(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Net £ by domain against CSU, or against specialty when the view holds one CSU (a CSU team's
    own grid: one row of CSU would say nothing). Every combination present, zeros included, for an
    even grid. Returns the frame (columns ``row``, ``domain``, ``net_gbp``, ``net``, and ``band``,
    ``fill``, ``ink``: the cell's £ band, its colour and the text colour that reads on it) and what
    a row is. ``frame.attrs["bands"]`` lists the bands lowest first, for the legend."""
    key, label = ("specialty_name", "Specialty") if df["csu_code"].nunique() == 1 else ("csu_code", "CSU")
    out = summarise(df, [key, "domain"])
    if out.empty:
        return out.rename(columns={key: "row"}).assign(net=pd.Series(dtype=object)), label
    grid = pd.MultiIndex.from_product([sorted(df[key].unique()), sorted(df["domain"].unique())], names=[key, "domain"])
    out = out.set_index([key, "domain"]).reindex(grid, fill_value=0).reset_index().rename(columns={key: "row"})
    out["net"] = out["net_gbp"].map(gbp_short)
    out["band"], bands = heat_bands(out["net_gbp"])
    fills = dict(zip(bands, HEAT_FILLS))
    out["fill"] = out["band"].map(fills)
    out["ink"] = out["fill"].map(ink_for)
    out.attrs["bands"] = bands  # legend order, lowest first
    return out, label


def metric_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One line per opportunity row with actual, target, gap and flags written out.

    "Opportunity £" stays a number (pages format it for display as £1.2m), so a table sorted by it
    sorts by value, not as text (£156k, £3.9m, £511k). Actual, target and gap are text with their
    units: rows hold different metrics, so one number format per column would mislabel them."""
    return pd.DataFrame({
        "csu_code": df["csu_code"], "specialty_code": df["specialty_code"], "metric_id": df["metric_id"],
        "CSU": df["csu_name"], "Specialty": df["specialty_name"], "Metric": df["metric_name"],
        "Domain": df["domain"],
        "Actual": [metric_value(v, f) for v, f in zip(df["actual"], df["value_format"])],
        "Target": [metric_value(v, f) for v, f in zip(df["target_value"], df["value_format"])],
        "Gap": [units(g, u) for g, u in zip(df["gap_units"], df["unit"])],
        "Opportunity £": df["opportunity_gbp"].astype(float),
        "opportunity_gbp": df["opportunity_gbp"],
        "Type": df["saving_type"].map(SAVING_TYPE_LABELS).fillna(df["saving_type"]),
        "Flags": flag_text(df),
        "Counted in net": df["counted_in_net"],
    }).reset_index(drop=True)


def opportunity_range(row, basis) -> pd.DataFrame:
    """One opportunity at each standard target (median, top quartile, top decile), plus the chosen
    custom target when there is one, with the chosen row marked: the table says which figure the
    rest of the page quotes. ``row`` is one opportunities row, ``basis`` the page's Basis."""
    fmt = row.value_format
    lines = [("median", "Median", row.target_median, row.opportunity_median_gbp),
             ("top_quartile", "Top quartile", row.target_top_quartile, row.opportunity_top_quartile_gbp),
             ("top_decile", "Top decile", row.target_top_decile, row.opportunity_top_decile_gbp)]
    if basis.target not in {key for key, *_ in lines}:
        lines.append((basis.target, target_label(basis.target), row.target_value, row.opportunity_gbp))
    return pd.DataFrame({
        "Target": [label for _, label, _, _ in lines],
        "Target value": [metric_value(v, fmt) for _, _, v, _ in lines],
        "Opportunity £ a year": [float(g) if pd.notna(g) else float("nan") for *_, g in lines],
        "Chosen": ["◀ chosen" if key == basis.target else "" for key, *_ in lines],
    })


# What a target rests on (the opportunities' target_basis), in the words of the calculation trace.
TARGET_BASIS_WORDS = {"case mix": "adjusted for case mix: these spells at each HRG's reference stay",
                      "own history": "the unit's own best rolling quarter of 36 months",
                      "specialty": "specialty benchmark", "all specialties": "all-specialty benchmark",
                      "CSU-wide": "across the trust's CSUs"}


def calculation_steps(row, basis_label: str, numerator_label: str = "", denominator_label: str = "") -> pd.DataFrame:
    """How one opportunity was worked out, step by step with its own figures (columns Step,
    Value): Metric detail's "How this was calculated" and the Guide's worked example, so the gap
    formula of METRICS.md is written once. ``row`` is one opportunities row."""
    lower = row.direction == "lower"
    fmt = row.value_format
    gap = units(row.gap_units, row.unit)
    if pd.notna(row.target_value):
        gap = (f"{row.numerator:,.1f} − {row.target_value:.6g} × {row.denominator:,.1f} = {gap}" if lower
               else f"{row.target_value:.6g} × {row.denominator:,.1f} − {row.numerator:,.1f} = {gap}")
    cost = f"£{row.unit_cost_gbp:,.2f}" if pd.notna(row.unit_cost_gbp) else "–"
    money = f"£{row.opportunity_gbp:,.0f} ({gbp_short(row.opportunity_gbp)})" if pd.notna(row.opportunity_gbp) else "–"
    steps = [
        ("numerator" + (f": {numerator_label}" if numerator_label else ""), f"{row.numerator:,.1f}"),
        ("denominator" + (f": {denominator_label}" if denominator_label else ""), f"{row.denominator:,.1f}"),
        ("actual = numerator ÷ denominator", metric_value(row.actual, fmt)),
        (f"target ({basis_label}, {TARGET_BASIS_WORDS.get(str(getattr(row, 'target_basis', '')), 'no benchmark')})",
         metric_value(row.target_value, fmt)),
        ("gap = " + ("numerator − target × denominator" if lower else "target × denominator − numerator")
         + " (never below 0)", gap),
        (f"unit cost ({row.cost_driver}, {row.unit_cost_level or 'none'})", cost),
        ("opportunity = gap × unit cost", money),
    ]
    return pd.DataFrame(steps, columns=["Step", "Value"])


def top(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    return metric_rows(df[df["opportunity_gbp"] > 0].head(n))


# --- What a page shows, derived once per view (analysis.opportunities.view keeps it) -------------

@dataclass(frozen=True)
class OverviewParts:
    """Everything the Overview derives from the opportunities of its view."""
    window: str
    missing_note: str | None
    totals: Totals
    domains: pd.DataFrame
    heat: pd.DataFrame
    heat_rows: str            # what a heatmap row is: "CSU", or "Specialty" for one CSU
    top: pd.DataFrame


def overview_parts(df: pd.DataFrame, basis: Basis) -> OverviewParts:
    heat, rows = heatmap(df) if len(df) else (pd.DataFrame(), "CSU")
    return OverviewParts(window(df) if len(df) else "", missing_targets_note(df, basis), totals(df),
                         by_domain(df), heat, rows, top(df, 10))


@dataclass(frozen=True)
class ExploreParts:
    """What Explore derives for one CSU (and, when chosen, one of its specialties)."""
    missing_note: str | None
    totals: Totals
    specialties: pd.DataFrame
    metric_rows: pd.DataFrame  # the chosen specialty's metrics, largest first (none chosen: no rows)


def explore_parts(df: pd.DataFrame, basis: Basis, specialty: str | None) -> ExploreParts:
    rows = metric_rows(df[df["specialty_code"] == specialty])
    return ExploreParts(missing_targets_note(df, basis), totals(df), by_specialty(df), rows)


@dataclass(frozen=True)
class ListParts:
    """The Opportunities page's list under its filters."""
    window: str
    totals: Totals             # of the rows shown
    rows: pd.DataFrame         # metric_rows of the rows shown, largest first


def list_parts(df: pd.DataFrame, filters: Filters) -> ListParts:
    shown = filter_opportunities(df, filters)
    return ListParts(window(df) if len(df) else "no data", totals(shown), metric_rows(shown))


# --- Heatmap colours: bands of one colour ramp, each with the text colour that reads on it ----------

HEAT_FILLS = ("#E8EDEE", "#C6DCF2", "#8CB8E4", "#1F6FC5", "#003087")  # NHS pale grey to dark blue
INK_DARK, INK_LIGHT = "#212B32", "#FFFFFF"


def _luminance(hex_colour: str) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour '#RRGGBB'."""
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21; text needs 4.5)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def ink_for(fill: str) -> str:
    """The text colour (dark or white) with the higher contrast on ``fill``: cell text chosen by
    cell colour, so a figure on the darkest navy is white and one on pale grey is near-black."""
    return INK_DARK if contrast(INK_DARK, fill) >= contrast(INK_LIGHT, fill) else INK_LIGHT


def _nice_step(top: float, bands: int) -> float:
    """A round band width (1, 2 or 5 × a power of ten) so that ``bands`` bands cover ``top``."""
    raw = max(top, 1.0) / bands
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 3, 4, 5, 10) if m * power >= raw)


def heat_bands(values: pd.Series) -> tuple[pd.Series, list[str]]:
    """Each value's band label ('£2m–£4m') and the band labels in order, lowest first. Zero has a
    band of its own (pale grey): 'nothing here' reads apart from 'a little'."""
    positive = values[values > 0]
    if positive.empty:
        return pd.Series(["£0"] * len(values), index=values.index), ["£0"]
    step = _nice_step(float(positive.max()), len(HEAT_FILLS) - 1)
    def short(v: float) -> str:
        return gbp_short(v).replace(".0m", "m")
    labels = ["£0", f"up to {short(step)}"] + [f"{short(i * step)}–{short((i + 1) * step)}"
                                                for i in range(1, len(HEAT_FILLS) - 1)]
    index = [0 if v <= 0 else min(len(HEAT_FILLS) - 1, 1 + int(v // step)) for v in values]
    return pd.Series([labels[i] for i in index], index=values.index), labels


# --- The trust-wide list (Opportunities page) ----------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """What the Opportunities page shows: every None/False/0 means 'no filter'."""
    csu: str | None = None
    specialty: str | None = None
    domain: str | None = None
    saving_type: str | None = None  # 'cash' | 'productivity'
    hide_flagged: bool = False
    min_gbp: float = 0.0

    def describe(self, csu_names: dict[str, str] | None = None,
                 specialty_names: dict[str, str] | None = None) -> list[tuple[str, str]]:
        """The filters as (name, value) lines for a workbook cover or a caption."""
        csu_names, specialty_names = csu_names or {}, specialty_names or {}
        return [
            ("CSU", f"{csu_names.get(self.csu, self.csu)} ({self.csu})" if self.csu else "All in scope"),
            ("Specialty", specialty_names.get(self.specialty, self.specialty) if self.specialty else "All"),
            ("Domain", self.domain or "All"),
            ("Saving type", SAVING_TYPE_LABELS.get(self.saving_type or "", "Cash-releasing and productivity")),
            ("Flagged rows", "Hidden (low volume, not significant or no benchmark)" if self.hide_flagged else "Shown"),
            ("Minimum opportunity", gbp_short(self.min_gbp) if self.min_gbp > 0 else "None (every row above £0)"),
        ]

    def slug(self) -> str:
        """A short file-name part naming the view: 'EMA-Beds-cash-min50k', or 'all'."""
        parts = [self.csu, self.specialty, self.domain, self.saving_type,
                 "unflagged" if self.hide_flagged else None,
                 f"min{gbp_short(self.min_gbp).lstrip('£')}" if self.min_gbp > 0 else None]
        return "-".join(_slug(p) for p in parts if p) or "all"


def flagged(df: pd.DataFrame) -> pd.Series:
    """Rows to treat with care: low volume, a gap within noise, or no benchmark at all."""
    return df["low_volume"].astype(bool) | ~df["significant"].astype(bool) | df["target_value"].isna()


def filter_opportunities(df: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """The opportunities (£ above zero) that pass ``filters``, largest first.

    The frame is already scoped by the engine (a CSU user's holds only their CSUs), so a filter
    can only narrow what the user may see, never widen it."""
    keep = df["opportunity_gbp"] > 0
    if filters.min_gbp and filters.min_gbp > 0:
        keep &= df["opportunity_gbp"] >= float(filters.min_gbp)
    for column, value in (("csu_code", filters.csu), ("specialty_code", filters.specialty),
                          ("domain", filters.domain), ("saving_type", filters.saving_type)):
        if value is not None:
            keep &= df[column] == value
    if filters.hide_flagged:
        keep &= ~flagged(df)
    return df[keep].sort_values("opportunity_gbp", ascending=False, kind="stable").reset_index(drop=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "x"


def export_name(view: str, *parts: str | None, today: dt.date | None = None) -> str:
    """An export's file name: the view, what it holds and the date, e.g.
    'opportunities-EMA-Beds-2026-12-01.xlsx', so a folder of downloads says which is which."""
    today = today or dt.date.today()
    words = [_slug(view)] + [_slug(p) for p in parts if p]
    return f"{'-'.join(words)}-{today.isoformat()}.xlsx"


def range_words(t) -> str:
    """'80% range £61m–£76m' for a Totals."""
    return f"80% range {gbp_short(t.net_low_gbp)}–{gbp_short(t.net_high_gbp)}"


def headline(t) -> str:
    """The Overview headline: '£68.6m a year (80% range £61m–£76m)'."""
    return f"{gbp_short(t.net_gbp)} a year ({range_words(t)})"
