"""Every page in Streamlit's AppTest, signed in as each role: what it shows, what it hides, deep links."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from .conftest import ROOT

APP = str(ROOT / "app.py")


@pytest.fixture
def app_db(demo_copy, monkeypatch):
    monkeypatch.setenv("OPPORTUNITY_DB", str(demo_copy))
    monkeypatch.setenv("OPPORTUNITY_COOKIE_KEY", "apptest-key")
    return demo_copy


def signed_in(username: str, page: str | None = None, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    at.session_state["name"] = username
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def text(at: AppTest) -> str:
    return " ".join(str(e.value) for e in list(at.markdown) + list(at.title) + list(at.header) + list(at.subheader)
                    + list(at.caption) + list(at.error) + list(at.info) + list(at.warning))



def test_signed_out_visitors_see_only_the_sign_in_form(app_db):
    """Submitting the form needs the authenticator's cookie component, which AppTest cannot run;
    the Chromium test signs in for real (wrong password, then right). Here: before sign-in there is
    a form and nothing of the trust's data, on the main page and on a deep link."""
    for page in (None, "pages/explore.py"):
        at = AppTest.from_file(APP, default_timeout=30)
        at.query_params["csu"] = "EMA"
        at.run()
        if page:
            at.switch_page(page).run()
        assert not at.exception
        assert [t.label for t in at.text_input] == ["Username", "Password"]
        assert at.metric.len == 0 and at.dataframe.len == 0
        assert "Emergency and Acute Medicine" not in text(at)


@pytest.mark.parametrize("username", ["admin", "finance", "viewer", "csu"])
def test_overview_for_each_role(app_db, username):
    at = signed_in(username)
    assert at.metric[0].label == "Total opportunity (net)" and at.metric[0].value.startswith("£")
    shown = at.dataframe[0].value
    if username == "csu":
        assert set(shown["CSU"]) == {"Emergency and Acute Medicine"}
    else:
        assert shown["CSU"].nunique() > 1


def test_data_page_is_admin_only(app_db):
    admin = signed_in("admin", "pages/data.py")
    assert "Data" in text(admin) and admin.dataframe.len == 1
    finance = signed_in("finance")
    with pytest.raises(Exception):
        finance.switch_page("pages/data.py").run()


def test_explore_deep_link_shows_specialty_metrics(app_db):
    at = signed_in("finance", "pages/explore.py")
    at.query_params["csu"] = "EMA"
    at.query_params["specialty"] = "300"
    at.run()
    assert "metrics by opportunity" in text(at)
    assert at.dataframe.len == 2 and len(at.dataframe[1].value) > 3


def test_csu_user_cannot_open_another_csu(app_db):
    at = signed_in("csu", "pages/explore.py")
    at.query_params["csu"] = "ABD"
    at.run()
    # the browser test checks the "not available to you" message; here: no other CSU's data at all
    for frame in at.dataframe:
        assert "Abdominal" not in frame.value.to_string()
    assert "Abdominal" not in text(at)


def test_metric_detail_deep_link_and_shortlist(app_db):
    at = signed_in("finance", "pages/metric.py")
    for k, v in {"csu": "EMA", "specialty": "300", "metric": "alos_non_elective"}.items():
        at.query_params[k] = v
    at.run()
    assert "How this was calculated" in text(at)
    labels = [m.label for m in at.metric]
    assert labels == ["Actual", "Target", "Opportunity", "Gap"]
    add = [b for b in at.button if b.label == "Add to shortlist"]
    assert add
    add[0].click().run()
    assert any("Added to the shortlist" in s.value for s in at.success)


def test_viewer_and_presentation_mode_have_no_editing_controls(app_db):
    for username, present in (("viewer", None), ("finance", "1")):
        at = signed_in(username, "pages/metric.py")
        for k, v in {"csu": "EMA", "specialty": "300", "metric": "alos_non_elective"}.items():
            at.query_params[k] = v
        if present:
            at.query_params["present"] = present
        at.run()
        assert "How this was calculated" in text(at)
        assert not [b for b in at.button if b.label == "Add to shortlist"]


def test_metric_page_without_a_selection_says_what_to_do(app_db):
    at = signed_in("finance", "pages/metric.py")
    assert any("Choose a CSU" in i.value for i in at.info)
