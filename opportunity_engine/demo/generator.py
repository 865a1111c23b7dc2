"""The synthetic trust: a deterministic demo database for a seed and a scale.

Row-level activity (spells, outpatient appointments, theatre sessions, monthly workforce) is
generated inside DuckDB from a small per-specialty parameter table, so the ``trust`` scale (about
7 million rows) builds in seconds, not minutes. Randomness is ``hash(seed, specialty, row, k)``:
the same seed gives the same database on every machine with the pinned DuckDB.

Each (specialty, metric) gets a performance factor ``f`` (1 = typical; above 1 worse): most are
near typical, a few are clear outliers, about a fifth beat the benchmark, and a handful of
specialties improve over time. Peer benchmarks are then set so that the trust sits at ``f`` times
the peer median over the latest year, which keeps the designed outliers visible whatever the
sampling noise.
"""
from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ..analysis import catalogue
from ..config import DATA_DIR, settings
from ..store import facts
from ..store.db import bump_data_version, connect, get_setting, scalar, set_setting
from ..users import add_demo_users
from .reference import CSUS, KINDS, specialty_rows

SCALES = {
    # name: (fraction of a large acute trust's yearly volumes, months of data)
    "small": (0.03, 36),
    "trust": (1.0, 36),
    "large": (1.0, 60),
}


