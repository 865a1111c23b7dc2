"""The in-app guide and training aid: what the tool is for, a worked example of every
calculation (computed from the database the app is running on, so the numbers are the
engine's, never typed in), how to read SPC, how to build a CIP plan and QIA, glossary, FAQ.

``sections`` returns (title, markdown) pairs for the Guide page; ``to_html`` makes the same
content a self-contained printable page.
"""
from __future__ import annotations

import datetime as dt
import html
import re

import duckdb
import pandas as pd

from ..analysis.opportunities import Basis, kept_by, opportunities, totals
from ..analysis.stats import xmr
from ..config import settings
from ..delivery import plans, qia, tracking
from ..delivery.schemes import records_version
from ..formatting import gbp_short, months, plain
from ..scope import Scope
from ..store.facts import CASEMIX_METRICS
from .comparators import hrg_breakdown
from .views import calculation_steps


def _example_row(con: duckdb.DuckDBPyConnection, scope: Scope):
    df = opportunities(con, scope, Basis())
    real = df[(df.rank_group == 0) & (df.specialty_code != "") & df.unit_cost_gbp.notna()]
    return (real if len(real) else df).head(1), df


def _pipeline_example(con: duckdb.DuckDBPyConnection, scope: Scope) -> str:
    """This financial year's committed, pipeline and weighted pipeline £ in the reader's scope."""
    fy = plans.current_fy(dt.date.today())
    t = plans.trust_total(plans.totals_by_csu(con, scope, fy))
    return (f"In {plans.fy_label(fy)} across your scope: committed {gbp_short(t['in_year_gbp'])}, pipeline "
            f"{gbp_short(t['pipeline_gbp'])}, weighted {gbp_short(t['pipeline_weighted_gbp'])}; still to find after "
            f"both {gbp_short(t['gap_after_pipeline_gbp'])}.")


def _significance_text(con: duckdb.DuckDBPyConnection, example) -> str:
    """The funnel plot and over-dispersion, with the example row's metric across the trust."""
    text = """
A gap measured on few cases can be chance. **Low volume**: the denominator is below the metric's
minimum volume. **Not significant**: the unit sits inside the 95% limit of the metric's **funnel
plot** (Metric detail draws it: every unit of the trust, its value against its volume).

Sampling error alone is not enough: with a trust's volumes nearly every unit would fall outside
limits built from it, because units differ for many reasons chance does not cover (case mix,
coding, how services are organised). So the limits allow for that spread, as the Healthcare
Commission and NHS-R's FunnelPlotR do (Spiegelhalter, *Stat Med* 2005 and *Qual Saf Health Care*
2005, the additive random-effects model):

1. Each unit's value on a scale where chance spreads evenly: a proportion as asin √p with standard
   error s = 1 ÷ (2 √n); a count per unit (bed days per spell, follow-ups per first) as
   ln(observed ÷ expected), expected = target × denominator, s = 1 ÷ √expected. A stay varies
   more than a count of bed days would: step 3 takes that up too.
2. Naive z = (value − target) ÷ s, for every unit of the trust on that metric and basis.
3. z is winsorised at 10 % each tail (the most extreme tenth pulled in to the 10th/90th
   percentile); φ = mean of the winsorised z²; with w = 1/s², τ² = (nφ − (n − 1)) ÷ (Σw − Σw² ÷ Σw),
   or 0 when nφ < n − 1 (no more spread than chance).
4. Limits: target ± 1.96 √(s² + τ²) (95 %) and ± 3.09 √(s² + τ²) (99.8 %). A unit is flagged
   significant only outside the 95 % limit.

Flagged opportunities keep their £ but rank after the real ones."""
    if example.empty:
        return text
    r = example.iloc[0]
    everyone = opportunities(con, Scope.trust(), Basis(), metric=r.metric_id)
    tested = everyone[everyone["z_score"].notna()]
    if tested.empty or pd.isna(r.z_score):
        return text
    return text + f"""

For **{plain(r.metric_name)}** at the peer median, {len(tested)} units of the trust are tested: φ =
{r.phi:.2f}, τ² = {r.tau2:.4g}. On sampling error alone {int(tested["significant_naive"].sum())} of them would
be flagged; allowing for the spread between units, {int(tested["significant"].sum())}. This unit's naive z is
{r.z_score:.2f}; allowing for the spread it is {r.z_adjusted:.2f}, so it is
**{"significant" if r.significant else "not significant"}**. `python -m opportunity_engine significance`
prints the same for every metric."""


