"""Every page in Streamlit's AppTest, signed in as each role: what it shows, what it hides, deep links."""
from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from tools.app_harness import APP, signed_in

# Each test runs the whole app script in AppTest (seconds a run): not in the quick loop.
pytestmark = pytest.mark.slow


@pytest.fixture
def app_db(demo_copy, monkeypatch):
    monkeypatch.setenv("OPPORTUNITY_DB", str(demo_copy))
    monkeypatch.setenv("OPPORTUNITY_COOKIE_KEY", "apptest-key")
    return demo_copy


def opened_by_address(username: str, url_path: str) -> AppTest:
    """The app when the address names a page (a typed or bookmarked link): AppTest.switch_page only
    reaches pages the user's navigation lists, so set the page hash the browser would send
    (Streamlit hashes a page's url_path). AppTest then runs the page script itself (as a fresh
    server's legacy pages/ discovery does), so this checks the page's own refusal; the Chromium
    test checks app.py's refusal page in a real session."""
    at = signed_in(username)
    at._page_hash = calc_hash(url_path)
    at.run()
    assert not at.exception, at.exception
    return at


def text(at: AppTest) -> str:
    """The page's markdown as a person reads it: a backslash escape (formatting.plain) shows as
    the character it escapes."""
    source = " ".join(str(e.value) for e in list(at.markdown) + list(at.title) + list(at.header) + list(at.subheader)
                      + list(at.caption) + list(at.error) + list(at.info) + list(at.warning))
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", source)



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
        assert set(shown["CSU"]) == {"EMA"}
    else:
        assert shown["CSU"].nunique() > 1


def test_a_custom_target_from_the_link_recomputes_everything(app_db):
    median = signed_in("finance")
    custom = signed_in("finance", target="best_35")
    assert "Best 35% of peer trusts" in text(custom)
    assert [s.value for s in custom.slider] == [35]
    assert custom.metric[0].value != median.metric[0].value  # a stricter target than the median: more £
    at_median = signed_in("finance", target="best_50")  # the custom level that is the median
    assert "Best 50% of peer trusts" in text(at_median) and at_median.metric[0].value == median.metric[0].value


def test_data_page_is_admin_only(app_db):
    admin = signed_in("admin", "pages/data.py")
    assert "Load extracts" in text(admin) and "Freshness" in text(admin)
    keys = [d.key for d in admin.dataframe]
    assert "unit-costs" in keys and any(str(k).startswith("wrp-") for k in keys)  # the two editors
    costs = next(d for d in admin.dataframe if d.key == "unit-costs").value
    assert len(costs) >= 13  # every shipped unit cost, editable
    finance = opened_by_address("finance", "data")
    assert any(" is for " in e.value for e in finance.error)
    assert "Load extracts" not in text(finance)


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
    assert labels == ["Actual", "Target", "Opportunity", "Gap a year, bed days"]
    add = [b for b in at.button if b.label == "Add to shortlist"]
    assert add
    add[0].click().run()
    assert any("Added to the shortlist" in s.value for s in at.success)


@pytest.mark.parametrize("username,present", [("viewer", None), ("finance", "1")], ids=["viewer", "finance-presenting"])
def test_viewer_and_presentation_mode_have_no_editing_controls(app_db, username, present):
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


def all_text(at: AppTest) -> str:
    frames = " ".join(f.value.to_string() for f in at.dataframe)
    return text(at) + " " + " ".join(str(m.value) for m in at.metric) + " " + frames + " " + \
        " ".join(str(s.value) for s in at.selectbox) + " " + " ".join(str(o) for s in at.selectbox for o in s.options)


def test_shortlist_lists_demo_schemes_with_plan_qia_and_history(app_db):
    at = signed_in("finance", "pages/shortlist.py", fy="2026")
    assert not at.exception
    body = all_text(at)
    committed = next(m for m in at.metric if m.label == "Committed in-year")
    assert "Shortlist & plans" in body and committed.delta == "2026/27" and committed.value.startswith("£")
    assert "weighted by status (idea 10%, shortlisted 25%, planning 50%)" in body
    editor = [d for d in at.dataframe if d.value is not None and "title" in d.value.columns]
    assert editor and len(editor[0].value) >= 6
    assert [t.label for t in at.tabs] == ["Details and status", "CIP plan", "QIA", "History"]
    assert "Save plan" in [b.label for b in at.button]


def test_shortlist_refuses_approval_without_qia(app_db):
    at = signed_in("finance", "pages/shortlist.py")
    # the demo's "planning" scheme has an incomplete QIA: approving it must be refused with reasons
    scheme_box = next(s for s in at.selectbox if s.label == "Scheme")
    ids = [int(o.split()[0].lstrip("#")) for o in scheme_box.options if "(Planning)" in o]
    at.query_params["scheme"] = str(ids[0])
    at.run()
    move = next(s for s in at.selectbox if s.label == "Move to")
    move.select("approved").run()
    next(b for b in at.button if b.label == "Change status").click().run()
    assert any("Cannot approve yet" in e.value and "QIA" in e.value for e in at.error)


