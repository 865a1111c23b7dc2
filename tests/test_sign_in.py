"""Sign-in under concurrency and server-side sessions (issue 13 points 1-2), at the engine level.

The browser half (8 Chromium sessions at once, the captured-cookie replay) is in
tests/test_e2e_browser.py."""
from __future__ import annotations

import threading

import pytest

from opportunity_engine import users
from opportunity_engine.store import db


@pytest.fixture
def con(tiny):
    users.add_user(tiny, "jo", "Jo Bloggs", "right", "csu", ["A"])
    return tiny


def _at_once(con, n: int, password: str) -> list[users.SignIn | BaseException]:
    """n threads, each with its own cursor, released together, each trying ``password``."""
    barrier = threading.Barrier(n)
    results: list[users.SignIn | BaseException] = [None] * n  # type: ignore[list-item]

    def attempt(i: int) -> None:
        cur = con.cursor()
        barrier.wait()
        try:
            results[i] = users.attempt_sign_in(cur, "jo", password)
        except BaseException as exc:  # noqa: BLE001 (the old code raised TransactionException here: record it)
            results[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_twenty_simultaneous_wrong_passwords_lock_after_exactly_the_limit(con):
    max_failures, _ = users.lockout_policy()
    results = _at_once(con, 20, "wrong")
    assert all(isinstance(r, users.SignIn) for r in results), results  # no error, whatever the timing
    checked = [r for r in results if not r.refused]
    assert len(checked) == max_failures  # only the first five reached bcrypt
    assert sorted(r.failures for r in checked) == list(range(1, max_failures + 1))  # none lost
    assert sum(r.locked and not r.refused for r in results) == 1  # the fifth failure locked it
    assert all(not r.ok for r in results)
    assert con.execute("SELECT failed_sign_ins FROM users WHERE username = 'jo'").fetchone()[0] == max_failures
    right = users.attempt_sign_in(con, "jo", "right")  # the right password is refused while locked
    assert not right.ok and right.refused


def test_the_limit_is_exact_one_at_a_time_and_a_success_resets_the_count(con):
    max_failures, _ = users.lockout_policy()
    for n in range(1, max_failures - 1):
        assert users.attempt_sign_in(con, "jo", "wrong") == users.SignIn("jo", ok=False, failures=n)
    assert users.attempt_sign_in(con, "jo", "right").ok  # four failures, then the right one
    assert con.execute("SELECT failed_sign_ins FROM users WHERE username = 'jo'").fetchone()[0] == 0
    for _ in range(1, max_failures):
        assert not users.attempt_sign_in(con, "jo", "wrong").locked
    fifth = users.attempt_sign_in(con, "jo", "wrong")
    assert fifth.locked and not fifth.refused and fifth.failures == max_failures
    assert users.attempt_sign_in(con, "jo", "right").refused


def test_the_lock_ends_after_lockout_minutes_and_counting_starts_again(con):
    max_failures, minutes = users.lockout_policy()
    for _ in range(max_failures):
        users.attempt_sign_in(con, "jo", "wrong")
    assert users.attempt_sign_in(con, "jo", "right").refused
    con.execute("UPDATE users SET last_failed_at = last_failed_at - to_minutes(?) WHERE username = 'jo'",
                [minutes + 1])
    assert users.attempt_sign_in(con, "jo", "wrong").failures == 1  # a fresh count, not six
    assert users.attempt_sign_in(con, "jo", "right").ok


def test_simultaneous_right_passwords_sign_in_and_leave_the_account_open(con):
    """Each attempt counts as a failure until its password is checked, so at most the limit run at
    once; the rest are refused (never an error), and the successes leave the count at zero."""
    max_failures, _ = users.lockout_policy()
    results = _at_once(con, 8, "right")
    assert all(isinstance(r, users.SignIn) for r in results), results
    assert sum(r.ok for r in results) >= max_failures and all(r.ok or r.refused for r in results)
    assert users.attempt_sign_in(con, "jo", "right").ok  # not locked: the right password signs in


def test_unknown_users_are_refused_without_an_error(con):
    result = users.attempt_sign_in(con, "nobody", "x")
    assert not result.ok and not result.refused


def test_a_session_lives_until_sign_out(con):
    token = users.start_session(con, "jo")
    assert users.session_user(con, token) == "jo"
    users.end_session(con, token)
    assert users.session_user(con, token) is None
    assert users.session_user(con, "forged-or-guessed") is None and users.session_user(con, None) is None
    stored = con.execute("SELECT token_hash FROM sign_in_sessions").fetchall()
    assert stored and all(token not in h for (h,) in stored)  # only a hash is kept


@pytest.mark.parametrize("change", ["reset", "role", "remove"])
def test_password_reset_role_change_and_removal_end_every_session(con, change):
    tokens = [users.start_session(con, "jo") for _ in range(2)]  # two browsers
    other = users.add_user(con, "sam", "Sam", "pw", "finance")
    kept = users.start_session(con, other.username)
    if change == "reset":
        users.reset_password(con, "jo", "new")
    elif change == "role":
        assert users.set_role(con, "jo", "viewer").role == "viewer"
    else:
        users.remove_user(con, "jo")
    assert [users.session_user(con, t) for t in tokens] == [None, None]
    assert users.session_user(con, kept) == "sam"  # nobody else is signed out


def test_an_idle_session_ends_and_stays_ended(con):
    idle_minutes, _ = users.session_policy()
    token = users.start_session(con, "jo")
    con.execute("UPDATE sign_in_sessions SET last_seen_at = last_seen_at - to_minutes(?)", [idle_minutes + 1])
    assert users.session_user(con, token) is None
    assert con.execute("SELECT end_reason FROM sign_in_sessions").fetchone()[0] == "idle"
    con.execute("UPDATE sign_in_sessions SET last_seen_at = current_localtimestamp()")
    assert users.session_user(con, token) is None  # ended is final


def test_an_old_database_gets_the_sessions_table(tmp_path):
    import duckdb

    path = tmp_path / "v3.duckdb"
    con = duckdb.connect(str(path), config=db.CONNECT_CONFIG)
    db.migrate(con, up_to=3)
    con.close()
    with db.connect(path) as upgraded:
        assert db.schema_version(upgraded) == db.LATEST_VERSION
        assert upgraded.execute("SELECT count(*) FROM sign_in_sessions").fetchone()[0] == 0
