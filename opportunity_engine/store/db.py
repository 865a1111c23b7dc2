"""The DuckDB database: connection settings and the schema with its migrations.

One file holds reference data, activity, benchmarks, unit costs, metric facts and the app's own
records. The engine owns the schema: each migration is applied once, in order, inside a
transaction, and recorded in ``schema_version``, so a newer engine opens an older file and
upgrades it without losing anything.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from . import shipped

# No network at run time: DuckDB must never try to fetch an extension.
# DuckDB's own allocator (jemalloc, built into the wheel) keeps the pages a query freed unless a
# task peaked over 128 MB; its background threads hand them back to the system after a few
# seconds. In the app server that memory was the largest part of what rose with each monthly
# refresh (tools/bench_refresh.py: its region of the server held 77-107 MB after a refresh,
# 48-70 MB with the threads on).
CONNECT_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allocator_background_threads": True,
}


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "reference data, activity, catalogue, benchmarks, unit costs, metric facts", (
        """CREATE TABLE settings (key VARCHAR PRIMARY KEY, value VARCHAR)""",
        """CREATE TABLE csus (csu_code VARCHAR PRIMARY KEY, csu_name VARCHAR NOT NULL)""",
        """CREATE TABLE specialties (
             specialty_code VARCHAR PRIMARY KEY, specialty_name VARCHAR NOT NULL,
             csu_code VARCHAR NOT NULL)""",
        # Activity tables carry no primary key on purpose: an ART index over millions of rows
        # makes bulk loads several times slower. The importer checks id uniqueness in SQL.
        """CREATE TABLE spells (
             spell_id VARCHAR NOT NULL, csu_code VARCHAR NOT NULL, specialty_code VARCHAR NOT NULL,
             admission_date DATE NOT NULL, discharge_date DATE NOT NULL,
             admission_type VARCHAR NOT NULL, bads_eligible TINYINT NOT NULL,
             procedure_date DATE, readmitted_30d TINYINT NOT NULL, period VARCHAR NOT NULL)""",
        """CREATE TABLE outpatients (
             appointment_id VARCHAR NOT NULL, csu_code VARCHAR NOT NULL,
             specialty_code VARCHAR NOT NULL, appointment_date DATE NOT NULL,
             attendance_type VARCHAR NOT NULL, outcome VARCHAR NOT NULL,
             pifu TINYINT NOT NULL, virtual TINYINT NOT NULL, period VARCHAR NOT NULL)""",
        """CREATE TABLE theatre_sessions (
             session_id VARCHAR NOT NULL, csu_code VARCHAR NOT NULL,
             specialty_code VARCHAR NOT NULL, session_date DATE NOT NULL,
             planned_minutes INTEGER NOT NULL, used_minutes INTEGER NOT NULL,
             late_start_minutes INTEGER NOT NULL, early_finish_minutes INTEGER NOT NULL,
             cases INTEGER NOT NULL, on_day_cancellations INTEGER NOT NULL,
             period VARCHAR NOT NULL)""",
        """CREATE TABLE workforce (
             period VARCHAR NOT NULL, csu_code VARCHAR NOT NULL, staff_group VARCHAR NOT NULL,
             substantive_cost_gbp DOUBLE NOT NULL, bank_cost_gbp DOUBLE NOT NULL,
             agency_cost_gbp DOUBLE NOT NULL, contracted_wte DOUBLE NOT NULL,
             sickness_fte_days DOUBLE NOT NULL, available_fte_days DOUBLE NOT NULL)""",
        """CREATE TABLE metrics (
             metric_id VARCHAR PRIMARY KEY, metric_name VARCHAR NOT NULL, domain VARCHAR NOT NULL,
             definition VARCHAR, numerator_label VARCHAR NOT NULL,
             denominator_label VARCHAR NOT NULL, direction VARCHAR NOT NULL,
             unit VARCHAR NOT NULL, value_format VARCHAR NOT NULL DEFAULT 'ratio',
             cost_driver VARCHAR NOT NULL, saving_type VARCHAR NOT NULL,
             overlap_group VARCHAR NOT NULL DEFAULT '', min_volume DOUBLE NOT NULL DEFAULT 30,
             funnel VARCHAR NOT NULL DEFAULT 'poisson', capacity_unit VARCHAR NOT NULL DEFAULT '',
             capacity_divisor DOUBLE NOT NULL DEFAULT 1, data_source VARCHAR NOT NULL DEFAULT '',
             benchmark_source VARCHAR NOT NULL DEFAULT '', scheme_ideas VARCHAR[] NOT NULL DEFAULT [],
             quality_risks VARCHAR[] NOT NULL DEFAULT [], origin VARCHAR NOT NULL DEFAULT 'catalogue')""",
        # specialty_code '' means CSU-wide (facts) or all specialties (costs, benchmarks): an empty
        # string rather than NULL keeps every join a plain equality.
        """CREATE TABLE metric_facts (
             period VARCHAR NOT NULL, csu_code VARCHAR NOT NULL, specialty_code VARCHAR NOT NULL,
             metric_id VARCHAR NOT NULL, numerator DOUBLE NOT NULL, denominator DOUBLE NOT NULL,
             source VARCHAR NOT NULL)""",
        """CREATE TABLE unit_costs (
             cost_driver VARCHAR NOT NULL, specialty_code VARCHAR NOT NULL,
             unit_cost_gbp DOUBLE NOT NULL, source VARCHAR NOT NULL,
             PRIMARY KEY (cost_driver, specialty_code))""",
        """CREATE TABLE benchmarks (
             metric_id VARCHAR NOT NULL, specialty_code VARCHAR NOT NULL, peer_group VARCHAR NOT NULL,
             p10 DOUBLE NOT NULL, p25 DOUBLE NOT NULL, p50 DOUBLE NOT NULL, p75 DOUBLE NOT NULL,
             p90 DOUBLE NOT NULL, source VARCHAR NOT NULL,
             PRIMARY KEY (metric_id, specialty_code, peer_group))""",
        """CREATE SEQUENCE import_log_seq""",
        """CREATE TABLE import_log (
             import_id BIGINT PRIMARY KEY DEFAULT nextval('import_log_seq'),
             kind VARCHAR NOT NULL, file_name VARCHAR NOT NULL, row_count BIGINT NOT NULL,
             period_from VARCHAR, period_to VARCHAR, loaded_by VARCHAR NOT NULL,
             loaded_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
    )),
    Migration(2, "users with roles and CSU scope; shortlist selections", (
        """CREATE TABLE users (
             username VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, email VARCHAR NOT NULL DEFAULT '',
             password_hash VARCHAR NOT NULL, role VARCHAR NOT NULL, csus VARCHAR[] NOT NULL DEFAULT [],
             created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        """CREATE SEQUENCE shortlist_seq""",
        """CREATE TABLE shortlist_items (
             item_id BIGINT PRIMARY KEY DEFAULT nextval('shortlist_seq'), csu_code VARCHAR NOT NULL,
             specialty_code VARCHAR NOT NULL, metric_id VARCHAR NOT NULL, target VARCHAR NOT NULL,
             benchmark VARCHAR NOT NULL, period_from VARCHAR, period_to VARCHAR,
             actual DOUBLE, target_value DOUBLE, opportunity_gbp DOUBLE NOT NULL,
             created_by VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
    )),
    Migration(3, "schemes, CIP plans, QIA, WRP targets, realised savings, audit, usage, feedback, lock-out", (
        """ALTER TABLE users ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0""",
        """ALTER TABLE users ADD COLUMN last_failed_at TIMESTAMP""",
        """CREATE SEQUENCE scheme_seq""",
        # A scheme keeps the CSU/specialty/metric that motivated it and the opportunity figures at
        # the time (snapshot_*), so a data refresh never rewrites why it was started. `version`
        # is the optimistic-concurrency counter: every write checks and bumps it.
        """CREATE TABLE schemes (
             scheme_id BIGINT PRIMARY KEY DEFAULT nextval('scheme_seq'),
             title VARCHAR NOT NULL, description VARCHAR NOT NULL DEFAULT '',
             lead VARCHAR NOT NULL DEFAULT '', csu_code VARCHAR NOT NULL,
             specialty_code VARCHAR, metric_id VARCHAR,
             finance_category VARCHAR NOT NULL DEFAULT 'pay', recurrent BOOLEAN NOT NULL DEFAULT true,
             saving_type VARCHAR NOT NULL DEFAULT 'cash', status VARCHAR NOT NULL DEFAULT 'idea',
             origin VARCHAR NOT NULL DEFAULT 'manual', case_study BOOLEAN NOT NULL DEFAULT false,
             snapshot_target VARCHAR, snapshot_benchmark VARCHAR, snapshot_period_from VARCHAR,
             snapshot_period_to VARCHAR, snapshot_actual DOUBLE, snapshot_target_value DOUBLE,
             snapshot_opportunity_gbp DOUBLE, snapshot_unit_cost_gbp DOUBLE,
             created_by VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
             updated_by VARCHAR NOT NULL, updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
             version INTEGER NOT NULL DEFAULT 1)""",
        """INSERT INTO schemes (title, csu_code, specialty_code, metric_id, status, origin, snapshot_target,
               snapshot_benchmark, snapshot_period_from, snapshot_period_to, snapshot_actual,
               snapshot_target_value, snapshot_opportunity_gbp, created_by, created_at, updated_by)
           SELECT coalesce(m.metric_name, i.metric_id), i.csu_code, i.specialty_code, i.metric_id, 'idea',
                  'opportunity', i.target, i.benchmark, i.period_from, i.period_to, i.actual, i.target_value,
                  i.opportunity_gbp, i.created_by, i.created_at, i.created_by
           FROM shortlist_items i LEFT JOIN metrics m USING (metric_id) ORDER BY i.item_id""",
        """DROP TABLE shortlist_items""",
        """DROP SEQUENCE shortlist_seq""",
        """CREATE TABLE cip_plans (
             scheme_id BIGINT PRIMARY KEY, financial_year INTEGER NOT NULL, start_month INTEGER NOT NULL,
             fye_gbp DOUBLE NOT NULL, phasing VARCHAR NOT NULL DEFAULT 'even',
             custom_phasing DOUBLE[], milestones VARCHAR NOT NULL DEFAULT '',
             metric_target_value DOUBLE)""",
        """CREATE TABLE qia_scores (
             scheme_id BIGINT NOT NULL, domain VARCHAR NOT NULL, consequence INTEGER NOT NULL,
             likelihood INTEGER NOT NULL, mitigations VARCHAR NOT NULL DEFAULT '',
             PRIMARY KEY (scheme_id, domain))""",
        """CREATE TABLE qia_signoffs (
             scheme_id BIGINT NOT NULL, role VARCHAR NOT NULL, name VARCHAR NOT NULL, signed_on DATE NOT NULL,
             recorded_by VARCHAR NOT NULL, PRIMARY KEY (scheme_id, role))""",
        """CREATE TABLE wrp_targets (
             csu_code VARCHAR NOT NULL, financial_year INTEGER NOT NULL, target_gbp DOUBLE NOT NULL,
             source VARCHAR NOT NULL DEFAULT '', set_by VARCHAR NOT NULL DEFAULT '',
             PRIMARY KEY (csu_code, financial_year))""",
        """CREATE TABLE realised_savings (
             scheme_id BIGINT NOT NULL, period VARCHAR NOT NULL, realised_gbp DOUBLE NOT NULL,
             entered_by VARCHAR NOT NULL, entered_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
             PRIMARY KEY (scheme_id, period))""",
        """CREATE SEQUENCE audit_seq""",
        """CREATE TABLE audit_log (
             audit_id BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
             changed_at TIMESTAMP NOT NULL DEFAULT current_timestamp, username VARCHAR NOT NULL,
             entity VARCHAR NOT NULL, entity_id VARCHAR NOT NULL, field VARCHAR NOT NULL,
             old_value VARCHAR, new_value VARCHAR)""",
        # Usage events carry no patient data: who (username, role, CSUs), when, which page/action.
        """CREATE TABLE usage_events (
             event_at TIMESTAMP NOT NULL DEFAULT current_timestamp, username VARCHAR NOT NULL,
             role VARCHAR NOT NULL, csus VARCHAR[] NOT NULL DEFAULT [], event VARCHAR NOT NULL,
             page VARCHAR NOT NULL DEFAULT '', detail VARCHAR NOT NULL DEFAULT '')""",
        """CREATE SEQUENCE feedback_seq""",
        """CREATE TABLE feedback (
             feedback_id BIGINT PRIMARY KEY DEFAULT nextval('feedback_seq'),
             submitted_at TIMESTAMP NOT NULL DEFAULT current_timestamp, username VARCHAR NOT NULL,
             page VARCHAR NOT NULL, view VARCHAR NOT NULL DEFAULT '', rating INTEGER NOT NULL,
             comment VARCHAR NOT NULL DEFAULT '', status VARCHAR NOT NULL DEFAULT 'new',
             response VARCHAR NOT NULL DEFAULT '', updated_by VARCHAR, updated_at TIMESTAMP)""",
    )),
    # A trust's extract columns mapped onto a template's (store/mappings.py): template column ->
    # file column, as JSON, reused every month by name.
    Migration(4, "saved column mappings; the peer group of a scheme's snapshot", (
        """CREATE TABLE column_mappings (
             name VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, columns VARCHAR NOT NULL,
             saved_by VARCHAR NOT NULL, saved_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        # Peer groups are data: a scheme remembers which group its snapshot's target came from.
        """ALTER TABLE schemes ADD COLUMN snapshot_peer_group VARCHAR""",
    )),
    Migration(5, "case mix: spells' HRG and age, HRG length-of-stay benchmarks, per-HRG facts", (
        # Optional in the spells template: older files and databases simply hold NULL.
        """ALTER TABLE spells ADD COLUMN hrg_code VARCHAR""",
        """ALTER TABLE spells ADD COLUMN age SMALLINT""",
        """CREATE TABLE hrg_benchmarks (
             hrg_code VARCHAR NOT NULL, admission_type VARCHAR NOT NULL, peer_group VARCHAR NOT NULL,
             p10 DOUBLE NOT NULL, p25 DOUBLE NOT NULL, p50 DOUBLE NOT NULL, p75 DOUBLE NOT NULL,
             p90 DOUBLE NOT NULL, source VARCHAR NOT NULL,
             PRIMARY KEY (hrg_code, admission_type, peer_group))""",
        # The spells of each length-of-stay metric per HRG, beside metric_facts (same grain plus
        # the HRG): what case-mix adjustment reads, so it never touches the spells themselves.
        # Only spells with an HRG code; the rest of a grain's denominator is "not matched".
        """CREATE TABLE hrg_facts (
             period VARCHAR NOT NULL, csu_code VARCHAR NOT NULL, specialty_code VARCHAR NOT NULL,
             metric_id VARCHAR NOT NULL, hrg_code VARCHAR NOT NULL, spells DOUBLE NOT NULL,
             bed_days DOUBLE NOT NULL, age_sum DOUBLE NOT NULL, aged DOUBLE NOT NULL)""",
    )),
    # One row per sign-in, checked on every run: sign-out, a password reset, a role change or the
    # user's removal ends it, so a copied cookie stops working at once. Only a SHA-256 of the
    # cookie's random token is stored: a copy of the database gives no usable cookie.
    Migration(6, "sign-in sessions (server-side, ended by sign-out, reset, role change, removal, idle)", (
        """CREATE TABLE sign_in_sessions (
             token_hash VARCHAR PRIMARY KEY, username VARCHAR NOT NULL,
             started_at TIMESTAMP NOT NULL, last_seen_at TIMESTAMP NOT NULL,
             ended_at TIMESTAMP, end_reason VARCHAR)""",
    )),
)

LATEST_VERSION = MIGRATIONS[-1].version


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the database with extension auto-install/auto-load off; when writable, migrate it and
    add any shipped catalogue entry or unit cost it lacks (so a new file is ready for imports).

    One connection per process; callers that work on several threads take ``con.cursor()``
    per thread (a DuckDB connection is not shareable across threads).
    """
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"No database at {path}: build one with `python -m opportunity_engine demo --db {path}`")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config=CONNECT_CONFIG)
    con.execute("SET enable_progress_bar = false")  # a session setting: it cannot go in the config
    if not read_only:
        migrate(con)
        shipped.ensure(con)
    return con


def memory() -> duckdb.DuckDBPyConnection:
    """An in-memory database with the full schema (tests, scratch work)."""
    con = duckdb.connect(":memory:", config=CONNECT_CONFIG)
    migrate(con)
    return con


Params = Sequence[object] | Mapping[str, object] | None


class MissingRowError(LookupError):
    """A query that must return a row returned none: a bug or a concurrent delete, never user input."""


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> tuple[Any, ...]:
    """The one row a query must return (an aggregate, a RETURNING clause, a key just checked).

    ``fetchone()`` returns None when there is no row, and ``None[0]`` fails later as an obscure
    TypeError; this names the query instead."""
    row = con.execute(sql, params).fetchone()
    if row is None:
        raise MissingRowError(f"no row from: {' '.join(sql.split())[:120]}")
    return row


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> Any:
    """The first column of the one row a query must return (``SELECT count(*) ...``)."""
    return one(con, sql, params)[0]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'")
    if not exists:
        return 0
    return int(scalar(con, "SELECT coalesce(max(version), 0) FROM schema_version"))


def migrate(con: duckdb.DuckDBPyConnection, up_to: int | None = None) -> int:
    """Apply every migration newer than the file's version (each in its own transaction)."""
    con.execute(
        """CREATE TABLE IF NOT EXISTS schema_version (
             version INTEGER PRIMARY KEY, description VARCHAR NOT NULL,
             applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"""
    )
    current = schema_version(con)
    for migration in MIGRATIONS:
        if migration.version <= current or (up_to is not None and migration.version > up_to):
            continue
        con.begin()
        try:
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                [migration.version, migration.description],
            )
            con.commit()
        except Exception:
            con.rollback()
            raise
        current = migration.version
    return current


