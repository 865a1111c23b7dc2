"""The reference data shipped with the engine: the metric catalogue and the sourced unit costs.

A database is never without them: ``db.connect`` calls :func:`ensure` on every writable open,
so a new file made by ``init``, by any other command or by the app holds the shipped catalogue
(data/metrics.toml) and unit costs (data/unit_costs.csv) before a trust loads its own files. Only
what is missing is added: a metric id or cost driver already in the database, shipped or
imported, is the trust's and is left exactly as it is.

The catalogue's rules (analysis/catalogue.py) are checked by its own loader and tests; this
module only copies the rows, because the store sits below the analysis wing and may not import it.
"""
from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import duckdb

from ..config import DATA_DIR

METRICS_PATH = DATA_DIR / "metrics.toml"
UNIT_COSTS_PATH = DATA_DIR / "unit_costs.csv"
_LISTS = ("scheme_ideas", "quality_risks")


def _metric_rows(path: Path) -> list[dict]:
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    rows = []
    for metric_id, entry in raw.items():
        row = {"metric_id": metric_id, "metric_name": entry["name"], "origin": "catalogue"}
        row.update({k: (list(v) if k in _LISTS else v) for k, v in entry.items() if k != "name"})
        rows.append(row)
    return rows


def _unit_cost_rows(path: Path) -> list[tuple[str, str, float, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [(r["cost_driver"], r["specialty_code"], float(r["unit_cost_gbp"]), r["source"])
                for r in csv.DictReader(fh)]


def ensure(con: duckdb.DuckDBPyConnection, metrics_path: Path = METRICS_PATH,
           unit_costs_path: Path = UNIT_COSTS_PATH) -> dict[str, int]:
    """Add the shipped metrics and unit costs the database lacks; returns how many of each.

    Cheap when nothing is missing (two small reads and two counts), so it runs on every open."""
    have_metrics = {r[0] for r in con.execute("SELECT metric_id FROM metrics").fetchall()}
    have_drivers = {r[0] for r in con.execute("SELECT DISTINCT cost_driver FROM unit_costs").fetchall()}
    metrics = [m for m in _metric_rows(metrics_path) if m["metric_id"] not in have_metrics]
    costs = [c for c in _unit_cost_rows(unit_costs_path) if c[0] not in have_drivers]
    if not metrics and not costs:
        return {"metrics": 0, "unit_costs": 0}
    con.begin()
    try:
        for metric in metrics:
            names = list(metric)
            con.execute(f"INSERT INTO metrics ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                        [metric[n] for n in names])
        if costs:
            con.executemany("INSERT INTO unit_costs VALUES (?, ?, ?, ?)", costs)
        con.commit()
    except Exception:
        con.rollback()
        raise
    return {"metrics": len(metrics), "unit_costs": len(costs)}
