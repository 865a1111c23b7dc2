"""The audit log and the one transaction helper every write of the app's own records uses.

Every change to a scheme, its plan, QIA, realised savings, WRP targets, unit costs, scheme
ideas or feedback is written as (who, when, entity, id, field, old → new) in the same
transaction as the change itself, so the log can never disagree with the data.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd

from ..errors import Refusal


class ConflictError(Refusal, RuntimeError):
    """Someone else changed the record since it was read. The message is safe to show: a
    refusal like the others (reload, then make the change again), caught with them."""


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, or ROLLBACK on any error. DuckDB's own write-write conflict (two
    sessions committing the same row) becomes a ConflictError like our version check."""
    con.begin()
    try:
        yield con
        con.commit()
    except duckdb.TransactionException as exc:
        _rollback(con)
        raise ConflictError("Someone else saved a change to this record at the same moment. "
                            "Reload to see it, then make your change again.") from exc
    except BaseException:
        _rollback(con)
        raise


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.rollback()
    except duckdb.Error:  # the failed commit may already have ended the transaction
        pass


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    return str(value)


def record(con: duckdb.DuckDBPyConnection, username: str, entity: str, entity_id, changes: dict) -> int:
    """Write one audit row per changed field; ``changes`` maps field → (old, new). Unchanged
    fields are skipped. Returns the number of rows written."""
    rows = [(username, entity, str(entity_id), field, _text(old), _text(new))
            for field, (old, new) in changes.items() if _text(old) != _text(new)]
    if rows:
        con.executemany("INSERT INTO audit_log (username, entity, entity_id, field, old_value, new_value) "
                        "VALUES (?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def history(con: duckdb.DuckDBPyConnection, entity: str, entity_id) -> pd.DataFrame:
    """Newest first: when, who, field, old → new."""
    return con.execute("""SELECT changed_at, username, field, old_value, new_value FROM audit_log
                          WHERE entity = ? AND entity_id = ? ORDER BY audit_id DESC""",
                       [entity, str(entity_id)]).df()
