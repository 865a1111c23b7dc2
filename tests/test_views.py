"""The display frames behind the pages: the Opportunities page's filters, export names, heatmap
colours, the Opportunity range, readable history. Figures are the hand-worked tiny trust of
tests/test_opportunities.py: A/100 length of stay £40,000, A/100 day case £14,000 (overlaps the
first, so not in net), A/CSU-wide agency £6,000 cash, A/300 length of stay £2,400 (low volume,
not significant), B/200 £0."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from openpyxl import load_workbook

from opportunity_engine.analysis.opportunities import Basis, opportunities
from opportunity_engine.reports import history, views
from opportunity_engine.reports.export_view import view_workbook
from opportunity_engine.scope import Scope


@pytest.fixture
def opps(tiny):
    return opportunities(tiny, Scope.trust(), Basis())


def gbp(frame: pd.DataFrame) -> list[float]:
    return [round(v) for v in frame["opportunity_gbp"]]


def test_no_filter_lists_every_opportunity_above_zero_largest_first(opps):
    assert gbp(views.filter_opportunities(opps, views.Filters())) == [40_000, 14_000, 6_000, 2_400]


@pytest.mark.parametrize("filters, expected", [
    (views.Filters(csu="B"), []),
    (views.Filters(domain="Workforce"), [6_000]),
    (views.Filters(saving_type="cash"), [6_000]),
    (views.Filters(saving_type="productivity"), [40_000, 14_000, 2_400]),
    (views.Filters(specialty="300"), [2_400]),
    (views.Filters(specialty=""), [6_000]),  # CSU-wide
    # the £40k elective stay is not significant once over-dispersion is allowed for (issue 12): flagged
    (views.Filters(hide_flagged=True), [14_000, 6_000]),
    (views.Filters(min_gbp=6_000), [40_000, 14_000, 6_000]),  # the minimum is inclusive
    (views.Filters(min_gbp=6_001), [40_000, 14_000]),
    (views.Filters(csu="A", domain="Beds", hide_flagged=True, min_gbp=10_000), [14_000]),
])
def test_each_filter_narrows_the_list(opps, filters, expected):
    assert gbp(views.filter_opportunities(opps, filters)) == expected


def test_a_scoped_frame_cannot_be_widened_by_a_filter(tiny):
    beta = opportunities(tiny, Scope(frozenset({"B"}), "B"), Basis())
    assert views.filter_opportunities(beta, views.Filters(csu="A")).empty


def test_filters_describe_themselves_and_name_the_file():
    f = views.Filters(csu="EMA", domain="Beds", saving_type="cash", hide_flagged=True, min_gbp=50_000)
    lines = dict(f.describe({"EMA": "Emergency and Acute Medicine"}))
    assert lines["CSU"] == "Emergency and Acute Medicine (EMA)" and lines["Minimum opportunity"] == "£50k"
    assert lines["Saving type"] == "Cash-releasing" and lines["Flagged rows"].startswith("Hidden")
    assert views.export_name("opportunities", f.slug(), today=dt.date(2026, 12, 1)) == \
        "opportunities-EMA-Beds-cash-unflagged-min50k-2026-12-01.xlsx"
    assert views.export_name("opportunities", views.Filters().slug(), today=dt.date(2026, 12, 1)) == \
        "opportunities-all-2026-12-01.xlsx"
    assert views.export_name("briefing pack", "EMA/1", today=dt.date(2027, 1, 2)) == "briefing-pack-EMA-1-2027-01-02.xlsx"


def test_view_workbook_cover_names_filters_basis_peer_group_and_window(tiny):
    filters = views.Filters(domain="Beds", hide_flagged=True)
    book = load_workbook(__import__("io").BytesIO(view_workbook(
        tiny, Scope.trust(), Basis(target="top_quartile"), "Fiona Finance", filters, peer_group="peer",
        now=dt.datetime(2026, 12, 1, 9, 30))))
    assert book.sheetnames == ["Cover", "Opportunities", "Metric definitions"]
    cover = {r[0]: r[1] for r in book["Cover"].iter_rows(min_row=4, max_col=2, values_only=True) if r[0]}
    assert cover["Domain"] == "Beds" and cover["Flagged rows"].startswith("Hidden") and cover["CSU"] == "All in scope"
    assert cover["Target"] == "Top quartile" and cover["Benchmark"] == "Peer trusts" and cover["Peer group"] == "peer"
    assert cover["Window"] == "Apr 2024 to Mar 2025" and cover["Prepared by"] == "Fiona Finance" and cover["Rows"] == 1
    assert cover["Total of the rows, £ a year"] == "=SUM(Opportunities!A2:A2)"
    rows = list(book["Opportunities"].iter_rows(values_only=True))
    assert rows[0][0] == "Opportunity £ a year" and all(h for h in rows[0])
    # top quartile (hand-worked): A/100 day case £17,500; A/100 length of stay (£60,000) is flagged not
    # significant once over-dispersion is allowed for, the rest are Workforce or flagged
    assert [(r[1], r[4], round(r[0])) for r in rows[1:]] == [("A", "Day-case rate (BADS procedures)", 17_500)]
    assert rows[1][10] == "Productivity" and rows[1][12] == "No"  # words, and the day case row is not in net


def test_heatmap_text_reads_on_every_cell_colour():
    for fill in views.HEAT_FILLS:
        assert views.contrast(views.ink_for(fill), fill) >= 4.5, fill
    assert views.ink_for("#003087") == "#FFFFFF" and views.ink_for("#E8EDEE") == "#212B32"
    assert round(views.contrast("#FFFFFF", "#000000"), 1) == 21.0


def test_heatmap_bands_are_round_and_zero_stands_apart():
    bands, labels = views.heat_bands(pd.Series([0.0, 1_000, 2_990_000, 3_000_000, 10_500_000]))
    assert labels == ["£0", "up to £3m", "£3m–£6m", "£6m–£9m", "£9m–£12m"]
    assert bands.tolist() == ["£0", "up to £3m", "up to £3m", "£3m–£6m", "£9m–£12m"]


def test_opportunity_range_marks_the_chosen_and_adds_a_custom_target(opps):
    row = opps[(opps.csu_code == "A") & (opps.specialty_code == "100") & (opps.metric_id == "alos_elective")].iloc[0]
    table = views.opportunity_range(row, Basis(target="top_decile"))
    assert table["Chosen"].tolist() == ["", "", "◀ chosen"]
    assert [round(v) for v in table["Opportunity £ a year"]] == [40_000, 60_000, 80_000]
    custom = views.opportunity_range(row, Basis(target="best_35"))
    assert custom["Target"].tolist()[-1] == "Best 35%" and custom["Chosen"].tolist() == ["", "", "", "◀ chosen"]


def test_history_reads_as_field_names_and_pounds():
    raw = pd.DataFrame({"changed_at": [pd.Timestamp("2026-12-01 09:00")] * 6, "username": ["finance"] * 6,
                        "field": ["realised.2026-11", "signoff.operational", "plan.fye_gbp", "status", "recurrent",
                                  "plan.start_month"],
                        "old_value": [None, "None", "100000.0", "delivering", "True", "1"],
                        "new_value": ["111540.0", "J. Reid 2026-05-01", "111540.0", "delivered", "False", "6"]})
    out = history.readable(raw)
    assert out["What"].tolist() == ["Realised £, Nov 2026", "QIA sign-off: Operational lead", "Plan: full-year effect",
                                    "Status", "Recurrent", "Plan: start month"]
    assert out["Old"].tolist() == ["–", "–", "£100,000", "Delivering", "Yes", "M1 (Apr)"]
    assert out["New"].tolist() == ["£111,540", "J. Reid 2026-05-01", "£111,540", "Delivered", "No", "M6 (Sep)"]


@pytest.mark.parametrize("today, behind, warned", [
    (dt.date(2025, 4, 15), 0, False),   # tiny's data end Mar 2025: up to date
    (dt.date(2025, 6, 1), 2, False),    # two months behind: normal lag
    (dt.date(2025, 7, 1), 3, True),
    (dt.date(2025, 12, 1), 8, True),
])
def test_a_banner_when_the_data_are_older_than_the_configured_months(tiny, today, behind, warned):
    from opportunity_engine.analysis import freshness
    assert freshness.data_age(tiny, today).months_behind == behind
    message = freshness.stale_warning(tiny, today, limit=2)
    assert (message is not None) == warned
    if warned:
        assert message.startswith(f"The latest data are for Mar 2025, {behind} months before")


def test_a_pages_derived_view_is_kept_per_data_version_and_handed_out_as_copies(tiny):
    """analysis.opportunities.view: the pages' derivations (totals, tables, notes) are computed once
    per data version, scope, basis and arguments; a page changing its frame never changes the
    next page's; an import (a new data version) computes them afresh."""
    from opportunity_engine.analysis.opportunities import Basis, opportunities, view
    from opportunity_engine.scope import Scope
    from opportunity_engine.store.db import bump_data_version

    bump_data_version(tiny)  # a database that has been loaded (version "0" is never kept)
    calls: list[int] = []

    def biggest(df, n):
        calls.append(n)
        return df.head(n)[["csu_code", "metric_id", "opportunity_gbp"]], len(df)

    first, count = view(tiny, Scope.trust(), Basis(), biggest, 2)
    expected = opportunities(tiny, Scope.trust(), Basis()).head(2)
    assert count == len(opportunities(tiny, Scope.trust(), Basis()))
    assert first["opportunity_gbp"].tolist() == expected["opportunity_gbp"].tolist()
    first.loc[:, "opportunity_gbp"] = -1.0  # the page's own copy
    again, _ = view(tiny, Scope.trust(), Basis(), biggest, 2)
    assert calls == [2] and again["opportunity_gbp"].tolist() == expected["opportunity_gbp"].tolist()
    view(tiny, Scope.of("A"), Basis(), biggest, 2)  # another scope, another view
    view(tiny, Scope.trust(), Basis(), biggest, 3)  # other arguments too
    assert calls == [2, 2, 3]
    bump_data_version(tiny)
    view(tiny, Scope.trust(), Basis(), biggest, 2)
    assert calls == [2, 2, 3, 2]


