"""The engine's opportunities against an independent implementation: the whole maths as one SQL
query (tests/sql_oracle.py, the engine's own code until the maths moved to arrays for speed).

Every row, every column, for every target, benchmark, scope, filter and window on the small demo
trust, and on data built to hit the edges: codes missing from the reference tables, a metric
dropped from the catalogue, sources ending in different months, zero denominators.
"""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from opportunity_engine.analysis import lookups, stats
from opportunity_engine.analysis.opportunities import (
    COLUMNS,
    Basis,
    compute_opportunities,
    opportunities,
)
from opportunity_engine.scope import Scope
from opportunity_engine.store import db
from opportunity_engine.store.db import bump_data_version
from opportunity_engine.store.importer import import_files
from tests.sql_oracle import oracle_opportunities


def assert_same(engine: pd.DataFrame, oracle: pd.DataFrame) -> None:
    assert list(engine.columns) == COLUMNS == list(oracle.columns)
    assert len(engine) == len(oracle)
    for column in COLUMNS:
        a, b = engine[column], oracle[column]
        if a.dtype.kind in "fi" or b.dtype.kind in "fi":
            x, y = a.to_numpy(float), b.to_numpy(float)
            same = np.isclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True)
            assert same.all(), (column, engine.loc[~same, ["csu_code", "specialty_code", "metric_id"]].head(), x[~same][:3], y[~same][:3])
        else:
            x = [None if pd.isna(v) else v for v in a]
            y = [None if pd.isna(v) else v for v in b]
            assert x == y, (column, [(i, p, q) for i, (p, q) in enumerate(zip(x, y)) if p != q][:3])


def both(con, scope, basis, **filters) -> None:
    assert_same(compute_opportunities(con, scope, basis, **filters), oracle_opportunities(con, scope, basis, **filters))


@pytest.fixture(scope="module")
def demo_con(small_demo):
    con = db.connect(small_demo, read_only=True)
    yield con
    con.close()


@pytest.mark.parametrize("target", ["median", "top_quartile", "top_decile"])
@pytest.mark.parametrize("benchmark", ["peer", "internal"])
@pytest.mark.parametrize("scope", [Scope.trust(), Scope.of("EMA"), Scope.of("ABD", "CAR")], ids=["trust", "one", "two"])
def test_every_target_benchmark_and_scope(demo_con, target, benchmark, scope):
    both(demo_con, scope, Basis(target, benchmark))


@pytest.mark.parametrize("benchmark", ["peer", "internal"])
@pytest.mark.parametrize("filters", [{"metric": "op_dna_rate"}, {"specialty": "100"}, {"csu": "ABD"},
                                     {"csu": "ABD", "specialty": "100", "metric": "alos_elective"}],
                         ids=["metric", "specialty", "csu", "all"])
def test_filters(demo_con, benchmark, filters):
    both(demo_con, Scope.trust(), Basis("top_quartile", benchmark), **filters)
    both(demo_con, Scope.of("ABD", "EMA"), Basis("median", benchmark), **filters)


@pytest.mark.parametrize("period", [("2024-01", None), (None, "2025-06"), ("2024-04", "2024-09"), ("2030-01", None)],
                         ids=["from", "to", "both", "no-data"])
def test_chosen_months(demo_con, period):
    for benchmark in ("peer", "internal"):
        both(demo_con, Scope.trust(), Basis("median", benchmark, *period))


@pytest.mark.parametrize("benchmark", ["peer", "internal"])
def test_custom_targets_at_the_named_levels_equal_the_named_targets(demo_con, benchmark):
    for best, named in ((50, "median"), (25, "top_quartile"), (10, "top_decile")):
        custom = compute_opportunities(demo_con, Scope.trust(), Basis(f"best_{best}", benchmark))
        assert_same(custom, oracle_opportunities(demo_con, Scope.trust(), Basis(named, benchmark)))


