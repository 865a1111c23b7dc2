"""Scheme statuses, stated once: the words stored in ``schemes.status`` and the groups the rules use.

Here in the store because the importer (a realised-savings file is accepted only for committed
schemes) needs them as much as the delivery wing (plan totals, tracking, the workflow's moves in
``delivery.workflow``) and the usage figures do.
"""
from __future__ import annotations

STATUSES = ("idea", "shortlisted", "planning", "approved", "delivering", "delivered", "rejected")
# Counted as committed in plan totals and tracked; realised savings are recorded only for these.
COMMITTED = ("approved", "delivering", "delivered")
# Open schemes whose plans are pipeline (not yet committed) in the totals.
PIPELINE = ("idea", "shortlisted", "planning")
# In delivery: the plan is fixed (realised savings instead), and the data can evidence the change.
IN_DELIVERY = ("delivering", "delivered")


def sql_list(statuses: tuple[str, ...]) -> str:
    """A status group as an SQL literal list, for SQL the engine builds from its own constants only."""
    return "(" + ", ".join(f"'{s}'" for s in statuses) + ")"