def test_the_engine_keeps_results_of_the_current_data_version_only(tiny):
    """After a refresh (a new data version) the engine's caches hold nothing of the version before:
    the database only moves forward, so older results are dead weight, and keeping them until the
    size limit made the server grow with every monthly refresh (tools/bench_refresh.py)."""
    from opportunity_engine.analysis import casemix, versioned
    from opportunity_engine.analysis.opportunities import Basis, opportunities
    from opportunity_engine.scope import Scope
    from opportunity_engine.store.db import bump_data_version

    def versions() -> set[str]:
        return {key[0] for cache in versioned.ALL if cache.family == "data_version" for key in cache._entries}

    for _ in range(3):
        bump_data_version(tiny)
        for target in ("median", "top_quartile"):
            opportunities(tiny, Scope.trust(), Basis(target=target))
            opportunities(tiny, Scope.of("A"), Basis(target=target), csu="A")
        current = tiny.execute("SELECT value FROM settings WHERE key = 'data_version'").fetchone()[0]
        assert versions() == {current}
        assert len(casemix._CACHE) >= 1  # the case-mix references are kept too, for this version


def test_a_versioned_cache_drops_other_versions_and_keeps_its_size():
    from opportunity_engine.analysis.versioned import MISSING, VersionedCache

    cache: VersionedCache[int] = VersionedCache(2, "test_version")
    other: VersionedCache[int] = VersionedCache(2, "other_version")
    other.put("r1", "x", 7)
    cache.put("v1", "a", 1)
    cache.put("v1", "b", 2)
    assert cache.get("v1", "a") == 1  # "a" now the most recently used
    cache.put("v1", "c", 3)
    assert cache.get("v1", "b") is MISSING and cache.get("v1", "a") == 1 and len(cache) == 2
    cache.put("v2", "a", 10)
    assert len(cache) == 1 and cache.get("v1", "a") is MISSING and cache.get("v2", "a") == 10
    cache.put("0", "a", 0)  # version "0": nothing ever loaded, never kept
    assert cache.get("0", "a") is MISSING and len(cache) == 1
    assert other.get("r1", "x") == 7  # another kind of version (a scheme saved) moves on its own
