"""Structured logs: one JSON object per line on stderr, so a trust's log collector can parse them.

Every line has ts, level, logger and event; extra fields ride along (username, page, rows...).
Never patient data: events name users, pages and counts.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_HANDLER = "opportunity-explorer-json"  # names our handler so setup() adds it once
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage()}
        out.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(level: int = logging.INFO) -> logging.Logger:
    """Configure the app's logger once per process (Streamlit re-runs app.py on every interaction)."""
    log = logging.getLogger("opportunity_explorer")
    if not any(h.get_name() == _HANDLER for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.set_name(_HANDLER)
        log.addHandler(handler)
        log.setLevel(level)
        log.propagate = False
    return log
