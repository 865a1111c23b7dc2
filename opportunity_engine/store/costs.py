"""Unit costs with their sources: viewed and edited by admin on the Data page (audited).

A unit cost changes every opportunity that uses its cost driver, so a change bumps the data
version (cached opportunities are recomputed).
"""
from __future__ import annotations

import math

import duckdb
import pandas as pd

from ..errors import InvalidInput, NotAllowed
from ..users import User
from . import audit
from .audit import transaction
from .db import bump_data_version


def unit_costs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("""SELECT cost_driver, specialty_code, unit_cost_gbp, source FROM unit_costs
                          ORDER BY cost_driver, specialty_code""").df()


def set_unit_cost(con: duckdb.DuckDBPyConnection, user: User, cost_driver: str, specialty: str,
                  unit_cost_gbp: float, source: str) -> None:
    if not user.can_manage_data:
        raise NotAllowed("Only an admin changes unit costs.")
    if unit_cost_gbp is None or not math.isfinite(float(unit_cost_gbp)) or float(unit_cost_gbp) < 0:
        raise InvalidInput(f"{cost_driver}: a unit cost is zero or more pounds.")
    if not str(source or "").strip():
        raise InvalidInput(f"{cost_driver}: say where the unit cost comes from (source).")
    with transaction(con):
        old = con.execute("SELECT unit_cost_gbp, source FROM unit_costs WHERE cost_driver = ? AND specialty_code = ?",
                          [cost_driver, specialty or ""]).fetchone()
        if old is None:
            raise InvalidInput(f"Unknown cost driver {cost_driver}; add new ones with a unit_costs import.")
        con.execute("UPDATE unit_costs SET unit_cost_gbp = ?, source = ? WHERE cost_driver = ? AND specialty_code = ?",
                    [float(unit_cost_gbp), source.strip(), cost_driver, specialty or ""])
        audit.record(con, user.username, "unit_cost", f"{cost_driver}/{specialty or 'all'}",
                     {"unit_cost_gbp": (old[0], float(unit_cost_gbp)), "source": (old[1], source.strip())})
        bump_data_version(con)
