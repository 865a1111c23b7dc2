"""Peer groups are data (issue 14, point 2): several groups in one benchmarks file, the default
choice, the group named with every target, and no silent £0 for a metric without a target.

Hand-worked on the tiny trust (conftest.build_tiny): A/100 alos_elective is 400 bed days / 100
spells, bed day £400. A benchmarks file adds two groups for alos_elective, all specialties:
    national p50 3.5 -> gap 400 - 350 = 50 bed days -> £20,000
    region   p50 2.5 -> gap 400 - 250 = 150 bed days -> £60,000
and national also holds daycase_rate_bads (p50 0.8 -> 0.8 × 100 - 60 = 20 -> £14,000), region does not:
under region, day case rate has no target (not £0 to save) and the note says so.
"""
from __future__ import annotations

import textwrap

import pytest

from opportunity_engine import cli
from opportunity_engine.analysis.opportunities import (
    Basis,
    compute_opportunities,
    default_peer_group,
    missing_targets,
    missing_targets_note,
    opportunities,
    peer_groups,
    resolve_peer_group,
)
from opportunity_engine.scope import Scope
from opportunity_engine.store import db
from opportunity_engine.store.importer import import_files
from tests.conftest import build_tiny
from tests.sql_oracle import oracle_opportunities
from tests.test_oracle import assert_same

GROUPS = textwrap.dedent("""\
    metric_id,specialty_code,peer_group,p10,p25,p50,p75,p90,source
    alos_elective,,national,2.5,3.0,3.5,4.0,4.5,National ALOS
    daycase_rate_bads,,national,0.6,0.7,0.8,0.85,0.9,National day case
    alos_elective,,region,1.5,2.0,2.5,3.0,3.5,Regional ALOS
    """)


@pytest.fixture
def two_groups(tmp_path):
    """The tiny trust with only the national and region groups (its own 'peer' rows removed)."""
    con = db.memory()
    build_tiny(con)
    con.execute("DELETE FROM benchmarks")
    path = tmp_path / "benchmarks.csv"
    path.write_text(GROUPS)
    result = import_files(con, [path], loaded_by="test")
    assert result.ok, result.report()
    yield con, result
    con.close()


def _alos(df):
    return df.query("csu_code == 'A' and specialty_code == '100' and metric_id == 'alos_elective'").iloc[0]


def test_the_import_report_lists_the_peer_groups_it_loaded(two_groups):
    _, result = two_groups
    assert result.loaded[0].peer_groups == ["national", "region"]
    assert "peer groups: national, region" in result.report()


def test_each_group_gives_its_own_targets_and_names_itself(two_groups):
    con, _ = two_groups
    assert peer_groups(con) == ["national", "region"]
    national = _alos(opportunities(con, Scope.trust(), Basis(peer_group="national")))
    region = _alos(opportunities(con, Scope.trust(), Basis(peer_group="region")))
    assert (national.target_value, national.opportunity_gbp) == (pytest.approx(3.5), pytest.approx(20_000))
    assert (region.target_value, region.opportunity_gbp) == (pytest.approx(2.5), pytest.approx(60_000))
    assert national.peer_group == "national" and region.peer_group == "region"
    assert national.benchmark_source == "National ALOS"
    assert Basis(peer_group="region").label == "Median of peer trusts (region)"
    internal = opportunities(con, Scope.trust(), Basis(benchmark="internal", peer_group="region"))
    assert internal["peer_group"].isna().all()  # internal targets come from no peer group


def test_default_is_the_configured_group_if_held_else_the_first(two_groups, tiny):
    con, _ = two_groups
    # configured "peer" is not in the data: the first group by name
    assert default_peer_group(["region", "national"]) == "national"
    assert resolve_peer_group(con, Basis()).peer_group == "national"
    assert _alos(opportunities(con, Scope.trust(), Basis())).opportunity_gbp == pytest.approx(20_000)
    # held: the configured group wins over any other
    assert default_peer_group(["national", "peer"]) == "peer"
    assert resolve_peer_group(tiny, Basis()).peer_group == "peer"
    assert default_peer_group([]) == "peer"  # no benchmarks at all
    # a group named explicitly is kept
    assert resolve_peer_group(con, Basis(peer_group="region")).peer_group == "region"


def test_a_metric_without_a_target_is_named_never_a_silent_zero(two_groups):
    con, _ = two_groups
    basis = Basis(peer_group="region")
    df = opportunities(con, Scope.trust(), basis)
    day_case = df[df.metric_id == "daycase_rate_bads"].iloc[0]
    assert day_case.target_value != day_case.target_value and day_case.opportunity_gbp == 0
    missing = missing_targets(df)
    assert set(missing["metric_id"]) == {"daycase_rate_bads", "wf_agency_share"}
    note = missing_targets_note(df, basis)
    assert note.startswith("2 of 3 metrics have no target in peer group 'region'")
    assert note == ("2 of 3 metrics have no target in peer group 'region': Day-case rate (BADS procedures), "
                    "Agency spend share. Their opportunity is not measured (no target, not £0 to save).")
    # alos_elective has a target for every unit: not listed
    assert "alos_elective" not in set(missing["metric_id"])


def test_partly_covered_metric_says_how_many_units(two_groups):
    con, _ = two_groups
    con.execute("INSERT INTO benchmarks VALUES ('wf_agency_share', '', 'national', 0.02, 0.027, 0.035, 0.045, 0.06, 't')")
    con.execute("DELETE FROM benchmarks WHERE metric_id = 'alos_elective' AND peer_group = 'national'")
    con.execute("INSERT INTO benchmarks VALUES ('alos_elective', '100', 'national', 2, 2.5, 3, 3.5, 4, 't')")
    df = compute_opportunities(con, Scope.trust(), Basis(peer_group="national"))
    note = missing_targets_note(df, Basis(peer_group="national"))
    assert "Some units of 1 metric have none" in note and "(2 of 3 units)" in note


