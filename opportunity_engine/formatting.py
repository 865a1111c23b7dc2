"""How numbers are shown: £1.2m / £45k in the UI (exports keep exact values), metric values in
their own units. Pure functions, so pages never do arithmetic on money themselves."""
from __future__ import annotations

import math


def gbp_short(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v >= 1e6:
        return f"{sign}£{v / 1e6:.1f}m"
    if v >= 1e3:
        return f"{sign}£{v / 1e3:.0f}k"
    return f"{sign}£{v:,.0f}"


def gbp_whole(value: float | None) -> str:
    """Whole pounds with the sign before the £: '-£2,348' (tables where the exact figure matters)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{'-' if value < 0 else ''}£{abs(value):,.0f}"


def metric_value(value: float | None, value_format: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value_format == "percent":
        return f"{value * 100:.1f}%"
    if value_format == "days":
        return f"{value:.2f} days"
    if value_format == "minutes":
        return f"{value:.0f} min"
    if value_format == "gbp":
        return gbp_short(value)
    return f"{value:.2f}"


def units(value: float | None, unit: str) -> str:
    """A quantity in its unit: '7,584 bed days', '8.6 spells', '£413k agency spend', '0 bed days'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit.startswith("£"):  # money-valued gaps (e.g. agency spend) read as money
        return f"{gbp_short(value)} {unit[1:].strip()}"
    if value == 0:
        return f"0 {unit}"
    return f"{value:,.0f} {unit}" if abs(value) >= 10 else f"{value:,.1f} {unit}"


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def month(period: str | None) -> str:
    """'2025-04' as 'Apr 2025' (how the trust writes months); anything else unchanged."""
    if not period or len(period) != 7 or period[4] != "-" or not period[5:].isdigit() or not 1 <= int(period[5:]) <= 12:
        return period or "–"
    return f"{MONTHS[int(period[5:]) - 1]} {period[:4]}"


def months(period_from: str | None, period_to: str | None) -> str:
    """An analysis window: 'Apr 2025 to Mar 2026'."""
    return f"{month(period_from)} to {month(period_to)}"
