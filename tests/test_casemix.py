"""Case-mix adjusted length of stay and like-for-like internal benchmarks, against hand-worked figures.

The trust (built from spells, so the facts and per-HRG facts come from the real rebuild), all
non-elective spells discharged in March 2025; bed day £300 for every specialty:

A/100 (CSU A, General Surgery): 12 spells, 50 bed days, actual 50 / 12 = 4.1667 days
    6 × HRG H1 of 2 days (12 bed days), 3 × H2 of 8 days (24), 1 × H3 of 4 days (4; H3 has no
    reference), 2 with no HRG of 5 days (10). Ages: all 70.
B/100 (CSU B, General Surgery too): 6 spells, 22 bed days, actual 3.6667
    4 × H1 of 3 days (12), 2 × H2 of 5 days (10). Ages: all 40.
C/300 (CSU C): day-case-free outpatient DNAs only (own-history test below).

Peer HRG benchmarks (non-elective): H1 p10 1, p25 1.5, p50 2, p75 2.5, p90 3; H2 p10 4, p25 5,
p50 6, p75 7, p90 8. Peer specialty benchmark alos_non_elective/100: p10 1.8, p25 2.5, p50 3, p75 3.5, p90 4.

Peer, A/100:
    matched spells: 6 (H1) + 3 (H2) = 9 of 12 -> 75 %; the other 3 (H3, no HRG) take the plain target.
    median: expected = (6×2 + 3×6 + 3×3) / 12 = 39 / 12 = 3.25 days;
            gap = 50 − 39 = 11 bed days -> £3,300; LOS index = 4.1667 / 3.25 = 1.2821
            crude: 50 − 3 × 12 = 14 bed days -> £4,200 (crude target 3.0)
    top decile: expected = (6×1 + 3×4 + 3×1.8) / 12 = 23.4 / 12 = 1.95; gap 50 − 23.4 = 26.6 -> £7,980
            crude: 50 − 1.8 × 12 = 28.4 -> £8,520
Peer, B/100: all 6 matched (100 %); median expected (4×2 + 2×6) / 6 = 20 / 6 = 3.3333: actual 3.6667,
    gap 22 − 20 = 2 bed days -> £600; crude 22 − 18 = 4 -> £1,200.

Internal (internal_min_units 2, hrg_min_spells 2, alos_non_elective minimum volume 5):
    plain target: specialty 100 has two units, A 4.1667 and B 3.6667: p50 3.9167, p10 3.7167.
    HRG references from the units' means, each unit once: H1 A 2.0, B 3.0 -> p50 2.5, p10 2.1;
    H2 A 8.0, B 5.0 -> p50 6.5, p10 5.3; H3 only A, one spell (< 2) -> no reference.
    A/100 median: (6×2.5 + 3×6.5 + 3×3.9167) / 12 = (15 + 19.5 + 11.75) / 12 = 46.25 / 12 = 3.8542
            gap 50 − 46.25 = 3.75 bed days -> £1,125
    B/100 median: (4×2.5 + 2×6.5) / 6 = 23 / 6 = 3.8333 > actual 3.6667 -> £0

Own history (internal, C/300 op_dna_rate, one unit of its specialty): DNAs / booked 2025-01..04:
    10/100, 5/100, 8/100, 12/100. Quarters ending March (23/300 = 0.07667) and April (25/300 =
    0.08333); best (lower is better) 0.07667 for every target. Window 2024-05..2025-04: actual
    35/400 = 0.0875; gap 35 − 0.07667 × 400 = 4.3333 DNAs.
"""
from __future__ import annotations

import pytest

from opportunity_engine.analysis import catalogue
from opportunity_engine.analysis.opportunities import (
    Basis,
    compute_opportunities,
    opportunities,
)
from opportunity_engine.config import settings
from opportunity_engine.scope import Scope
from opportunity_engine.store import db, facts
from opportunity_engine.store.importer import import_files
from tests.sql_oracle import oracle_opportunities
from tests.test_oracle import assert_same


def _spells(csu, specialty, spec):
    """Spell rows from (count, HRG, stay, age) groups, all discharged on 2025-03-20."""
    out = []
    for n, hrg, stay, age in spec:
        for _ in range(n):
            i = len(out)
            out.append((f"{csu}{specialty}-{hrg}-{i}", csu, specialty, f"2025-03-{20 - stay:02d}", "2025-03-20",
                        "non_elective", 0, None, 0, "2025-03", hrg, age))
    return out


