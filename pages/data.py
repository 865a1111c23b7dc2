"""Data (admin): upload extracts with a validation report before anything is committed, data
freshness, empty templates, unit costs and WRP targets."""
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from opportunity_engine.analysis.opportunities import freshness
from opportunity_engine.config import settings
from opportunity_engine.delivery import plans
from opportunity_engine.formatting import plain
from opportunity_engine.store import codes, costs, mappings, staging
from opportunity_engine.store.importer import ImportResult, import_files, matches_template
from opportunity_engine.store.templates import ORDER, TEMPLATES, csv_template

user = ui.require_user()
if not user.can_manage_data:
    st.error("The Data page is for administrators.")
    st.stop()
cur = ui.cursor()
COUNT = st.column_config.NumberColumn(format="localized")


def _freshness_table(fresh: pd.DataFrame) -> None:
    """What is loaded, the same on the projector as at the desk: reference data has no month."""
    st.dataframe(fresh.fillna({"latest_period": "–"}).rename(columns={
        "source": "Source", "latest_period": "Latest month", "rows": "Rows in last load", "loaded_by": "Loaded by",
        "loaded_at": "Loaded at", "loads": "Loads"}), hide_index=True, width="stretch",
        column_config={"Rows in last load": COUNT, "Loads": COUNT})


if ui.presenting():  # no editing controls on a projector: show what is loaded, nothing else
    st.title("Data")
    _freshness_table(freshness(cur))
    st.caption("Presentation mode: switch it off to load data or change unit costs and targets.")
    st.stop()
limit_mb = int(settings()["import"].get("max_upload_mb", 300))
st.title("Data")

st.subheader("Load extracts")
st.caption(f"CSV or Excel (.xlsx), one file per kind, headers exactly as the templates below; up to {limit_mb} MB each. "
           "Files are checked first; nothing changes until you commit, and a commit loads all files or none. "
           "Re-loading replaces exactly the months × CSUs the files hold; the check says what will be added, "
           "replaced and removed.")
# A new uploader key after a commit or a cancel empties it; the staged copy goes at the same time.
upload_round = st.session_state.setdefault("_oe_upload_round", 0)
uploads = st.file_uploader("Extract files", type=["csv", "xlsx"], accept_multiple_files=True,
                           key=f"uploads-{upload_round}",
                           help="Drop several files to load them together, e.g. specialties and spells.")
if flash := st.session_state.pop("_oe_import_flash", None):
    st.success(flash)


def _finish_upload() -> None:
    """Commit or cancel: remove the staged folder and empty the uploader."""
    held = st.session_state.pop("_oe_staged", None)
    if held is not None:
        held.discard()
    st.session_state.pop("checked_key", None)
    st.session_state.pop("checked", None)
    st.session_state["_oe_upload_round"] = upload_round + 1
    ui.forget_uploads(uploads)  # else Streamlit keeps their bytes until the browser session ends
    ui.release_memory_soon()  # the upload's buffers are garbage once this run ends


def _run(paths: list[Path], dry_run: bool, checked: ImportResult | None = None):
    bar = st.progress(0.0, text="Starting")
    result = import_files(cur, paths, loaded_by=user.username, dry_run=dry_run, checked=checked,
                          progress=lambda message, fraction: bar.progress(min(max(fraction, 0.0), 1.0), text=message))
    bar.empty()
    return result


