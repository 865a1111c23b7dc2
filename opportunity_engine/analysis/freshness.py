"""How old the data are: the latest month held against the last complete month of the calendar.

A trust that stops loading extracts still sees figures; without a word they look current, and a
scheme's evidence says "not enough data" for no visible reason. The pages show a banner when the
gap exceeds ``[freshness] stale_after_months`` in config.toml.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from ..config import settings
from ..formatting import month
from . import lookups


@dataclass(frozen=True)
class DataAge:
    latest: str | None        # latest period held, 'YYYY-MM' (None: no data)
    last_complete: str        # the last complete calendar month before today
    months_behind: int        # how many months the latest is before last_complete (0: up to date)


def last_complete_month(today: dt.date) -> str:
    previous = today.replace(day=1) - dt.timedelta(days=1)
    return f"{previous.year:04d}-{previous.month:02d}"


def data_age(con: duckdb.DuckDBPyConnection, today: dt.date | None = None) -> DataAge:
    # The latest month of each metric is held with the look-ups of the data version (every page
    # shows this banner: a scan of metric_facts per page view was waste).
    latest = max(lookups.get(con).latest.values(), default=None)
    complete = last_complete_month(today or dt.date.today())
    if latest is None:
        return DataAge(None, complete, 0)
    behind = (int(complete[:4]) * 12 + int(complete[5:])) - (int(latest[:4]) * 12 + int(latest[5:]))
    return DataAge(latest, complete, max(0, behind))


def stale_after_months() -> int:
    return int(settings()["freshness"]["stale_after_months"])


def stale_warning(con: duckdb.DuckDBPyConnection, today: dt.date | None = None, limit: int | None = None) -> str | None:
    """A sentence for the banner when the data are older than ``limit`` months, else None."""
    age = data_age(con, today)
    limit = stale_after_months() if limit is None else limit
    if age.latest is None or age.months_behind <= limit:
        return None
    return (f"The latest data are for {month(age.latest)}, {age.months_behind} months before the last complete month "
            f"({month(age.last_complete)}). Figures, trends and scheme evidence stop there: ask the information "
            "team to load the latest extracts (Data page).")