def _range_text(r, t) -> str:
    """The 80 % range of the example opportunity and of the total."""
    lower = r.direction == "lower"
    se = "no range (fewer than two months of data)" if pd.isna(r.actual_se) else f"{r.actual_se:.4g}"
    total = (f"Across your scope the net total is **{gbp_short(t.net_gbp)} a year (80 % range "
             f"{gbp_short(t.net_low_gbp)}–{gbp_short(t.net_high_gbp)})**." if t is not None else "")
    return f"""
A figure like £1,234,567 suggests a precision the data do not have, so every opportunity carries
an **80 % range** (one chance in ten below it, one in ten above) from the uncertainty of the unit's
own rate: its month-to-month variation.

1. The standard error of the window's mean monthly rate: the standard deviation of the monthly
   rates ÷ √(months with a rate).
2. The rate's 80 % range: actual ± 1.2816 standard errors (the normal distribution).
3. Each end priced exactly as the opportunity is: the gap at that rate × the unit cost; an end
   beyond the target is £0 (no gap).

**{plain(r.metric_name)}** in **{plain(r.specialty_name)}** ({plain(r.csu_name)}): actual {r.actual:.4g}, standard error
{se}, so the rate lies between {r.actual - 1.2816 * (0 if pd.isna(r.actual_se) else r.actual_se):.4g} and
{r.actual + 1.2816 * (0 if pd.isna(r.actual_se) else r.actual_se):.4g}; against the target {r.target_value:.4g}
({"lower" if lower else "higher"} is better) that is £{r.opportunity_low_gbp:,.0f} to £{r.opportunity_high_gbp:,.0f}
around £{r.opportunity_gbp:,.0f}.

Totals combine the rows **as independent errors**: each side's distance from the total is the
square root of the sum of the rows' squared distances on that side. {total} Independent errors
partly cancel, so a total's range is narrower, relative to it, than its rows' ranges; where units
share a cause (one coding practice, one pathway) the true range is wider."""


def _evidence_example() -> str:
    """The rule worked on a fixed series through the engine's own evidence code."""
    values = [0.10, 0.11, 0.09, 0.10, 0.105, 0.095, 0.10, 0.11, 0.09, 0.10, 0.10, 0.10] + [0.07] * 12
    periods = pd.period_range("2024-04", periods=len(values), freq="M").strftime("%Y-%m")
    series = pd.DataFrame({"period": periods, "numerator": [v * 1000 for v in values], "denominator": 1000})
    early = tracking.assess_series(series, "2025-11", "lower", unit_cost=150)
    on_time = tracking.assess_series(series, "2025-04", "lower", unit_cost=150)
    return (f"For example, a DNA rate around 10 % for a year, then 7 % from April 2025: a scheme that started in "
            f"April 2025 shows a {on_time.status} worth {gbp_short(on_time.evidenced_fye_gbp)} a year (at £150 a DNA "
            f"over 1,000 appointments a month); one that started in November 2025 reads \"{early.message.split(':')[0]}: "
            f"not credited\".")


