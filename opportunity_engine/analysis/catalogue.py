"""The metric catalogue: what each metric means, which way is better and what its gap costs.

The shipped catalogue lives in ``data/metrics.toml``; it is copied into the ``metrics`` table so
that entries added later by a ``metrics`` import are first-class: everything downstream reads the
table, never the file. That is what lets a new metric arrive without a code change.
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import duckdb

from ..config import DATA_DIR

CATALOGUE_PATH = DATA_DIR / "metrics.toml"
DIRECTIONS = ("lower", "higher")
SAVING_TYPES = ("cash", "productivity")
FUNNELS = ("binomial", "poisson", "none")
VALUE_FORMATS = ("percent", "ratio", "days", "minutes", "gbp")


@dataclass(frozen=True)
class Metric:
    metric_id: str
    metric_name: str
    domain: str
    numerator_label: str
    denominator_label: str
    direction: str
    unit: str
    cost_driver: str
    saving_type: str
    overlap_group: str = ""
    min_volume: float = 30
    definition: str = ""
    value_format: str = "ratio"
    funnel: str = "poisson"
    capacity_unit: str = ""
    capacity_divisor: float = 1
    data_source: str = ""
    benchmark_source: str = ""
    scheme_ideas: tuple[str, ...] = field(default_factory=tuple)
    quality_risks: tuple[str, ...] = field(default_factory=tuple)
    origin: str = "catalogue"

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"


COLUMNS = tuple(f.name for f in fields(Metric))


def load_toml(path: Path = CATALOGUE_PATH) -> list[Metric]:
    """Parse the shipped catalogue file into Metric objects (validated)."""
    with Path(path).open("rb") as fh:
        raw = tomllib.load(fh)
    out = []
    for metric_id, entry in raw.items():
        entry = dict(entry)
        entry["metric_name"] = entry.pop("name")
        for key in ("scheme_ideas", "quality_risks"):
            entry[key] = tuple(entry.get(key, ()))
        metric = Metric(metric_id=metric_id, **entry)
        problems = validate(metric)
        if problems:
            raise ValueError(f"{path}: metric {metric_id}: {'; '.join(problems)}")
        out.append(metric)
    return out


def validate(metric: Metric) -> list[str]:
    """Rules a catalogue entry must satisfy, shared by the file loader and the importer."""
    problems = []
    if metric.direction not in DIRECTIONS:
        problems.append(f"direction must be one of {DIRECTIONS}")
    if metric.saving_type not in SAVING_TYPES:
        problems.append(f"saving_type must be one of {SAVING_TYPES}")
    if metric.funnel not in FUNNELS:
        problems.append(f"funnel must be one of {FUNNELS}")
    if metric.value_format not in VALUE_FORMATS:
        problems.append(f"value_format must be one of {VALUE_FORMATS}")
    if metric.min_volume < 0:
        problems.append("min_volume must not be negative")
    if metric.capacity_divisor <= 0:
        problems.append("capacity_divisor must be positive")
    return problems


def upsert(con: duckdb.DuckDBPyConnection, metrics: list[Metric]) -> None:
    """Insert or replace catalogue entries (one statement per entry; the catalogue is small)."""
    placeholders = ", ".join("?" for _ in COLUMNS)
    for metric in metrics:
        values = asdict(metric)
        values["scheme_ideas"] = list(metric.scheme_ideas)
        values["quality_risks"] = list(metric.quality_risks)
        con.execute(
            f"INSERT OR REPLACE INTO metrics ({', '.join(COLUMNS)}) VALUES ({placeholders})",
            [values[c] for c in COLUMNS],
        )


def install_shipped(con: duckdb.DuckDBPyConnection) -> int:
    """Load data/metrics.toml into the database (entries added by import are left alone)."""
    metrics = load_toml()
    upsert(con, metrics)
    return len(metrics)


def all_metrics(con: duckdb.DuckDBPyConnection) -> dict[str, Metric]:
    """Every metric in the database catalogue, keyed by id, in catalogue order of domain/name."""
    rows = con.execute(
        f"SELECT {', '.join(COLUMNS)} FROM metrics ORDER BY domain, metric_id"
    ).fetchall()
    out = {}
    for row in rows:
        values = dict(zip(COLUMNS, row))
        values["scheme_ideas"] = tuple(values["scheme_ideas"] or ())
        values["quality_risks"] = tuple(values["quality_risks"] or ())
        out[values["metric_id"]] = Metric(**values)
    return out
