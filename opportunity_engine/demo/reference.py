"""Reference data of the synthetic trust: 19 CSUs and their specialties (treatment functions).

Codes and names follow the NHS treatment function code list; the CSU structure is typical of a
large acute teaching trust. ``kind`` drives the activity mix the demo generator gives a specialty.
"""
from __future__ import annotations

# csu_code, csu_name, [(treatment function code, name, kind)]
CSUS: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    ("ABD", "Abdominal Medicine and Surgery", [
        ("100", "General Surgery", "surgical"), ("104", "Colorectal Surgery", "surgical"),
        ("106", "Upper Gastrointestinal Surgery", "surgical"), ("301", "Gastroenterology", "medical")]),
    ("CAR", "Cardio-Respiratory", [
        ("320", "Cardiology", "medical"), ("172", "Cardiac Surgery", "surgical"),
        ("173", "Thoracic Surgery", "surgical"), ("340", "Respiratory Medicine", "medical")]),
    ("ONC", "Oncology and Breast", [
        ("370", "Medical Oncology", "medical"), ("800", "Clinical Oncology", "medical"),
        ("303", "Clinical Haematology", "medical"), ("103", "Breast Surgery", "surgical")]),
    ("NEU", "Neurosciences", [
        ("400", "Neurology", "medical"), ("150", "Neurosurgery", "surgical"),
        ("328", "Stroke Medicine", "medical")]),
    ("MSK", "Musculoskeletal and Rheumatology", [
        ("110", "Trauma and Orthopaedics", "surgical"), ("108", "Spinal Surgery Service", "surgical"),
        ("410", "Rheumatology", "medical")]),
    ("HNK", "Head and Neck", [
        ("120", "Ear, Nose and Throat", "surgical"), ("140", "Oral Surgery", "surgical"),
        ("144", "Maxillofacial Surgery", "surgical"), ("143", "Orthodontics", "outpatient")]),
    ("OPH", "Ophthalmology", [
        ("130", "Ophthalmology", "surgical"), ("460", "Medical Ophthalmology", "medical")]),
    ("URO", "Urology", [("101", "Urology", "surgical")]),
    ("REN", "Renal and Transplant", [
        ("361", "Nephrology", "medical"), ("102", "Transplant Surgery", "surgical")]),
    ("WOM", "Women's Services", [
        ("501", "Obstetrics", "maternity"), ("502", "Gynaecology", "surgical"),
        ("503", "Gynaecological Oncology", "surgical"), ("560", "Midwifery", "maternity")]),
    ("CHI", "Children's Services", [
        ("420", "Paediatrics", "paediatric"), ("171", "Paediatric Surgery", "surgical"),
        ("321", "Paediatric Cardiology", "paediatric"), ("421", "Paediatric Neurology", "paediatric")]),
    ("ELD", "Elderly Medicine and Rehabilitation", [
        ("430", "Geriatric Medicine", "elderly"), ("314", "Rehabilitation Service", "elderly")]),
    ("EMA", "Emergency and Acute Medicine", [
        ("180", "Emergency Medicine", "emergency"), ("300", "General Internal Medicine", "emergency"),
        ("326", "Acute Internal Medicine", "emergency")]),
    ("SPM", "Specialty Medicine", [
        ("302", "Endocrinology", "medical"), ("307", "Diabetes Medicine", "medical"),
        ("330", "Dermatology", "medical"), ("350", "Infectious Diseases", "medical")]),
    ("VAP", "Vascular and Plastic Surgery", [
        ("107", "Vascular Surgery", "surgical"), ("160", "Plastic Surgery", "surgical"),
        ("161", "Burns Care", "surgical")]),
    ("ACC", "Anaesthesia and Critical Care", [
        ("192", "Critical Care Medicine", "critical"), ("190", "Anaesthetics", "procedural"),
        ("191", "Pain Management", "procedural")]),
    ("RAD", "Radiology", [
        ("810", "Radiology", "outpatient"), ("811", "Interventional Radiology", "procedural")]),
    ("PAT", "Pathology", [
        ("820", "General Pathology", "outpatient"), ("822", "Chemical Pathology", "outpatient")]),
    ("THD", "Therapies and Dental", [
        ("650", "Physiotherapy", "outpatient"), ("651", "Occupational Therapy", "outpatient"),
        ("652", "Speech and Language Therapy", "outpatient"), ("654", "Dietetics", "outpatient"),
        ("141", "Restorative Dentistry", "outpatient"), ("142", "Paediatric Dentistry", "procedural")]),
]

