"""Sign-in secrets and stored passwords (issue 5 hardening): no default key, no committed secrets,
bcrypt hashes only, demo users only in demo databases."""
from __future__ import annotations

import subprocess

import pytest

from opportunity_engine import users
from opportunity_engine.store import db

from .conftest import ROOT

LIBRARY_EXAMPLE_KEYS = {"some_signature_key", "abcdef", "random_signature_key"}


def test_cookie_key_comes_from_env_else_random_never_a_default(monkeypatch):
    import ui

    monkeypatch.setenv("OPPORTUNITY_COOKIE_KEY", "from-the-environment")
    ui.cookie_key.clear()
    assert ui.cookie_key() == "from-the-environment"
    monkeypatch.delenv("OPPORTUNITY_COOKIE_KEY")
    ui.cookie_key.clear()
    first = ui.cookie_key()
    ui.cookie_key.clear()
    second = ui.cookie_key()
    assert first != second and len(first) >= 40 and not {first, second} & LIBRARY_EXAMPLE_KEYS
    ui.cookie_key.clear()


def test_no_secrets_are_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert ".streamlit/secrets.toml" not in tracked and not any(f.endswith(".duckdb") for f in tracked)
    assert ".streamlit/secrets.toml" in (ROOT / ".gitignore").read_text()
    for name in tracked:
        path = ROOT / name
        if path.suffix in (".py", ".toml", ".md", ".txt", ".cfg") and path.exists():
            text = path.read_text(errors="ignore")
            assert "cookie_key = \"" not in text or name == "README.md", name


def test_passwords_are_bcrypt_hashes_and_checked(demo_copy):
    with db.connect(demo_copy) as con:
        hashes = [r[0] for r in con.execute("SELECT password_hash FROM users").fetchall()]
        assert hashes and all(h.startswith("$2b$12$") and "demo" not in h for h in hashes)
        assert users.attempt_sign_in(con, "finance", "demo").ok
        assert not users.attempt_sign_in(con, "finance", "Demo").ok
    with pytest.raises(ValueError, match="1 to 72 bytes"):
        users.hash_password("x" * 73)


def test_only_demo_databases_have_demo_users(tmp_path):
    with db.connect(tmp_path / "real.duckdb") as con:
        assert con.execute("SELECT count(*) FROM users").fetchone()[0] == 0