@pytest.mark.parametrize("page,expected", [("pages/tracking.py", "Tracking"), ("pages/library.py", "Library"),
                                           ("pages/guide.py", "Worked example: an opportunity"),
                                           ("pages/feedback.py", "You said, we did")])
@pytest.mark.parametrize("username", ["admin", "finance", "csu", "viewer"])
def test_tracking_library_guide_feedback_for_every_role(app_db, username, page, expected):
    at = signed_in(username, page, fy="2026")
    assert expected in all_text(at), (username, page)


def test_tracking_shows_realised_and_rag_and_only_editors_can_save(app_db):
    at = signed_in("finance", "pages/tracking.py", fy="2026")
    assert "Realised to date" in [m.label for m in at.metric]
    assert any(f.value is not None and "RAG" in f.value.columns for f in at.dataframe)
    viewer = signed_in("viewer", "pages/tracking.py", fy="2026")
    assert "Save realised £" not in [b.label for b in viewer.button]


def test_adoption_is_for_finance_and_admin_only(app_db):
    at = signed_in("finance", "pages/adoption.py")
    labels = [m.label for m in at.metric]
    assert "Schemes from opportunities" in labels and "Evidenced by the data (FYE)" in labels
    assert "not used it lately" in all_text(at)
    for page in ("adoption", "data"):  # a CSU user is told, not quietly sent elsewhere
        csu = opened_by_address("csu", page)
        assert any(" is for " in e.value for e in csu.error), page
        assert csu.metric.len == 0 and csu.dataframe.len == 0


CSU_PAGES = ["pages/overview.py", "pages/explore.py", "pages/metric.py", "pages/shortlist.py", "pages/tracking.py",
             "pages/library.py", "pages/feedback.py", "pages/guide.py"]
OTHER_CSU = {"csu": "ABD", "specialty": "100", "metric": "alos_elective"}


@pytest.mark.parametrize("page", CSU_PAGES)
def test_csu_user_never_sees_another_csus_data_on_any_page(app_db, page):
    """Every page × every parameter a link can carry, pointed at other CSUs' data (hardening)."""
    import duckdb

    with duckdb.connect(str(app_db), read_only=True) as con:
        # A published case study names its CSU on purpose, and only on the Library page.
        published = "AND csu_code NOT IN (SELECT csu_code FROM schemes WHERE case_study)" if page.endswith("library.py") else ""
        others = con.execute(f"SELECT csu_name FROM csus WHERE csu_code <> 'EMA' {published}").fetchall()
        foreign_schemes = [r[0] for r in con.execute("SELECT scheme_id FROM schemes WHERE csu_code <> 'EMA' "
                                                     "AND NOT case_study").fetchall()]
        foreign_titles = [r[0] for r in con.execute("SELECT title FROM schemes WHERE csu_code <> 'EMA' "
                                                    "AND NOT case_study").fetchall()]
    variants = [{}, OTHER_CSU, {"csu": "ABD"}, {"scheme": str(foreign_schemes[0])},
                {"csu": "EMA", "scheme": str(foreign_schemes[0])}, {"metric": "op_dna_rate"}, {"fy": "2025"}]
    for params in variants:
        at = signed_in("csu", page, **params)
        body = all_text(at)
        for (name,) in others:
            assert name not in body, (page, params, name)
        for title in foreign_titles:
            assert title not in body, (page, params, title)


def test_two_people_editing_one_scheme_in_the_app_cannot_overwrite_each_other(app_db):
    import duckdb

    from opportunity_engine.store import db

    def query(sql, params=()):  # same configuration as the app's own connection in this process
        with duckdb.connect(str(app_db), config=db.CONNECT_CONFIG) as con:
            return con.execute(sql, list(params)).fetchone()[0]

    scheme_id = query("SELECT scheme_id FROM schemes WHERE status = 'idea' AND csu_code = 'EMA'")
    first = signed_in("finance", "pages/shortlist.py", scheme=str(scheme_id))
    second = signed_in("csu", "pages/shortlist.py", scheme=str(scheme_id))  # both have the scheme open

    def save_title(at, title):
        next(t for t in at.text_input if t.label == "Title" and t.value != "").set_value(title)
        next(b for b in at.button if b.label == "Save details").click()
        at.run()

    save_title(first, "Title from finance")
    assert any("Saved." in s.value for s in first.success)
    save_title(second, "Title from the CSU")  # stale: must be refused, not overwrite
    assert any("changed by finance" in e.value and "Reload" in e.value for e in second.error)
    assert query("SELECT title FROM schemes WHERE scheme_id = ?", [scheme_id]) == "Title from finance"
    next(b for b in second.button if b.label == "Reload the latest version").click()
    second.run()
    save_title(second, "Title from the CSU")  # after reloading, the CSU's change goes in
    assert any("Saved." in s.value for s in second.success)


