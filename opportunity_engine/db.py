"""The DuckDB database: connection settings and the schema with its migrations.

One file holds reference data, activity, benchmarks, unit costs, metric facts and the app's own
records. The engine owns the schema: each migration is applied once, in order, inside a
transaction, and recorded in ``schema_version``, so a newer engine opens an older file and
upgrades it without losing anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

# No network at run time: DuckDB must never try to fetch an extension.
CONNECT_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
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
)

LATEST_VERSION = MIGRATIONS[-1].version


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the database with extension auto-install/auto-load off; migrate it when writable.

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
    return con


def memory() -> duckdb.DuckDBPyConnection:
    """An in-memory database with the full schema (tests, scratch work)."""
    con = duckdb.connect(":memory:", config=CONNECT_CONFIG)
    migrate(con)
    return con


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


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