def _mapping_form(path: Path, found: list[str]) -> None:
    """Map one file's columns onto a template's, with a preview; save it under a name (engine:
    store/mappings.py) and check the file again through it."""
    st.markdown(f"**{path.name}**: its header matches no template. Map its columns onto one "
                "(saved under a name, reused next month here or with `import --mapping NAME`).")
    saved = mappings.names(cur)
    if saved:
        saved_choices: list[str | None] = [None, *saved]
        use = st.selectbox("Use a saved mapping", saved_choices, key=f"use-{path.name}",
                           format_func=lambda n: "Choose…" if n is None else n,
                           help="A mapping saved for an earlier month's file: this file is then read through it.")
        if use is not None:
            st.session_state.setdefault("mappings", {})[path.name] = use
            st.rerun()
    kinds = list(TEMPLATES)
    kind = st.selectbox("Template", kinds, index=kinds.index(mappings.guess_kind(found)), key=f"kind-{path.name}",
                        help="The kind of file this is.")
    guess = mappings.suggest(kind, found)
    choices = [""] + found
    chosen = {}
    cols = st.columns(3)
    for i, col in enumerate(TEMPLATES[kind].all_columns):
        pick = cols[i % 3].selectbox(
            f"{col.name}{'' if col.required else ' (optional)'}", choices,
            index=choices.index(guess[col.name]) if col.name in guess else 0, key=f"map-{path.name}-{kind}-{col.name}",
            help=f"The column of {path.name} that holds the template's {col.name}.",
            format_func=lambda c: "(not in the file)" if c == "" else c)
        if pick:
            chosen[col.name] = pick
    problems = mappings.validate(kind, chosen, found)
    try:
        st.dataframe(mappings.preview(cur, path, kind, chosen), width="stretch", key=f"preview-{path.name}")
        st.caption("The first rows as they would load (row numbers are the file's own).")
    except mappings.MappingError as exc:  # an unreadable file: the check above already says why
        st.caption(f"No preview: {exc}")
    for problem in problems:
        st.warning(problem)
    name = st.text_input("Save the mapping as", value=f"{kind} from {path.stem}"[:mappings.NAME_MAX],
                         key=f"name-{path.name}", max_chars=mappings.NAME_MAX,
                         help="Next month choose it under 'Use a saved mapping', or: import --mapping NAME.")
    if st.button("Save mapping and check again", key=f"save-{path.name}", icon=":material/save:",
                 disabled=bool(problems), help="Saves the mapping under this name and checks the file through it."):
        try:
            mappings.save(cur, name, kind, chosen, user.username)
        except mappings.MappingError as exc:
            st.error(str(exc))
        else:
            st.session_state.setdefault("mappings", {})[path.name] = name.strip()
            st.rerun()


if not uploads and "_oe_staged" in st.session_state:  # the files were taken out of the uploader
    st.session_state.pop("_oe_staged").discard()
if uploads:
    active = st.session_state.setdefault("mappings", {})
    key = (tuple((f.name, f.size) for f in uploads), tuple(sorted(active.items())))
    # one staged copy per upload, reused on every rerun (staging.stage returns it unchanged)
    staged = st.session_state["_oe_staged"] = staging.stage(
        ((f.name, f.size, f.getbuffer()) for f in uploads), key[0], st.session_state.get("_oe_staged"))
    folder = staged.folder
    paths, problems = list(staged.paths), list(staged.problems)
    for path in list(paths):
        mapping = mappings.get(cur, active[path.name]) if path.name in active else None
        if mapping is not None:
            try:
                paths[paths.index(path)] = mappings.apply(cur, path, mapping, folder / "mapped")
                st.caption(f"{path.name} is read through the mapping '{mapping.name}'.")
            except (mappings.MappingError, ValueError) as exc:
                problems.append(str(exc))
                active.pop(path.name, None)
    for problem in problems:
        st.error(plain(problem))
    if paths and not problems:
        if st.session_state.get("checked_key") != key:
            st.session_state["checked_key"] = key
            st.session_state["checked"] = _run(paths, dry_run=True)
        checked = st.session_state["checked"]
        if not checked.ok:
            st.error(f"Rejected: {len(checked.issues)} problem(s). Nothing was changed. Fix the files and upload again.")
            # A plain table (not a grid): every problem readable at once, printable, searchable in the page.
            st.table(pd.DataFrame(checked.table()).rename(columns=str.capitalize).fillna("").set_index("File"))
            for path, found in mappings.unmatched(paths, matches_template):
                with st.expander(f"Map the columns of {path.name}", expanded=True, icon=":material/swap_horiz:"):
                    _mapping_form(path, found)
        else:
            st.success("All files passed every check. Nothing is committed yet. A commit will change what the table says.")
            st.dataframe(pd.DataFrame(checked.changes_table()).rename(columns={
                "source": "Source", "files": "Files", "months": "Months", "csus": "CSUs", "rows": "Rows in files",
                "added": "Added", "replaced": "Replaced", "removed": "Removed"}), hide_index=True, width="stretch",
                column_config={"CSUs": st.column_config.TextColumn(width="medium"),
                               **{c: COUNT for c in ("Rows in files", "Added", "Replaced", "Removed")}})
            st.caption("Files read: " + "; ".join(f"{plain(f.label)}: {f.rows:,} {f.kind} rows" for f in checked.loaded)
                       + ". Re-loading replaces exactly the months × CSUs listed; other months and CSUs stay.")
            commit, cancel = st.columns([2, 5])  # the Commit label whole at 1280 px
            if cancel.button("Cancel", icon=":material/close:", help="Forget these files; nothing is loaded."):
                _finish_upload()
                st.rerun()
            if commit.button("Commit to the database", type="primary", icon=":material/upload:",
                             help="Loads every checked file in one transaction: all of them or none."):
                result = _run(paths, dry_run=False, checked=checked)  # its checks stand if nothing changed since
                st.session_state.pop("checked_key", None)
                if result.ok:
                    ui.log.info("import", extra={"username": user.username, "files": [f.file for f in result.loaded],
                                                 "rows": sum(f.rows for f in result.loaded)})
                    ui.record("import", "data", ", ".join(f.kind for f in result.loaded))
                    st.session_state["_oe_import_flash"] = (
                        f"Loaded {len(result.loaded)} file(s): "
                        + "; ".join(f"{plain(f.label)}: {f.rows:,} {f.kind} rows" for f in result.loaded)
                        + ". Changes: " + "; ".join(plain(c) for c in result.changes) + ".")
                    _finish_upload()
                    st.rerun()
                else:  # the data changed between the check and the commit
                    st.error(plain(result.report()))