def get_setting(con: duckdb.DuckDBPyConnection, key: str, default: str | None = None) -> str | None:
    row = con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


def set_setting(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value])


def bump_data_version(con: duckdb.DuckDBPyConnection) -> None:
    """Mark the analytical data as changed (inside the caller's transaction): caches keyed on
    the data version then miss."""
    import uuid

    set_setting(con, "data_version", uuid.uuid4().hex)


def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """Write what the write-ahead log holds into the database file, if nothing holds it off.

    Until a checkpoint DuckDB keeps the rows written since the last one in memory beside the log,
    and it checkpoints by itself only once the log passes 16 MB: the app server's in-memory
    tables grew 3.8 -> 15.9 MB over seven refreshes (tools/bench_refresh.py, its log 2.8 MB a
    refresh). The app's housekeeping calls this every half minute and after an import. DuckDB
    refuses while a transaction that changed rows is still open or still needed by an older
    reader (a cursor left with an unfinished result: why ui.end_run closes a run's cursors); the
    refusal is left for the next try. A command-line import needs none: DuckDB checkpoints when
    the process closes the database."""
    try:
        con.execute("CHECKPOINT")
    except duckdb.Error:
        pass


def backup_path(database: str | Path, when: datetime | None = None) -> Path:
    """Where a backup of ``database`` goes unless told otherwise (the CLI and the Data page):
    backups/opportunity-YYYYMMDD-HHMMSS.duckdb beside the database, a new name every second."""
    return Path(database).parent / "backups" / f"opportunity-{(when or datetime.now()):%Y%m%d-%H%M%S}.duckdb"


def backup(con: duckdb.DuckDBPyConnection, out: str | Path) -> Path:
    """Write a consistent copy of the whole database to a new file.

    COPY FROM DATABASE runs in one transaction, so the copy is a snapshot: a write committed by
    another session mid-copy is either wholly in it or not at all. An existing file is never
    overwritten (a backup must not destroy an older backup)."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists: choose a new file name for each backup")
    out.parent.mkdir(parents=True, exist_ok=True)
    source = scalar(con, "SELECT current_database()")
    con.execute("ATTACH ? AS oe_backup", [str(out)])
    try:
        con.execute(f'COPY FROM DATABASE "{source}" TO oe_backup')
    finally:
        con.execute("DETACH oe_backup")
    return out
