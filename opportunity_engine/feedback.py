"""Feedback from every page (rating + comment, tagged with the page and view), triaged by admin.

Status runs new → planned → done (or back); a response written when it is done is what users
see in "You said, we did".
"""
from __future__ import annotations

import duckdb
import pandas as pd

from . import usage
from .errors import InvalidInput, NotAllowed
from .store import audit
from .store.audit import transaction
from .store.db import one, scalar
from .users import User

STATUSES = ("new", "planned", "done")
MAX_COMMENT = 2000


def submit(con: duckdb.DuckDBPyConnection, user: User, page: str, view: str, rating: int, comment: str) -> int:
    if not 1 <= int(rating) <= 5:
        raise InvalidInput("Rating is 1 to 5.")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(f"Please keep feedback under {MAX_COMMENT:,} characters.")
    with transaction(con):
        feedback_id = scalar(con, """INSERT INTO feedback (username, page, view, rating, comment)
                                     VALUES (?, ?, ?, ?, ?) RETURNING feedback_id""",
                             [user.username, page[:100], view[:500], int(rating), comment])
        usage.record(con, user, "feedback", page[:100], str(feedback_id))
    return feedback_id


def triage(con: duckdb.DuckDBPyConnection, user: User, feedback_id: int, status: str, response: str = "") -> None:
    if not user.can_triage_feedback:
        raise NotAllowed("Only an admin triages feedback.")
    if status not in STATUSES:
        raise InvalidInput(f"Status must be one of {', '.join(STATUSES)}.")
    with transaction(con):
        old = con.execute("SELECT status, response FROM feedback WHERE feedback_id = ?", [int(feedback_id)]).fetchone()
        if old is None:
            raise InvalidInput(f"No feedback {feedback_id}.")
        con.execute("""UPDATE feedback SET status = ?, response = ?, updated_by = ?, updated_at = current_timestamp
                       WHERE feedback_id = ?""", [status, response, user.username, int(feedback_id)])
        audit.record(con, user.username, "feedback", feedback_id,
                     {"status": (old[0], status), "response": (old[1], response)})


def listing(con: duckdb.DuckDBPyConnection, status: str | None = None) -> pd.DataFrame:
    return con.execute("""SELECT feedback_id, submitted_at, username, page, view, rating, comment, status, response
                          FROM feedback WHERE $status IS NULL OR status = $status ORDER BY feedback_id DESC""",
                       {"status": status}).df()


def you_said_we_did(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Done items with a response, without who said it (users see what changed, not who asked)."""
    return con.execute("""SELECT updated_at AS done_on, page, comment AS you_said, response AS we_did
                          FROM feedback WHERE status = 'done' AND response <> '' ORDER BY updated_at DESC""").df()


def summary(con: duckdb.DuckDBPyConnection) -> dict:
    """Items, average rating and open items (Adoption page)."""
    items, rating, open_items = one(
        con, "SELECT count(*), avg(rating), count(*) FILTER (WHERE status <> 'done') FROM feedback")
    return {"items": int(items), "average_rating": rating, "open": int(open_items)}
