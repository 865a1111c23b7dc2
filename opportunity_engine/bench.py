"""Speed figures at a named scale (a benchmark, not a timed test): `python -m opportunity_engine.bench`.

Prints: demo build time; import throughput of a 1.5M-row outpatient CSV; full metric-facts
rebuild; and all-opportunities time beside a bare DuckDB GROUP BY over the facts table, the two
timed alternately (afresh: computed from the facts; cache hit: the engine's result cache, as the
app uses it).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from .analysis.opportunities import Basis, compute_opportunities, opportunities
from .demo import generator as demo
from .scope import Scope
from .store import db, facts
from .store.importer import import_files


def median_ms(fn, runs: int = 5) -> float:
    """Median wall time of ``runs`` calls, in milliseconds (less noisy than the mean on 2 shared cores)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def paired_ms(first, second, runs: int) -> tuple[float, float]:
    """Median wall times of two calls run alternately, in milliseconds. Alternating matters on a
    shared 2-core machine: its speed drifts over seconds, and timing one call's runs after the
    other's would put the drift into the ratio."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, out in zip((first, second), times):
            started = time.perf_counter()
            fn()
            out.append(time.perf_counter() - started)
    return statistics.median(times[0]) * 1000, statistics.median(times[1]) * 1000


BARE_SQL = """SELECT csu_code, specialty_code, metric_id, sum(numerator), sum(denominator)
              FROM metric_facts WHERE period > ? GROUP BY ALL"""


def _versus_bare(con, runs: int) -> tuple[float, float]:
    """The bare GROUP BY over the latest 12 months of facts, and every opportunity computed afresh."""
    cutoff = db.scalar(con, """SELECT strftime(strptime(max(period), '%Y-%m') - INTERVAL 12 MONTH, '%Y-%m')
                               FROM metric_facts""")
    return paired_ms(lambda: con.execute(BARE_SQL, [cutoff]).fetchall(),
                     lambda: compute_opportunities(con, Scope.trust(), Basis()), runs)


def run(scale: str = "trust", rows: int = 1_500_000, runs: int = 41, keep: Path | None = None) -> dict:
    work = Path(tempfile.mkdtemp(prefix="oe-bench-"))
    figures: dict[str, float] = {}
    try:
        path = work / "bench.duckdb"
        started = time.perf_counter()
        summary = demo.build(path, scale=scale)
        figures["demo_build_s"] = time.perf_counter() - started
        print(f"demo build ({scale}): {figures['demo_build_s']:.1f} s for "
              f"{sum(v for k, v in summary.rows.items() if k in ('spells', 'outpatients', 'theatre_sessions')):,} activity rows")

        csv_path = work / "outpatients.csv"
        with db.connect(path) as con:
            latest = db.scalar(con, "SELECT max(period) FROM outpatients")
            con.execute(f"""COPY (SELECT appointment_id, csu_code, specialty_code, appointment_date, attendance_type,
                                         outcome, pifu, virtual FROM outpatients
                                  WHERE period > strftime(strptime('{latest}', '%Y-%m') - INTERVAL 12 MONTH, '%Y-%m')
                                  ORDER BY appointment_id LIMIT {int(rows)})
                            TO '{csv_path}' (HEADER)""")
            n = db.scalar(con, f"SELECT count(*) FROM read_csv('{csv_path}')")
            started = time.perf_counter()
            result = import_files(con, [csv_path], loaded_by="bench")
            seconds = time.perf_counter() - started
            assert result.ok, result.report()
            figures["import_rows"] = n
            figures["import_s"] = seconds
            print(f"import {n:,}-row outpatient CSV (validate + replace 12 months + facts): {seconds:.1f} s "
                  f"= {n / seconds:,.0f} rows/s")

            con.begin()
            started = time.perf_counter()
            written = facts.rebuild_all(con)
            figures["facts_rebuild_s"] = time.perf_counter() - started
            con.commit()
            print(f"metric facts full rebuild: {figures['facts_rebuild_s']:.2f} s ({written:,} fact rows)")

            bare, cold = _versus_bare(con, runs)
            opportunities(con, Scope.trust(), Basis())
            cached = median_ms(lambda: opportunities(con, Scope.trust(), Basis()), runs)
            one_csu = median_ms(lambda: compute_opportunities(con, Scope.of("EMA"), Basis()), runs)
            facts_rows = db.scalar(con, "SELECT count(*) FROM metric_facts")
            figures.update(bare_ms=bare, cold_ms=cold, cached_ms=cached, one_csu_ms=one_csu)
            print(f"bare GROUP BY over metric_facts ({facts_rows:,} rows): {bare:.1f} ms")
            print(f"all opportunities, computed afresh: {cold:.1f} ms ({cold / bare:.2f} x bare)")
            print(f"all opportunities, engine cache hit: {cached:.2f} ms ({cached / bare:.2f} x bare)")
            print(f"one CSU's opportunities, computed afresh: {one_csu:.1f} ms")
        # The same pair on the database at rest (reopened, as the app finds it after a restart):
        # right after an import the bare GROUP BY is slower, which flatters the ratio.
        with db.connect(path) as con:
            bare, cold = _versus_bare(con, runs)
            figures.update(rest_bare_ms=bare, rest_cold_ms=cold)
            print(f"database at rest: bare GROUP BY {bare:.1f} ms, all opportunities afresh {cold:.1f} ms "
                  f"({cold / bare:.2f} x bare)")
        if keep:
            shutil.copy(path, keep)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="trust", choices=("small", "trust", "large"))
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--runs", type=int, default=41)
    args = parser.parse_args()
    run(args.scale, args.rows, args.runs)


if __name__ == "__main__":
    main()
