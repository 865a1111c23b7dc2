"""Front-end glue shared by app.py and the pages: the connection, the signed-in user, the view
held in the URL (st.query_params) and small pure helpers for selections.

Nothing here computes money: numbers come from opportunity_engine.
"""
from __future__ import annotations

import datetime as dt
import importlib
import io
import logging
import math
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import altair as alt
import duckdb
import extra_streamlit_components as stx
import jwt
import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler
from streamlit.elements.lib.column_types import ColumnConfig
from streamlit.errors import StreamlitPageNotFoundError
from streamlit.runtime import Runtime
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from opportunity_engine import formatting, usage, users
from opportunity_engine.analysis import lookups
from opportunity_engine.analysis.opportunities import Basis, default_peer_group, missing_targets_note, peer_groups
from opportunity_engine.analysis.targets import BENCHMARKS, is_target
from opportunity_engine.config import database_path, settings
from opportunity_engine.delivery import plans
from opportunity_engine.errors import Refusal
from opportunity_engine.formatting import gbp_short
from opportunity_engine.store import allocator, db
from opportunity_engine.store.audit import ConflictError
from opportunity_engine.users import User, get_user

log = logging.getLogger("opportunity_explorer")
CSU_WIDE = "csu-wide"  # URL token for the CSU-wide "specialty" (stored as '')
# What a page shows a user as advice when an action is refused; anything else is a fault.
REFUSALS = (Refusal, ConflictError)
VIEW_KEYS = ("target", "benchmark", "peer", "present", "fy")
# Page titles by URL path, as app.py's navigation names them (Feedback and usage name pages by title).
PAGE_TITLES = {"overview": "Overview", "explore": "Explore", "opportunities": "Opportunities", "metric": "Metric detail",
               "shortlist": "Shortlist & plans", "tracking": "Tracking", "library": "Library", "data": "Data",
               "adoption": "Adoption", "feedback": "Feedback", "guide": "Guide"}


def page_title(url_path: str | None) -> str:
    return PAGE_TITLES.get(url_path or "overview", url_path or "Overview")


_CONNECTIONS: dict[str, duckdb.DuckDBPyConnection] = {}
_CONNECTIONS_LOCK = threading.Lock()


def _connection(path: str) -> duckdb.DuckDBPyConnection:
    """One read-write connection per process and database; pages take a cursor per run.

    A dict, not st.cache_resource: a run asks for a cursor seven times or more, and the cache's
    hashing of its argument was half a millisecond each time (3 ms of a 40 ms page run)."""
    con = _CONNECTIONS.get(path)
    if con is None:
        with _CONNECTIONS_LOCK:
            con = _CONNECTIONS.get(path)
            if con is None:
                con = _CONNECTIONS[path] = db.connect(path)
    return con


_RUN_CURSORS = threading.local()


def cursor():
    """A cursor of the app's connection, closed when the page run ends (:func:`end_run`).

    A cursor's last result stays open until the cursor is closed, and with it its transaction;
    a cursor that outlived its run (held by a cycle, or by the duckdb module's own bindings)
    kept one open for as long as the server ran, and then DuckDB could never checkpoint: its
    rows written since stayed in memory (tools/bench_refresh.py, +3 MB a refresh)."""
    cur = _connection(str(database_path())).cursor()
    held = getattr(_RUN_CURSORS, "cursors", None)
    if held is not None:
        held.append(cur)
    return cur


class RequestCookies(stx.CookieManager):
    """The sign-in library's cookie manager, minus the component it renders on every run.

    extra_streamlit_components' CookieManager renders a "getAll" component as soon as it is
    created; that component's first answer reruns the page about 0.7 s after it loads, and a
    "Sign in" click landing in that window was lost (the form stayed filled, nothing happened:
    seen with a fast click, e.g. after a password manager fills the form). streamlit-authenticator
    0.4.2 reads the cookie from the request (st.context.cookies), so getAll is never needed; the
    component is rendered only to set or delete the cookie, as before."""

    def __init__(self, key: str = "init") -> None:  # noqa: ARG002 (the library passes none)
        self.cookie_manager = importlib.import_module("extra_streamlit_components.CookieManager")._component_func
        self.cookies = dict(st.context.cookies)


def use_request_cookies() -> None:
    """Make the sign-in library create RequestCookies (it calls stx.CookieManager() itself)."""
    stx.CookieManager = RequestCookies


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
        log.warning("cookie_key_random", extra={"detail": "No cookie_key in .streamlit/secrets.toml or "
                    "OPPORTUNITY_COOKIE_KEY: using a random key; sign-ins will not survive a restart."})
        key = secrets.token_urlsafe(32)
    return key


SESSION_KEY = "_oe_session"  # st.session_state key of this browser session's sign-in token