st.subheader("Freshness")
fresh = freshness(cur)
if fresh.empty:
    st.info("Nothing loaded yet.")
else:
    _freshness_table(fresh)

st.subheader("Templates")
st.caption("Each has the header row and one example row: delete the example and paste your extract below the header.")
cols = st.columns(4)
for i, kind in enumerate(ORDER):
    cols[i % 4].download_button(f"{kind}.csv", csv_template(kind), file_name=f"{kind}.csv", mime="text/csv",
                                help=TEMPLATES[kind].description, key=f"tpl-{kind}", icon=":material/download:")
with st.expander("National codes accepted (NHS Data Dictionary)", icon=":material/dictionary:"):
    st.caption("Spells and outpatients files may carry the national codes of a PAS or SUS extract instead of our "
               "words, in the same columns; an optional patient_classification column beside admission_type makes "
               "an elective admission with classification 2 a day case. In the virtual column, a file holding any "
               "value other than 0 and 1 is read as consultation medium codes (so 1 is 01, face to face).")
    st.dataframe(pd.DataFrame(codes.accepted()).rename(columns=lambda c: c.replace("_", " ").capitalize()),
                 hide_index=True, width="stretch", key="national-codes")
    st.download_button("national-codes.csv", codes.accepted_csv(), file_name="national-codes.csv", mime="text/csv",
                       key="tpl-national-codes", icon=":material/download:",
                       help="Every national code accepted, what it means and what it is loaded as.")

st.subheader("Unit costs")
st.caption("Each cost driver's £ per unit, per specialty or for all specialties, with where it comes from. "
           "A change recomputes every opportunity that uses it.")
current = costs.unit_costs(cur)
edited = st.data_editor(current, hide_index=True, width="stretch", key="unit-costs", num_rows="fixed",
                        column_config={"cost_driver": st.column_config.TextColumn("Cost driver", disabled=True),
                                       "specialty_code": st.column_config.TextColumn("Specialty (blank = all)", disabled=True),
                                       "unit_cost_gbp": st.column_config.NumberColumn("Unit cost £", min_value=0, format="£%,.2f"),
                                       "source": st.column_config.TextColumn("Source", required=True)})
if st.button("Save unit costs", icon=":material/save:",
             help="Saves changed costs and sources (audited); opportunities are recomputed."):
    saved = 0
    for old, new in zip(current.itertuples(index=False), edited.itertuples(index=False)):
        if old.unit_cost_gbp == new.unit_cost_gbp and old.source == new.source:
            continue
        try:
            costs.set_unit_cost(cur, user, new.cost_driver, new.specialty_code, new.unit_cost_gbp, new.source)
            saved += 1
        except ui.REFUSALS as exc:
            st.error(str(exc))
    st.success(f"Saved {saved} unit cost(s).") if saved else st.info("Nothing changed.")

st.subheader("WRP targets")
fy = ui.financial_year()
st.caption(f"Each CSU's waste reduction target for {plans.fy_label(fy)} (change the year on Shortlist & plans).")
ui.wrp_target_editor(cur, user, fy)

st.subheader("Backup")
st.caption("A consistent copy of the whole database (data, schemes, plans, QIAs, users, audit) in the backups folder "
           "beside it. To restore: stop the app and copy the backup over the database file.")
if st.button("Back up now", icon=":material/backup:",
             help="Writes a consistent copy of the whole database to the backups folder."):
    from opportunity_engine.config import database_path
    from opportunity_engine.store import db

    target = db.backup_path(database_path())
    db.backup(cur, target)
    ui.log.info("backup", extra={"username": user.username, "file": str(target)})
    st.success(f"Backed up to {target}.")
