"""ui: the cheaper ways of drawing tables and charts send what the stock ways send; housekeeping runs.

The fast Styler replaces two private methods Streamlit calls; if Streamlit or pandas change how
they meet, these tests fail instead of a table quietly showing raw numbers."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from streamlit import dataframe_util
from streamlit.elements.lib import pandas_styler_utils
from streamlit.proto.ArrowData_pb2 import ArrowData

import ui
from opportunity_engine.formatting import gbp_short


def _display(styler) -> pd.DataFrame:
    """What st.dataframe sends to the browser as the cells' display text."""
    proto = ArrowData()
    pandas_styler_utils.marshall_styler(proto, styler, "uuid")
    return dataframe_util.convert_arrow_bytes_to_pandas_df(proto.styler.display_values)


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "Opportunity £": [1_234_567.0, 45_300.0, math.nan, 0.0, 190.4],
        "Gross £": [2_000_000.0, 1.0, 999.5, math.nan, 12_500_000.0],
        "CSU": pd.Series(["EMA", "SUR", "=cmd|x", "W&C", "ONC"], dtype=object),
        "Metric": ["Length of stay", "DNA rate", "", "Day case", "Theatre"],
        "Opportunities": [3, 1, 0, 12, 7],
        "Flags": pd.Series(["low volume", None, "", "no benchmark", "x"], dtype=object),
    })


def test_display_text_is_the_stock_stylers(frame):
    money = ["Opportunity £", "Gross £"]
    stock = _display(frame.style.format({c: gbp_short for c in money}, na_rep="–"))
    fast = _display(ui._money_styler(frame, money))
    pd.testing.assert_frame_equal(fast, stock)
    assert fast["Flags"][1] == "–"  # a blank text cell, as in a money cell


def test_money_reads_as_pounds_and_stays_a_number(frame):
    styler = ui._money_styler(frame, ["Opportunity £"])
    shown = _display(styler)
    assert shown["Opportunity £"].tolist() == ["£1.2m", "£45k", "–", "£0", "£190"]
    assert shown["CSU"].tolist()[2] == "=cmd|x"  # text is shown as itself (the page escapes nothing here)
    assert styler.data["Opportunity £"].dtype == "float64"  # the numbers a click on the header sorts by



def test_the_tests_check_every_chart_against_the_schema():
    """The server skips Altair's schema check (a third of building a chart); the tests keep it, so a
    chart a page draws that Vega-Lite would refuse fails here."""
    import altair as alt

    assert ui.CHECK_CHARTS
    broken = alt.Chart(pd.DataFrame({"a": [1]})).mark_bar().encode(x=alt.X("a:Q", bin="sometimes"))
    with pytest.raises(alt.utils.schemapi.SchemaValidationError):
        ui._chart_spec("test:broken", (), {}, lambda: broken)


def test_housekeeping_runs_once_per_server_in_the_background():
    """The collection that keeps the server's memory level runs on one daemon thread per process,
    however many runs ask for it (app.py asks on every run)."""
    first = ui.start_housekeeping()
    assert first.is_alive() and first.daemon and first.name == "oe-housekeeping"
    assert ui.start_housekeeping() is first


def test_a_nudge_makes_housekeeping_collect_within_seconds():
    """After an import the Data page asks for a collection at once (ui.release_memory_soon): the
    upload's garbage, kept in a reference cycle here, is gone within seconds, not half a minute."""
    import gc
    import time
    import weakref

    ui.start_housekeeping()

    class Buffer:
        pass

    garbage = Buffer()
    garbage.me = garbage  # a cycle: only the collector frees it
    alive = weakref.ref(garbage)
    del garbage
    gc.disable()  # no automatic collection in between: only the housekeeping's
    try:
        ui.release_memory_soon()
        deadline = time.monotonic() + 10
        while alive() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        gc.enable()
    assert alive() is None


def _upload_store(*files: tuple[str, str, bytes]):
    """Streamlit's in-memory upload store holding ``files`` as (session id, file id, bytes)."""
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    store = MemoryUploadedFileManager("/_stcore/upload_file")
    for session_id, file_id, data in files:
        store.add_file(session_id, UploadedFileRec(file_id=file_id, name=f"{file_id}.csv", type="text/csv", data=data))
    return store


def _held(store, session_id: str) -> list[str]:
    return sorted(store.file_storage.get(session_id, {}))


def test_a_committed_upload_leaves_streamlits_upload_store(monkeypatch):
    """Streamlit keeps an uploaded file's bytes until its browser session ends unless the file is
    taken out of the uploader; the Data page's fresh uploader after a commit or cancel does not
    take it out, so every refresh in one tab kept its files. ui.forget_uploads drops exactly the
    files given (the page passes the committed upload's)."""
    from types import SimpleNamespace

    from streamlit.runtime.uploaded_file_manager import UploadedFile

    store = _upload_store(("tab", "spells", b"x" * 1000), ("tab", "workforce", b"y" * 10), ("other", "a", b"z"))
    monkeypatch.setattr(ui, "get_script_run_ctx", lambda: SimpleNamespace(uploaded_file_mgr=store, session_id="tab"))
    committed = [UploadedFile(rec, None) for rec in store.get_files("tab", ["spells"])]
    ui.forget_uploads(committed)
    assert _held(store, "tab") == ["workforce"] and _held(store, "other") == ["a"]
    ui.forget_uploads(None)  # no upload: nothing to do


def test_the_memory_report_names_what_holds_the_servers_memory(tmp_path):
    """OPPORTUNITY_MEMORY_REPORT (benchmarks only): one JSON line per collection with the resident
    set, the heap, the caches and the change in object counts, outside a server too."""
    import ctypes
    import ctypes.util
    import json

    name = ctypes.util.find_library("c")
    report = tmp_path / "memory.jsonl"
    for _ in range(2):
        ui._write_memory_report(str(report), ctypes.CDLL(name) if name else None)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(lines) == 2 and lines[1]["VmRSS"] > 0 and lines[1]["objects"] > 0
    assert {"opportunities", "casemix", "lookups", "all_versioned"} <= set(lines[1]["engine"])
    assert "arrow" in lines[1] and "object_growth" in lines[1]
