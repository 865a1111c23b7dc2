"""SPC (XmR, Making Data Count rules) on series with and without a known signal."""
from opportunity_engine.analysis.stats import xmr


def test_limits_are_mean_plus_minus_2_66_mean_moving_range():
    chart = xmr([10, 12, 10, 12, 10, 12])
    assert chart.mean == 11 and chart.mr_bar == 2
    assert chart.ucl == 11 + 2.66 * 2 and chart.lcl == 11 - 2.66 * 2
    assert not any(chart.special_cause)


def test_point_beyond_limits():
    chart = xmr([10, 11, 10, 11, 10, 11, 30], baseline=6)
    assert chart.beyond == [False] * 6 + [True]


def test_shift_of_seven_points_after_baseline():
    series = [10, 11, 10, 11, 10, 11, 10, 11] + [9.8] * 7
    chart = xmr(series, baseline=8)
    assert chart.shift[-7:] == [True] * 7 and not any(chart.shift[:8])


def test_trend_of_seven_rising_points():
    chart = xmr([5, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 5.7])
    assert all(chart.trend[1:])


def test_no_signal_in_noise():
    chart = xmr([10, 11, 9, 10.5, 9.5, 10, 11, 9, 10, 10.4, 9.7, 10.2])
    assert not any(chart.special_cause)


def test_too_short_a_series_has_no_chart():
    assert xmr([1.0]) is None


def test_quantities_read_in_their_units():
    from opportunity_engine.formatting import gbp_short, units

    assert units(412_863, "£ agency spend") == "£413k agency spend"
    assert units(0.0, "appointments") == "0 appointments"
    assert units(7584.2, "bed days") == "7,584 bed days"
    assert units(8.64, "spells") == "8.6 spells"
    assert (gbp_short(1_234_567), gbp_short(45_123), gbp_short(-512)) == ("£1.2m", "£45k", "-£512")


def test_months_read_as_the_trust_writes_them():
    import pandas as pd

    from opportunity_engine.formatting import month, months
    from opportunity_engine.reports.views import window

    assert (month("2025-04"), month("2026-03"), month("2026-13"), month(None)) == ("Apr 2025", "Mar 2026", "2026-13", "–")
    assert months("2025-04", "2026-03") == "Apr 2025 to Mar 2026"
    one = pd.DataFrame({"period_from": ["2025-04", "2025-04"], "period_to": ["2026-03", "2026-03"]})
    two = pd.DataFrame({"period_from": ["2025-04", "2025-01"], "period_to": ["2026-03", "2025-12"]})
    assert window(one) == "Apr 2025 to Mar 2026"
    assert window(two) == "latest 12 months of each metric (ending between Dec 2025 and Mar 2026)"


def test_structured_logs_are_one_json_object_per_line():
    import io
    import json
    import logging

    from opportunity_engine.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("oe-test-json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.info("sign_in", extra={"username": "jo"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("page_error", extra={"page": "explore"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))
    assert first["event"] == "sign_in" and first["username"] == "jo" and first["level"] == "info" and "ts" in first
    assert second["page"] == "explore" and "ValueError: boom" in second["exception"]