def _casemix_sections(con: duckdb.DuckDBPyConnection, scope: Scope) -> list[tuple[str, str]]:
    """Case-mix adjusted length of stay and the own-history comparator, each with the live example
    that moves most in the reader's scope (the engine's figures)."""
    analysis = settings()["analysis"]
    df = opportunities(con, scope, Basis())
    los = df[df["target_basis"] == "case mix"]
    text = f"""
Length of stay depends on who is admitted: an older, more complex patient stays longer whoever treats
them. So for **elective and non-elective length of stay** the target is **expected** for the unit's own
case mix (indirect standardisation, as Model Health, GIRFT and CHKS do): each spell takes the benchmark
stay of its **HRG** (healthcare resource group) at the chosen target (p50 for the median, p25 top
quartile, p10 top decile), and the target is the mean over the unit's spells. Spells with no HRG, or an
HRG with no reference, take the plain specialty target. Peer: the `hrg_benchmarks` import (mean stay per
HRG and admission type across peers). Internal: the trust's own units' mean stay per HRG, each unit
once, an HRG counting when {int(analysis["internal_min_units"])} or more units have
{int(analysis["hrg_min_spells"])} or more spells of it. Beside the target the page shows the share of
spells matched and the **length of stay index** (actual ÷ expected at the median: 1.00 is as expected,
1.15 is 15 % longer); the crude figure is one click away. Gap, £, capacity, flags and the workbooks use
the adjusted target.
"""
    if len(los):
        r = los.loc[(los["opportunity_gbp"] - los["crude_opportunity_gbp"]).abs().idxmax()]
        lines = hrg_breakdown(con, r, Basis())
        shown = lines[:4] + ([{"HRG": f"{len(lines) - 5} more HRGs", "Spells": sum(o["Spells"] for o in lines[4:-1]),
                               "Expected bed days": sum(o["Expected bed days"] for o in lines[4:-1])}]
                             if len(lines) > 5 else lines[4:-1]) + lines[-1:]
        rows = "\n".join(f"| {plain(o['HRG'])} | {o['Spells']:,.0f} | "
                         + (f"{o['Reference stay']:.2f}" if "Reference stay" in o else "")
                         + f" | {o['Expected bed days']:,.0f} |" for o in shown)
        expected = sum(o["Expected bed days"] for o in lines)
        text += f"""
**Live example: {plain(r.metric_name.lower())} in {plain(r.specialty_name)} ({plain(r.csu_name)})**, peer median,
{months(r.period_from, r.period_to)}. {r.casemix_share:.0%} of its {r.denominator:,.0f} spells matched an
HRG reference.

| HRG | spells | reference stay (days) | expected bed days |
|---|---|---|---|
{rows}

Expected stay = {expected:,.0f} ÷ {r.denominator:,.0f} = **{r.target_value:.2f} days**, against an actual
{r.actual:.2f} (length of stay index {r.los_index:.2f}). Gap {r.numerator:,.0f} − {expected:,.0f} =
{r.gap_units:,.0f} bed days: **{gbp_short(r.opportunity_gbp)}** a year. Crude (the specialty's stay,
whatever its patients' HRGs): target {r.crude_target_value:.2f} days, {gbp_short(r.crude_opportunity_gbp)}.
"""
    out = [("Case mix: length of stay adjusted by HRG", text)]
    own = opportunities(con, scope, Basis(benchmark="internal"))
    own = own[(own["target_basis"] == "own history") & (own["opportunity_gbp"] > 0) & (own["rank_group"] == 0)
              & ~own["metric_id"].isin(list(CASEMIX_METRICS))]
    if len(own):
        r = own.sort_values(["denominator", "csu_code", "specialty_code", "metric_id"]).iloc[-1]  # the best-measured
        out.append(("Worked example: a unit against its own best quarter", f"""
**{plain(r.metric_name)}** in **{plain(r.specialty_name)}** ({plain(r.csu_name)}), internal benchmark: the trust has fewer
than {int(analysis["internal_min_units"])} units of this specialty, so it is compared with itself. Its best
rolling quarter of the last 36 months was {_value(r.target_value, r.value_format)}; over
{months(r.period_from, r.period_to)} it ran at {_value(r.actual, r.value_format)}. Gap {r.gap_units:,.1f}
{r.unit} × £{r.unit_cost_gbp:,.2f} = **{gbp_short(r.opportunity_gbp)}** a year ({r.benchmark_source}).
"""))
    return out


def _value(v: float, fmt: str) -> str:
    return f"{v:.1%}" if fmt == "percent" else f"{v:.3g}"


