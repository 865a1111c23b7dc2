"""Front-end glue shared by app.py and the pages: the connection, the signed-in user, the view
held in the URL (st.query_params) and small pure helpers for selections.

Nothing here computes money: numbers come from opportunity_engine.
"""
from __future__ import annotations

import logging
import os
import secrets

import streamlit as st

from opportunity_engine import db
from opportunity_engine.config import database_path
from opportunity_engine.opportunities import BENCHMARKS, TARGETS, Basis
from opportunity_engine.users import User, get_user

log = logging.getLogger("opportunity_explorer")
CSU_WIDE = "csu-wide"  # URL token for the CSU-wide "specialty" (stored as '')
VIEW_KEYS = ("target", "benchmark", "present")


@st.cache_resource(show_spinner=False)
def _connection(path: str):
    """One read-write connection per process and database; pages take a cursor per run."""
    return db.connect(path)


def cursor():
    return _connection(str(database_path())).cursor()


@st.cache_resource(show_spinner=False)
def cookie_key() -> str:
    """The sign-in cookie's signing key: secrets.toml, else $OPPORTUNITY_COOKIE_KEY, else random.

    Never the library's example key (anyone could forge a login with it). A random key means
    sessions end when the app restarts: fine for a demo, logged as a warning.
    """
    try:
        key = st.secrets.get("cookie_key")
    except Exception:  # no secrets.toml at all
        key = None
    key = key or os.environ.get("OPPORTUNITY_COOKIE_KEY")
    if not key:
        log.warning("No cookie_key in .streamlit/secrets.toml or OPPORTUNITY_COOKIE_KEY: using a random key; "
                    "sign-ins will not survive a restart.")
        key = secrets.token_urlsafe(32)
    return key


def current_user() -> User | None:
    if not st.session_state.get("authentication_status"):
        return None
    return get_user(cursor(), st.session_state.get("username"))


def require_user() -> User:
    """The signed-in user, or off to app.py's sign-in before anything renders.

    Pages must not trust that app.py ran first: while a fresh server has not yet run
    st.navigation, Streamlit's legacy discovery of the pages/ folder runs a page script directly
    for a deep link. Such a visit goes to sign-in with its view (query parameters) kept.
    """
    user = current_user()
    if user is None:
        st.switch_page("app.py", query_params=dict(st.query_params))
    return user


def param(name: str) -> str | None:
    value = st.query_params.get(name)
    return value if value not in (None, "") else None


def basis() -> Basis:
    """The target and benchmark from the URL (unknown values fall back to the defaults)."""
    target = param("target") if param("target") in TARGETS else "median"
    benchmark = param("benchmark") if param("benchmark") in BENCHMARKS else "peer"
    return Basis(target=target, benchmark=benchmark)


def presenting() -> bool:
    return param("present") == "1"


def view_params(**extra: str | None) -> dict[str, str]:
    """Query parameters for a link: the current target/benchmark/presentation plus ``extra``."""
    out = {k: st.query_params[k] for k in VIEW_KEYS if param(k)}
    out.update({k: v for k, v in extra.items() if v not in (None, "")})
    return out


def specialty_param(code: str) -> str:
    return CSU_WIDE if code == "" else code


def specialty_from_param(value: str | None) -> str | None:
    if value is None:
        return None
    return "" if value == CSU_WIDE else value


def selected_value(frame, selection, column: str) -> str | None:
    """The ``column`` value of the row a dataframe or chart selection points at, or None.

    Pure (no Streamlit calls), so the selection → filter logic is tested without a browser:
    ``selection`` is what st.dataframe / st.altair_chart return with on_select="rerun".
    """
    if not selection:
        return None
    sel = selection.get("selection", selection) if isinstance(selection, dict) else getattr(selection, "selection", None)
    if not sel:
        return None
    rows = sel.get("rows") if isinstance(sel, dict) else getattr(sel, "rows", None)
    if rows:
        index = rows[0]
        return str(frame.iloc[index][column]) if 0 <= index < len(frame) else None
    for value in (sel.values() if isinstance(sel, dict) else []):
        if isinstance(value, list) and value and isinstance(value[0], dict) and column in value[0]:
            return str(value[0][column])
    return None


PRESENTATION_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 20px; }
h1 { font-size: 2.8rem !important; }
</style>
"""

BASE_CSS = """
<style>
[data-testid="stMetricValue"] { color: #003087; }
/* never cut a number short with an ellipsis: wrap it instead */
[data-testid="stMetricValue"] div { overflow: visible; text-overflow: clip; white-space: normal; }
.oe-breadcrumb { color: #425563; font-size: 0.95rem; margin-bottom: 0.5rem; }
</style>
"""
