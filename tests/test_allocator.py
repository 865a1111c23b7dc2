"""What the app server's housekeeping does to keep its memory level between refreshes (ui.start_housekeeping)."""
from __future__ import annotations

import pytest

from opportunity_engine.store import allocator, db


def _wal_bytes(con) -> str:
    return con.execute("SELECT wal_size FROM pragma_database_size()").fetchone()[0]


def test_release_hands_duckdbs_freed_pages_back_to_the_system():
    """DuckDB's jemalloc keeps what a query freed (here 100 MB of a dropped table) until purged:
    the server held 50 MB of such pages after each monthly refresh."""
    if allocator.jemalloc_stats() is None:
        pytest.skip("this duckdb build has no jemalloc")
    con = db.memory()
    before = allocator.jemalloc_stats()
    con.execute("CREATE TABLE big AS SELECT range AS i, range::VARCHAR AS s FROM range(5000000)")
    con.execute("DROP TABLE big")
    held = allocator.jemalloc_stats()
    allocator.release()
    after = allocator.jemalloc_stats()
    assert before and held and after
    assert held["resident"] - after["resident"] >= 50, (before, held, after)
    assert after["resident"] <= before["resident"] + 20
    assert after["allocated"] <= before["allocated"] + 5  # nothing live was freed: only pages already free


def test_checkpoint_moves_the_log_into_the_file_and_waits_for_a_write_under_way(tmp_path):
    path = tmp_path / "app.duckdb"
    db.connect(path).close()
    con = db.connect(path)
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(100000)")
    assert _wal_bytes(con) != "0 bytes"
    other = con.cursor()
    other.begin()
    other.execute("UPDATE t SET i = i + 1 WHERE i = 1")  # an update holds off checkpoints until it ends
    db.checkpoint(con)  # another write is under way: left for later, no error
    assert _wal_bytes(con) != "0 bytes"
    other.rollback()
    db.checkpoint(con)
    assert _wal_bytes(con) == "0 bytes"
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 100000


def test_a_page_runs_cursors_are_closed_when_the_run_ends(demo_copy, monkeypatch):
    """A cursor keeps its last result, and so its transaction, open until it is closed: one that
    outlived its run (a reference cycle, the duckdb module's own bindings) held DuckDB's checkpoint
    off for as long as the server ran, and the rows written since stayed in memory."""
    import duckdb

    import ui

    monkeypatch.setenv("OPPORTUNITY_DB", str(demo_copy))
    ui.start_run()
    kept = ui.cursor()
    kept.execute("SELECT * FROM metric_facts").fetchone()  # a result left unfinished
    ui.end_run()
    with pytest.raises(duckdb.ConnectionException):
        kept.execute("SELECT 1")
    after = ui.cursor()  # outside a run: the caller's own, not closed by anyone else
    ui.end_run()
    assert after.execute("SELECT 1").fetchone() == (1,)
    ui.cursor().execute("UPDATE settings SET value = value WHERE key = 'data_version'")
    db.checkpoint(ui.cursor())
    assert _wal_bytes(ui.cursor()) == "0 bytes"