def test_money_columns_stay_numbers_and_sort_by_value(app_db):
    """£ columns are floats in the frame (shown as £1.2m by the page), so sorting is by value: on
    the Overview's Top 10, Explore's specialties and metrics, and the Opportunity range."""
    at = signed_in("finance")
    top = at.dataframe[0].value
    assert list(top.columns[:1]) == ["Opportunity £"] and top["Opportunity £"].dtype.kind == "f"
    assert list(top["Opportunity £"]) == sorted(top["Opportunity £"], reverse=True)
    assert "Type" in top.columns and "Flags" in top.columns  # kept in normal mode
    at = signed_in("finance", "pages/explore.py", csu="EMA", specialty="300")
    specs, metrics = at.dataframe[0].value, at.dataframe[1].value
    assert specs["Net £"].dtype.kind == "f" and metrics["Opportunity £"].dtype.kind == "f"
    by_value = specs.sort_values("Net £", ascending=False)["Net £"].tolist()
    assert by_value == sorted(specs["Net £"], reverse=True) and by_value[0] >= 1e6 > by_value[-1]


def test_presentation_mode_puts_the_pound_column_first_and_keeps_few_columns(app_db):
    at = signed_in("finance", present="1")
    top = at.dataframe[0].value
    assert list(top.columns) == ["Opportunity £", "CSU", "Specialty", "Metric", "Gap", "Detail"]
    assert all(link.startswith("metric?") and "present=1" in link for link in top["Detail"])
    at = signed_in("finance", "pages/explore.py", csu="EMA", specialty="300", present="1")
    assert list(at.dataframe[0].value.columns) == ["Net £", "Specialty", "Opportunities"]
    assert list(at.dataframe[1].value.columns) == ["Opportunity £", "Metric", "Actual", "Target", "Gap"]


def test_opportunity_range_marks_the_chosen_target(app_db):
    at = signed_in("finance", "pages/metric.py", csu="EMA", specialty="300", metric="alos_non_elective",
                   target="top_quartile")
    table = at.dataframe[0].value
    assert table.loc[table["Chosen"] != "", "Target"].tolist() == ["Top quartile"]
    at = signed_in("finance", "pages/metric.py", csu="EMA", specialty="300", metric="alos_non_elective",
                   target="best_35")
    table = at.dataframe[0].value
    assert table["Target"].tolist()[-1].startswith("Best 35") and table["Chosen"].tolist()[-1]
    assert table["Opportunity £ a year"].dtype.kind == "f"


def test_opportunities_page_lists_filters_and_links_within_scope(app_db):
    at = signed_in("finance", "pages/opportunities.py")
    listing = at.dataframe[0].value
    assert listing.columns[0] == "Opportunity £" and listing["Opportunity £"].dtype.kind == "f"
    assert listing["CSU"].nunique() > 5 and (listing["Opportunity £"] > 0).all()
    assert list(listing["Opportunity £"]) == sorted(listing["Opportunity £"], reverse=True)
    assert all(link.startswith("metric?csu=") and "&metric=" in link for link in listing["Detail"])
    everything = len(listing)
    at = signed_in("finance", "pages/opportunities.py", domain="Beds", min="50000", flagged="hide", type="productivity")
    narrowed = at.dataframe[0].value
    assert 0 < len(narrowed) < everything and (narrowed["Opportunity £"] >= 50_000).all()
    assert (narrowed["Flags"] == "").all() and "Type" not in narrowed.columns
    assert [s.value for s in at.selectbox if s.label in ("Domain", "Minimum opportunity")] == ["Beds", 50_000]
    assert "Download this view (Excel)" in [b.label for b in at.get("download_button")]
    csu = signed_in("csu", "pages/opportunities.py")
    assert set(csu.dataframe[0].value["CSU"]) == {"EMA"}
    assert signed_in("csu", "pages/opportunities.py", csu="ABD").error  # another CSU's list: refused


def test_shortlist_fye_is_a_number_and_history_reads_as_words(app_db):
    at = signed_in("finance", "pages/shortlist.py", fy="2026")
    editor = next(d for d in at.dataframe if d.value is not None and "title" in d.value.columns).value
    assert editor["fye_gbp"].dtype.kind == "f" and editor.columns[1] == "fye_gbp"
    history = next(d for d in at.dataframe if d.value is not None and "What" in d.value.columns).value
    assert not history["What"].str.match(r"(?:realised|signoff|plan)\.").any()
    assert not history[["Old", "New"]].isin(["None", "nan"]).any().any()
    tracking = signed_in("finance", "pages/tracking.py", fy="2026")
    statuses = next(d for d in tracking.dataframe if "Status" in d.value.columns).value["Status"]
    assert set(statuses) <= {"Approved", "Delivering", "Delivered"}
