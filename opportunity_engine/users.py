"""Users, roles and CSU scope, stored in the database with bcrypt password hashes.

The sign-in widget (streamlit-authenticator) is given a credentials dictionary built from this
table, never a YAML file. A user's role and CSUs are always read from here by username, so
nothing a browser sends can widen what a session may see.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass

import bcrypt
import duckdb

from .scope import Scope

ROLES = ("admin", "finance", "csu", "viewer")
ROLE_LABELS = {"admin": "Admin", "finance": "Finance", "csu": "CSU team", "viewer": "Viewer"}
DEMO_PASSWORD = "demo"
DEMO_CSU = "EMA"
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")


@dataclass(frozen=True)
class User:
    username: str
    name: str
    email: str
    role: str
    csus: tuple[str, ...]

    @property
    def scope(self) -> Scope:
        if self.role == "csu":
            return Scope.of(*self.csus) if self.csus else Scope(frozenset(), "No CSU assigned")
        return Scope.trust()

    # What a role may do, asked by name everywhere (pages, navigation, engine), so a role's rights
    # are written once, here, and never as role names scattered through the code.
    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_edit_schemes(self) -> bool:
        """Create and change schemes, CIP plans, QIAs and realised savings (in scope)."""
        return self.role in ("admin", "finance", "csu")

    @property
    def has_finance_duties(self) -> bool:
        """Trust-wide finance work: WRP targets, publishing case studies, the Adoption page."""
        return self.role in ("admin", "finance")

    @property
    def can_manage_data(self) -> bool:
        """Load extracts, set unit costs, edit the catalogue's scheme ideas, back up."""
        return self.is_admin

    @property
    def can_triage_feedback(self) -> bool:
        return self.is_admin

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)


def hash_password(password: str) -> str:
    data = password.encode("utf-8")
    if not password or len(data) > 72:
        raise ValueError("a password must be 1 to 72 bytes long")
    return bcrypt.hashpw(data, bcrypt.gensalt(rounds=12)).decode("ascii")


def _checked_role(con: duckdb.DuckDBPyConnection, role: str, csus: list[str] | tuple[str, ...]) -> list[str]:
    """The CSUs for a role, sorted and unique, or a ValueError naming what is wrong: one rule for
    adding a user and for changing their role, so neither can give a CSU user no CSU or a code
    the database does not hold."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    chosen = sorted(set(csus))
    if role == "csu" and not chosen:
        raise ValueError("a csu user needs at least one CSU (--csu CODE)")
    unknown = [c for c in chosen if not con.execute("SELECT 1 FROM csus WHERE csu_code = ?", [c]).fetchone()]
    if unknown:
        raise ValueError(f"unknown CSU code(s): {', '.join(unknown)}")
    return chosen


def add_user(con: duckdb.DuckDBPyConnection, username: str, name: str, password: str, role: str,
             csus: list[str] | tuple[str, ...] = (), email: str = "") -> User:
    username = username.strip().lower()  # the sign-in widget lower-cases usernames
    if not USERNAME.fullmatch(username):
        raise ValueError("a username is 2-32 lower-case letters, digits, '.', '_' or '-'")
    csus = _checked_role(con, role, csus)
    if con.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
        raise ValueError(f"user {username} already exists")
    con.execute("INSERT INTO users (username, name, email, password_hash, role, csus) VALUES (?, ?, ?, ?, ?, ?)",
                [username, name, email, hash_password(password), role, csus])
    user = get_user(con, username)
    assert user is not None, "inserted above"
    return user


def remove_user(con: duckdb.DuckDBPyConnection, username: str) -> None:
    if not con.execute("DELETE FROM users WHERE username = ? RETURNING username", [username.lower()]).fetchall():
        raise ValueError(f"no user {username}")
    end_user_sessions(con, username, "user removed")


def set_role(con: duckdb.DuckDBPyConnection, username: str, role: str,
             csus: list[str] | tuple[str, ...] = ()) -> User:
    """Change a user's role and CSUs; their sessions end, so they sign in again under the new role."""
    csus = _checked_role(con, role, csus)
    if not con.execute("UPDATE users SET role = ?, csus = ? WHERE username = ? RETURNING username",
                       [role, csus, username.lower()]).fetchall():
        raise ValueError(f"no user {username}")
    end_user_sessions(con, username, "role changed")
    user = get_user(con, username)
    assert user is not None
    return user