@pytest.fixture
def trust():
    con = db.memory()
    catalogue.install_shipped(con)
    con.executemany("INSERT INTO csus VALUES (?, ?)", [("A", "Alpha"), ("B", "Beta"), ("C", "Gamma")])
    con.executemany("INSERT INTO specialties VALUES (?, ?, ?)",
                    [("100", "General Surgery", "A"), ("300", "Small Specialty", "C")])
    con.executemany("INSERT INTO unit_costs VALUES (?, '', ?, 'test')", [("bed_day", 300), ("outpatient_slot", 100)])
    con.execute("INSERT INTO benchmarks VALUES ('alos_non_elective', '100', 'peer', 1.8, 2.5, 3, 3.5, 4, 'peer LOS')")
    con.executemany("INSERT INTO hrg_benchmarks VALUES (?, 'non_elective', 'peer', ?, ?, ?, ?, ?, 'HES peers')",
                    [("H1", 1, 1.5, 2, 2.5, 3), ("H2", 4, 5, 6, 7, 8)])
    rows = (_spells("A", "100", [(6, "H1", 2, 70), (3, "H2", 8, 70), (1, "H3", 4, 70), (2, None, 5, 70)])
            + _spells("B", "100", [(4, "H1", 3, 40), (2, "H2", 5, 40)]))
    con.executemany("INSERT INTO spells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    facts.rebuild_all(con)
    con.executemany("INSERT INTO metric_facts VALUES (?, 'C', '300', 'op_dna_rate', ?, 100, 'activity')",
                    [("2025-01", 10), ("2025-02", 5), ("2025-03", 8), ("2025-04", 12)])
    yield con
    con.close()


def one(df, csu, metric="alos_non_elective"):
    hit = df[(df.csu_code == csu) & (df.metric_id == metric)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_hrg_facts_hold_each_grains_spells_per_hrg(trust):
    got = trust.execute("""SELECT csu_code, hrg_code, spells, bed_days, age_sum / aged FROM hrg_facts
                           WHERE metric_id = 'alos_non_elective' ORDER BY 1, 2""").fetchall()
    assert got == [("A", "H1", 6, 12, 70), ("A", "H2", 3, 24, 70), ("A", "H3", 1, 4, 70),
                   ("B", "H1", 4, 12, 40), ("B", "H2", 2, 10, 40)]  # spells with no HRG are not listed


def test_peer_median_is_the_spells_at_their_hrgs_benchmark(trust):
    a = one(opportunities(trust, Scope.trust(), Basis()), "A")
    assert a.actual == pytest.approx(50 / 12)
    assert a.target_value == pytest.approx(3.25)
    assert a.gap_units == pytest.approx(11) and a.opportunity_gbp == pytest.approx(3300)
    assert a.casemix_share == pytest.approx(0.75) and a.target_basis == "case mix"
    assert a.los_index == pytest.approx((50 / 12) / 3.25)
    assert a.crude_target_value == pytest.approx(3.0) and a.crude_opportunity_gbp == pytest.approx(4200)
    assert a.benchmark_source.startswith("Case mix: 2 HRGs, 75% of spells. HES peers.")
    b = one(opportunities(trust, Scope.trust(), Basis()), "B")
    assert b.casemix_share == 1 and b.target_value == pytest.approx(20 / 6)
    assert b.opportunity_gbp == pytest.approx(600) and b.crude_opportunity_gbp == pytest.approx(1200)


def test_peer_top_decile_uses_each_hrgs_p10(trust):
    a = one(opportunities(trust, Scope.trust(), Basis("top_decile")), "A")
    assert a.target_value == pytest.approx(1.95) and a.opportunity_gbp == pytest.approx(7980)
    assert a.crude_opportunity_gbp == pytest.approx(8520)
    # best_10 interpolates the adjusted percentiles: the same figure
    assert one(opportunities(trust, Scope.trust(), Basis("best_10")), "A").target_value == pytest.approx(1.95)


def test_internal_hrg_reference_from_the_trusts_own_units(trust, monkeypatch):
    monkeypatch.setitem(settings()["analysis"], "internal_min_units", 2)
    monkeypatch.setitem(settings()["analysis"], "hrg_min_spells", 2)
    trust.execute("UPDATE metrics SET min_volume = 5 WHERE metric_id = 'alos_non_elective'")
    df = opportunities(trust, Scope.trust(), Basis(benchmark="internal"))
    a, b = one(df, "A"), one(df, "B")
    assert a.target_value == pytest.approx(46.25 / 12) and a.opportunity_gbp == pytest.approx(1125)
    assert a.crude_target_value == pytest.approx((50 / 12 + 22 / 6) / 2)
    assert b.target_value == pytest.approx(23 / 6) and b.opportunity_gbp == 0
    assert a.benchmark_source.startswith("Case mix: 2 HRGs, 75% of spells. Internal")
    # a CSU user sees the same internal target as finance (references use the whole trust)
    mine = one(opportunities(trust, Scope.of("B"), Basis(benchmark="internal")), "B")
    assert mine.target_value == pytest.approx(23 / 6)
    for basis in (Basis(benchmark="internal"), Basis("top_decile", "internal")):
        assert_same(compute_opportunities(trust, Scope.trust(), basis), oracle_opportunities(trust, Scope.trust(), basis))


def test_with_too_few_units_a_unit_is_compared_with_its_own_best_quarter(trust):
    for target in ("median", "top_decile"):
        c = one(opportunities(trust, Scope.trust(), Basis(target, "internal")), "C", "op_dna_rate")
        assert c.benchmark_level == "own history" and c.target_basis == "own history"
        assert c.target_value == pytest.approx(23 / 300)
        assert c.gap_units == pytest.approx(35 - 23 / 300 * 400)
        assert "best rolling quarter" in c.benchmark_source
    assert_same(compute_opportunities(trust, Scope.trust(), Basis(benchmark="internal")),
                oracle_opportunities(trust, Scope.trust(), Basis(benchmark="internal")))


def test_peer_figures_match_the_oracle(trust):
    for target in ("median", "top_quartile", "top_decile"):
        assert_same(compute_opportunities(trust, Scope.trust(), Basis(target)),
                    oracle_opportunities(trust, Scope.trust(), Basis(target)))


def test_without_hrgs_the_target_is_the_crude_one(trust):
    trust.execute("DELETE FROM hrg_benchmarks")
    a = one(compute_opportunities(trust, Scope.trust(), Basis()), "A")
    assert a.casemix_share == 0 and a.target_basis == "specialty"
    assert a.target_value == pytest.approx(3.0) and a.opportunity_gbp == pytest.approx(4200)


def test_spells_files_with_and_without_case_mix_load(tmp_path):
    con = db.memory()
    catalogue.install_shipped(con)
    con.execute("INSERT INTO csus VALUES ('A', 'Alpha')")
    con.execute("INSERT INTO specialties VALUES ('100', 'General Surgery', 'A')")
    head = "spell_id,csu_code,specialty_code,admission_date,discharge_date,admission_type,bads_eligible,procedure_date,readmitted_30d"
    plain = tmp_path / "spells.csv"
    plain.write_text(head + "\nS1,A,100,2025-03-01,2025-03-04,non_elective,0,,0\n")
    assert import_files(con, [plain], loaded_by="test").ok
    mixed = tmp_path / "spells_hrg.csv"
    mixed.write_text(head + ",hrg_code,age\nS2,A,100,2025-04-01,2025-04-03,non_elective,0,,0,FF10B,67\n")
    hrg = tmp_path / "hrg_benchmarks.csv"
    hrg.write_text("hrg_code,admission_type,peer_group,p10,p25,p50,p75,p90,source\n"
                   "FF10B,non_elective,peer,1,1.5,2,2.5,3,HES\n")
    result = import_files(con, [mixed, hrg], loaded_by="test")
    assert result.ok, result.report()
    assert con.execute("SELECT spell_id, hrg_code, age FROM spells ORDER BY 1").fetchall() == [
        ("S1", None, None), ("S2", "FF10B", 67)]
    assert con.execute("SELECT hrg_code, spells, bed_days FROM hrg_facts").fetchall() == [("FF10B", 1, 2)]
    bad = tmp_path / "spells_bad.csv"
    bad.write_text(head + ",hrg_code,age\nS3,A,100,2025-05-01,2025-05-03,non_elective,0,,0,FF10B,130\n")
    day_case = tmp_path / "hrg_benchmarks_day_case.csv"
    day_case.write_text("hrg_code,admission_type,peer_group,p10,p25,p50,p75,p90,source\n"
                        "FF10C,day_case,peer,1,1.5,2,2.5,3,HES\n")
    refused = import_files(con, [bad, day_case], loaded_by="test")
    assert not refused.ok
    text = refused.report()
    assert "row 2, column age, value '130': must be at most 120" in text
    assert "column admission_type, value 'day_case'" in text
    unordered = tmp_path / "hrg_benchmarks_unordered.csv"
    unordered.write_text("hrg_code,admission_type,peer_group,p10,p25,p50,p75,p90,source\n"
                         "FF10C,elective,peer,3,1.5,2,2.5,3,HES\n")
    refused = import_files(con, [unordered], loaded_by="test")
    assert not refused.ok and "percentiles must be in order" in refused.report()
    assert con.execute("SELECT count(*) FROM spells").fetchone()[0] == 2  # nothing changed
    assert con.execute("SELECT count(*) FROM hrg_benchmarks").fetchone()[0] == 1
