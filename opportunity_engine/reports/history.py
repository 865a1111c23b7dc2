"""A scheme's audit trail as a person reads it: field names in words, money as £, months as the
trust writes them, blanks as "–" (the audit log stores codes and raw text: "realised.2026-11",
"signoff.operational", "None", "111540.0")."""
from __future__ import annotations

import pandas as pd

from ..delivery import plans, qia, schemes
from ..formatting import gbp_whole, month

FIELDS = {
    "created": "Created", "status": "Status", "title": "Title", "description": "Description", "lead": "Lead",
    "finance_category": "Finance category", "recurrent": "Recurrent", "saving_type": "Saving type",
    "case_study": "Case study", "plan.financial_year": "Plan: financial year", "plan.start_month": "Plan: start month",
    "plan.fye_gbp": "Plan: full-year effect", "plan.phasing": "Plan: phasing", "plan.milestones": "Plan: milestones",
    "plan.custom_phasing": "Plan: monthly values", "plan.metric_target_value": "Plan: driving metric's target",
}
MONEY = {"plan.fye_gbp", "target_gbp"}
CODES = {
    "status": schemes.STATUS_LABELS, "finance_category": schemes.FINANCE_LABELS,
    "saving_type": {"cash": "Cash-releasing", "productivity": "Productivity"}, "plan.phasing": plans.PROFILE_LABELS,
}


def field_label(field: str) -> str:
    """'realised.2026-11' → 'Realised £, Nov 2026'; 'signoff.operational' → 'QIA sign-off: Operational lead'."""
    kind, _, rest = field.partition(".")
    if kind == "realised" and rest:
        return f"Realised £, {month(rest)}"
    if kind == "signoff" and rest:
        return f"QIA sign-off: {qia.SIGNOFF_LABELS.get(rest, rest.replace('_', ' '))}"
    if kind == "qia" and rest:
        return f"QIA: {qia.DOMAIN_LABELS.get(rest, rest.replace('_', ' '))}"
    return FIELDS.get(field, field.replace("_", " ").replace(".", ": ").capitalize())


def value_text(field: str, value: object) -> str:
    """One old or new value in words: '–' for nothing, '£111,540' for money, 'Yes' for True."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or str(value) in ("", "None", "nan"):
        return "–"
    text = str(value)
    if field.startswith("realised.") or field in MONEY:
        try:
            return gbp_whole(float(text))
        except ValueError:
            return text
    if text in ("True", "False"):
        return "Yes" if text == "True" else "No"
    if field == "plan.start_month" and text.isdigit() and 1 <= int(text) <= 12:
        return f"M{text} ({plans.MONTH_NAMES[int(text) - 1]})"
    if field == "plan.financial_year" and text.isdigit():
        return plans.fy_label(int(text))
    return CODES.get(field, {}).get(text, text)


def readable(history: pd.DataFrame) -> pd.DataFrame:
    """Columns When, Who, What, Old, New from an audit history frame (changed_at, username, field,
    old_value, new_value), newest first as given."""
    return pd.DataFrame({
        "When": history["changed_at"],
        "Who": history["username"],
        "What": [field_label(str(f)) for f in history["field"]],
        "Old": [value_text(str(f), v) for f, v in zip(history["field"], history["old_value"])],
        "New": [value_text(str(f), v) for f, v in zip(history["field"], history["new_value"])],
    })
