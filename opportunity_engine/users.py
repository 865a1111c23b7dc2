"""Users, roles and CSU scope, stored in the database with bcrypt password hashes.

The sign-in widget (streamlit-authenticator) is given a credentials dictionary built from this
table, never a YAML file. A user's role and CSUs are always read from here by username, so
nothing a browser sends can widen what a session may see.
"""
from __future__ import annotations

import re
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


def add_user(con: duckdb.DuckDBPyConnection, username: str, name: str, password: str, role: str,
             csus: list[str] | tuple[str, ...] = (), email: str = "") -> User:
    username = username.strip().lower()  # the sign-in widget lower-cases usernames
    if not USERNAME.fullmatch(username):
        raise ValueError("a username is 2-32 lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    csus = sorted(set(csus))
    if role == "csu" and not csus:
        raise ValueError("a csu user needs at least one CSU (--csu CODE)")
    unknown = [c for c in csus if not con.execute("SELECT 1 FROM csus WHERE csu_code = ?", [c]).fetchone()]
    if unknown:
        raise ValueError(f"unknown CSU code(s): {', '.join(unknown)}")
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


def reset_password(con: duckdb.DuckDBPyConnection, username: str, password: str) -> None:
    # A reset also lifts a lock-out: it is how an admin lets a locked user back in.
    if not con.execute("UPDATE users SET password_hash = ?, failed_sign_ins = 0, last_failed_at = NULL "
                       "WHERE username = ? RETURNING username",
                       [hash_password(password), username.lower()]).fetchall():
        raise ValueError(f"no user {username}")


def check_password(con: duckdb.DuckDBPyConnection, username: str, password: str) -> bool:
    row = con.execute("SELECT password_hash FROM users WHERE username = ?", [username.lower()]).fetchone()
    return row is not None and bcrypt.checkpw(password.encode("utf-8"), row[0].encode("ascii"))


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

    ``failed_login_attempts`` carries the stored count only while a lock-out is running, so the
    widget's ``max_login_attempts`` refuses a locked account before it checks the password.
    """
    max_failures, minutes = lockout_policy()
    rows = con.execute("""
        SELECT username, name, email, password_hash, role,
               CASE WHEN last_failed_at > current_localtimestamp() - to_minutes($minutes)
                    THEN failed_sign_ins ELSE 0 END
        FROM users""", {"minutes": minutes}).fetchall()
    return {"usernames": {u: {"name": n, "email": e or f"{u}@example.invalid", "password": h, "roles": [r],
                              "failed_login_attempts": f}
                          for u, n, e, h, r, f in rows}}


def lockout_policy() -> tuple[int, int]:
    """(failed sign-ins before lock-out, lock-out minutes) from config.toml [auth]."""
    from .config import settings

    auth = settings()["auth"]
    return int(auth.get("max_failed_sign_ins", 5)), int(auth.get("lockout_minutes", 15))


def record_failed_sign_in(con: duckdb.DuckDBPyConnection, username: str) -> bool:
    """Count a failed password; returns True when the account is now locked. A failure after
    an expired lock-out starts the count again."""
    max_failures, minutes = lockout_policy()
    row = con.execute("""
        UPDATE users SET failed_sign_ins = CASE
                WHEN last_failed_at IS NULL OR last_failed_at <= current_localtimestamp() - to_minutes($minutes)
                THEN 1 ELSE failed_sign_ins + 1 END,
            last_failed_at = current_localtimestamp()
        WHERE username = $username RETURNING failed_sign_ins""",
        {"minutes": minutes, "username": username.lower()}).fetchone()
    return row is not None and row[0] >= max_failures


def record_sign_in(con: duckdb.DuckDBPyConnection, username: str) -> None:
    con.execute("UPDATE users SET failed_sign_ins = 0, last_failed_at = NULL WHERE username = ?", [username.lower()])


def is_locked(con: duckdb.DuckDBPyConnection, username: str) -> bool:
    max_failures, minutes = lockout_policy()
    row = con.execute("""SELECT failed_sign_ins >= $max AND last_failed_at > current_localtimestamp() - to_minutes($minutes)
                         FROM users WHERE username = $username""",
                      {"max": max_failures, "minutes": minutes, "username": username.lower()}).fetchone()
    return bool(row and row[0])


def add_demo_users(con: duckdb.DuckDBPyConnection) -> None:
    """Demo databases only: admin, finance, viewer and csu (scoped to EMA), password 'demo'."""
    for username, name, role, csus in (("admin", "Demo Administrator", "admin", ()),
                                       ("finance", "Demo Finance Partner", "finance", ()),
                                       ("viewer", "Demo Viewer", "viewer", ()),
                                       ("csu", "Demo CSU Tri-team", "csu", (DEMO_CSU,))):
        add_user(con, username, name, DEMO_PASSWORD, role, csus)