@kept_by(records_version)  # its worked examples read the data and the schemes: a tenth of a second a view
def sections(con: duckdb.DuckDBPyConnection, scope: Scope) -> list[tuple[str, str]]:
    example, df = _example_row(con, scope)
    out = [("What the tool is for", """
Opportunity Explorer finds where each CSU could save money or release capacity, measured on the
trust's own activity against a fair benchmark, and carries the best ideas through to delivered
savings: **opportunity → scheme → CIP plan → QIA → tracking → evidence**.

1. **Overview** shows the total opportunity (net of overlap) and where it sits.
2. **Explore** drills CSU → specialty → metric. **Metric detail** shows why: the trend, the
   benchmark, the calculation.
3. **Add to shortlist** turns an opportunity into a scheme. **Shortlist & plans** holds the CIP plan
   and the QIA. **Tracking** records what was saved and whether the data agree.
""")]
    if not example.empty:
        r = example.iloc[0]
        steps = "\n".join(f"| {plain(step)} | {plain(value)} |" for step, value in
                           calculation_steps(r, Basis().label).itertuples(index=False))
        out.append(("Worked example: an opportunity", f"""
**{plain(r.metric_name)}** in **{plain(r.specialty_name)}** ({plain(r.csu_name)}), {months(r.period_from, r.period_to)}:

| step | value |
|---|---|
{steps}

A unit already better than the target has a gap of zero: beating a benchmark never offsets a gap
elsewhere. **Peer trusts, like for like:** a specialty is compared with the same specialty at the peer
trusts. Where the benchmarks give a metric specialty by specialty but hold no row for one, that specialty
has no peer target (listed among the metrics without a target, never £0): peers' figure for all
specialties together blends different services and says nothing fair about one. A metric the benchmarks
give only for all specialties (one standard for every service) applies to each; CSU-wide (workforce)
metrics read the all-specialty row. Top quartile and top decile targets use the 25th/75th and 10th/90th percentiles,
whichever end is better for the metric. **Custom: best N %** aims for the level of the best N % of
units (50 is the median, 25 the top quartile, 10 the top decile); between the benchmark's percentiles
the level is read on a straight line, e.g. best 35 % of a lower-is-better metric is 40 % of the way
from p25 to p50.
"""))
    analysis = settings()["analysis"]
    out.append(("Internal benchmarks", f"""
Choosing **Internal** compares each unit with the trust's own units instead of peer trusts. A unit is
one CSU's specialty (or one CSU, for workforce metrics) over the same months. Each unit with at least
the metric's minimum volume counts **once, not weighted by its volume**: a large unit does not pull
the target towards itself, so a small specialty is judged against how the trust's units practise, not
against its biggest one. **Like for like, always:** the percentiles are taken across the units of the
same specialty (workforce: across the CSUs) when there are at least {int(analysis["internal_min_units"])};
a unit is never compared with other specialties. Every CSU's units count, but other CSUs appear only as
"Other unit".

**Too few units of the specialty?** Then the unit is compared with **its own best sustained level**: its
best rolling quarter (three months together) of the last 36 months, a quarter counting when it alone
has the metric's minimum volume (fewer cases make a lucky quarter, not a level). It is one level, so median, top
quartile and top decile are the same figure: what the unit has already shown it can do. Length of stay
uses the case-mix reference below where its HRGs have one (its spells, at the trust's own stay for each HRG). With no
such quarter there is **no internal target**: no target and no £ (not a saving of zero), listed among the
metrics without a target. Metric detail says which comparator was used and draws only that set.
"""))
    out.extend(_casemix_sections(con, scope))
    t = totals(df) if len(df) else None
    if t is not None:
        out.append(("Worked example: net of overlap", f"""
Some metrics free the same resource: a shorter elective stay and more day cases both release the
same bed days. For each CSU and specialty, only the **largest** opportunity in an overlap group
counts towards the net total. Across your scope today: gross {gbp_short(t.gross_gbp)}, net
**{gbp_short(t.net_gbp)}**. Cash-releasing {gbp_short(t.cash_gbp)}; productivity (capacity
released, cash only if the capacity is removed or refilled with income) {gbp_short(t.productivity_gbp)}.
"""))
    out.append(("Worked example: is a gap real?", _significance_text(con, example)))
    if not example.empty:
        out.append(("Worked example: the £ as a range", _range_text(example.iloc[0], t)))
    chart = xmr([10, 12, 11, 13, 12, 11, 10, 12])
    assert chart is not None  # eight points: always enough for limits
    out.append(("How to read SPC charts", f"""
Monthly trends use an XmR chart (NHS England, *Making Data Count*). The centre line is the mean;
the limits are mean ± 2.66 × the average moving range. For the values 10, 12, 11, 13, 12, 11, 10, 12
the mean is {chart.mean:.2f}, the average moving range {chart.mr_bar:.2f}, so the limits are
{chart.lcl:.2f} to {chart.ucl:.2f}. Special cause (something changed) is flagged when:

- a point falls outside a limit;
- a **shift**: 7 or more points in a row on one side of the mean;
- a **trend**: 7 or more points in a row rising, or falling.

Anything else is common-cause variation: do not react to single months.
"""))
    weights = ", ".join(f"{status} {w:.0%}" for status, w in plans.pipeline_weights().items())
    pipeline = _pipeline_example(con, scope)
    even = plans.phase(120_000, 4, "even")
    ramp = plans.phase(120_000, 4, "ramp")
    out.append(("How to build a CIP plan", f"""
1. Create the scheme from its opportunity (**Add to shortlist**), so it keeps the figures that motivated it.
2. Set the financial year (April to March; M1 = April), the start month and the **full-year effect**
   (FYE: the saving over a full twelve months once running).
3. Choose the phasing. For an FYE of £120,000 starting in M4 (July):
   - **even**: £10,000 a month from July, in-year £{sum(even):,.0f};
   - **ramp-up**: £3,333, £6,667, then £10,000 a month, in-year £{sum(ramp):,.0f};
   - **custom**: your twelve values, zero before the start, summing to the even in-year total.
4. Finance sets each CSU's **WRP target**; Shortlist & plans shows committed in-year £ against it.
5. Plans not yet approved are the **pipeline**. Not every idea lands, so the totals also show the
   pipeline **weighted by status** ({weights}; config.toml `[pipeline_weights]`): a planning scheme
   of £40,000 in-year counts £{40_000 * plans.pipeline_weights()["planning"]:,.0f}. {pipeline}
"""))
    limit = qia.threshold()
    out.append(("How to complete a QIA", f"""
Score each of five domains (patient safety, clinical effectiveness, patient experience, staff,
equality) for **consequence** (1–5) and **likelihood** (1–5); risk = consequence × likelihood, so
4 × 4 = 16. Write the mitigations. The clinical, nursing and operational leads sign off with name
and date. If any risk is above **{limit}**, the medical director and chief nurse must sign too.
A scheme cannot be approved without a CIP plan and a completed QIA. Changing a score clears the
sign-offs: people signed off the risks as they were.
"""))
    track = settings().get("tracking", {})
    out.append(("Tracking and evidence", f"""
Record realised £ each month (or import a `realised_savings` file). RAG compares realised to date
with planned to date, up to the last complete month: green ≥ {float(track.get('green_at', 0.95)):.0%},
amber ≥ {float(track.get('amber_at', 0.80)):.0%}, red below. **Evidence** sets SPC limits on the driving
metric's months before the start and asks whether the months since show special cause the right
way; the observed change × volume × the opportunity's unit cost is what the data say the scheme is worth.

**Evidence from the start.** A change that began before the scheme started is not the scheme's
doing, and is not credited. It shows either as the months before the start ending in a run on the
better side of their own mean that holds a special cause, or as a shift (7 months or more) on the
better side that began before the start and runs into it. A change that began up to
{int(track.get('start_grace_months', 1))} month before the start still counts (plans round their start dates).
{_evidence_example()}
"""))
    out.append(("Glossary", """
| term | meaning |
|---|---|
| CSU | clinical service unit |
| specialty | treatment function (code) within a CSU; "CSU-wide" for workforce metrics |
| benchmark | peer trusts' percentiles (p10–p90) or the trust's own units (internal) |
| opportunity | gap to the target × unit cost, £ a year at current activity |
| scheme | a change that should realise part of an opportunity |
| CIP / WRP | cost improvement plan / waste reduction programme |
| FYE | full-year effect: the saving over twelve months once running |
| QIA | quality impact assessment |
| RAG | red / amber / green delivery status |
| SPC | statistical process control (XmR charts) |
"""))
    out.append(("FAQ", """
**Why is my opportunity different from last month?** New data moved the window (the latest 12 months)
or the benchmark. The scheme keeps the figure from when it was shortlisted.

**Why is an opportunity flagged?** Low volume or inside the funnel limits: it may be chance.

**Can I see another CSU's figures?** CSU users see their own CSUs only; the internal benchmark
uses every unit's values but shows other CSUs as "Other unit". Published case studies are shared on purpose.

**How do I add a new metric?** An admin imports a `metrics` file and the data as `metric_facts`; no code change.

**Who do I ask?** Your finance business partner, or use Feedback in the sidebar.
"""))
    return out