def set_session_cookie(manager: stx.CookieManager, token: str) -> bool:
    """Write the sign-in cookie; True once the browser has confirmed it (the component answers).

    The cookie holds the session token, signed with the cookie key, expiring with the session's
    lifetime; Secure when `[auth] secure_cookie` is set (behind the trust's TLS proxy),
    SameSite=Strict always. Not HttpOnly: extra-streamlit-components writes cookies from
    JavaScript (document.cookie in its component), and a script-written cookie cannot be
    HttpOnly; Streamlit gives an app no HTTP response headers to set one. The server-side session
    is what makes a stolen copy worthless after sign-out, a reset or the idle timeout.

    The same arguments on every run until confirmed: the component then stays mounted and answers
    once (a run cut short by a rerun used to drop it, and the browser never got the cookie)."""
    auth = settings()["auth"]
    pending = st.session_state.get("_oe_cookie_args")
    if not pending or pending[0] != token:
        days = float(auth.get("cookie_expiry_days", 1))
        expires = dt.datetime.now() + dt.timedelta(days=days)
        value = jwt.encode({"sid": token, "exp": int(expires.timestamp())}, cookie_key(), algorithm="HS256")
        options = {"path": "/", "expires": expires.isoformat(), "sameSite": "strict",
                   "secure": bool(auth.get("secure_cookie", False))}
        pending = st.session_state["_oe_cookie_args"] = (token, value, options)
    _, value, options = pending
    manager._remove_extra_spacing()  # the library's CSS hiding the component's empty row
    done = manager.cookie_manager(method="set", cookie=auth["cookie_name"], value=value, options=options,
                                  key="set", default=False)
    return bool(done)


def resume_session(cur) -> bool:
    """Sign in from the request's cookie when it carries a live session's token (a refresh, a new
    tab). A cookie whose session has ended, however well signed, signs nobody in."""
    raw = st.context.cookies.get(settings()["auth"]["cookie_name"])
    if not raw:
        return False
    try:
        token = jwt.decode(raw, cookie_key(), algorithms=["HS256"]).get("sid")
    except jwt.PyJWTError:
        return False
    username = users.session_user(cur, token)
    user = get_user(cur, username)
    if user is None:
        return False
    st.session_state.update({"authentication_status": True, "username": user.username, "name": user.name,
                             "email": user.email, "roles": [user.role], SESSION_KEY: token, "logout": None})
    return True


RUN_MEMO = "_oe_this_run"


# Tests shorten it (OPPORTUNITY_HOUSEKEEPING_SECONDS) to see an ended session released within seconds.
HOUSEKEEPING_SECONDS = float(os.environ.get("OPPORTUNITY_HOUSEKEEPING_SECONDS") or 30)
_NUDGE = threading.Event()


def release_memory_soon() -> None:
    """Collect now rather than at the next half minute: after an import, whose file buffers and
    staged rows are the largest garbage the app makes (the Data page asks at commit and cancel)."""
    _NUDGE.set()


def _checkpoint_open_databases() -> None:
    """Checkpoint the databases this server has open (never opens one: the housekeeping of a
    process that has not used its database yet must not take the file's lock)."""
    for con in list(_CONNECTIONS.values()):
        cur = con.cursor()
        try:
            db.checkpoint(cur)  # the rows written since the last one, out of memory into the file
        finally:
            cur.close()


@st.cache_resource(show_spinner=False)
def start_housekeeping() -> threading.Thread:
    """Once per server: every ``HOUSEKEEPING_SECONDS`` a full garbage collection, a DuckDB
    checkpoint (:func:`db.checkpoint`), then the C allocators (glibc's and DuckDB's jemalloc)
    hand the freed memory back to the system (:mod:`opportunity_engine.store.allocator`).

    Streamlit's collection after every script run is off (.streamlit/config.toml: it was a third
    of the CPU with 20 users); Python's own collector seldom reaches the oldest generation, so the
    cycles a run leaves (frames, elements, an upload's Arrow buffers) piled up and the server grew
    with every page view and upload. One collection every half minute costs a fraction of that and
    keeps the server's memory level (tools/bench_load.py and bench_refresh.py report it)."""
    import ctypes
    import ctypes.util
    import gc
    import time

    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None  # for the memory report

    def loop() -> None:
        while True:
            if _NUDGE.wait(HOUSEKEEPING_SECONDS):  # asked for: let the run that asked end first
                _NUDGE.clear()
                time.sleep(1)
            gc.collect()
            try:
                _checkpoint_open_databases()
                allocator.release()
            except Exception:  # the housekeeping must outlive anything it meets
                log.exception("housekeeping_failed")
            if report:
                try:
                    _write_memory_report(report, libc)
                except Exception:  # a benchmark's report must never stop the housekeeping
                    log.exception("memory_report_failed")

    report = os.environ.get("OPPORTUNITY_MEMORY_REPORT")
    allocator.configure()
    thread = threading.Thread(target=loop, name="oe-housekeeping", daemon=True)
    thread.start()
    return thread


