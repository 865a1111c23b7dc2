"""Metric facts: activity aggregated to (period, CSU, specialty, metric, numerator, denominator).

Everything downstream (opportunities, trends, SPC, tracking evidence) reads ``metric_facts``, so a
new metric needs a catalogue entry and data, not code. Only the v1 metrics are derived from raw
activity here; their definitions follow data/metrics.toml. Facts are rebuilt per source and per
period, so an import of one month recomputes one month.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from .db import scalar


@dataclass(frozen=True)
class FactSource:
    """How one activity table turns into metric facts.

    ``rows`` is a SELECT over the activity table producing per-row columns; ``aggregates`` maps a
    metric id to SQL for its numerator and denominator over those rows. Everything is a constant
    of this module: no user value ever reaches these strings.
    """
    table: str
    rows: str
    grain: str  # columns that identify the grain besides period
    aggregates: dict[str, tuple[str, str]]


SOURCES: dict[str, FactSource] = {
    "spells": FactSource(
        table="spells",
        rows="""SELECT period, csu_code, specialty_code, admission_type, bads_eligible, readmitted_30d,
                       datediff('day', admission_date, discharge_date) AS los,
                       greatest(datediff('day', admission_date, procedure_date), 0) AS preop,
                       procedure_date IS NOT NULL AS has_procedure
                FROM spells""",
        grain="csu_code, specialty_code",
        aggregates={
            "alos_elective": ("sum(los) FILTER (admission_type = 'elective' AND los >= 1)",
                              "count(*) FILTER (admission_type = 'elective' AND los >= 1)"),
            "alos_non_elective": ("sum(los) FILTER (admission_type = 'non_elective')",
                                  "count(*) FILTER (admission_type = 'non_elective')"),
            # Elective spells WITH a procedure (the catalogue's denominator). Not "preop IS NOT
            # NULL": greatest() skips a NULL, so a spell without a procedure has preop 0 and was
            # counted, diluting the rate and understating the trust's pre-op £ by about a quarter.
            "preop_bed_days": ("sum(preop) FILTER (admission_type IN ('elective', 'day_case') AND has_procedure)",
                               "count(*) FILTER (admission_type IN ('elective', 'day_case') AND has_procedure)"),
            "daycase_rate_bads": ("count(*) FILTER (admission_type = 'day_case' AND bads_eligible = 1)",
                                  "count(*) FILTER (admission_type IN ('elective', 'day_case') AND bads_eligible = 1)"),
            "long_stay_21": ("sum(greatest(los - 21, 0)) FILTER (admission_type = 'non_elective')",
                             "count(*) FILTER (admission_type = 'non_elective')"),
            "readmission_30d": ("sum(readmitted_30d)", "count(*)"),
        },
    ),
    "outpatients": FactSource(
        table="outpatients",
        rows="SELECT period, csu_code, specialty_code, attendance_type, outcome, pifu, virtual FROM outpatients",
        grain="csu_code, specialty_code",
        aggregates={
            "op_dna_rate": ("count(*) FILTER (outcome = 'dna')", "count(*)"),
            "op_new_fu_ratio": ("count(*) FILTER (attendance_type = 'follow_up' AND outcome = 'attended')",
                                "count(*) FILTER (attendance_type = 'first' AND outcome = 'attended')"),
            "op_pifu_rate": ("count(*) FILTER (attendance_type = 'follow_up' AND pifu = 1)",
                             "count(*) FILTER (attendance_type = 'follow_up')"),
            "op_virtual_rate": ("count(*) FILTER (outcome = 'attended' AND virtual = 1)",
                                "count(*) FILTER (outcome = 'attended')"),
            "op_hospital_cancel": ("count(*) FILTER (outcome = 'hospital_cancelled')", "count(*)"),
        },
    ),
    "theatre_sessions": FactSource(
        table="theatre_sessions",
        rows="SELECT * FROM theatre_sessions",
        grain="csu_code, specialty_code",
        aggregates={
            "theatre_capped_util": ("sum(least(used_minutes, planned_minutes))", "sum(planned_minutes)"),
            "theatre_late_start": ("sum(late_start_minutes)", "sum(planned_minutes)"),
            "theatre_early_finish": ("sum(early_finish_minutes)", "sum(planned_minutes)"),
            "theatre_on_day_cancel": ("sum(on_day_cancellations)", "sum(cases + on_day_cancellations)"),
        },
    ),
    "workforce": FactSource(
        table="workforce",
        rows="""SELECT period, csu_code, '' AS specialty_code, substantive_cost_gbp, bank_cost_gbp,
                       agency_cost_gbp, sickness_fte_days, available_fte_days FROM workforce""",
        grain="csu_code, specialty_code",
        aggregates={
            "wf_agency_share": ("sum(agency_cost_gbp)",
                                "sum(substantive_cost_gbp + bank_cost_gbp + agency_cost_gbp)"),
            "wf_bank_share": ("sum(bank_cost_gbp)",
                              "sum(substantive_cost_gbp + bank_cost_gbp + agency_cost_gbp)"),
            "wf_sickness_rate": ("sum(sickness_fte_days)", "sum(available_fte_days)"),
        },
    ),
}

ACTIVITY_METRICS = {m: name for name, src in SOURCES.items() for m in src.aggregates}


def rebuild(con: duckdb.DuckDBPyConnection, source_name: str, periods: list[str] | None = None,
            cells: str | None = None) -> int:
    """Recompute the activity facts of one source: for the given periods, or for the (period,
    csu_code) cells listed in the table named ``cells`` (an import's), or all (both None).

    An import rebuilds only the cells it loaded, so a monthly refresh costs the same on five
    years of history as on one. Runs inside the caller's transaction when there is one, so an
    import and its facts commit together. Returns the number of fact rows written.
    """
    source = SOURCES[source_name]
    params: dict = {"metrics": list(source.aggregates)}
    where = ""
    if cells is not None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", cells):
            raise ValueError(f"not a staging table name: {cells!r}")
        where = f"(period, csu_code) IN (SELECT period, csu_code FROM {cells})"
    elif periods is not None:
        params["periods"] = sorted(set(periods))
        where = "list_contains($periods, period)"
    con.execute(f"DELETE FROM metric_facts WHERE source = 'activity' AND list_contains($metrics, metric_id)"
                f"{' AND ' + where if where else ''}", params)
    params.pop("metrics")
    before = scalar(con, "SELECT count(*) FROM metric_facts")
    con.execute(f"""INSERT INTO metric_facts (period, csu_code, specialty_code, metric_id, numerator, denominator, source)
                    {_select_sql(source, where)}""", params)
    if source_name == "spells":
        rebuild_hrg(con, where, params)
    return int(scalar(con, "SELECT count(*) FROM metric_facts")) - before


# The length-of-stay metrics whose targets are adjusted for case mix, and the admission type of
# the HRG benchmarks each reads. Their spells and bed days per HRG use the same filters as the
# metrics' own numerator and denominator above, so a grain's HRG spells add up to (at most) its
# denominator; spells with no HRG code are the rest.
CASEMIX_METRICS = {"alos_elective": "elective", "alos_non_elective": "non_elective"}
_HRG_FILTERS = {"alos_elective": "admission_type = 'elective' AND los >= 1",
                "alos_non_elective": "admission_type = 'non_elective'"}


def rebuild_hrg(con: duckdb.DuckDBPyConnection, where: str = "", params: dict | None = None) -> None:
    """Recompute ``hrg_facts`` (spells, bed days and ages per grain, LOS metric and HRG) for the
    rows :func:`rebuild` chose (its ``where`` over period and csu_code, a constant of this module,
    and its parameters; "" = all), inside the caller's transaction like it."""
    params = params or {}
    in_periods = where or "true"
    con.execute(f"DELETE FROM hrg_facts WHERE {in_periods}", params)
    parts = " UNION ALL ".join(
        f"""SELECT period, csu_code, specialty_code, '{metric_id}', hrg_code, count(*), sum(los),
                   coalesce(sum(age), 0), count(age)
            FROM r WHERE {condition} GROUP BY period, csu_code, specialty_code, hrg_code"""
        for metric_id, condition in _HRG_FILTERS.items())
    con.execute(f"""
        INSERT INTO hrg_facts (period, csu_code, specialty_code, metric_id, hrg_code, spells, bed_days, age_sum, aged)
        WITH r AS (SELECT period, csu_code, specialty_code, admission_type, trim(hrg_code) AS hrg_code, age,
                          datediff('day', admission_date, discharge_date) AS los
                   FROM spells WHERE nullif(trim(hrg_code), '') IS NOT NULL AND {in_periods})
        {parts}""", params)


def _select_sql(source: FactSource, where: str) -> str:
    """One pass over the activity table; each metric becomes a row via a LATERAL VALUES list."""
    columns = ",\n".join(
        f"coalesce({num}, 0) AS n_{i}, coalesce({den}, 0) AS d_{i}"
        for i, (num, den) in enumerate(source.aggregates.values())
    )
    values = ", ".join(
        f"('{mid}', n_{i}, d_{i})" for i, mid in enumerate(source.aggregates)
    )
    return f"""
        WITH r AS ({source.rows}),
             agg AS (SELECT period, {source.grain}, {columns} FROM r {'WHERE ' + where if where else ''} GROUP BY ALL)
        SELECT agg.period, agg.csu_code, agg.specialty_code, v.metric_id, v.num, v.den, 'activity'
        FROM agg, LATERAL (VALUES {values}) v(metric_id, num, den)
        WHERE v.den > 0
    """


def rebuild_all(con: duckdb.DuckDBPyConnection) -> int:  # spells' rebuild includes hrg_facts
    return sum(rebuild(con, name) for name in SOURCES)