def to_html(sections_: list[tuple[str, str]], title: str = "Opportunity Explorer guide") -> str:
    """A printable, self-contained HTML page of the guide (headings, paragraphs, lists, tables, bold)."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, text in sections_:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        body.extend(_blocks(text))
    style = ("body{font-family:Arial,sans-serif;max-width:900px;margin:2em auto;color:#212b32}"
             "h1,h2{color:#005EB8}table{border-collapse:collapse}td,th{border:1px solid #aeb7bd;padding:4px 8px}"
             "@media print{h2{page-break-after:avoid}}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")


def _inline(text: str) -> str:
    # A backslash-escaped character (data text put through formatting.plain) is a literal: an
    # entity, so the ** and ` rules below never see it.
    text = re.sub(r"\\([!-/:-@\[-`{-~])", lambda m: f"\0{ord(m.group(1))};", text)
    text = html.escape(text).replace("\0", "&#")
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\*(.+?)\*", r"<em>\1</em>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _blocks(text: str) -> list[str]:
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.strip().splitlines()]
        if lines and lines[0].startswith("|"):
            rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not set(line) <= set("|-: ")]
            head, *rest = rows
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rest) + "</table>")
        elif lines and re.match(r"^(-|\d+\.) ", lines[0]):
            items, current = [], ""
            for line in lines:
                if re.match(r"^(-|\d+\.) ", line):
                    if current:
                        items.append(current)
                    current = re.sub(r"^(-|\d+\.) ", "", line)
                else:
                    current += " " + line
            items.append(current)
            tag = "ol" if lines[0][0].isdigit() else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + f"</{tag}>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return out