def forget_uploads(files) -> None:
    """Drop ``files`` (st.file_uploader's UploadedFiles) from Streamlit's upload store now.

    Streamlit keeps every uploaded file's bytes in its upload store until the browser session
    ends (closed, and then 2 minutes kept for a reconnection: ``server.disconnectedSessionTTL``)
    or until the file is taken out of the uploader by hand; the new, empty uploader the Data page
    draws after a commit or a cancel does not take them out. So each refresh kept its files (up
    to 300 MB each) for as long as the tab stayed open, and tools/bench_refresh.py's server held
    8 MB more after every refresh (each one a new page load, so a new session)."""
    ctx = get_script_run_ctx()
    if ctx is None or not files or not isinstance(ctx.uploaded_file_mgr, MemoryUploadedFileManager):
        return  # (remove_file is the in-memory store's; st.chat_input's files are dropped the same way)
    for f in files:
        ctx.uploaded_file_mgr.remove_file(ctx.session_id, f.file_id)


_REPORT_STATE: dict = {}


def _anon_rss_by_mapping() -> dict[str, object]:
    """Resident anonymous memory (MB) by the kind of mapping holding it, told apart by size (which
    allocator made a mapping is not recorded): glibc's main heap, mappings of up to 1 MB (Python's
    object arenas, thread stacks' guard pages), 1-64 MB, and larger (glibc's per-thread heaps are
    reserved 64 MB at a time; mimalloc's and DuckDB's allocators take large regions)."""
    sizes: dict[str, int] = {}
    out: dict[str, object] = {}
    kind, path, size = "", "", 0
    largest: list[tuple[int, int]] = []
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            start, end = (int(x, 16) for x in head[0].split("-"))
            path = head[5] if len(head) > 5 else ""
            size = end - start
            kind = ("[heap]" if path == "[heap]" else "" if path else
                    "<=1MB" if size <= 2**20 else "1-64MB" if size < 64 * 2**20 else ">=64MB")
        elif head and head[0] == "Rss:" and kind:
            sizes[kind] = sizes.get(kind, 0) + int(head[1])
            largest.append((int(head[1]), size))
    out.update({k: v >> 10 for k, v in sorted(sizes.items())})
    out["largest (rss MB / size MB)"] = [f"{rss >> 10}/{size >> 20}" for rss, size in sorted(largest)[::-1][:8]]
    return out


def _write_memory_report(path: str, libc) -> None:
    """Benchmarks only (``OPPORTUNITY_MEMORY_REPORT=FILE``, off by default): after each collection,
    one JSON line of what holds the server's memory, to find what grows between refreshes. The
    resident set, glibc's heap (mallinfo2: bytes in use, free bytes held, arenas), Arrow's pool, the
    engine's and Streamlit's caches, object counts by type and their change since
    the last report. Slow (it walks every object): never in production. (tracemalloc was tried:
    with it on, a report on the server took minutes; and DuckDB's duckdb_memory() read from this
    thread hung the report during an import.)"""
    import ctypes
    import gc
    import json
    import time
    from collections import Counter

    import pyarrow as pa

    from opportunity_engine.analysis import casemix, versioned
    from opportunity_engine.analysis import opportunities as engine

    out: dict = {"t": round(time.time(), 1)}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "Threads:")):
            key, value = line.split(":")
            out[key] = int(value.split()[0]) // 1024 if "kB" in value else int(value)
    out["anon_rss_by_mapping_mb"] = _anon_rss_by_mapping()
    if libc is not None and hasattr(libc, "mallinfo2"):
        class MallInfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                       "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc.mallinfo2.restype = MallInfo2
        mi = libc.mallinfo2()
        out["malloc"] = {"arena_mb": mi.arena >> 20, "mmap_mb": mi.hblkhd >> 20, "in_use_mb": mi.uordblks >> 20,
                         "free_held_mb": mi.fordblks >> 20, "free_chunks": mi.ordblks}
        try:
            libc.open_memstream.restype = ctypes.c_void_p
            buf, size = ctypes.c_char_p(), ctypes.c_size_t()
            stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
            libc.malloc_info(0, ctypes.c_void_p(stream))
            libc.fclose(ctypes.c_void_p(stream))
            out["malloc"]["arenas"] = (buf.value or b"").count(b"<heap nr=")
            libc.free(buf)
        except (AttributeError, OSError):
            pass
    pool = pa.default_memory_pool()
    out["jemalloc_mb"] = allocator.jemalloc_stats()
    done: dict = {}

    def duckdb_memory() -> None:  # on a thread of its own: read during an import it can wait long
        if not _CONNECTIONS:  # never opens a database (a test's report must not create the default one)
            return
        cur = next(iter(_CONNECTIONS.values())).cursor()
        done["duckdb_mb"] = dict(cur.execute("""SELECT tag, round(memory_usage_bytes / 2^20, 1) FROM duckdb_memory()
                                               WHERE memory_usage_bytes > 0""").fetchall())
        done["wal"] = cur.execute("SELECT wal_size FROM pragma_database_size()").fetchall()

    reader = threading.Thread(target=duckdb_memory, daemon=True)
    reader.start()
    reader.join(5)
    out.update(done)
    out["arrow"] = {"backend": pool.backend_name, "allocated_mb": pa.total_allocated_bytes() >> 20,
                    "max_mb": pool.max_memory() >> 20 if pool.max_memory() else None}
    out["engine"] = {"opportunities": len(engine._CACHE), "casemix": len(casemix._CACHE),
                     "lookups": len(lookups._CACHE), "all_versioned": sum(len(c) for c in versioned.ALL)}
    try:
        from streamlit.runtime.stats import CacheStat

        runtime = Runtime.instance()
        out["sessions"] = len(runtime._session_mgr.list_sessions())
        families: dict[str, int] = {}
        for stats in runtime.stats_mgr.get_stats().values():
            for stat in stats:
                if isinstance(stat, CacheStat):
                    name = f"{stat.category_name}:{stat.cache_name}" if stat.cache_name else stat.category_name
                    families[name] = families.get(name, 0) + stat.byte_length
        out["streamlit_kb"] = {k: v >> 10 for k, v in sorted(families.items())}
        out["uploads_bytes"] = families.get("UploadedFileManager", 0)
        out["table_sources"] = runtime.dataframe_source_mgr.get_source_count()
    except Exception as exc:  # a Streamlit internal moved: the rest of the report still counts
        out["streamlit_error"] = repr(exc)
    counts = Counter(type(o).__name__ for o in gc.get_objects())
    before = _REPORT_STATE.get("counts", Counter())
    out["objects"] = sum(counts.values())
    out["object_growth"] = dict(sorted(((k, counts[k] - before.get(k, 0)) for k in counts),
                                       key=lambda kv: -abs(kv[1]))[:15])
    _REPORT_STATE["counts"] = counts
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(out) + "\n")


