"""Schemes: the shortlist record, each scheme tied to the opportunity that motivated it.

A scheme is created from an opportunity (CSU, specialty, metric, with the figures at the time
kept as a snapshot, so a data refresh never rewrites why it was started) or by hand. This module
is the record: its fields, reads in scope, field edits and the edit protocol (``editing``) that
every change to a scheme and what hangs off it (plan, QIA, realised savings) goes through: load in
scope, check the editor may edit, check the version the editor read (optimistic concurrency: two
people editing the same scheme cannot silently overwrite each other), write, claim the next
version, audit field by field, all in one transaction. Status moves and the approval gate are the
workflow's (``delivery.workflow``), which builds on this module, the plan and the QIA.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

import duckdb
import pandas as pd

from .. import usage
from ..analysis.opportunities import Basis, data_version, kept_by, opportunities
from ..errors import InvalidInput, NotAllowed
from ..scope import ScopeError, scope_filter
from ..store import audit
from ..store.audit import ConflictError, transaction
from ..store.db import scalar
from ..store.statuses import COMMITTED, STATUSES  # noqa: F401 (the record's vocabulary)
from ..users import User

STATUS_LABELS = {s: s.capitalize() for s in STATUSES}
FINANCE_CATEGORIES = ("pay", "non_pay", "income")
FINANCE_LABELS = {"pay": "Pay", "non_pay": "Non-pay", "income": "Income"}
SAVING_TYPES = ("cash", "productivity")
SAVING_LABELS = {"cash": "Cash-releasing", "productivity": "Productivity"}
ORIGIN_LABELS = {"manual": "Entered by hand", "opportunity": "From an opportunity"}
EDITABLE = ("title", "description", "lead", "finance_category", "recurrent", "saving_type", "status")


@dataclass
class Scheme:
    scheme_id: int
    title: str
    description: str
    lead: str
    csu_code: str
    specialty_code: str | None
    metric_id: str | None
    finance_category: str
    recurrent: bool
    saving_type: str
    status: str
    origin: str
    case_study: bool
    snapshot_target: str | None
    snapshot_benchmark: str | None
    snapshot_period_from: str | None
    snapshot_period_to: str | None
    snapshot_actual: float | None
    snapshot_target_value: float | None
    snapshot_opportunity_gbp: float | None
    snapshot_unit_cost_gbp: float | None
    created_by: str
    created_at: object
    updated_by: str
    updated_at: object
    version: int
    snapshot_peer_group: str | None = None  # the peer group a peer target came from (schema 4)

    @property
    def snapshot_basis(self) -> str | None:
        """What the snapshot was measured against, in words ("Best 35% of peer trusts (national)")."""
        return basis_words(self.snapshot_target, self.snapshot_benchmark, self.snapshot_peer_group)


def basis_words(target: str | None, benchmark: str | None, peer_group: str | None = None) -> str | None:
    try:
        return (Basis(target, benchmark, peer_group=peer_group).label
                if isinstance(target, str) and isinstance(benchmark, str) else None)
    except ValueError:  # a value written by an older version: show it as stored
        return f"{target} / {benchmark}"


_COLUMNS = ", ".join(f.name for f in fields(Scheme))


def require_editor(user: User, csu: str) -> None:
    user.scope.check(csu)
    if not user.can_edit_schemes:
        raise NotAllowed("Your role can view schemes but not change them.")


def validate(changes: dict) -> None:
    """Field rules shared by the form, the table editor and imports; messages name the field."""
    if "title" in changes and not str(changes["title"] or "").strip():
        raise InvalidInput("A scheme needs a title.")
    if "finance_category" in changes and changes["finance_category"] not in FINANCE_CATEGORIES:
        raise InvalidInput(f"Finance category must be one of {', '.join(FINANCE_CATEGORIES)}.")
    if "saving_type" in changes and changes["saving_type"] not in SAVING_TYPES:
        raise InvalidInput("Saving type must be cash or productivity.")
    if "status" in changes and changes["status"] not in STATUSES:
        raise InvalidInput(f"Status must be one of {', '.join(STATUSES)}.")
    for key in ("title", "description", "lead"):
        if key in changes and len(str(changes[key] or "")) > 4000:
            raise InvalidInput(f"{key.capitalize()} is longer than 4,000 characters.")


def check_changes(changes: dict) -> None:
    """Refuse a field that cannot be edited or a value that breaks a field rule, before any write."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}.")
    validate(changes)


