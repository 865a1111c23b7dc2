"""The scheme workflow: status moves, the approval gate, case studies and table edits.

A scheme's status moves only along ALLOWED transitions. Approval is gated on a phased CIP plan
(``plans``) and a completed QIA (``qia``): this module sits above both and asks them, so the
record (``schemes``), the plan and the QIA never need the workflow. Every write goes through
``schemes.editing`` (scope, editor, version check, new version, audit).
"""
from __future__ import annotations

import duckdb
import pandas as pd

from ..errors import InvalidInput, NotAllowed, Refusal
from ..users import User
from . import plans, qia, schemes
from .schemes import Scheme

ALLOWED: dict[str, tuple[str, ...]] = {
    "idea": ("shortlisted", "rejected"),
    "shortlisted": ("planning", "idea", "rejected"),
    "planning": ("approved", "shortlisted", "rejected"),
    "approved": ("delivering", "planning", "rejected"),
    "delivering": ("delivered", "rejected"),
    "delivered": (),
    "rejected": ("idea",),
}


def allowed_next(scheme: Scheme) -> tuple[str, ...]:
    return ALLOWED[scheme.status]


def approval_blockers(con: duckdb.DuckDBPyConnection, scheme_id: int) -> list[str]:
    """What stands between a scheme and approval: a phased CIP plan and a completed QIA
    (escalated QIAs also need the medical director's and chief nurse's sign-off)."""
    blockers = []
    if plans.load_plan(con, scheme_id) is None:
        blockers.append("no CIP plan")
    blockers.extend(qia.assess(con, scheme_id).missing)
    return blockers


def check_transition(con: duckdb.DuckDBPyConnection, scheme: Scheme, new_status: str) -> None:
    if new_status not in ALLOWED[scheme.status]:
        allowed = ", ".join(ALLOWED[scheme.status]) or "none (delivered is final)"
        raise InvalidInput(f"A scheme cannot move from {scheme.status} to {new_status}. Allowed: {allowed}.")
    if new_status == "approved":
        blockers = approval_blockers(con, scheme.scheme_id)
        if blockers:
            raise InvalidInput("Cannot approve yet: " + "; ".join(blockers) + ".")


def update(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int, expected_version: int,
           **changes) -> Scheme:
    """Change editable fields and, along allowed transitions only, the status (one new version)."""
    schemes.check_changes(changes)
    with schemes.editing(con, user, scheme_id, expected_version) as edit:
        if "status" in changes and changes["status"] != edit.scheme.status:
            check_transition(con, edit.scheme, changes["status"])
        schemes.apply_changes(con, edit, changes)
    return schemes.get(con, user, scheme_id)


def set_case_study(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int, expected_version: int,
                   published: bool) -> Scheme:
    """Publish a delivered scheme to the library, where every CSU can learn from it. Only
    finance and admin publish: it deliberately shares one CSU's scheme with the others."""
    if not user.has_finance_duties:
        raise NotAllowed("Only finance or an admin can publish a case study.")
    with schemes.editing(con, user, scheme_id, expected_version) as edit:
        if published and edit.scheme.status != "delivered":
            raise InvalidInput("Only a delivered scheme can become a case study.")
        con.execute("UPDATE schemes SET case_study = ? WHERE scheme_id = ?", [published, int(scheme_id)])
        edit.changes["case_study"] = (edit.scheme.case_study, published)
    return schemes.get(con, user, scheme_id)


def apply_table_edits(con: duckdb.DuckDBPyConnection, user: User, before: pd.DataFrame, after: pd.DataFrame,
                      seen_versions: dict[int, int]) -> list[tuple[int, str | None]]:
    """Save the rows a table editor changed, each against the version the editor was showing.

    Returns (scheme_id, None) for each saved row and (scheme_id, message) for each refused one
    (conflict, disallowed transition, bad value), so one bad row never loses the others."""
    outcomes: list[tuple[int, str | None]] = []
    columns = [c for c in schemes.EDITABLE if c in after.columns and c in before.columns]
    old_rows = before.set_index("scheme_id")
    for row in after.itertuples(index=False):
        scheme_id = int(row.scheme_id)
        if scheme_id not in old_rows.index:
            continue
        changes = {c: getattr(row, c) for c in columns if getattr(row, c) != old_rows.at[scheme_id, c]}
        changes = {c: (bool(v) if c == "recurrent" else v) for c, v in changes.items()}
        if not changes:
            continue
        try:
            update(con, user, scheme_id, seen_versions.get(scheme_id, int(old_rows.at[scheme_id, "version"])), **changes)
            outcomes.append((scheme_id, None))
        except Refusal as exc:
            outcomes.append((scheme_id, str(exc)))
    return outcomes