def start_run() -> None:
    """app.py, first thing in every run: forget what the last run worked out once (see once_per_run),
    and read the data version once for the whole run (lookups.pin_version)."""
    st.session_state[RUN_MEMO] = {}
    _RUN_CURSORS.cursors = []
    lookups.pin_version(cursor())


def end_run() -> None:
    """app.py, last thing in every run (also when it stops early): the version pin goes with it,
    and the run's cursors are closed (see :func:`cursor`)."""
    lookups.pin_version(None)
    for cur in getattr(_RUN_CURSORS, "cursors", None) or ():
        try:
            cur.close()
        except duckdb.Error:
            pass
    _RUN_CURSORS.cursors = None


def once_per_run(name: str, compute):
    """``compute()`` once per script run, however many times app.py and the page ask (the signed-in
    user, the basis: each a few database reads, asked for three times a run; with 20 users at once
    such small reads were a tenth of the server's time). A page run without app.py computes afresh."""
    memo = st.session_state.get(RUN_MEMO)
    if memo is None:
        return compute()
    if name not in memo:
        memo[name] = compute()
    return memo[name]


def current_user() -> User | None:
    if not st.session_state.get("authentication_status"):
        return None
    username = st.session_state.get("username")
    return once_per_run(f"user:{username}", lambda: get_user(cursor(), username))


def require_user() -> User:
    """The signed-in user, or off to app.py's sign-in before anything renders.

    Pages must not trust that app.py ran first: while a fresh server has not yet run
    st.navigation, Streamlit's legacy discovery of the pages/ folder runs a page script directly
    for a deep link. Such a visit goes to sign-in with its view (query parameters) kept.
    """
    user = current_user()
    if user is None:
        page = Path(sys._getframe(1).f_globals.get("__file__", "")).stem
        st.session_state["_oe_landing"] = page  # app.py opens it after sign-in
        try:
            st.switch_page("app.py", query_params=dict(st.query_params))
        except StreamlitPageNotFoundError:  # inside st.navigation app.py is no page: rerun it instead
            st.rerun()
    return user


def check_scope(user: User, csu: str | None) -> None:
    """A link naming a CSU outside the user's scope stops the page with a clear message.

    The engine enforces scope either way (it raises ScopeError); this turns it into the message
    here rather than relying on app.py's error boundary, which a page run outside st.navigation
    (a fresh server's first deep link) does not have."""
    if csu and not user.scope.allows(csu):
        st.error(f"CSU {formatting.plain(csu)} is not available to you. Ask finance if you need access.")
        st.stop()


def param(name: str) -> str | None:
    value = st.query_params.get(name)
    return value if value not in (None, "") else None