@pytest.mark.slow
def test_edges_match_the_oracle(demo_copy):
    """Codes missing from the reference tables, a metric no longer in the catalogue, one source
    ending months earlier than the rest, and grains whose denominators sum to zero."""
    with db.connect(demo_copy) as con:
        latest = con.execute("SELECT max(period) FROM metric_facts").fetchone()[0]
        con.execute("""INSERT INTO metric_facts VALUES
            (?, 'ZZZ', '100', 'alos_elective', 500, 100, 'import'),   -- CSU not in csus
            (?, 'ABD', '999', 'alos_elective', 500, 100, 'import'),   -- specialty nobody lists
            (?, 'ABD', '100', 'not_a_metric', 5, 10, 'import'),       -- metric not in the catalogue
            (?, 'ABD', '777', 'op_dna_rate', 0, 0, 'import')          -- nothing booked
            """, [latest] * 4)
        # Workforce returns stop three months early: its window ends there.
        con.execute("DELETE FROM metric_facts WHERE metric_id LIKE 'wf_%' AND period > ?",
                    [con.execute("SELECT strftime(strptime(?, '%Y-%m') - INTERVAL 3 MONTH, '%Y-%m')", [latest]).fetchone()[0]])
        bump_data_version(con)
        for basis in (Basis(), Basis("top_decile", "internal"), Basis("median", "peer", None, latest)):
            both(con, Scope.trust(), basis)
            both(con, Scope.of("ABD"), basis)
        rows = compute_opportunities(con, Scope.trust(), Basis())
        assert {"ZZZ", "ABD"} <= set(rows["csu_code"])
        assert "not_a_metric" not in set(rows["metric_id"])
        assert "777" not in set(rows["specialty_code"])  # no denominator, no rate
        wf = rows[rows["metric_id"].str.startswith("wf_")]
        assert wf["period_to"].max() < latest


def test_an_empty_database_has_no_opportunities():
    con = db.memory()
    df = compute_opportunities(con, Scope.trust(), Basis())
    assert df.empty and list(df.columns) == COLUMNS
    assert_same(df, oracle_opportunities(con, Scope.trust(), Basis()))


def test_an_import_is_seen_at_once(demo_copy, tmp_path):
    """Look-ups are kept per data version: a new benchmark file changes targets on the next call,
    for the engine's cache and for a fresh computation alike."""
    with db.connect(demo_copy) as con:
        before = opportunities(con, Scope.trust(), Basis(), metric="op_dna_rate")
        compute_opportunities(con, Scope.trust(), Basis())
        csv = tmp_path / "benchmarks.csv"
        specialty = str(before["specialty_code"].iloc[0])
        csv.write_text("metric_id,specialty_code,peer_group,p10,p25,p50,p75,p90,source\n"
                       f"op_dna_rate,{specialty},peer,0.001,0.002,0.003,0.004,0.005,Stricter peers\n")
        result = import_files(con, [csv], loaded_by="test")
        assert result.ok, result.report()
        after = opportunities(con, Scope.trust(), Basis(), metric="op_dna_rate")
        fresh = compute_opportunities(con, Scope.trust(), Basis(), metric="op_dna_rate")
        assert_same(fresh, oracle_opportunities(con, Scope.trust(), Basis(), metric="op_dna_rate"))
        assert_same(after, fresh)
        stricter = after[after["specialty_code"] == specialty]
        assert not stricter.empty and (stricter["p50"] == 0.003).all()
        assert after["opportunity_gbp"].sum() > before["opportunity_gbp"].sum()


def test_two_databases_in_turn_each_get_their_own_lookups(small_demo, tmp_path):
    other = tmp_path / "other.duckdb"
    shutil.copy(small_demo, other)
    with db.connect(other) as con:
        con.execute("UPDATE unit_costs SET unit_cost_gbp = unit_cost_gbp * 2")
        bump_data_version(con)
    with db.connect(small_demo, read_only=True) as a, db.connect(other, read_only=True) as b:
        first = compute_opportunities(a, Scope.trust(), Basis())
        doubled = compute_opportunities(b, Scope.trust(), Basis())
        again = compute_opportunities(a, Scope.trust(), Basis())
        assert_same(again, first)
        assert doubled["opportunity_gbp"].sum() == pytest.approx(2 * first["opportunity_gbp"].sum())
        assert lookups.version(a) != lookups.version(b)


def test_facts_hold_one_row_per_grain_and_month(small_demo):
    """The query counts months as rows: that needs facts unique per (period, CSU, specialty, metric)."""
    with db.connect(small_demo, read_only=True) as con:
        dupes = con.execute("""SELECT count(*) FROM (SELECT 1 FROM metric_facts
                               GROUP BY period, csu_code, specialty_code, metric_id HAVING count(*) > 1)""").fetchone()[0]
    assert dupes == 0


def test_group_quantiles_match_numpy():
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 30, 500)
    values = rng.normal(size=500)
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    found, counts, out = stats.group_quantiles(keys, values, qs)
    for k, n, row in zip(found, counts, out):
        mine = values[keys == k]
        assert n == len(mine)
        assert np.allclose(row, np.quantile(mine, qs))
