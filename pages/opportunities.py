"""Opportunities: every opportunity in the user's scope in one table, filtered (CSU, specialty,
domain, cash or productivity, flagged rows, minimum £), largest first, each row opening its
Metric detail, and "Download this view" as a workbook whose cover names the filters.

The filters live in the URL (a finance partner can send the view) and are applied by the engine
(reports.views.filter_opportunities); the page only reads them and renders.
"""
import streamlit as st

import ui
from opportunity_engine.analysis.opportunities import csu_list, opportunities, view
from opportunity_engine.formatting import gbp_short, plain
from opportunity_engine.reports import views
from opportunity_engine.reports.export_view import view_workbook

user = ui.require_user()
basis = ui.basis()
cur = ui.cursor()
csus = dict(csu_list(cur, user.scope))
st.title("Opportunities")
if not csus:
    st.info("No CSU data is available to you yet. An admin can load extracts on the Data page.")
    st.stop()

csu = ui.param("csu")
ui.check_scope(user, csu)  # a link naming another CSU stops here with "not available to you"
csu = csu if csu in csus else None
everything = opportunities(cur, user.scope, basis, csu=csu)
specialties = dict(sorted(set(zip(everything["specialty_code"], everything["specialty_name"])), key=lambda p: p[1]))
domains = sorted(everything["domain"].unique())
present = ui.presenting()

MIN_STEPS = (0, 1_000, 10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000)
wanted_min = ui.param("min")
min_default = int(wanted_min) if wanted_min and wanted_min.isdigit() and int(wanted_min) in MIN_STEPS else 0
with st.container(border=True):
    f1, f2, f3 = st.columns(3)
    csu_options = [None] + list(csus)
    pick_csu = f1.selectbox("CSU", csu_options, index=csu_options.index(csu),
                            format_func=lambda c: "All CSUs in my scope" if c is None else f"{csus[c]} ({c})",
                            help="Clinical service unit. CSU users see only their own.")
    spec_options = [None] + list(specialties)
    spec = ui.specialty_from_param(ui.param("specialty"))
    pick_spec = f2.selectbox("Specialty", spec_options, index=spec_options.index(spec) if spec in spec_options else 0,
                             format_func=lambda s: "All specialties" if s is None else specialties[s],
                             help="Treatment function; CSU-wide rows are the CSU's own (e.g. workforce) metrics.")
    domain_options = [None] + domains
    pick_domain = f3.selectbox("Domain", domain_options,
                               index=domain_options.index(ui.param("domain")) if ui.param("domain") in domains else 0,
                               format_func=lambda d: "All domains" if d is None else d,
                               help="Beds, theatres, outpatients or workforce: where the resource is freed.")
    g1, g2, g3 = st.columns(3)
    type_options = [None, "cash", "productivity"]
    pick_type = g1.selectbox("Saving type", type_options,
                             index=type_options.index(ui.param("type")) if ui.param("type") in type_options else 0,
                             format_func=lambda t: "Cash-releasing and productivity" if t is None
                             else views.SAVING_TYPE_LABELS[t],
                             help="Cash leaves the ledger; productivity releases capacity (bed days, theatre time).")
    pick_min = g2.selectbox("Minimum opportunity", MIN_STEPS, index=MIN_STEPS.index(min_default),
                            format_func=lambda v: "Any (above £0)" if v == 0 else f"{gbp_short(v)} a year or more",
                            help="Hide rows worth less than this a year (e.g. £190, or 1.7 follow-up attendances).")
    g3.write("")
    pick_hide = g3.toggle("Hide flagged rows", value=ui.param("flagged") == "hide",
                          help="Low volume, a gap within the funnel limits (may be noise), or no benchmark.")

url_state = {"csu": pick_csu, "specialty": ui.specialty_param(pick_spec) if pick_spec is not None else None,
             "domain": pick_domain, "type": pick_type, "min": str(pick_min) if pick_min else None,
             "flagged": "hide" if pick_hide else None}
if pick_csu != csu:
    url_state["specialty"] = None  # another CSU's specialties differ: start again
for key, value in url_state.items():  # the view goes into the link
    if value is None and key in st.query_params:
        del st.query_params[key]
    elif value is not None and st.query_params.get(key) != value:
        st.query_params[key] = value
if pick_csu != csu:
    st.rerun()

filters = views.Filters(csu=pick_csu, specialty=pick_spec if pick_csu == csu else None, domain=pick_domain,
                        saving_type=pick_type, hide_flagged=pick_hide, min_gbp=float(pick_min))
parts = view(cur, user.scope, basis, views.list_parts, filters, csu=csu)
t = parts.totals
st.caption(f"{plain(user.scope.label)} · {plain(basis.label)} · {parts.window} · "
           f"**{len(parts.rows)}** opportunities, {gbp_short(t.gross_gbp)} a year in all, {gbp_short(t.net_gbp)} of it "
           "counted in the net total (overlapping metrics free the same resource, so a list is not a sum to quote).")
if parts.rows.empty:
    st.info("No opportunity passes these filters. Lower the minimum or show flagged rows.")
    st.stop()

rows = parts.rows
rows["CSU"] = rows["csu_code"]
rows["Detail"] = ui.metric_hrefs(rows)
columns = (["Opportunity £", "CSU", "Specialty", "Metric", "Gap", "Detail"] if present else
           ["Opportunity £", "CSU", "Specialty", "Metric", "Actual", "Target", "Gap", "Type", "Flags", "Detail"])
columns = [c for c in columns if not (c == "Type" and filters.saving_type)]  # one type chosen: the column says nothing
event = ui.money_table(rows[columns], ["Opportunity £"], key="opportunity_list", on_select="rerun",
                       selection_mode="single-row", height=min(640, 36 * (len(rows) + 1) + 3),
                       config={"Detail": ui.link_column(), "CSU": st.column_config.TextColumn("CSU", help="CSU code")},
                       help={"Opportunity £": "A year, at the chosen target. Click a row to open its Metric detail."})
picked = ui.selected_value(rows, event, "metric_id")
if picked is not None:
    row = rows.iloc[event.selection.rows[0]]
    st.switch_page("pages/metric.py", query_params=ui.view_params(
        csu=row["csu_code"], specialty=ui.specialty_param(row["specialty_code"]), metric=row["metric_id"]))
st.caption("Click a row (or its Open link) for the metric's detail; click a column heading to sort.")

cursor_factory = ui.cursor
if st.download_button(
        "Download this view (Excel)", icon=":material/download:",
        data=lambda: view_workbook(cursor_factory(), user.scope, basis, user.name, filters),
        file_name=views.export_name("opportunities", filters.slug()),
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        help="These rows, largest first, with a cover naming the filters, target, benchmark, peer group and window."):
    ui.record("export", "opportunities", filters.slug())