def basis() -> Basis:
    """The target, benchmark and peer group from the URL (unknown values fall back to the
    defaults; the peer group to the configured one if the data holds it, else the first)."""
    target, benchmark, peer = param("target"), param("benchmark"), param("peer")
    groups = once_per_run("peer_groups", lambda: peer_groups(cursor()))
    return Basis(target=target if target is not None and is_target(target) else "median",
                 benchmark=benchmark if benchmark is not None and benchmark in BENCHMARKS else "peer",
                 peer_group=peer if peer is not None and peer in groups else default_peer_group(groups))


def no_target_notice(df) -> None:
    """Say which metrics have no target under the current basis: never a silent £0."""
    target_notice(missing_targets_note(df, basis()))


def target_notice(note: str | None) -> None:
    """The warning naming the metrics without a target (``missing_targets_note``), when there are any."""
    if note:
        st.warning(note, icon=":material/help:")


def financial_year() -> int:
    """The financial year in the URL (?fy=2026 for 2026/27), else the current one."""
    value = param("fy")
    return int(value) if value and value.isdigit() and 2000 <= int(value) <= 2100 else plans.current_fy(dt.date.today())


def seen_version(scheme_id: int, current: int) -> int:
    """The version of a scheme this browser session last loaded. Saves are checked against it,
    not against a fresh read, so someone else's change in between is caught, never overwritten."""
    return st.session_state.setdefault(f"seen_version_{scheme_id}", current)


def mark_seen(scheme_id: int, version: int) -> None:
    st.session_state[f"seen_version_{scheme_id}"] = version


def editing(user: User) -> bool:
    """Editing widgets show for roles that may edit, except in presentation mode."""
    return user.can_edit_schemes and not presenting()


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


TEXT = "#212B32"  # NHS text colour: 14.7:1 on white


@alt.theme.register("opportunity_explorer", enable=True)
def _chart_theme() -> alt.theme.ThemeConfig:
    """Axis and legend text in the NHS text colour on every chart (WCAG 2.1 AA: Streamlit's default
    grey axis labels are 3.7:1). A chart's own config still wins over this, and this over Streamlit's.
    Marks and guides are kept out of the accessibility tree (Vega-Lite's ``aria: false``): a screen reader
    would otherwise meet hundreds of unlabelled shapes; every figure a chart shows is also in a table or
    tile beside it."""
    return {"config": {"axis": {"labelColor": TEXT, "titleColor": TEXT},
                       "legend": {"labelColor": TEXT, "titleColor": TEXT}, "title": {"color": TEXT},
                       "header": {"labelColor": TEXT, "titleColor": TEXT}}}


def link(clear: tuple[str, ...] = (), rerun: bool = True, **params: object) -> None:
    """Select → link parameter → rerun: write ``params`` into the URL (None removes one), drop the
    ``clear`` parameters (what depended on the old choice), and rerun when the URL changed, so
    every selection is a deep link and the back button works. ``rerun=False`` only records the
    choice in the link (the page already shows it)."""
    before = dict(st.query_params)
    for key, value in params.items():
        if value is None or value == "":
            st.query_params.pop(key, None)
        else:
            st.query_params[key] = str(value)
    for key in clear:
        st.query_params.pop(key, None)
    if rerun and dict(st.query_params) != before:
        st.rerun()


def linked_select(label: str, options: list, current, param: str, *, format_func=str, help: str,
                  clear: tuple[str, ...] = (), to_param=str, container=None, key: str | None = None):
    """A selectbox whose choice lives in the URL parameter ``param`` (see :func:`link`); returns
    the choice. ``current`` is the value the URL holds now; ``to_param`` writes a choice as text."""
    index = options.index(current) if current in options else 0
    chosen = (container or st).selectbox(label, options, index=index, format_func=format_func, help=help, key=key)
    if chosen != current:
        link(clear, True, **{param: None if chosen is None else to_param(chosen)})
    return chosen


XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def excel_download(label: str, make, file_name: str, help: str, page: str, detail: str = "") -> None:
    """A button that downloads a workbook built only when clicked, counted as an export for the
    Adoption page. ``make()`` opens its own cursor: it runs after this script run has finished."""
    if st.download_button(label, data=make, file_name=file_name, mime=XLSX_MIME, icon=":material/download:", help=help):
        record("export", page, detail)


@contextmanager
def refusals_shown() -> Iterator[None]:
    """Around a user's action: the engine's refusal (a rule, a conflict with someone else's edit)
    is shown as the advice it is; anything else goes on to app.py's error handler and the log."""
    try:
        yield
    except REFUSALS as exc:
        st.error(str(exc))


