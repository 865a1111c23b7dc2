"""Usage events and the adoption-and-value view.

Events carry no patient data: who (username, role, the user's CSUs), when, which page or
action. Trust-wide users (finance, admin, viewer) count under "Trust-wide".
"""
from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from .config import settings
from .store.statuses import COMMITTED
from .users import User

EVENTS = ("sign_in", "page_view", "export", "import", "scheme_created", "feedback")


def record(con: duckdb.DuckDBPyConnection, user: User, event: str, page: str = "", detail: str = "") -> None:
    if event not in EVENTS:
        raise ValueError(f"Unknown usage event {event}.")
    con.execute("INSERT INTO usage_events (username, role, csus, event, page, detail) VALUES (?, ?, ?, ?, ?, ?)",
                [user.username, user.role, list(user.csus), event, page, detail[:200]])


def by_csu_week(con: duckdb.DuckDBPyConnection, weeks: int = 12, today: dt.date | None = None) -> pd.DataFrame:
    """Events per CSU (a CSU user's events count for each of their CSUs) and ISO week."""
    since = (today or dt.date.today()) - dt.timedelta(weeks=weeks)
    return con.execute("""
        WITH e AS (
            SELECT date_trunc('week', event_at)::DATE AS week, event, username,
                   unnest(CASE WHEN len(csus) = 0 THEN ['Trust-wide'] ELSE csus END) AS csu_code
            FROM usage_events WHERE event_at >= $since
        )
        SELECT week, csu_code, count(*) AS events, count(DISTINCT username) AS users,
               count(*) FILTER (WHERE event = 'page_view') AS page_views,
               count(*) FILTER (WHERE event = 'export') AS exports,
               count(*) FILTER (WHERE event = 'scheme_created') AS schemes_created
        FROM e GROUP BY week, csu_code ORDER BY week, csu_code""", {"since": since}).df()


def inactive_csus(con: duckdb.DuckDBPyConnection, days: int | None = None,
                  today: dt.date | None = None) -> pd.DataFrame:
    """CSUs with no event from any of their users in the last ``days`` days (support targets)."""
    days = days or int(settings().get("usage", {}).get("inactive_days", 28))
    since = (today or dt.date.today()) - dt.timedelta(days=days)
    return con.execute("""
        WITH e AS (SELECT unnest(csus) AS csu_code, event_at FROM usage_events),
        last_seen AS (SELECT csu_code, max(event_at) AS last_used FROM e GROUP BY csu_code)
        SELECT c.csu_code, c.csu_name, l.last_used FROM csus c LEFT JOIN last_seen l USING (csu_code)
        WHERE l.last_used IS NULL OR l.last_used < $since ORDER BY l.last_used NULLS FIRST, c.csu_name""",
        {"since": since}).df()


def value(con: duckdb.DuckDBPyConnection, evidenced: dict[int, float] | None = None) -> pd.DataFrame:
    """Schemes that originated in the tool (created from an opportunity) by CSU: how many, £ FYE
    planned, £ realised, and (when given, scheme_id → £) £ evidenced by the data."""
    df = con.execute("""
        SELECT s.csu_code, c.csu_name, s.scheme_id, s.status, coalesce(p.fye_gbp, 0) AS planned_fye_gbp,
               (SELECT coalesce(sum(realised_gbp), 0) FROM realised_savings r WHERE r.scheme_id = s.scheme_id)
                   AS realised_gbp
        FROM schemes s JOIN csus c USING (csu_code) LEFT JOIN cip_plans p USING (scheme_id)
        WHERE s.origin = 'opportunity'""").df()
    df["evidenced_gbp"] = df["scheme_id"].map(evidenced or {}).fillna(0.0) if len(df) else 0.0
    return (df.assign(schemes=1, committed=df["status"].isin(COMMITTED).astype(int))
              .groupby(["csu_code", "csu_name"], as_index=False)
              [["schemes", "committed", "planned_fye_gbp", "realised_gbp", "evidenced_gbp"]].sum()
              .sort_values("planned_fye_gbp", ascending=False).reset_index(drop=True))


def value_totals(value_by_csu: pd.DataFrame) -> dict[str, float]:
    """Trust totals of :func:`value` (Adoption page headline)."""
    cols = ("schemes", "committed", "planned_fye_gbp", "realised_gbp", "evidenced_gbp")
    return {c: float(value_by_csu[c].sum()) if len(value_by_csu) else 0.0 for c in cols}
