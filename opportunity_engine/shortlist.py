"""Shortlist selections: an opportunity a user marked for a scheme, with its figures at the time.

The full scheme workflow (CIP plan, QIA, tracking) builds on these rows; storing the snapshot now
means the number that motivated a scheme is never lost when the data are refreshed.
"""
from __future__ import annotations

import duckdb
import pandas as pd

from .opportunities import Basis, opportunities
from .scope import Scope, scope_filter


def add_selection(con: duckdb.DuckDBPyConnection, username: str, scope: Scope, basis: Basis,
                  csu: str, specialty: str, metric: str) -> int:
    """Store the selection with a snapshot of its opportunity; returns the new item id."""
    rows = opportunities(con, scope, basis, csu=csu, specialty=specialty, metric=metric)
    if rows.empty:
        raise ValueError("There is no opportunity for that CSU, specialty and metric.")
    r = rows.iloc[0]
    return con.execute(
        """INSERT INTO shortlist_items (csu_code, specialty_code, metric_id, target, benchmark, period_from,
               period_to, actual, target_value, opportunity_gbp, created_by)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING item_id""",
        [csu, specialty, metric, basis.target, basis.benchmark, r.period_from, r.period_to,
         float(r.actual), None if pd.isna(r.target_value) else float(r.target_value),
         float(r.opportunity_gbp), username]).fetchone()[0]


def selections(con: duckdb.DuckDBPyConnection, scope: Scope) -> pd.DataFrame:
    return con.execute(
        f"""SELECT i.*, m.metric_name FROM shortlist_items i JOIN metrics m USING (metric_id)
            WHERE {scope_filter('i.csu_code')} ORDER BY i.created_at DESC""",
        scope.sql_params()).df()