def reset_password(con: duckdb.DuckDBPyConnection, username: str, password: str) -> None:
    # A reset also lifts a lock-out: it is how an admin lets a locked user back in.
    if not con.execute("UPDATE users SET password_hash = ?, failed_sign_ins = 0, last_failed_at = NULL "
                       "WHERE username = ? RETURNING username",
                       [hash_password(password), username.lower()]).fetchall():
        raise ValueError(f"no user {username}")
    end_user_sessions(con, username, "password reset")


def get_user(con: duckdb.DuckDBPyConnection, username: str | None) -> User | None:
    if not username:
        return None
    row = con.execute("SELECT username, name, email, role, csus FROM users WHERE username = ?",
                      [username.lower()]).fetchone()
    return User(row[0], row[1], row[2], row[3], tuple(row[4] or ())) if row else None


def list_users(con: duckdb.DuckDBPyConnection) -> list[User]:
    return [User(r[0], r[1], r[2], r[3], tuple(r[4] or ())) for r in
            con.execute("SELECT username, name, email, role, csus FROM users ORDER BY username").fetchall()]


def credentials(con: duckdb.DuckDBPyConnection) -> dict:
    """The credentials dictionary streamlit-authenticator expects (hashes, never passwords).

    The widget only draws the form: its password check is replaced by ``attempt_sign_in``
    (app.py), which counts the attempt and reads the lock-out in the database."""
    rows = con.execute("SELECT username, name, email, password_hash, role FROM users").fetchall()
    return {"usernames": {u: {"name": n, "email": e or f"{u}@example.invalid", "password": h, "roles": [r]}
                          for u, n, e, h, r in rows}}


def lockout_policy() -> tuple[int, int]:
    """(failed sign-ins before lock-out, lock-out minutes) from config.toml [auth]."""
    from .config import settings

    auth = settings()["auth"]
    return int(auth.get("max_failed_sign_ins", 5)), int(auth.get("lockout_minutes", 15))


# Sign-in writes (the failure count, session records) are serialised within the process: DuckDB
# refuses two concurrent UPDATEs of one row ("Conflict on tuple deletion"), and eight browsers
# failing at once used to lose counts and show an error page. The retry covers a writer outside
# this lock (another cursor of the same database touching the same row).
_WRITE_LOCK = threading.Lock()
_RETRIES = 20


def _write(con: duckdb.DuckDBPyConnection, sql: str, params: dict | list) -> list[tuple]:
    """Run one write statement under the process-wide sign-in lock, retrying a write-write
    conflict; returns the fetched rows (RETURNING)."""
    for attempt in range(_RETRIES):
        try:
            with _WRITE_LOCK:
                return con.execute(sql, params).fetchall()
        except duckdb.TransactionException:
            if attempt == _RETRIES - 1:
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class SignIn:
    """The outcome of one sign-in attempt. ``refused``: the account was locked, so the password
    was not checked; ``locked``: the account is locked now (refused, or this failure reached the
    limit); ``failures``: failures in a row counted so far, this one included."""
    username: str
    ok: bool
    refused: bool = False
    locked: bool = False
    failures: int = 0