def test_the_oracle_agrees_for_every_group(two_groups):
    con, _ = two_groups
    for basis in (Basis(), Basis(peer_group="national"), Basis("top_quartile", peer_group="region"),
                  Basis("top_decile", "internal", peer_group="region")):
        assert_same(compute_opportunities(con, Scope.trust(), basis), oracle_opportunities(con, Scope.trust(), basis))


def test_cli_chooses_the_group_and_says_which_metrics_have_no_target(two_groups, tmp_path, capsys):
    path = tmp_path / "groups.duckdb"
    with db.connect(path) as con:
        build_tiny(con)
        con.execute("DELETE FROM benchmarks")
        csv = tmp_path / "benchmarks.csv"
        csv.write_text(GROUPS)
    assert cli.main(["import", "--db", str(path), "--quiet", str(csv)]) == 0
    assert "peer groups: national, region" in capsys.readouterr().out
    assert cli.main(["opportunities", "--db", str(path), "--peer-group", "region", "--format", "json"]) == 0
    out = capsys.readouterr()
    assert "no target in peer group 'region'" in out.err and "£" in out.err
    import json
    rows = json.loads(out.out)
    alos = [r for r in rows if r["csu_code"] == "A" and r["specialty_code"] == "100" and r["metric_id"] == "alos_elective"]
    assert alos[0]["opportunity_gbp"] == pytest.approx(60_000) and alos[0]["peer_group"] == "region"
    assert cli.main(["opportunities", "--db", str(path), "--peer-group", "nowhere"]) == 1
    assert "no peer group 'nowhere'" in capsys.readouterr().err


def test_the_workbook_cover_names_the_group_and_the_missing_targets(two_groups):
    import io

    from openpyxl import load_workbook

    from opportunity_engine.reports.export import opportunities_workbook
    con, _ = two_groups
    book = load_workbook(io.BytesIO(opportunities_workbook(con, Scope.trust(), Basis(peer_group="region"), "t")))
    cover = {row[0]: row[1] for row in book["Cover"].iter_rows(values_only=True) if row and row[0]}
    assert cover["Peer group"] == "region"
    assert cover["Target"] == "Median of peer trusts (region)"
    assert "no target in peer group 'region'" in cover["Metrics without a target"]
    header = [c.value for c in book["Opportunities"][1]]
    assert "Peer group" in header


def test_pages_choose_the_group_from_the_link_and_name_the_missing_targets(demo_copy, monkeypatch):
    """The demo holds 'peer'; add a 'national' group with one metric. ?peer=national: the sidebar
    offers both, the caption names the group, Overview and Explore say which metrics have no target."""
    from opportunity_engine.store.db import bump_data_version
    from tests.test_app_pages import signed_in, text

    with db.connect(demo_copy) as con:
        con.execute("""INSERT INTO benchmarks SELECT metric_id, specialty_code, 'national', p10, p25, p50, p75, p90,
                       'National' FROM benchmarks WHERE peer_group = 'peer' AND metric_id = 'op_dna_rate'""")
        bump_data_version(con)
    monkeypatch.setenv("OPPORTUNITY_DB", str(demo_copy))
    monkeypatch.setenv("OPPORTUNITY_COOKIE_KEY", "apptest-key")
    default = signed_in("finance")
    assert "Median of peer trusts (peer)" in text(default)
    assert not [w for w in default.warning if "no target" in str(w.value)]
    national = signed_in("finance", peer="national")
    picker = next(s for s in national.selectbox if s.label == "Peer group")
    assert picker.options == ["national", "peer"] and picker.value == "national"
    assert "Median of peer trusts (national)" in text(national)
    warning = " ".join(str(w.value) for w in national.warning)
    assert "have no target in peer group 'national'" in warning and "Elective length of stay" in warning
    assert "DNA" not in warning.split(":")[1]  # the one metric national holds is not listed
    assert national.metric[0].value != default.metric[0].value
    explore = signed_in("finance", "pages/explore.py", peer="national")
    assert "have no target in peer group 'national'" in " ".join(str(w.value) for w in explore.warning)
    stale = signed_in("finance", peer="nowhere")  # a link naming a group the data does not hold
    assert "Median of peer trusts (peer)" in text(stale) and stale.metric[0].value == default.metric[0].value


def test_a_scheme_keeps_its_peer_group_and_the_plans_workbook_names_it(two_groups):
    import io

    from openpyxl import load_workbook

    from opportunity_engine.delivery import schemes
    from opportunity_engine.reports.export_plans import plans_workbook
    from opportunity_engine.users import User

    con, _ = two_groups
    finance = User("fin", "Finance", "", "finance", ())
    made = schemes.create(con, finance, "Shorter stays", "A", specialty="100", metric="alos_elective",
                          basis=Basis(peer_group="region"), status="shortlisted")
    assert made.snapshot_peer_group == "region" and made.snapshot_opportunity_gbp == pytest.approx(60_000)
    assert made.snapshot_basis == "Median of peer trusts (region)"
    book = load_workbook(io.BytesIO(plans_workbook(con, finance, 2025)))
    sheet = book["Schemes"]
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    values = [c.value for c in next(sheet.iter_rows(min_row=2, max_row=2))]
    assert values[header.index("Target basis")] == "Median of peer trusts (region)"
