"""Quality impact assessment (QIA) of a scheme.

Five domains, each scored consequence (1–5) × likelihood (1–5) = risk (1–25) with mitigations.
A QIA is complete when every domain is scored and the tri-team (clinical, nursing, operational
leads) has signed it off with name and date. When any domain's risk is above the escalation
threshold (config.toml [qia] escalation_threshold, default 12) the medical director and the
chief nurse must sign it off too. Re-scoring a QIA clears its sign-offs: people signed off the
risks as they were, not as they are now.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from ..config import settings
from ..errors import InvalidInput
from ..users import User
from . import schemes

DOMAINS = ("patient_safety", "clinical_effectiveness", "patient_experience", "staff", "equality")
DOMAIN_LABELS = {"patient_safety": "Patient safety", "clinical_effectiveness": "Clinical effectiveness",
                 "patient_experience": "Patient experience", "staff": "Staff", "equality": "Equality"}
TRI_TEAM = ("clinical", "nursing", "operational")
ESCALATION = ("medical_director", "chief_nurse")
SIGNOFF_LABELS = {"clinical": "Clinical lead", "nursing": "Nursing lead", "operational": "Operational lead",
                  "medical_director": "Medical director", "chief_nurse": "Chief nurse"}


def threshold() -> int:
    return int(settings().get("qia", {}).get("escalation_threshold", 12))


@dataclass
class Assessment:
    scores: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # domain → (consequence, likelihood, mitigations)
    signoffs: dict[str, tuple[str, dt.date]] = field(default_factory=dict)  # role → (name, date)
    threshold: int = 12

    @property
    def risk(self) -> dict[str, int]:
        return {d: c * lh for d, (c, lh, _) in self.scores.items()}

    @property
    def max_risk(self) -> int:
        return max(self.risk.values(), default=0)

    @property
    def escalated(self) -> bool:
        return self.above_threshold(self.max_risk)

    @property
    def needed_signoffs(self) -> tuple[str, ...]:
        """Who must sign: the tri-team, and the medical director and chief nurse when escalated."""
        return TRI_TEAM + (ESCALATION if self.escalated else ())

    def above_threshold(self, risk: int) -> bool:
        """A risk that escalates the QIA (and is shown in red)."""
        return risk > self.threshold

    @property
    def missing(self) -> list[str]:
        """What is still needed for a completed QIA, in words."""
        out = []
        unscored = [DOMAIN_LABELS[d] for d in DOMAINS if d not in self.scores]
        if unscored:
            out.append("QIA not scored for " + ", ".join(unscored))
        needed = self.needed_signoffs
        unsigned = [SIGNOFF_LABELS[r] for r in needed if r not in self.signoffs]
        if unsigned:
            reason = f" (risk {self.max_risk} is above {self.threshold})" if self.escalated and any(
                r in ESCALATION and r not in self.signoffs for r in needed) else ""
            out.append("QIA sign-off missing from " + ", ".join(unsigned) + reason)
        return out

    @property
    def complete(self) -> bool:
        return not self.missing


def assess(con: duckdb.DuckDBPyConnection, scheme_id: int) -> Assessment:
    scores = {d: (c, lh, m) for d, c, lh, m in con.execute(
        "SELECT domain, consequence, likelihood, mitigations FROM qia_scores WHERE scheme_id = ?",
        [int(scheme_id)]).fetchall()}
    signoffs = {r: (n, d) for r, n, d in con.execute(
        "SELECT role, name, signed_on FROM qia_signoffs WHERE scheme_id = ?", [int(scheme_id)]).fetchall()}
    return Assessment(scores, signoffs, threshold())


def get(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int) -> Assessment:
    schemes.get(con, user, scheme_id)
    return assess(con, scheme_id)


def _score(value, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a whole number from 1 to 5.") from None
    if not 1 <= number <= 5 or number != float(value):
        raise InvalidInput(f"{name} must be a whole number from 1 to 5.")
    return number


def save_scores(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int, expected_version: int,
                scores: dict[str, tuple[int, int, str]]) -> Assessment:
    """Replace the scores of the given domains; clears sign-offs when any risk changes."""
    clean = {}
    for domain, (consequence, likelihood, mitigations) in scores.items():
        if domain not in DOMAINS:
            raise InvalidInput(f"Unknown QIA domain {domain}.")
        label = DOMAIN_LABELS[domain]
        clean[domain] = (_score(consequence, f"{label} consequence"), _score(likelihood, f"{label} likelihood"),
                         str(mitigations or ""))
    with schemes.editing(con, user, scheme_id, expected_version) as edit:
        if edit.scheme.status in schemes.COMMITTED:
            raise InvalidInput("The QIA of an approved scheme is fixed; move it back to planning to re-assess.")
        before = assess(con, scheme_id)
        for domain, (c, lh, m) in clean.items():
            old = before.scores.get(domain)
            edit.changes[f"qia.{domain}"] = (None if old is None else f"{old[0]}×{old[1]}={old[0] * old[1]}; {old[2]}",
                                             f"{c}×{lh}={c * lh}; {m}")
        con.executemany("INSERT OR REPLACE INTO qia_scores VALUES (?, ?, ?, ?, ?)",
                        [(int(scheme_id), d, c, lh, m) for d, (c, lh, m) in clean.items()])
        risk_changed = any(before.scores.get(d, (0, 0, ""))[:2] != (c, lh) for d, (c, lh, _) in clean.items())
        if risk_changed and before.signoffs:
            con.execute("DELETE FROM qia_signoffs WHERE scheme_id = ?", [int(scheme_id)])
            edit.changes["qia.signoffs"] = (", ".join(sorted(before.signoffs)), "cleared: risks re-scored")
    return assess(con, scheme_id)


def sign_off(con: duckdb.DuckDBPyConnection, user: User, scheme_id: int, expected_version: int,
             role: str, name: str, signed_on: dt.date) -> Assessment:
    """Record one sign-off (name and date) against the scored QIA."""
    if role not in TRI_TEAM + ESCALATION:
        raise InvalidInput(f"Unknown sign-off role {role}.")
    if not str(name or "").strip():
        raise InvalidInput(f"{SIGNOFF_LABELS[role]} sign-off needs the person's name.")
    if isinstance(signed_on, str):
        signed_on = dt.date.fromisoformat(signed_on)
    with schemes.editing(con, user, scheme_id, expected_version) as edit:
        current = assess(con, scheme_id)
        if len(current.scores) < len(DOMAINS):
            raise InvalidInput("Score every QIA domain before signing it off.")
        if role in ESCALATION and not current.escalated:
            raise InvalidInput(f"This QIA is not escalated (highest risk {current.max_risk} ≤ {current.threshold}).")
        con.execute("INSERT OR REPLACE INTO qia_signoffs VALUES (?, ?, ?, ?, ?)",
                    [int(scheme_id), role, name.strip(), signed_on, user.username])
        old = current.signoffs.get(role)
        edit.changes[f"signoff.{role}"] = (f"{old[0]} {old[1]}" if old else None, f"{name.strip()} {signed_on}")
    return assess(con, scheme_id)


def table(assessment: Assessment) -> pd.DataFrame:
    """The scores as rows (for the page and the workbook)."""
    return pd.DataFrame([
        {"domain": d, "domain_label": DOMAIN_LABELS[d], "consequence": assessment.scores[d][0],
         "likelihood": assessment.scores[d][1], "risk": assessment.risk[d], "mitigations": assessment.scores[d][2],
         "above_threshold": assessment.above_threshold(assessment.risk[d])}
        for d in DOMAINS if d in assessment.scores],
        columns=["domain", "domain_label", "consequence", "likelihood", "risk", "mitigations", "above_threshold"])
