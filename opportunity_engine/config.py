"""The tool's own settings (``config.toml`` at the project root).

Streamlit reads only ``.streamlit/config.toml``; this file is ours. Settings are read once and
are plain dictionaries so tests can pass their own.
"""
from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG_PATH = ROOT / "config.toml"
DATA_DIR = ROOT / "data"

DEFAULTS: dict[str, dict[str, Any]] = {
    "database": {"path": "data/opportunity.duckdb"},
    "demo": {"seed": 42, "scale": "trust"},
    "analysis": {"peer_group": "peer", "window_months": 12, "internal_min_units": 4,
                 "hrg_min_spells": 10},
    "import": {"used_minutes_tolerance": 120, "max_errors_per_rule": 20, "earliest_year": 2000,
               "future_grace_months": 1},
    "auth": {"cookie_name": "opportunity_explorer", "cookie_expiry_days": 1},
    "pipeline_weights": {"idea": 0.10, "shortlisted": 0.25, "planning": 0.50},
    "freshness": {"stale_after_months": 2},
}


@lru_cache(maxsize=1)
def settings() -> dict[str, dict[str, Any]]:
    """Defaults overlaid with config.toml (missing file or keys fall back to defaults)."""
    merged = {k: dict(v) for k, v in DEFAULTS.items()}
    if CONFIG_PATH.exists():
        with CONFIG_PATH.open("rb") as fh:
            for section, values in tomllib.load(fh).items():
                merged.setdefault(section, {}).update(values)
    return merged


def database_path() -> Path:
    """The database file: $OPPORTUNITY_DB wins over config.toml (relative to the project root)."""
    raw = os.environ.get("OPPORTUNITY_DB") or settings()["database"]["path"]
    path = Path(raw)
    return path if path.is_absolute() else ROOT / path
