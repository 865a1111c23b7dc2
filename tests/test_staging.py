"""Upload staging (issue 13 point 5): one folder per upload, reused across reruns, removed after
commit, cancel, a new upload or the end of the session; a cap on the total staged bytes."""
from __future__ import annotations

import gc
import os
import time

import pytest

from opportunity_engine.store import staging

CSV = b"cost_driver,specialty_code,unit_cost_gbp,source\nbed_day,,351,x\n"


@pytest.fixture
def root(tmp_path):
    return tmp_path / "uploads"


def _files(*names):
    return [(n, len(CSV), CSV) for n in names]


def folders(root):
    return sorted(p.name for p in root.glob(f"{staging.PREFIX}*"))


def test_one_folder_per_upload_however_often_the_page_reruns(root):
    root.mkdir()
    key = (("unit_costs.csv", len(CSV)),)
    first = staging.stage(_files("unit_costs.csv"), key, None, root)
    for _ in range(4):  # the Data page reruns on every click
        again = staging.stage(_files("unit_costs.csv"), key, first, root)
        assert again is first
    assert len(folders(root)) == 1 and [p.name for p in first.paths] == ["unit_costs.csv"]
    new = staging.stage(_files("a.csv", "b.csv"), (("a.csv", 1), ("b.csv", 1)), first, root)  # a new upload
    assert folders(root) == [new.folder.name] and not first.folder.exists()
    new.discard()  # commit or cancel
    assert folders(root) == []


def test_the_end_of_the_session_removes_its_folder(root):
    root.mkdir()
    session_state = {"staged": staging.stage(_files("x.csv"), ("x",), None, root)}
    assert len(folders(root)) == 1
    session_state.clear()  # Streamlit drops a closed session's state (sign-out clears it too)
    gc.collect()
    assert folders(root) == []


def test_the_total_staged_is_capped_and_a_refused_upload_keeps_nothing(root, monkeypatch):
    root.mkdir()
    monkeypatch.setattr(staging, "limits", lambda: (300, 1, 12.0))  # 1 MB for every session together
    held = staging.stage([("big.csv", 700_000, b"x" * 700_000)], ("big",), None, root)
    assert held.paths and not held.problems
    refused = staging.stage([("more.csv", 700_000, b"x" * 700_000)], ("more",), None, root)
    assert refused.paths == [] and "do not fit" in refused.problems[0]
    assert list(refused.folder.iterdir()) == []
    bad = staging.stage(_files("ok.csv") + [("notes.txt", 3, b"abc")], ("mixed",), None, root)
    assert bad.paths == [] and "only .csv and .xlsx" in bad.problems[0] and list(bad.folder.iterdir()) == []


def test_folders_a_crashed_server_left_are_swept(root):
    root.mkdir()
    old = root / f"{staging.PREFIX}left-behind"
    old.mkdir()
    (old / "spells.csv").write_bytes(CSV)
    stamp = time.time() - 13 * 3600
    os.utime(old, (stamp, stamp))
    fresh = staging.stage(_files("x.csv"), ("x",), None, root)
    assert not old.exists() and fresh.folder.exists()