# Per kind: relative weights of spells, outpatient appointments and theatre sessions, the share of
# spells that are non-elective, and "national" typical values (METRICS.md) the trust varies around.
KINDS: dict[str, dict[str, float]] = {
    #            spells  op   theatre nel   alos_el alos_nel preop bads  dc    readm dna   fu   pifu  virt  hc    late  early gap  cancel
    "surgical":   dict(w_sp=1.0, w_op=1.0, w_th=1.0, nel=0.30, alos_el=3.2, alos_nel=4.2, preop=0.15, bads=0.55, dc=0.82, readm=0.07, dna=0.07, fu=1.8, pifu=0.05, virt=0.15, hc=0.06, late=0.05, early=0.07, gap=0.06, cancel=0.03),
    "medical":    dict(w_sp=1.0, w_op=1.3, w_th=0.0, nel=0.70, alos_el=2.4, alos_nel=5.5, preop=0.05, bads=0.30, dc=0.75, readm=0.12, dna=0.08, fu=2.3, pifu=0.05, virt=0.30, hc=0.07, late=0, early=0, gap=0, cancel=0),
    "emergency":  dict(w_sp=3.0, w_op=0.2, w_th=0.0, nel=0.97, alos_el=2.0, alos_nel=4.8, preop=0.05, bads=0.20, dc=0.70, readm=0.13, dna=0.09, fu=1.2, pifu=0.03, virt=0.20, hc=0.05, late=0, early=0, gap=0, cancel=0),
    "elderly":    dict(w_sp=1.6, w_op=0.4, w_th=0.0, nel=0.95, alos_el=4.0, alos_nel=9.5, preop=0.05, bads=0.10, dc=0.60, readm=0.15, dna=0.10, fu=1.6, pifu=0.03, virt=0.20, hc=0.06, late=0, early=0, gap=0, cancel=0),
    "maternity":  dict(w_sp=1.2, w_op=0.8, w_th=0.0, nel=0.85, alos_el=2.2, alos_nel=2.0, preop=0.10, bads=0.10, dc=0.70, readm=0.04, dna=0.06, fu=2.6, pifu=0.02, virt=0.15, hc=0.05, late=0, early=0, gap=0, cancel=0),
    "paediatric": dict(w_sp=0.8, w_op=0.8, w_th=0.0, nel=0.75, alos_el=2.0, alos_nel=1.8, preop=0.05, bads=0.30, dc=0.80, readm=0.06, dna=0.10, fu=2.0, pifu=0.04, virt=0.20, hc=0.06, late=0, early=0, gap=0, cancel=0),
    "critical":   dict(w_sp=0.15, w_op=0.0, w_th=0.0, nel=0.80, alos_el=5.0, alos_nel=8.0, preop=0.20, bads=0.0, dc=0.0, readm=0.10, dna=0.0, fu=0.0, pifu=0.0, virt=0.0, hc=0.0, late=0, early=0, gap=0, cancel=0),
    "procedural": dict(w_sp=0.5, w_op=0.6, w_th=0.4, nel=0.05, alos_el=1.5, alos_nel=3.0, preop=0.05, bads=0.80, dc=0.90, readm=0.04, dna=0.07, fu=1.4, pifu=0.05, virt=0.15, hc=0.05, late=0.06, early=0.08, gap=0.05, cancel=0.03),
    "outpatient": dict(w_sp=0.0, w_op=1.0, w_th=0.0, nel=0.0, alos_el=0, alos_nel=0, preop=0, bads=0, dc=0, readm=0, dna=0.09, fu=2.5, pifu=0.05, virt=0.30, hc=0.06, late=0, early=0, gap=0, cancel=0),
}


def specialty_rows() -> list[tuple[str, str, str, str]]:
    """(specialty_code, specialty_name, csu_code, kind) for every specialty."""
    return [(s_code, s_name, c_code, kind) for c_code, _, specs in CSUS for s_code, s_name, kind in specs]
