"""Import templates (DATA.md): the columns of each kind of file and the rules each column obeys.

Declarative on purpose: the importer, the Data page's template downloads and the Guide all read
these definitions, so a rule is stated once.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # text | code | date | period | flag | count | amount | number | enum | id
    required: bool = True
    choices: tuple[str, ...] = ()
    ref: str | None = None  # csu | specialty | metric: must already be known
    example: str = ""
    national: str = ""  # the NHS Data Dictionary codes also accepted (store/codes.py), in words
    maximum: float | None = None  # largest value allowed (counts and amounts)


@dataclass(frozen=True)
class Template:
    kind: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # unique within a file (and, for activity, within the table)
    table: str
    mode: str  # activity (replace periods) | upsert (reference data) | facts (replace period × metric) | realised
    period_expr: str | None = None  # SQL over typed columns giving the YYYY-MM period
    optional: tuple[Column, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return self.columns + self.optional


def C(name: str, type_: str, **kw) -> Column:
    return Column(name, type_, **kw)


TEMPLATES: dict[str, Template] = {t.kind: t for t in (
    Template("csus", "Clinical service units", (
        C("csu_code", "code", example="ABD"), C("csu_name", "text", example="Abdominal Medicine and Surgery")),
        key=("csu_code",), table="csus", mode="upsert"),
    Template("specialties", "Specialties (treatment functions) and their CSU", (
        C("specialty_code", "code", example="100"), C("specialty_name", "text", example="General Surgery"),
        C("csu_code", "code", ref="csu", example="ABD")),
        key=("specialty_code",), table="specialties", mode="upsert"),
    Template("metrics", "New metric catalogue entries", (
        C("metric_id", "id", example="biosimilar_uptake"), C("metric_name", "text", example="Biosimilar uptake"),
        C("domain", "text", example="Medicines"), C("numerator_label", "text", example="Biosimilar doses"),
        C("denominator_label", "text", example="All doses of the molecule"),
        C("direction", "enum", choices=("lower", "higher"), example="higher"),
        C("unit", "text", example="doses"), C("cost_driver", "code", example="biosimilar_dose"),
        C("saving_type", "enum", choices=("cash", "productivity"), example="cash"),
        C("overlap_group", "code", required=False, example=""), C("min_volume", "amount", example="30")),
        key=("metric_id",), table="metrics", mode="upsert",
        optional=(
            C("definition", "text", required=False), C("value_format", "enum", required=False,
                                                         choices=("percent", "ratio", "days", "minutes", "gbp")),
            C("funnel", "enum", required=False, choices=("binomial", "poisson", "none")),
            C("capacity_unit", "text", required=False), C("capacity_divisor", "amount", required=False),
            C("data_source", "text", required=False), C("benchmark_source", "text", required=False),
            C("scheme_ideas", "text", required=False), C("quality_risks", "text", required=False))),
    Template("unit_costs", "Unit cost of each cost driver, per specialty or for all", (
        C("cost_driver", "code", example="bed_day"), C("specialty_code", "code", required=False, ref="specialty", example=""),
        C("unit_cost_gbp", "amount", example="345"), C("source", "text", example="National Cost Collection 2022/23")),
        key=("cost_driver", "specialty_code"), table="unit_costs", mode="upsert"),
    Template("benchmarks", "Peer benchmark percentiles per metric and specialty", (
        C("metric_id", "code", ref="metric", example="alos_elective"),
        C("specialty_code", "code", required=False, ref="specialty", example="100"),
        C("peer_group", "code", example="peer"), C("p10", "number", example="2.1"), C("p25", "number", example="2.6"),
        C("p50", "number", example="3.0"), C("p75", "number", example="3.5"), C("p90", "number", example="4.0"),
        C("source", "text", example="Model Hospital, Q2 2025/26")),
        key=("metric_id", "specialty_code", "peer_group"), table="benchmarks", mode="upsert"),
    Template("hrg_benchmarks", "Peer mean length of stay per HRG and admission type (case-mix adjustment)", (
        C("hrg_code", "code", example="FF10B"),
        C("admission_type", "enum", choices=("elective", "non_elective"), example="elective"),
        C("peer_group", "code", example="peer"), C("p10", "number", example="2.0"), C("p25", "number", example="2.4"),
        C("p50", "number", example="2.9"), C("p75", "number", example="3.3"), C("p90", "number", example="3.8"),
        C("source", "text", example="HES 2024/25, peer acute trusts")),
        key=("hrg_code", "admission_type", "peer_group"), table="hrg_benchmarks", mode="upsert"),
    Template("spells", "Admitted patient care: one row per spell", (
        C("spell_id", "code", example="S0001"), C("csu_code", "code", ref="csu", example="ABD"),
        C("specialty_code", "code", ref="specialty", example="100"),
        C("admission_date", "date", example="2025-04-01"), C("discharge_date", "date", example="2025-04-04"),
        C("admission_type", "enum", choices=("elective", "day_case", "non_elective"), example="elective",
          national="admission method 11-13, 21-28, 2A-2D, 31, 32, 81-83"),
        C("bads_eligible", "flag", example="0"), C("procedure_date", "date", required=False, example="2025-04-01"),
        C("readmitted_30d", "flag", example="0")),
        key=("spell_id",), table="spells", mode="activity", period_expr="strftime(discharge_date, '%Y-%m')",
        # patient_classification: national codes; hrg_code and age: case mix (length of stay adjusted
        # by HRG). Files without them still load.
        optional=(C("patient_classification", "text", required=False,
                    national="patient classification 1, 2, 5 (2 = day case; 3 and 4 refused)"),
                  C("hrg_code", "code", required=False, example="FF10B"),
                  C("age", "count", required=False, example="67", maximum=120))),
    Template("outpatients", "Outpatients: one row per booked appointment", (
        C("appointment_id", "code", example="A0001"), C("csu_code", "code", ref="csu", example="ABD"),
        C("specialty_code", "code", ref="specialty", example="100"),
        C("appointment_date", "date", example="2025-04-02"),
        C("attendance_type", "enum", choices=("first", "follow_up"), example="first",
          national="first attendance 1-4 (3 and 4 also set virtual = 1)"),
        C("outcome", "enum", choices=("attended", "dna", "patient_cancelled", "hospital_cancelled"), example="attended",
          national="attended or did not attend 5, 6, 7, 2, 3, 4"),
        C("pifu", "flag", example="0"),
        C("virtual", "flag", example="0", national="consultation medium 01-13 (01 = face to face)")),
        key=("appointment_id",), table="outpatients", mode="activity",
        period_expr="strftime(appointment_date, '%Y-%m')"),
    Template("theatre_sessions", "Theatres: one row per planned session", (
        C("session_id", "code", example="T0001"), C("csu_code", "code", ref="csu", example="ABD"),
        C("specialty_code", "code", ref="specialty", example="100"), C("session_date", "date", example="2025-04-03"),
        C("planned_minutes", "count", example="240"), C("used_minutes", "count", example="205"),
        C("late_start_minutes", "count", example="15"), C("early_finish_minutes", "count", example="20"),
        C("cases", "count", example="4"), C("on_day_cancellations", "count", example="0")),
        key=("session_id",), table="theatre_sessions", mode="activity",
        period_expr="strftime(session_date, '%Y-%m')"),
    Template("workforce", "Workforce: monthly, per CSU and staff group", (
        C("period", "period", example="2025-04"), C("csu_code", "code", ref="csu", example="ABD"),
        C("staff_group", "text", example="Nursing and midwifery"),
        C("substantive_cost_gbp", "amount", example="1250000"), C("bank_cost_gbp", "amount", example="80000"),
        C("agency_cost_gbp", "amount", example="45000"), C("contracted_wte", "amount", example="330.5"),
        C("sickness_fte_days", "amount", example="350"), C("available_fte_days", "amount", example="6900")),
        key=("period", "csu_code", "staff_group"), table="workforce", mode="activity", period_expr="period"),
    Template("metric_facts", "Any metric, already aggregated per month", (
        C("period", "period", example="2025-04"), C("csu_code", "code", ref="csu", example="ABD"),
        C("specialty_code", "code", required=False, ref="specialty", example="100"),
        C("metric_id", "code", ref="metric", example="biosimilar_uptake"),
        C("numerator", "amount", example="45"), C("denominator", "amount", example="60")),
        key=("period", "csu_code", "specialty_code", "metric_id"), table="metric_facts", mode="facts",
        period_expr="period"),
    Template("realised_savings", "Realised savings of approved schemes, per month", (
        C("scheme_id", "count", ref="scheme", example="12"), C("period", "period", example="2026-06"),
        C("realised_gbp", "amount", example="10500")),
        key=("scheme_id", "period"), table="realised_savings", mode="realised"),
)}

# Load order inside one import command: reference data before the activity that refers to it.
ORDER = ("csus", "specialties", "metrics", "unit_costs", "benchmarks", "hrg_benchmarks",
         "spells", "outpatients", "theatre_sessions", "workforce", "metric_facts", "realised_savings")


def header_row(kind: str) -> list[str]:
    return list(TEMPLATES[kind].names)


def example_row(kind: str) -> list[str]:
    return [c.example for c in TEMPLATES[kind].columns]


def csv_template(kind: str) -> bytes:
    """An empty template to fill in: the header row and one example row (UTF-8 CSV)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header_row(kind))
    writer.writerow(example_row(kind))
    return buffer.getvalue().encode("utf-8")
