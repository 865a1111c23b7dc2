"""CIP plans: full-year effect, in-year phasing over the financial year, and WRP targets.

The financial year runs April to March; month 1 (M1) is April. A plan for financial year
``2026`` means 2026/27 (April 2026 to March 2027).

Phasing profiles (the in-year £ is the sum of the twelve months):
- ``even``: FYE / 12 in every month from the start month: in-year = FYE × (13 − start) / 12.
- ``ramp``: a three-month ramp-up (⅓, ⅔, then the full FYE / 12 each month), for schemes that
  take time to bed in: in-year = even in-year − FYE / 12 (or less when starting in M11–M12).
- ``custom``: twelve values, zero before the start month, that must sum to the even in-year
  total: the finance partner re-profiles when the money lands, not how much lands this year.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from ..analysis.opportunities import kept_by
from ..config import settings
from ..errors import InvalidInput, NotAllowed
from ..formatting import MONTHS
from ..scope import Scope, scope_filter
from ..store import audit
from ..store.audit import transaction
from ..store.statuses import IN_DELIVERY, PIPELINE
from ..users import User
from . import schemes

# Read on every Shortlist and Tracking view, changed only by a change to the records (each audited):
# kept between views per records version (a tenth of a second of the Shortlist's run).
_kept = kept_by(schemes.records_version)

PROFILES = ("even", "ramp", "custom")
PROFILE_LABELS = {"even": "Even", "ramp": "Ramp-up (3 months)", "custom": "Custom"}
MONTH_NAMES = MONTHS[3:] + MONTHS[:3]  # the financial year: M1 = April
RAMP_MONTHS = 3
TOLERANCE_GBP = 1.0


def pipeline_weights() -> dict[str, float]:
    """Share of a pipeline plan's £ counted as likely, by status (config.toml [pipeline_weights]).

    Why: an idea rarely delivers what its plan says; weighting by how far a scheme has got gives
    finance a realistic "still to find" instead of treating every plan as money in the bank."""
    cfg = settings().get("pipeline_weights", {})
    out = {}
    for status in PIPELINE:
        weight = float(cfg.get(status, 0.0))
        if not 0.0 <= weight <= 1.0:
            raise InvalidInput(f"config.toml [pipeline_weights] {status} must be between 0 and 1 (got {weight}).")
        out[status] = weight
    return out


@dataclass
class Plan:
    scheme_id: int
    financial_year: int
    start_month: int
    fye_gbp: float
    phasing: str = "even"
    custom_phasing: list[float] | None = None
    milestones: str = ""
    metric_target_value: float | None = None
    monthly: list[float] = field(default_factory=list)

    @property
    def in_year_gbp(self) -> float:
        return sum(self.monthly)


def fy_label(financial_year: int) -> str:
    return f"{financial_year}/{(financial_year + 1) % 100:02d}"


def period_of(financial_year: int, month: int) -> str:
    """'YYYY-MM' of month ``month`` (1 = April) of a financial year."""
    calendar = month + 3
    year = financial_year + (calendar - 1) // 12
    return f"{year:04d}-{(calendar - 1) % 12 + 1:02d}"


def fy_month(period: str) -> tuple[int, int]:
    """(financial year, month 1–12) of a 'YYYY-MM' period."""
    year, month = int(period[:4]), int(period[5:7])
    return (year, month - 3) if month >= 4 else (year - 1, month + 9)


def current_fy(today) -> int:
    return today.year if today.month >= 4 else today.year - 1


def default_fye(scheme: schemes.Scheme) -> float:
    """The full-year effect a new plan starts from: the scheme's opportunity when it was
    shortlisted, to the nearest £1,000 (a plan is an estimate); zero for a scheme made by hand."""
    return float(round(scheme.snapshot_opportunity_gbp or 0, -3))


def phase(fye_gbp: float, start_month: int, profile: str, custom: list[float] | None = None) -> list[float]:
    """The twelve monthly amounts (M1 = April). Raises ValueError with a message a user can act on."""
    if not 1 <= int(start_month) <= 12:
        raise InvalidInput("Start month must be between 1 (April) and 12 (March).")
    if fye_gbp is None or fye_gbp < 0:
        raise InvalidInput("Full-year effect must be zero or more pounds.")
    start = int(start_month)
    monthly_full = fye_gbp / 12
    if profile == "even":
        return [monthly_full if m >= start else 0.0 for m in range(1, 13)]
    if profile == "ramp":
        return [monthly_full * min(1.0, (m - start + 1) / RAMP_MONTHS) if m >= start else 0.0 for m in range(1, 13)]
    if profile == "custom":
        values = [float(v) for v in (custom or [])]
        if len(values) != 12:
            raise InvalidInput("A custom phasing needs twelve monthly values (April to March).")
        if any(v < 0 for v in values):
            raise InvalidInput("Monthly phasing values cannot be negative.")
        early = [MONTH_NAMES[m] for m in range(start - 1) if values[m] != 0]
        if early:
            raise InvalidInput(f"Months before the start month must be zero ({', '.join(early)} are not).")
        expected = fye_gbp * (13 - start) / 12
        if abs(sum(values) - expected) > TOLERANCE_GBP:
            raise InvalidInput(f"The twelve custom values sum to £{sum(values):,.0f}; they must sum to the in-year "
                             f"total £{expected:,.0f} (FYE × {13 - start} months remaining ÷ 12).")
        return values
    raise InvalidInput(f"Phasing must be one of {', '.join(PROFILES)}.")


def get_plan(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int) -> Plan | None:
    schemes.get(con, user, scheme_id)
    return load_plan(con, scheme_id)


def load_plan(con: duckdb.DuckDBPyConnection, scheme_id: int) -> Plan | None:
    """A scheme's plan with its monthly phasing, without a scope check (callers have done it)."""
    row = con.execute("""SELECT scheme_id, financial_year, start_month, fye_gbp, phasing, custom_phasing,
                                milestones, metric_target_value FROM cip_plans WHERE scheme_id = ?""",
                      [int(scheme_id)]).fetchone()
    if row is None:
        return None
    plan = Plan(*row)
    plan.monthly = phase(plan.fye_gbp, plan.start_month, plan.phasing, plan.custom_phasing)
    return plan


