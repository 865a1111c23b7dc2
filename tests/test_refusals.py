"""One refusal type (issue 11): the engine's refusals are shown as advice; any other error is a fault,
logged by app.py's handler and never shown to the user as if it were advice."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from opportunity_engine.errors import InvalidInput, NotAllowed, Refusal
from opportunity_engine.scope import Scope, ScopeError
from opportunity_engine.store.audit import ConflictError
from tools.app_harness import signed_in

PANDAS_LIKE = "cannot reindex on an axis with duplicate labels"


@pytest.fixture
def served_app(demo_copy, monkeypatch):
    """app.py as a running server runs it: a server's first script run may route a deep link
    straight to a pages/ script (Streamlit's legacy discovery of the folder), but from then on every
    run goes through app.py's st.navigation and its error handler. AppTest starts every run afresh
    with the legacy discovery, so here the folder is hidden from that discovery alone."""
    from streamlit.runtime import pages_manager

    class NoPagesFolder(type(Path())):  # Path as pages_manager uses it, with no pages/ folder
        def exists(self, *args, **kwargs):
            return False if self.name == "pages" else super().exists(*args, **kwargs)

    monkeypatch.setattr(pages_manager, "Path", NoPagesFolder)
    monkeypatch.setenv("OPPORTUNITY_DB", str(demo_copy))
    monkeypatch.setenv("OPPORTUNITY_COOKIE_KEY", "apptest-key")
    return demo_copy


def test_every_user_facing_refusal_is_a_refusal_and_keeps_its_builtin_type():
    assert issubclass(InvalidInput, Refusal) and issubclass(InvalidInput, ValueError)
    assert issubclass(NotAllowed, Refusal) and issubclass(NotAllowed, PermissionError)
    assert issubclass(ScopeError, NotAllowed) and issubclass(ConflictError, Refusal)
    with pytest.raises(Refusal, match="CSU B is not available to you"):
        Scope.of("A").check("B")
    assert not issubclass(ValueError, Refusal)


def test_engine_rules_refuse_with_a_refusal(tiny):
    from opportunity_engine.delivery import plans, schemes
    from opportunity_engine.users import User

    finance, viewer = User("fin", "F", "", "finance", ()), User("v", "V", "", "viewer", ())
    with pytest.raises(InvalidInput, match="needs a title"):
        schemes.create(tiny, finance, " ", "A")
    with pytest.raises(NotAllowed, match="view schemes but not change them"):
        schemes.create(tiny, viewer, "X", "A")
    with pytest.raises(InvalidInput, match="Start month"):
        plans.phase(1200, 13, "even")


def _save_details(at):
    next(b for b in at.button if b.label == "Save details").click().run()
    return at


def test_a_refusal_in_a_page_action_is_shown_as_advice(served_app, monkeypatch):
    from opportunity_engine.delivery import schemes

    def refuse(*args, **kwargs):
        raise InvalidInput("A scheme needs a title.")

    at = signed_in("finance", "pages/shortlist.py")
    monkeypatch.setattr(schemes, "update", refuse)
    _save_details(at)
    assert [e.value for e in at.error] == ["A scheme needs a title."]


def test_an_unexpected_value_error_in_a_page_action_is_logged_not_shown_as_advice(served_app, monkeypatch, caplog):
    from opportunity_engine.delivery import schemes

    def crash(*args, **kwargs):
        raise ValueError(PANDAS_LIKE)  # what a pandas or numpy fault raises: not advice

    at = signed_in("finance", "pages/shortlist.py")
    monkeypatch.setattr(schemes, "update", crash)
    # caplog's handler sits on the root logger, and the app's logger does not propagate to it
    # (logs.setup): the handler goes on the app's logger itself, or the test depends on order.
    log = logging.getLogger("opportunity_explorer")
    log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.ERROR, logger="opportunity_explorer"):
            _save_details(at)
    finally:
        log.removeHandler(caplog.handler)
    assert not at.exception  # app.py's handler caught it: no Streamlit error box either
    shown = " ".join(e.value for e in at.error)
    assert PANDAS_LIKE not in shown
    assert "Something went wrong showing this page. It has been logged" in shown
    assert any(r.getMessage() == "page_error" and r.exc_info and PANDAS_LIKE in str(r.exc_info[1])
               for r in caplog.records)
