"""Plausibility limits shared by the app's forms and the importer (stated once, here).

A value outside them is a typo, not data: one workforce row for 2999-04 once moved every
workforce metric's latest-12-months window and took the trust's opportunity from £14.1m to £1.1k.
The window runs from ``[import] earliest_year`` (default 2000, so years of history load) to the
current month plus ``[import] future_grace_months`` (default 1).
"""
from __future__ import annotations

import datetime as dt

from ..config import settings

MAX_REALISED_GBP = 1e9  # one scheme's realised saving in one month: the Tracking form's limit too


def _cfg() -> dict:
    return settings().get("import", {})


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_window(today: dt.date | None = None) -> tuple[str, str]:
    """The first and last plausible periods (YYYY-MM)."""
    today = today or dt.date.today()
    last = _add_months(today.replace(day=1), int(_cfg().get("future_grace_months", 1)))
    return f"{int(_cfg().get('earliest_year', 2000)):04d}-01", f"{last.year:04d}-{last.month:02d}"


def date_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The first and last plausible dates: 1 January of the earliest year to the end of the last period."""
    first, last = period_window(today)
    year, month = (int(x) for x in last.split("-"))
    end = _add_months(dt.date(year, month, 1), 1) - dt.timedelta(days=1)
    return dt.date(int(first[:4]), 1, 1), end


def window_rule() -> str:
    first, last = period_window()
    return f"is outside the plausible window {first} to {last} ([import] earliest_year, future_grace_months)"