def save_plan(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int, expected_version: int,
              financial_year: int, start_month: int, fye_gbp: float, phasing: str = "even",
              custom_phasing: list[float] | None = None, milestones: str = "",
              metric_target_value: float | None = None) -> Plan:
    if not 2000 <= int(financial_year) <= 2100:
        raise InvalidInput("Financial year looks wrong (expected e.g. 2026 for 2026/27).")
    phase(fye_gbp, start_month, phasing, custom_phasing)  # validate before writing anything
    custom = [float(v) for v in custom_phasing or []] if phasing == "custom" else None
    with schemes.editing(con, user, scheme_id, expected_version) as edit:
        if edit.scheme.status in IN_DELIVERY:
            raise InvalidInput("The plan of a scheme in delivery is fixed; record realised savings instead.")
        old = load_plan(con, scheme_id)
        new = {"financial_year": int(financial_year), "start_month": int(start_month), "fye_gbp": float(fye_gbp),
               "phasing": phasing, "custom_phasing": custom, "milestones": milestones,
               "metric_target_value": metric_target_value}
        con.execute("INSERT OR REPLACE INTO cip_plans VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [int(scheme_id), *new.values()])
        edit.changes.update({f"plan.{k}": (getattr(old, k) if old else None, v) for k, v in new.items()})
    saved = load_plan(con, scheme_id)
    assert saved is not None, "written above in the same transaction"
    return saved


@_kept
def monthly_plan(con: duckdb.DuckDBPyConnection, scope: Scope, financial_year: int,
                 statuses: tuple[str, ...] = schemes.COMMITTED) -> pd.DataFrame:
    """One row per (scheme, month) of the financial year: the planned £ from each plan's phasing."""
    rows = con.execute(f"""
        SELECT s.scheme_id, s.title, s.csu_code, s.status, p.start_month, p.fye_gbp, p.phasing, p.custom_phasing
        FROM schemes s JOIN cip_plans p USING (scheme_id)
        WHERE p.financial_year = $fy AND list_contains($statuses, s.status) AND {scope_filter('s.csu_code')}
        ORDER BY s.scheme_id""", {"fy": int(financial_year), "statuses": list(statuses), **scope.sql_params()}).fetchall()
    out = []
    for scheme_id, title, csu, status, start, fye, profile, custom in rows:
        for month, planned in enumerate(phase(fye, start, profile, custom), start=1):
            out.append((scheme_id, title, csu, status, month, MONTH_NAMES[month - 1],
                        period_of(financial_year, month), planned))
    return pd.DataFrame(out, columns=["scheme_id", "title", "csu_code", "status", "month", "month_name",
                                      "period", "planned_gbp"])


def set_wrp_target(con: duckdb.DuckDBPyConnection, user: User, csu: str, financial_year: int,
                   target_gbp: float, source: str = "") -> None:
    """Finance sets each CSU's WRP target per financial year (audited)."""
    if not user.has_finance_duties:
        raise NotAllowed("Only finance or an admin can set WRP targets.")
    if target_gbp is None or target_gbp < 0:
        raise InvalidInput("A WRP target is zero or more pounds.")
    with transaction(con):
        if not con.execute("SELECT 1 FROM csus WHERE csu_code = ?", [csu]).fetchone():
            raise InvalidInput(f"Unknown CSU {csu}.")
        old = con.execute("SELECT target_gbp FROM wrp_targets WHERE csu_code = ? AND financial_year = ?",
                          [csu, int(financial_year)]).fetchone()
        con.execute("INSERT OR REPLACE INTO wrp_targets VALUES (?, ?, ?, ?, ?)",
                    [csu, int(financial_year), float(target_gbp), source, user.username])
        audit.record(con, user.username, "wrp_target", f"{csu}/{financial_year}",
                     {"target_gbp": (old[0] if old else None, float(target_gbp))})


@_kept
def wrp_targets(con: duckdb.DuckDBPyConnection, scope: Scope, financial_year: int) -> pd.DataFrame:
    return con.execute(f"""SELECT c.csu_code, c.csu_name, t.target_gbp, t.source, t.set_by
                           FROM csus c LEFT JOIN wrp_targets t ON t.csu_code = c.csu_code AND t.financial_year = $fy
                           WHERE {scope_filter('c.csu_code')} ORDER BY c.csu_name""",
                       {"fy": int(financial_year), **scope.sql_params()}).df()


@_kept
def totals_by_csu(con: duckdb.DuckDBPyConnection, scope: Scope, financial_year: int,
                  csu: str | None = None) -> pd.DataFrame:
    """Per CSU: committed in-year £ and FYE (approved, delivering, delivered), pipeline in-year £
    (plans not yet approved), the pipeline weighted by status (:func:`pipeline_weights`), WRP
    target, the gap still to find after committed £ and after committed + weighted pipeline.
    A trust row comes from :func:`trust_total`. ``csu`` narrows it to one CSU of the scope."""
    scope = scope.narrow(csu)
    months = monthly_plan(con, scope, financial_year, schemes.COMMITTED + PIPELINE)
    is_committed = months["status"].isin(schemes.COMMITTED)
    committed, pipeline = months[is_committed], months[~is_committed]
    pipeline = pipeline.assign(weighted_gbp=pipeline["planned_gbp"].astype(float)
                               * pipeline["status"].map(pipeline_weights()).astype(float))
    fye = con.execute(f"""
        SELECT s.csu_code, sum(p.fye_gbp) FILTER (WHERE list_contains($committed, s.status)) AS fye_gbp
        FROM schemes s JOIN cip_plans p USING (scheme_id)
        WHERE p.financial_year = $fy AND {scope_filter('s.csu_code')} GROUP BY s.csu_code""",
        {"fy": int(financial_year), "committed": list(schemes.COMMITTED), **scope.sql_params()}).df()
    out = wrp_targets(con, scope, financial_year)[["csu_code", "csu_name", "target_gbp"]]
    out = out.merge(committed.groupby("csu_code", as_index=False)["planned_gbp"].sum()
                    .rename(columns={"planned_gbp": "in_year_gbp"}), on="csu_code", how="left")
    out = out.merge(pipeline.groupby("csu_code", as_index=False)["planned_gbp"].sum()
                    .rename(columns={"planned_gbp": "pipeline_gbp"}), on="csu_code", how="left")
    out = out.merge(pipeline.groupby("csu_code", as_index=False)["weighted_gbp"].sum()
                    .rename(columns={"weighted_gbp": "pipeline_weighted_gbp"}), on="csu_code", how="left")
    out = out.merge(fye, on="csu_code", how="left")
    for col in ("in_year_gbp", "pipeline_gbp", "pipeline_weighted_gbp", "fye_gbp"):
        out[col] = out[col].fillna(0.0)
    out["gap_to_target_gbp"] = (out["target_gbp"] - out["in_year_gbp"]).clip(lower=0)
    out["gap_after_pipeline_gbp"] = (out["target_gbp"] - out["in_year_gbp"] - out["pipeline_weighted_gbp"]).clip(lower=0)
    out["coverage"] = out["in_year_gbp"] / out["target_gbp"].where(out["target_gbp"] > 0)
    return out


def trust_total(by_csu: pd.DataFrame) -> dict:
    target = float(by_csu["target_gbp"].fillna(0).sum())
    in_year = float(by_csu["in_year_gbp"].sum())
    return {"target_gbp": target, "in_year_gbp": in_year, "pipeline_gbp": float(by_csu["pipeline_gbp"].sum()),
            "pipeline_weighted_gbp": float(by_csu["pipeline_weighted_gbp"].sum()),
            "fye_gbp": float(by_csu["fye_gbp"].sum()), "gap_to_target_gbp": float(by_csu["gap_to_target_gbp"].sum()),
            "gap_after_pipeline_gbp": float(by_csu["gap_after_pipeline_gbp"].sum()),
            "coverage": in_year / target if target else None}