@functools.cache
def _dummy_hash() -> bytes:
    """bcrypt of a random password: an unknown username costs as long as a wrong password. Made on
    first use, not at import: at import it was a third of a second added to every command."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=12))


def attempt_sign_in(con: duckdb.DuckDBPyConnection, username: str, password: str) -> SignIn:
    """Check a password with the lock-out applied at the moment of the check.

    The attempt is counted as a failure BEFORE bcrypt runs, in one statement that also reads the
    lock (a locked account is not counted and its password is never checked), so N simultaneous
    attempts are N counts and at most ``max_failed_sign_ins`` of them ever reach bcrypt within a
    lock-out. A right password then resets the count to zero. A failure after an expired lock-out
    starts the count again."""
    max_failures, minutes = lockout_policy()
    username = (username or "").strip().lower()
    rows = _write(con, """
        UPDATE users SET failed_sign_ins = CASE
                WHEN last_failed_at IS NULL OR last_failed_at <= current_localtimestamp() - to_minutes($minutes)
                THEN 1 ELSE failed_sign_ins + 1 END,
            last_failed_at = current_localtimestamp()
        WHERE username = $username
          AND NOT (failed_sign_ins >= $max AND last_failed_at > current_localtimestamp() - to_minutes($minutes))
        RETURNING failed_sign_ins, password_hash""",
        {"minutes": minutes, "username": username, "max": max_failures})
    if not rows:
        exists = con.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone()
        if exists:
            return SignIn(username, ok=False, refused=True, locked=True, failures=max_failures)
        _check(password, _dummy_hash())
        return SignIn(username, ok=False)
    failures, stored = rows[0]
    if _check(password, stored.encode("ascii")):
        record_sign_in(con, username)
        return SignIn(username, ok=True)
    return SignIn(username, ok=False, locked=failures >= max_failures, failures=failures)


def _check(password: str, hashed: bytes) -> bool:
    data = (password or "").encode("utf-8")
    return 0 < len(data) <= 72 and bcrypt.checkpw(data, hashed)


def record_sign_in(con: duckdb.DuckDBPyConnection, username: str) -> None:
    _write(con, "UPDATE users SET failed_sign_ins = 0, last_failed_at = NULL WHERE username = ?", [username.lower()])


# --- sessions: one server-side record per sign-in -------------------------------------------

def session_policy() -> tuple[int, float]:
    """(idle minutes, absolute lifetime in days) from config.toml [auth]."""
    from .config import settings

    auth = settings()["auth"]
    return int(auth.get("idle_minutes", 30)), float(auth.get("cookie_expiry_days", 1))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(con: duckdb.DuckDBPyConnection, username: str) -> str:
    """A new session for a signed-in user; returns the random token the cookie carries."""
    token = secrets.token_urlsafe(32)
    _write(con, """INSERT INTO sign_in_sessions (token_hash, username, started_at, last_seen_at)
                   VALUES (?, ?, current_localtimestamp(), current_localtimestamp())""",
           [_token_hash(token), username.lower()])
    return token


TOUCH_SECONDS = 15  # last_seen_at is written at most this often per session (a write per click is waste)


def session_user(con: duckdb.DuckDBPyConnection, token: str | None) -> str | None:
    """The username a session token belongs to while the session is live, else None.

    Live means: not ended, used within the idle timeout, younger than the cookie's lifetime, and
    its user still exists. A session found idle or expired is ended here, so it cannot come back."""
    if not token:
        return None
    idle_minutes, lifetime_days = session_policy()
    # The times are compared here, against the database's clock that wrote them: a plain read
    # by key is a fifth of the cost of the same comparisons in SQL, and this runs on every page view.
    # (Two reads by key: a join of the two tables costs more than both.)
    row = con.execute("SELECT username, ended_at, started_at, last_seen_at, current_localtimestamp() "
                      "FROM sign_in_sessions WHERE token_hash = ?", [_token_hash(token)]).fetchone()
    if row is None or row[1] is not None:
        return None
    username, _, started, last_seen, now = row
    removed = con.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone() is None
    idle = last_seen <= now - dt.timedelta(minutes=idle_minutes)
    expired = started <= now - dt.timedelta(seconds=int(lifetime_days * 86400))
    stale = last_seen <= now - dt.timedelta(seconds=TOUCH_SECONDS)
    if idle or expired or removed:
        end_session(con, token, "idle" if idle else "expired" if expired else "user removed")
        return None
    if stale:
        _write(con, "UPDATE sign_in_sessions SET last_seen_at = current_localtimestamp() "
                    "WHERE token_hash = ? AND ended_at IS NULL", [_token_hash(token)])
    return username


def end_session(con: duckdb.DuckDBPyConnection, token: str | None, reason: str = "signed out") -> None:
    if token:
        _write(con, "UPDATE sign_in_sessions SET ended_at = current_localtimestamp(), end_reason = ? "
                    "WHERE token_hash = ? AND ended_at IS NULL", [reason, _token_hash(token)])


def end_user_sessions(con: duckdb.DuckDBPyConnection, username: str, reason: str) -> int:
    """End every live session of a user (password reset, role change, removal); returns how many."""
    return len(_write(con, "UPDATE sign_in_sessions SET ended_at = current_localtimestamp(), end_reason = ? "
                           "WHERE username = ? AND ended_at IS NULL RETURNING 1", [reason, username.lower()]))


def add_demo_users(con: duckdb.DuckDBPyConnection) -> None:
    """Demo databases only: admin, finance, viewer and csu (scoped to EMA), password 'demo'."""
    for username, name, role, csus in (("admin", "Demo Administrator", "admin", ()),
                                       ("finance", "Demo Finance Partner", "finance", ()),
                                       ("viewer", "Demo Viewer", "viewer", ()),
                                       ("csu", "Demo CSU Tri-team", "csu", (DEMO_CSU,))):
        add_user(con, username, name, DEMO_PASSWORD, role, csus)