def data_window(scale: str, as_of: date | None = None) -> tuple[float, date, date]:
    """(fraction, first day, last day) of a demo built on ``as_of`` (default today): the data end
    on the last day of the last complete month before it, as a real extract run that day would,
    so a demo built in December does not look eight months old. Same seed and date, same data."""
    fraction, months = SCALES[scale]
    as_of = as_of or date.today()
    last = date(as_of.year, as_of.month, 1) - timedelta(days=1)
    index = last.year * 12 + last.month - 1 - (months - 1)
    return fraction, date(index // 12, index % 12 + 1, 1), last
# Yearly volumes of a large acute trust (the `trust` scale).
YEARLY = {"spells": 250_000, "outpatients": 1_500_000, "theatre_sessions": 25_000}

# metric id -> factor key used by the generator (and for placing the peer benchmark)
METRIC_FACTOR = {
    "alos_elective": "alos_el", "alos_non_elective": "alos_nel", "preop_bed_days": "preop",
    "daycase_rate_bads": "dc", "long_stay_21": "long", "readmission_30d": "readm",
    "theatre_capped_util": "gap", "theatre_late_start": "late", "theatre_early_finish": "early",
    "theatre_on_day_cancel": "cancel", "op_dna_rate": "dna", "op_new_fu_ratio": "fu",
    "op_pifu_rate": "pifu", "op_virtual_rate": "virt", "op_hospital_cancel": "hc",
}
FACTOR_KEYS = sorted(set(METRIC_FACTOR.values()))
TREND_KEYS = ("alos_nel", "dna")  # improving specialties improve on these
# Case mix. Each kind of specialty codes its spells to one family of HRGs (specialties of a family
# share HRGs, as real specialties share HRG chapters): two procedure groups x four complexity
# levels (A most complex). Complexity follows age and the unit's severity, so a unit with older,
# sicker patients has a longer crude stay and the same adjusted one.
HRG_FAMILY = {"surgical": "FF", "procedural": "FF", "medical": "DZ", "emergency": "DZ", "elderly": "DZ",
              "maternity": "NZ", "paediatric": "PW", "critical": "XC", "outpatient": ""}
# Per family: typical elective and non-elective stay, and the age its complexity is measured from.
# An HRG, not a specialty, sets the stay: older patients code to more complex HRGs and stay longer.
FAMILY = {"FF": (3.0, 4.2, 57, 18), "DZ": (2.4, 5.0, 66, 18), "NZ": (2.2, 2.0, 30, 6),
          "PW": (2.0, 1.8, 7, 5), "XC": (5.0, 8.0, 60, 16), "": (0.0, 0.0, 50, 20)}
AGE = {"surgical": (58, 18), "procedural": (55, 18), "medical": (64, 18), "emergency": (62, 20),
       "elderly": (82, 7), "maternity": (30, 6), "paediatric": (7, 5), "critical": (60, 16), "outpatient": (50, 20)}
# HRGs the demo's peer HRG benchmarks leave out: their spells fall back to the plain benchmark.
NO_HRG_BENCHMARK = ("FF20A",)
WORKFORCE_PEER = {  # metric: (p10, p25, p50, p75, p90) of peer trusts' CSUs
    "wf_agency_share": (0.020, 0.027, 0.035, 0.045, 0.060),
    "wf_bank_share": (0.035, 0.048, 0.060, 0.075, 0.090),
    "wf_sickness_rate": (0.040, 0.045, 0.050, 0.055, 0.062),
}


@dataclass(frozen=True)
class DemoSummary:
    path: str
    seed: int
    scale: str
    rows: dict[str, int]


def _factor(rng: random.Random) -> float:
    """Performance factor: mostly near typical, ~7% clear outliers, ~20% beating the benchmark."""
    draw = rng.random()
    if draw < 0.07:
        return rng.uniform(1.35, 1.65)
    if draw < 0.27:
        return rng.uniform(0.80, 0.93)
    return math.exp(rng.gauss(0.05, 0.07))


def specialty_parameters(seed: int, scale: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-specialty generator parameters and the (specialty, metric) factors at the latest year."""
    fraction, months = SCALES[scale]
    years = months / 12
    rng = random.Random(seed)
    specs = specialty_rows()
    weights = {}
    for code, _, _, kind in specs:
        k = KINDS[kind]
        jitter = rng.uniform(0.5, 1.5)
        weights[code] = {w: k[w] * jitter for w in ("w_sp", "w_op", "w_th")}
    totals = {w: sum(v[w] for v in weights.values()) for w in ("w_sp", "w_op", "w_th")}
    improving = set(rng.sample([s[0] for s in specs if KINDS[s[3]]["w_sp"] > 0], 5))
    csu_severity = {c: random.Random(seed * 104729 + i).gauss(0, 1) for i, (c, _, _) in enumerate(CSUS)}
    rows, factors = [], []
    for index, (code, _, csu, kind) in enumerate(specs):
        k = KINDS[kind]
        row: dict[str, Any] = {"specialty_code": code, "csu_code": csu, "kind": kind, "spec_index": index}
        row.update({f"n_{key}": k[key] for key in ("nel", "alos_el", "alos_nel", "preop", "bads", "dc", "readm",
                                                   "dna", "fu", "pifu", "virt", "hc", "late", "early", "gap", "cancel")})
        for volume, w, table in (("n_spells", "w_sp", "spells"), ("n_op", "w_op", "outpatients"),
                                 ("n_th", "w_th", "theatre_sessions")):
            share = weights[code][w] / totals[w] if totals[w] else 0
            row[volume] = int(round(YEARLY[table] * fraction * years * share))
        for key in FACTOR_KEYS:
            row[f"f_{key}"] = _factor(rng)
        row["trend_gain"] = 0.45 if code in improving else 0.0
        # Severity of the unit's case mix (0 typical): the specialty's own and its CSU's.
        severity = 0.8 * rng.gauss(0, 1) + 0.5 * csu_severity[csu]
        row["hrg_family"] = HRG_FAMILY[kind]
        row["fam_el"], row["fam_nel"], row["fam_age"], row["fam_age_sd"] = FAMILY[HRG_FAMILY[kind]]
        row["severity"] = severity
        row["age_mean"] = AGE[kind][0] + 5 * severity
        row["age_sd"] = AGE[kind][1]
        row["uncoded"] = rng.uniform(0.01, 0.14)  # spells the unit sends without an HRG
        rows.append(row)
        for metric_id, key in METRIC_FACTOR.items():
            f = row[f"f_{key}"]
            if key in TREND_KEYS:
                f *= 1 + row["trend_gain"] / 6  # mean of (1 + gain * (1 - t)) over the last third
            factors.append({"specialty_code": code, "metric_id": metric_id, "f_eff": f})
    return pd.DataFrame(rows), pd.DataFrame(factors)


def csu_parameters(seed: int) -> pd.DataFrame:
    rng = random.Random(seed * 7919 + 1)
    out = []
    for code, _, _ in CSUS:
        out.append({"csu_code": code, "monthly_pay": rng.uniform(2.0e6, 7.5e6),
                    "f_agency": _factor(rng) if rng.random() > 0.15 else rng.uniform(1.6, 2.2),
                    "f_bank": _factor(rng), "f_sick": _factor(rng)})
    return pd.DataFrame(out)


# DuckDB's multi-argument hash() combines its arguments weakly: hash(a, b, i, 1) and
# hash(a, b, i, 2) are correlated. So each row is hashed once (row_hash) and every uniform
# re-hashes that value XOR a distinct odd constant, which goes through the full mixer.
def _u(k: int) -> str:
    constant = (0x9E3779B97F4A7C15 * (k + 1)) % (1 << 63)
    return f"(hash(xor(row_hash, {constant}::UBIGINT)) / 18446744073709551616.0)"


def _ln(k: int) -> str:
    return f"ln(greatest({_u(k)}, 1e-12))"


SPELLS_SQL = f"""
INSERT INTO spells
WITH base AS (
    SELECT s.*, i, {_u(1)} AS t,
           {_u(2)} AS u_type, {_u(3)} AS u_bads, {_u(4)} AS u_dc, {_u(5)} AS u_proc,
           {_u(6)} AS u_pre, {_u(7)} AS u_readm, {_u(8)} AS u_long, -{_ln(9)} AS e_los, -{_ln(10)} AS e_long,
           sqrt(-2 * {_ln(11)}) * cos(2 * pi() * {_u(12)}) AS z_age, {_u(13)} AS u_cx, {_u(14)} AS u_group,
           {_u(15)} AS u_coded
    FROM (SELECT *, hash($seed, specialty_code, i) AS row_hash FROM (SELECT *, unnest(range(n_spells)) AS i FROM demo_spec WHERE n_spells > 0)) s
), aged AS (
    SELECT *, least(105, greatest(0, round(age_mean + age_sd * z_age)))::INTEGER AS age FROM base
), complex AS (
    -- Complexity score from age (against the family's usual patients) and the unit's severity.
    SELECT *, (age - fam_age) / fam_age_sd + 0.6 * severity + 1.4 * (u_cx - 0.5) AS cx,
           CASE WHEN u_group < 0.35 THEN 2 ELSE 1 END AS hrg_group
    FROM aged
), coded AS (
    SELECT *,
        CASE WHEN cx > 1.0 THEN 'A' WHEN cx > 0.2 THEN 'B' WHEN cx > -0.6 THEN 'C' ELSE 'D' END AS level,
        -- Length-of-stay multiplier of the HRG: ~1 for a typical mix.
        CASE WHEN cx > 1.0 THEN 1.8 WHEN cx > 0.2 THEN 1.2 WHEN cx > -0.6 THEN 0.85 ELSE 0.6 END
            * CASE WHEN u_group < 0.35 THEN 1.25 ELSE 0.9 END AS m_hrg
    FROM complex
), typed AS (
    SELECT *,
        CASE WHEN u_type < n_nel THEN 'non_elective'
             WHEN u_bads < n_bads THEN CASE WHEN u_dc < least(0.98, n_dc / f_dc) THEN 'day_case' ELSE 'elective' END
             ELSE CASE WHEN u_dc < 0.40 THEN 'day_case' ELSE 'elective' END END AS admission_type,
        f_alos_nel * (1 + trend_gain * (1 - t)) AS f_nel_t
    FROM coded
), los AS (
    SELECT *,
        CASE admission_type
            WHEN 'day_case' THEN 0
            WHEN 'elective' THEN greatest(1, round(e_los * fam_el * f_alos_el * m_hrg))
            ELSE round(e_los * fam_nel * f_nel_t * m_hrg)
                 + CASE WHEN u_long < 0.03 * (n_alos_nel / 6) * f_long THEN 21 + round(e_long * 10) ELSE 0 END
        END::INTEGER AS los,
        $first::DATE + floor(t * $days)::INTEGER AS discharge_date
    FROM typed
)
SELECT 'SP' || specialty_code || '-' || lpad(i::VARCHAR, 8, '0'),
       csu_code, specialty_code,
       discharge_date - los AS admission_date, discharge_date, admission_type,
       CASE WHEN admission_type <> 'non_elective' AND u_bads < n_bads THEN 1 ELSE 0 END,
       CASE WHEN admission_type = 'day_case' THEN discharge_date - los
            WHEN admission_type = 'elective' AND u_proc < 0.9 THEN
                 discharge_date - los + least(los, (u_pre < 2 * n_preop * f_preop)::INTEGER
                                                    + (u_pre < 0.4 * n_preop * f_preop)::INTEGER)
       END,
       (u_readm < n_readm * f_readm)::INTEGER,
       strftime(discharge_date, '%Y-%m'),
       CASE WHEN u_coded >= uncoded AND hrg_family <> '' THEN hrg_family || hrg_group || '0' || level END,
       age
FROM los
ORDER BY discharge_date, csu_code, specialty_code, i  -- stored month by month, as a trust's loads arrive
"""

OUTPATIENTS_SQL = f"""
INSERT INTO outpatients
WITH base AS (
    SELECT s.*, i, {_u(1)} AS t, {_u(2)} AS u_first, {_u(3)} AS u_out, {_u(4)} AS u_pifu, {_u(5)} AS u_virt
    FROM (SELECT *, hash($seed, specialty_code, i) AS row_hash FROM (SELECT *, unnest(range(n_op)) AS i FROM demo_spec WHERE n_op > 0)) s
), typed AS (
    SELECT *, CASE WHEN u_first < 1 / (1 + n_fu * f_fu) THEN 'first' ELSE 'follow_up' END AS attendance_type,
           n_dna * f_dna * (1 + trend_gain * (1 - t)) AS p_dna,
           $first::DATE + floor(t * $days)::INTEGER AS appointment_date
    FROM base
)
SELECT 'OP' || specialty_code || '-' || lpad(i::VARCHAR, 9, '0'), csu_code, specialty_code, appointment_date,
       attendance_type,
       CASE WHEN u_out < p_dna THEN 'dna'
            WHEN u_out < p_dna + 0.05 THEN 'patient_cancelled'
            WHEN u_out < p_dna + 0.05 + n_hc * f_hc THEN 'hospital_cancelled'
            ELSE 'attended' END,
       (attendance_type = 'follow_up' AND u_pifu < n_pifu / f_pifu)::INTEGER,
       (u_virt < n_virt / f_virt)::INTEGER,
       strftime(appointment_date, '%Y-%m')
FROM typed
ORDER BY appointment_date, csu_code, specialty_code, i
"""

THEATRE_SQL = f"""
INSERT INTO theatre_sessions
WITH base AS (
    SELECT s.*, i, {_u(1)} AS t, {_u(2)} AS u_len, -{_ln(3)} AS e_late, -{_ln(4)} AS e_early,
           {_u(5)} AS u_gap, {_u(6)} AS u_over, {_u(7)} AS u_over_len, {_u(8)} AS u_cases, {_u(9)} AS u_cancel
    FROM (SELECT *, hash($seed, specialty_code, i) AS row_hash FROM (SELECT *, unnest(range(n_th)) AS i FROM demo_spec WHERE n_th > 0)) s
), mins AS (
    SELECT *, CASE WHEN u_len < 0.7 THEN 240 ELSE 480 END AS planned,
           $first::DATE + floor(t * $days)::INTEGER AS session_date
    FROM base
), parts AS (
    SELECT *, least(planned // 2, round(e_late * n_late * f_late * planned))::INTEGER AS late,
              least(planned // 3, round(e_early * n_early * f_early * planned))::INTEGER AS early,
              round(2 * u_gap * n_gap * f_gap * planned)::INTEGER AS gap,
              (CASE WHEN planned = 240 THEN 2 ELSE 4 END + floor(u_cases * 4))::INTEGER AS cases
    FROM mins
)
SELECT 'TH' || specialty_code || '-' || lpad(i::VARCHAR, 7, '0'), csu_code, specialty_code, session_date,
       planned,
       greatest(0, planned - late - early - gap + CASE WHEN u_over < 0.12 THEN round(u_over_len * 45)::INTEGER ELSE 0 END),
       late, early, cases, (u_cancel < cases * n_cancel * f_cancel)::INTEGER,
       strftime(session_date, '%Y-%m')
FROM parts
ORDER BY session_date, csu_code, specialty_code, i
"""

WORKFORCE_SQL = """
INSERT INTO workforce
WITH months AS (
    SELECT strftime(m, '%Y-%m') AS period, row_number() OVER (ORDER BY m) AS month_no
    FROM generate_series($first::DATE, $last::DATE, INTERVAL 1 MONTH) g(m)
), groups AS (
    SELECT * FROM (VALUES (1, 'Nursing and midwifery', 0.45, 1.3), (2, 'Medical and dental', 0.30, 0.8),
                          (3, 'Allied health professionals', 0.12, 1.0), (4, 'Administrative and clerical', 0.13, 0.5))
                  g(gid, staff_group, pay_share, agency_weight)
), grid AS (
    SELECT c.*, m.*, g.*,
           hash(xor(hash($seed, csu_code, month_no, gid), 11400714819323198485::UBIGINT)) / 18446744073709551616.0 AS u1,
           hash(xor(hash($seed, csu_code, month_no, gid), 4354685564936845355::UBIGINT)) / 18446744073709551616.0 AS u2
    FROM demo_csu c, months m, groups g
), amounts AS (
    SELECT *, monthly_pay * pay_share * (0.97 + 0.06 * u1) AS total_pay,
           0.035 * f_agency * agency_weight * (0.8 + 0.4 * u2) AS agency_share,
           0.060 * f_bank * (0.85 + 0.3 * u1) AS bank_share
    FROM grid
)
SELECT period, csu_code, staff_group,
       round(total_pay * (1 - agency_share - bank_share), 2), round(total_pay * bank_share, 2),
       round(total_pay * agency_share, 2),
       round(total_pay / 3800, 1) AS wte,
       round(total_pay / 3800 * 20.8 * 0.050 * f_sick * (0.8 + 0.4 * u2), 1),
       round(total_pay / 3800 * 20.8, 1)
FROM amounts
"""

BENCHMARK_SQL = """
INSERT INTO benchmarks
WITH latest AS (
    SELECT metric_id, max(period) AS p_to FROM metric_facts GROUP BY metric_id
), actual AS (
    SELECT f.metric_id, f.specialty_code, sum(numerator) / sum(denominator) AS value, sum(denominator) AS den
    FROM metric_facts f JOIN latest l USING (metric_id)
    WHERE f.period > strftime(strptime(l.p_to, '%Y-%m') - INTERVAL 12 MONTH, '%Y-%m')
    GROUP BY ALL
), placed AS (
    SELECT a.metric_id, a.specialty_code, m.direction, m.value_format,
           -- lower is better: the trust sits at f times the peer median. Higher is better: for
           -- high rates (day case, utilisation) the shortfall from 100% is f times the peer's;
           -- for low rates (PIFU, virtual) the rate is 1/f of the peer's.
           CASE WHEN m.direction = 'lower' THEN a.value / f.f_eff
                WHEN m.value_format = 'percent' AND a.value > 0.5 THEN 1 - (1 - a.value) / f.f_eff
                ELSE least(0.95, a.value * f.f_eff) END AS p50
    FROM actual a JOIN demo_factors f USING (specialty_code, metric_id) JOIN metrics m USING (metric_id)
    -- Every specialty the demo holds has its own peer row (a specialty is never set against peers'
    -- all-specialty figure; tests/test_opportunities.py covers one without a row).
    WHERE a.value > 0
), spread AS (
    SELECT metric_id, specialty_code, p50,
        p50 * 0.70 AS p10,
        p50 * 0.85 AS p25,
        CASE WHEN direction = 'higher' AND value_format = 'percent' THEN p50 + (1 - p50) * 0.25
             WHEN value_format = 'percent' THEN least(1, p50 * 1.15) ELSE p50 * 1.15 END AS p75,
        CASE WHEN direction = 'higher' AND value_format = 'percent' THEN p50 + (1 - p50) * 0.45
             WHEN value_format = 'percent' THEN least(1, p50 * 1.30) ELSE p50 * 1.30 END AS p90
    FROM placed
), all_specialties AS (
    SELECT metric_id, median(p10) AS p10, median(p25) AS p25, median(p50) AS p50, median(p75) AS p75,
           median(p90) AS p90
    FROM spread GROUP BY metric_id
)
SELECT metric_id, specialty_code, $peer, p10, p25, p50, p75, p90,
       'Synthetic peer group of 20 acute trusts (demo data)'
FROM spread
UNION ALL
-- A specialty with none of the metric's events in the window (no rate to place peers against) gets
-- the peers' typical level, so that every specialty the demo holds has its own row.
SELECT h.metric_id, h.specialty_code, $peer, a.p10, a.p25, a.p50, a.p75, a.p90,
       'Synthetic peer group of 20 acute trusts, typical level (demo data)'
FROM (SELECT DISTINCT metric_id, specialty_code FROM metric_facts WHERE specialty_code <> '') h
JOIN all_specialties a USING (metric_id)
WHERE NOT EXISTS (SELECT 1 FROM spread s WHERE s.metric_id = h.metric_id AND s.specialty_code = h.specialty_code)
UNION ALL
SELECT metric_id, '', $peer, p10, p25, p50, p75, p90,
       'Synthetic peer group of 20 acute trusts, all specialties (demo data)'
FROM all_specialties
"""


HRG_BENCHMARK_SQL = """
INSERT INTO hrg_benchmarks
WITH latest AS (
    SELECT max(period) AS p_to FROM hrg_facts
), recent AS (
    SELECT h.*, f.f_eff FROM hrg_facts h
    JOIN latest l ON h.period > strftime(strptime(l.p_to, '%Y-%m') - INTERVAL 12 MONTH, '%Y-%m')
    JOIN demo_factors f USING (specialty_code, metric_id)
), placed AS (
    -- Peers' mean stay per HRG: the trust's own, with each unit's performance factor taken out.
    SELECT hrg_code, CASE metric_id WHEN 'alos_elective' THEN 'elective' ELSE 'non_elective' END AS admission_type,
           -- rounded: a parallel sum of fractions can differ in its last bit from run to run
           round(sum(bed_days / f_eff) / sum(spells), 6) AS p50
    FROM recent GROUP BY ALL HAVING sum(spells) >= 20
)
SELECT hrg_code, admission_type, $peer, p50 * 0.70, p50 * 0.85, p50, p50 * 1.15, p50 * 1.30,
       'Synthetic peer group of 20 acute trusts: mean stay per HRG (demo data)'
FROM placed WHERE NOT list_contains($missing, hrg_code)
"""

# The crude length-of-stay benchmark of a specialty is placed for its family's typical case mix
# (what a peer specialty treats), not its own: a unit with sicker patients then looks worse crude
# than it is, and case-mix adjustment shows it. Ratio = family's expected stay ÷ unit's expected.
CRUDE_LOS_SQL = """
UPDATE benchmarks b SET p10 = b.p10 * x.ratio, p25 = b.p25 * x.ratio, p50 = b.p50 * x.ratio,
                        p75 = b.p75 * x.ratio, p90 = b.p90 * x.ratio
FROM (
    WITH latest AS (SELECT max(period) AS p_to FROM hrg_facts),
    recent AS (
        SELECT h.specialty_code, h.metric_id, s.hrg_family, h.spells, r.p50
        FROM hrg_facts h JOIN latest l ON h.period > strftime(strptime(l.p_to, '%Y-%m') - INTERVAL 12 MONTH, '%Y-%m')
        JOIN demo_spec s USING (specialty_code)
        JOIN hrg_benchmarks r ON r.hrg_code = h.hrg_code AND r.peer_group = $peer
             AND r.admission_type = CASE h.metric_id WHEN 'alos_elective' THEN 'elective' ELSE 'non_elective' END
    ), unit AS (
        SELECT specialty_code, metric_id, any_value(hrg_family) AS hrg_family, sum(spells * p50) / sum(spells) AS expected
        FROM recent GROUP BY ALL
    ), family AS (
        SELECT hrg_family, metric_id, sum(spells * p50) / sum(spells) AS typical FROM recent GROUP BY ALL
    )
    SELECT u.specialty_code, u.metric_id, round(f.typical / u.expected, 6) AS ratio
    FROM unit u JOIN family f USING (hrg_family, metric_id)
) x
WHERE b.metric_id = x.metric_id AND b.specialty_code = x.specialty_code AND b.peer_group = $peer
"""


def load_unit_costs(con: duckdb.DuckDBPyConnection, path: Path = DATA_DIR / "unit_costs.csv") -> int:
    """The shipped, sourced unit costs (data/unit_costs.csv)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [(r["cost_driver"], r["specialty_code"], float(r["unit_cost_gbp"]), r["source"])
                for r in csv.DictReader(fh)]
    con.executemany("INSERT OR REPLACE INTO unit_costs VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def build(path: str | Path, seed: int = 42, scale: str = "trust", force: bool = False,
          as_of: date | None = None) -> DemoSummary:
    """Write a fresh demo database at ``path`` whose data end at the last complete month before
    ``as_of`` (default today; tests pin it so their figures never depend on the day they run).

    A file that is not a demo database is never overwritten unless ``force`` is given: the same
    command pointed at a real database by mistake must not destroy it.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}")
    path = Path(path)
    if path.exists():
        if not force:
            with connect(path, read_only=True) as existing:
                try:
                    is_demo = get_setting(existing, "demo_seed") is not None
                except duckdb.Error:
                    is_demo = False
            if not is_demo:
                raise FileExistsError(f"{path} exists and is not a demo database; use --force to replace it")
        path.unlink()
        Path(str(path) + ".wal").unlink(missing_ok=True)
    _, first, last = data_window(scale, as_of)
    spec, factors = specialty_parameters(seed, scale)
    csu = csu_parameters(seed)
    con = connect(path)
    try:
        con.begin()
        con.executemany("INSERT INTO csus VALUES (?, ?)", [(c, n) for c, n, _ in CSUS])
        con.executemany("INSERT INTO specialties VALUES (?, ?, ?)",
                        [(s, n, c) for s, n, c, _ in specialty_rows()])
        catalogue.install_shipped(con)
        load_unit_costs(con)
        con.register("demo_spec_df", spec)
        con.register("demo_factors_df", factors)
        con.register("demo_csu_df", csu)
        con.execute("CREATE TEMP TABLE demo_spec AS SELECT * FROM demo_spec_df")
        con.execute("CREATE TEMP TABLE demo_factors AS SELECT * FROM demo_factors_df")
        con.execute("CREATE TEMP TABLE demo_csu AS SELECT * FROM demo_csu_df")
        days = (last - first).days + 1
        params = {"seed": seed, "first": first, "days": days}
        con.execute(SPELLS_SQL, params)
        con.execute(OUTPATIENTS_SQL, params)
        con.execute(THEATRE_SQL, params)
        con.execute(WORKFORCE_SQL, {"seed": seed, "first": first, "last": last})
        facts.rebuild_all(con)
        peer = settings()["analysis"]["peer_group"]  # the group "peer" targets read
        con.execute(BENCHMARK_SQL, {"peer": peer})
        con.execute(HRG_BENCHMARK_SQL, {"peer": peer, "missing": list(NO_HRG_BENCHMARK)})
        con.execute(CRUDE_LOS_SQL, {"peer": peer})
        for metric_id, (p10, p25, p50, p75, p90) in WORKFORCE_PEER.items():
            con.execute("INSERT INTO benchmarks VALUES (?, '', ?, ?, ?, ?, ?, ?, ?)",
                        [metric_id, peer, p10, p25, p50, p75, p90, "Synthetic peer group: NHS workforce returns style (demo data)"])
        for table in ("spells", "outpatients", "theatre_sessions", "workforce"):
            con.execute(
                """INSERT INTO import_log (kind, file_name, row_count, period_from, period_to, loaded_by)
                   SELECT ?, 'synthetic demo', count(*), min(period), max(period), 'demo generator' FROM """ + table,
                [table],
            )
        add_demo_users(con)
        bump_data_version(con)
        set_setting(con, "demo_seed", str(seed))
        set_setting(con, "demo_scale", scale)
        con.commit()
        for name in ("demo_spec", "demo_factors", "demo_csu"):
            con.execute(f"DROP TABLE {name}")
        from .schemes import (
            add as add_demo_schemes,  # uses the engine's own transactions
        )

        add_demo_schemes(con, today=as_of)
        con.execute("CHECKPOINT")
        rows = {t: scalar(con, f"SELECT count(*) FROM {t}")
                for t in ("csus", "specialties", "spells", "outpatients", "theatre_sessions", "workforce",
                          "metric_facts", "benchmarks", "hrg_benchmarks", "unit_costs", "metrics", "schemes",
                          "realised_savings")}
    except Exception:
        con.close()
        path.unlink(missing_ok=True)
        raise
    con.close()
    return DemoSummary(str(path), seed, scale, rows)