def create(con: duckdb.DuckDBPyConnection, user: User, title: str, csu: str, *, description: str = "",
           lead: str = "", specialty: str | None = None, metric: str | None = None,
           finance_category: str = "pay", recurrent: bool = True, saving_type: str | None = None,
           basis: Basis | None = None, status: str = "idea") -> Scheme:
    """A scheme by hand, or from an opportunity when ``metric`` is given (then the opportunity's
    figures under ``basis`` are stored as the snapshot and the saving type defaults to the
    metric's)."""
    require_editor(user, csu)
    if status not in ("idea", "shortlisted"):
        raise InvalidInput("A new scheme starts as an idea or shortlisted.")
    snapshot: dict = {}
    origin = "manual"
    if metric is not None:
        basis = basis or Basis()
        rows = opportunities(con, user.scope, basis, csu=csu, specialty=specialty, metric=metric)
        if rows.empty:
            raise InvalidInput("There is no opportunity for that CSU, specialty and metric.")
        r = rows.iloc[0]
        origin = "opportunity"
        saving_type = saving_type or r.saving_type
        snapshot = {
            "snapshot_target": basis.target, "snapshot_benchmark": basis.benchmark, "snapshot_peer_group": r.peer_group,
            "snapshot_period_from": r.period_from, "snapshot_period_to": r.period_to,
            "snapshot_actual": _num(r.actual), "snapshot_target_value": _num(r.target_value),
            "snapshot_opportunity_gbp": _num(r.opportunity_gbp), "snapshot_unit_cost_gbp": _num(r.unit_cost_gbp),
        }
    values = {"title": title.strip(), "description": description, "lead": lead, "csu_code": csu,
              "specialty_code": specialty, "metric_id": metric, "finance_category": finance_category,
              "recurrent": bool(recurrent), "saving_type": saving_type or "cash", "status": status,
              "origin": origin, "created_by": user.username, "updated_by": user.username, **snapshot}
    validate(values)
    with transaction(con):
        if not con.execute("SELECT 1 FROM csus WHERE csu_code = ?", [csu]).fetchone():
            raise InvalidInput(f"Unknown CSU {csu}.")
        names = list(values)
        scheme_id = scalar(
            con, f"INSERT INTO schemes ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) RETURNING scheme_id",
            list(values.values()))
        audit.record(con, user.username, "scheme", scheme_id, {"created": (None, f"{origin}: {title}")})
        usage.record(con, user, "scheme_created", "shortlist", str(scheme_id))
    return get(con, user, scheme_id)


def records_version(con: duckdb.DuckDBPyConnection) -> str:
    """Changes with every change to the delivery records (schemes, plans, QIA, realised savings,
    WRP targets: each written with its audit_log row in one transaction), with the data version
    and with the day ("to date" moves with the calendar). For views of the records kept between
    page views (analysis.opportunities.kept_by); "0" before any data is loaded (never kept)."""
    data = data_version(con)
    last = scalar(con, "SELECT max(audit_id) FROM audit_log")
    return "0" if data == "0" else f"{data}:{last}:{dt.date.today().isoformat()}"