PRESENTATION_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 19px; }
h1 { font-size: 2.4rem !important; }
/* the projector gets the whole width: less padding either side of the page */
[data-testid="stMainBlockContainer"] { padding-left: 2rem; padding-right: 2rem; max-width: 100%; }
</style>
"""

BASE_CSS = """
<style>
[data-testid="stMetricValue"] { color: #003087; }
/* never cut a number or a tile's label short with an ellipsis: wrap it instead */
[data-testid="stMetricValue"] div, [data-testid="stMetricValue"] p { overflow: visible; text-overflow: clip;
  white-space: normal; }
[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] * { overflow: visible !important; text-overflow: clip !important;
  white-space: normal !important; }
.oe-breadcrumb { color: #425563; font-size: 0.95rem; margin-bottom: 0.5rem; }
/* WCAG 2.1 AA: captions carry real content (scope, legends, status), so they get NHS secondary text
   (#4C6272, 6.3:1 on white, 5.4:1 on the sidebar grey) instead of Streamlit's faded 4.0:1. */
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] * { color: #4C6272 !important; opacity: 1 !important; }
[data-testid="stWidgetLabel"] p, [data-testid="stTooltipHoverTarget"] { color: #212B32; }
/* A focus indicator on every control (2.4.7), dark blue so it holds 3:1 on white and on grey. */
a:focus-visible, button:focus-visible, input:focus-visible, textarea:focus-visible, select:focus-visible,
[role="button"]:focus-visible, [role="tab"]:focus-visible, [role="combobox"]:focus-visible,
[role="switch"]:focus-visible, [role="checkbox"]:focus-visible, [role="radio"]:focus-visible,
[role="option"]:focus-visible, [role="slider"]:focus-visible, [tabindex]:focus-visible,
[data-testid="stSidebarNavLink"]:focus-visible {
  outline: 3px solid #003087 !important; outline-offset: 2px !important;
  box-shadow: 0 0 0 5px #FFB81C !important;
}
/* the page's side padding (6rem by default) would cost tables two columns at 1280-1400 px */
[data-testid="stMainBlockContainer"] { padding-left: 2.5rem; padding-right: 2.5rem; }
</style>
"""


def record(event: str, page: str = "", detail: str = "") -> None:
    """A usage event for the Adoption page; never lets logging break the page."""
    user = current_user()
    if user is None:
        return
    try:
        usage.record(cursor(), user, event, page, detail)
    except Exception:  # usage statistics are never worth an error in front of a user
        log.exception("could not record usage event %s", event)


def wrp_target_editor(cur, user: User, fy: int) -> None:
    """Finance/admin: each CSU's WRP target for a financial year, with its source (audited)."""
    targets = plans.wrp_targets(cur, user.scope, fy)
    edited = st.data_editor(
        targets, hide_index=True, width="stretch", key=f"wrp-{fy}", num_rows="fixed",
        column_config={"csu_code": st.column_config.TextColumn("CSU", disabled=True),
                       "csu_name": st.column_config.TextColumn("Name", disabled=True),
                       "target_gbp": st.column_config.NumberColumn("WRP target £", min_value=0, format="£%,.0f"),
                       "source": st.column_config.TextColumn("Source", help="Where the figure comes from, e.g. the board paper."),
                       "set_by": st.column_config.TextColumn("Set by", disabled=True)})
    if st.button("Save WRP targets", key=f"save-wrp-{fy}", icon=":material/save:",
                 help="Saves every changed target with its source; each change is audited."):
        changed = 0
        for old, new in zip(targets.itertuples(index=False), edited.itertuples(index=False)):
            same_target = (old.target_gbp == new.target_gbp) or (_blank(old.target_gbp) and _blank(new.target_gbp))
            if same_target and (old.source or "") == (new.source or ""):
                continue
            if _blank(new.target_gbp):
                st.error(f"{formatting.plain(new.csu_code)}: enter a target (zero or more pounds).")
                continue
            try:
                plans.set_wrp_target(cur, user, new.csu_code, fy, float(new.target_gbp), new.source or "")
                changed += 1
            except REFUSALS as exc:
                st.error(f"{formatting.plain(new.csu_code)}: {formatting.plain(exc)}")
        st.success(f"Saved {changed} target(s).") if changed else st.info("Nothing changed.")


def csv_download(frame: pd.DataFrame, file_name: str, label: str = "Download table (CSV)") -> None:
    """The app's own CSV download of a table. Streamlit's built-in table download writes text
    raw (a scheme title '=HYPERLINK(...)' arrived as a live formula), so it is switched off
    (.streamlit/config.toml client.disableDataExport) and this one neutralises every text cell."""
    def build() -> bytes:
        out = io.StringIO()
        formatting.write_csv(frame, out)
        return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8 (£, names)

    st.download_button(label, build, file_name=file_name, mime="text/csv", icon=":material/download:",
                       help="Text cells that start like a formula are prefixed with ' so Excel shows them as text.")


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# Vega expression labelling a £ axis or legend as the UI writes money: £0, £450k, £1.5m.
GBP_LABELS = ("abs(datum.value) >= 1e6 ? '£' + format(datum.value / 1e6, '.3~r') + 'm' : "
              "abs(datum.value) >= 1e3 ? '£' + format(datum.value / 1e3, '.3~r') + 'k' : "
              "'£' + format(datum.value, ',.0f')")


def gbp_axis() -> alt.Axis:
    return alt.Axis(labelExpr=GBP_LABELS)


# Altair checks every chart against the Vega-Lite schema as it writes it out: a third of building a
# chart, and a chart is built afresh for each new view. The tests (tests/conftest.py sets this)
# check every chart the pages draw; the server trusts the code they checked.
CHECK_CHARTS = os.environ.get("OPPORTUNITY_CHECK_CHARTS") == "1"


@st.cache_data(max_entries=512, show_spinner=False)
def _chart_spec(name: str, args: tuple, kwargs: dict, _build: Callable[..., alt.TopLevelMixin]) -> dict:
    return _build(*args, **kwargs).to_dict(validate=CHECK_CHARTS)


@st.cache_data(max_entries=512, show_spinner=False)
def _drawn_chart(name: str, args: tuple, kwargs: dict, width: str, _build: Callable[..., alt.TopLevelMixin]) -> None:
    st.vega_lite_chart(_build(*args, **kwargs).to_dict(validate=CHECK_CHARTS), width=width)  # type: ignore[call-overload]


def _name(build: Callable) -> str:
    return f"{build.__code__.co_filename}:{build.__qualname__}"


def chart(build: Callable[..., alt.TopLevelMixin], *args, width: str = "stretch", **kwargs) -> None:
    """Draw the Altair chart ``build(*args, **kwargs)``, built and drawn once per distinct arguments.

    Building an Altair chart and writing it out as Vega-Lite is most of a chart page's server
    time, and turning the spec's data into Arrow for the browser is most of the rest; every user
    and rerun asks for the same few charts again. So ``build`` is a function of its arguments
    alone (frames included, which the cache hashes), and the chart element it draws is kept
    whole: on a repeat Streamlit's cache_data replays the element already built. For a picture;
    a chart that is clicked is a :func:`clickable_chart`."""
    _drawn_chart(_name(build), args, kwargs, width, build)


def clickable_chart(build: Callable[..., alt.TopLevelMixin], *args, key: str, width: str = "stretch", **kwargs):
    """A chart whose marks select (``on_select="rerun"``), its spec built once per distinct
    arguments as in :func:`chart`; returns the selection event. (A widget is drawn afresh each run.)"""
    spec = _chart_spec(_name(build), args, kwargs, build)
    return st.vega_lite_chart(spec, width=width, key=key, on_select="rerun")  # type: ignore[call-overload]


def layered(data: pd.DataFrame, *charts: alt.Chart) -> alt.TopLevelMixin:
    """Layers drawn from one frame, the frame given once to the layer (the ``charts`` built from
    ``alt.Chart()`` with no data). Built as ``chart_a + chart_b`` on the same frame, Altair names
    each layer's data by printing the frame as text, a third of drawing Overview's two charts."""
    return alt.layer(*charts, data=data)


def spc_chart(series, y_title: str, target: float | None = None, start: str | None = None, percent: bool = False):
    """The XmR chart used on Metric detail and for scheme evidence: monthly values, mean and
    process limits as lines, special-cause points in orange, the target in green and, for a
    scheme, a vertical rule at its start month (limits then come from the months before it).

    A rate (``percent``) is labelled in % and its axis stops at 0 % and 100 %: a process limit
    beyond them is drawn at the edge (a day-case rate cannot be 120 %). No value goes below 0."""
    base = alt.Chart().encode(x=alt.X("period:N", title="Month", axis=alt.Axis(labelAngle=-90)))
    bounds: dict = {"zero": False, "clamp": True}
    if "lcl" in series and (series["lcl"] < 0).any():
        bounds["domainMin"] = 0
    if percent and "ucl" in series and (series["ucl"] > 1).any():
        bounds["domainMax"] = 1
    line = base.mark_line(color="#005EB8", point=True).encode(
        y=alt.Y("value:Q", title=y_title, scale=alt.Scale(**bounds),
                axis=alt.Axis(format=".0%") if percent else alt.Axis()),
        tooltip=["period:N", alt.Tooltip("value:Q", format=".1%" if percent else ".4f")])
    layers = layered(series, line, base.mark_line(strokeDash=[4, 4], color="#768692").encode(y="ucl:Q"),
                     base.mark_line(strokeDash=[4, 4], color="#768692").encode(y="lcl:Q"),
                     base.mark_line(color="#425563").encode(y="mean:Q"))
    special = series[series["special_cause"].astype(bool)]
    if len(special):  # an empty layer draws an unlabelled SVG group, which screen readers announce blank
        layers += alt.Chart(special).mark_point(color="#ED8B00", size=90, filled=True).encode(x="period:N", y="value:Q")
    if target is not None and pd.notna(target):
        layers += alt.Chart(pd.DataFrame({"target": [target]})).mark_rule(color="#009639").encode(y="target:Q")
    if start is not None:
        layers += alt.Chart(pd.DataFrame({"period": [start]})).mark_rule(color="#DA291C", strokeWidth=2).encode(x="period:N")
    return layers


def _money_styler(frame: pd.DataFrame, money: list[str]) -> Styler:
    """A pandas Styler of ``frame`` whose display text is £1.2m in the ``money`` columns, written a
    column at a time.

    st.dataframe takes a Styler's display text beside the numbers, so a £ column sorts as numbers
    and reads as £1.2m. The stock Styler formats cell by cell (0.2 ms a row: 160 ms for the
    757-row Opportunities table, a tenth of the server's time with 20 users at once). Streamlit
    reads the display text from the Styler's ``_translate`` body cells and shows every other cell
    as its own text, which for these tables (text and whole-number columns) is what the stock
    Styler writes; a blank cell reads "–" in both. Streamlit recognises a Styler by its exact type, so this one is a stock Styler
    with the two methods Streamlit calls replaced. tests/test_ui_money_table.py pins the display
    text Streamlit sends against the stock Styler's, on every table the pages show."""
    styler = Styler(frame)
    cells: dict[int, dict[int, str]] = {}  # row → column → display text, where it differs from the cell's own
    for j, column in enumerate(frame.columns):
        values = frame[column]
        if column in money:
            texts = ["–" if pd.isna(v) else gbp_short(v) for v in values.tolist()]
            for i, text in enumerate(texts):
                cells.setdefault(i, {})[j] = text
        else:
            for i in values.isna().to_numpy().nonzero()[0].tolist():  # a blank reads "–", as the stock Styler writes it
                cells.setdefault(i, {})[j] = "–"

    def translate(*_args, **_kwargs) -> dict:
        body = [[{"id": f"row{i}_col{j}", "display_value": text} for j, text in row.items()]
                for i, row in sorted(cells.items())]
        return {"body": body, "table_styles": [], "cellstyle": []}

    styler._compute = lambda: styler
    styler._translate = translate
    return styler


def money_table(frame: pd.DataFrame, money: tuple[str, ...] | list[str] = (), *, config: dict | None = None,
                help: dict[str, str] | None = None, **kwargs):
    """st.dataframe of ``frame`` with its £ columns kept as numbers and shown as £1.2m / £45k.

    The numbers stay numbers (a click on the header sorts £3.9m above £855k, not as text), the
    display follows the UI's money style (NumberColumn's printf formats cannot write £1.2m).
    ``help`` adds a tooltip per column; ``kwargs`` go to st.dataframe (selection, key, width)."""
    money = [c for c in money if c in frame.columns]
    column_config = {c: st.column_config.NumberColumn(c, help=(help or {}).get(c)) for c in money}
    column_config.update(config or {})
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    return st.dataframe(_money_styler(frame, money), column_config=column_config, **kwargs)


def metric_hrefs(rows: pd.DataFrame) -> list[str]:
    """Relative links to Metric detail, one per row of ``rows`` (csu_code, specialty_code, metric_id),
    keeping the view (target, benchmark, presentation): for a LinkColumn, so a table row opens its
    metric. The view is read from the URL once (read per row, it was a third of the Opportunities
    page's time)."""
    view = view_params()
    return ["metric?" + urlencode({**view, "csu": c, "specialty": specialty_param(s), "metric": m})
            for c, s, m in zip(rows["csu_code"], rows["specialty_code"], rows["metric_id"])]


def link_column(label: str = "Detail") -> ColumnConfig:
    return st.column_config.LinkColumn(label, display_text="Open", width="small",
                                       help="Metric detail: trend, distribution, how it was calculated.")


def annual_metric(column, label: str, gbp: float | None, help: str | None = None) -> None:
    """A £ tile for a yearly figure: the value as £1.2m with "a year" beneath it, so nobody reads
    an annual opportunity as a one-off or a monthly figure."""
    column.metric(label, gbp_short(gbp), delta="a year", delta_color="off", delta_arrow="off", help=help)


@st.cache_resource(show_spinner=False)
def app_icon():
    """The page icon: white bars on NHS blue, drawn in code (no image file, no outside font host)."""
    from PIL import Image, ImageDraw  # Pillow comes with Streamlit

    image = Image.new("RGBA", (64, 64), "#005EB8")
    draw = ImageDraw.Draw(image)
    for i, height in enumerate((18, 30, 42)):
        draw.rectangle([10 + i * 16, 54 - height, 21 + i * 16, 54], fill="#FFFFFF")
    return image