def _num(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def get(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int) -> Scheme:
    """One scheme in the user's scope. Out of scope reads exactly like a missing scheme's
    refusal, so ids cannot be probed for other CSUs' schemes."""
    row = con.execute(f"SELECT {_COLUMNS} FROM schemes WHERE scheme_id = ?", [int(scheme_id)]).fetchone()
    if row is None or not user.scope.allows(row[4]):
        raise ScopeError(f"Scheme {scheme_id} is not available to you.")
    return Scheme(*row)


@kept_by(records_version)  # the Shortlist reads it on every view; each change is audited
def listing(con: duckdb.DuckDBPyConnection, user: User, csu: str | None = None,
            statuses: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Schemes in scope with their plan's headline figures, newest first."""
    user.scope.check(csu)
    return con.execute(f"""
        SELECT s.*, c.csu_name, m.metric_name,
               CASE WHEN s.specialty_code = '' THEN 'CSU-wide' ELSE sp.specialty_name END AS specialty_name,
               p.financial_year, p.start_month, p.fye_gbp, p.phasing
        FROM schemes s JOIN csus c USING (csu_code)
        LEFT JOIN metrics m USING (metric_id)
        LEFT JOIN specialties sp ON sp.specialty_code = s.specialty_code
        LEFT JOIN cip_plans p USING (scheme_id)
        WHERE {scope_filter('s.csu_code')} AND ($csu IS NULL OR s.csu_code = $csu)
          AND ($any_status OR list_contains($statuses, s.status))
        ORDER BY s.scheme_id DESC""",
        {**user.scope.sql_params(), "csu": csu, "any_status": statuses is None,
         "statuses": list(statuses or ())}).df()


def check_version(con: duckdb.DuckDBPyConnection, scheme: Scheme, expected_version: int) -> None:
    if scheme.version != expected_version:
        raise ConflictError(f"Scheme {scheme.scheme_id} was changed by {scheme.updated_by} at "
                            f"{scheme.updated_at:%d %b %Y %H:%M} after you opened it. Reload to see their "
                            "change, then make yours again.")


def bump(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int, expected_version: int) -> int:
    """Claim the next version inside the caller's transaction; fails if someone got there first."""
    row = con.execute("""UPDATE schemes SET version = version + 1, updated_by = ?, updated_at = current_timestamp
                         WHERE scheme_id = ? AND version = ? RETURNING version""",
                      [user.username, int(scheme_id), int(expected_version)]).fetchone()
    if row is None:
        raise ConflictError(f"Scheme {scheme_id} was changed by someone else after you opened it. "
                            "Reload to see their change, then make yours again.")
    return row[0]


@dataclass
class Edit:
    """One edit in progress (see :func:`editing`): the scheme as loaded, and the audit entries
    (field → (old, new)) the change adds. No entries: nothing changed, no new version."""
    scheme: Scheme
    changes: dict = field(default_factory=dict)


@contextmanager
def editing(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int,
            expected_version: int | None) -> Iterator[Edit]:
    """The edit protocol, in one transaction: load the scheme in the user's scope, check the user
    may edit it and that it is still at ``expected_version``; the caller writes and lists its
    changes in ``Edit.changes``; then claim the next version and audit every change. Any error
    rolls all of it back. ``expected_version`` None (realised savings, entered month by month
    against a committed scheme) skips the version check and keeps the version."""
    with transaction(con):
        scheme = get(con, user, scheme_id)
        require_editor(user, scheme.csu_code)
        if expected_version is not None:
            check_version(con, scheme, expected_version)
        edit = Edit(scheme)
        yield edit
        if edit.changes:
            if expected_version is not None:
                bump(con, user, scheme_id, expected_version)
            audit.record(con, user.username, "scheme", scheme_id, edit.changes)


def apply_changes(con: duckdb.DuckDBPyConnection, edit: Edit, changes: dict) -> dict:
    """Write the editable fields in ``changes`` that differ from the loaded scheme, inside
    :func:`editing`; returns what changed. Status rules are the caller's (the workflow's)."""
    check_changes(changes)
    changed = {k: v for k, v in changes.items() if getattr(edit.scheme, k) != v}
    if changed:
        con.execute(f"UPDATE schemes SET {', '.join(f'{k} = ?' for k in changed)} WHERE scheme_id = ?",
                    [*changed.values(), int(edit.scheme.scheme_id)])
        edit.changes.update({k: (getattr(edit.scheme, k), v) for k, v in changed.items()})
    return changed


def update(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int, expected_version: int,
           **changes) -> Scheme:
    """Change the scheme's own fields (title, description, lead, finance category, recurrent,
    saving type). A status move goes through ``workflow.update``, which checks the transition."""
    if "status" in changes:
        raise InvalidInput("Change a scheme's status through the workflow (it checks the allowed moves).")
    check_changes(changes)
    with editing(con, user, scheme_id, expected_version) as edit:
        apply_changes(con, edit, changes)
    return get(con, user, scheme_id)


def history(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int) -> pd.DataFrame:
    get(con, user, scheme_id)  # scope check
    return audit.history(con, "scheme", scheme_id)
