"""Browser uploads waiting to be checked and committed: one folder per upload, always cleaned.

The Data page used to write a fresh copy of every uploaded file (up to 300 MB each) into a new
temporary folder on every rerun and never removed any. Now an upload (the set of files dropped
together) gets exactly one folder, reused while the same files stay in the uploader, and removed
after a commit, a cancel, a new upload, sign-out or the end of the browser session (when its
session state is dropped). Folders a crashed server left behind are swept after
``[import] staged_max_age_hours``. The total staged across all sessions is capped by
``[import] max_staged_mb``, so uploads cannot fill the server's disk.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .importer import stage_uploads

PREFIX = "oe-upload-"


def staging_root() -> Path:
    """Where upload folders live: $OPPORTUNITY_STAGING, else `[import] staging_dir`, else the
    system temporary directory."""
    from ..config import ROOT, settings

    raw = os.environ.get("OPPORTUNITY_STAGING") or settings().get("import", {}).get("staging_dir") or ""
    path = Path(raw) if raw else Path(tempfile.gettempdir()) / "opportunity-explorer-uploads"
    path = path if path.is_absolute() else ROOT / path
    path.mkdir(parents=True, exist_ok=True)
    return path


def limits() -> tuple[int, int, float]:
    """(largest file MB, total staged MB across sessions, hours before an orphaned folder is swept)."""
    from ..config import settings

    cfg = settings().get("import", {})
    return (int(cfg.get("max_upload_mb", 300)), int(cfg.get("max_staged_mb", 1000)),
            float(cfg.get("staged_max_age_hours", 12)))


@dataclass
class Staged:
    """One upload's folder and files. Dropping the last reference removes the folder (the
    browser session ended); ``discard`` removes it at once."""
    key: tuple
    folder: Path
    paths: list[Path]
    problems: list[str]
    _finalizer: weakref.finalize = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.folder), True)

    def discard(self) -> None:
        self._finalizer()

    @property
    def alive(self) -> bool:
        return self.folder.exists()


def staged_bytes(root: Path | None = None) -> int:
    """Bytes held in every upload folder now (all sessions)."""
    root = root or staging_root()
    return sum(f.stat().st_size for f in root.glob(f"{PREFIX}*/*") if f.is_file())


def sweep(root: Path | None = None, max_age_hours: float | None = None) -> int:
    """Remove upload folders older than the age limit (left by a crash or a killed server);
    returns how many were removed."""
    root = root or staging_root()
    max_age_hours = limits()[2] if max_age_hours is None else max_age_hours
    cutoff = time.time() - max_age_hours * 3600
    removed = 0
    for folder in root.glob(f"{PREFIX}*"):
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except FileNotFoundError:  # another session removed it first
            continue
    return removed


def stage(files: Iterable[tuple[str, int, bytes | memoryview]], key: tuple, previous: Staged | None = None,
          root: Path | None = None) -> Staged:
    """The upload ``key`` (names and sizes) staged once: ``previous`` is returned unchanged when
    it holds the same upload, else removed before the new files are written.

    The upload is refused whole, with a message, when it would push the total staged (all
    sessions) over ``max_staged_mb``, or when a file is over ``max_upload_mb`` or not .csv/.xlsx
    (importer.stage_uploads names the file); nothing of a refused upload is kept."""
    if previous is not None:
        if previous.key == key and previous.alive:
            return previous
        previous.discard()
    root = root or staging_root()
    sweep(root)
    max_file_mb, max_total_mb, _ = limits()
    files = list(files)
    folder = root / f"{PREFIX}{uuid.uuid4().hex}"
    folder.mkdir()
    staged = Staged(key, folder, [], [])
    room = max_total_mb * 1024 * 1024 - staged_bytes(root)
    total = sum(size for _, size, _ in files)
    if total > room:
        staged.problems.append(
            f"These files ({total / 1024 / 1024:,.0f} MB) do not fit in the space for uploads waiting to be "
            f"committed ({max(room, 0) / 1024 / 1024:,.0f} MB of {max_total_mb} MB free: other uploads are being "
            "checked). Try again shortly, or load fewer months at once.")
        return staged
    staged.paths, staged.problems = stage_uploads(files, folder, max_file_mb)
    if staged.problems:  # nothing of a refused upload is kept
        for path in staged.paths:
            path.unlink(missing_ok=True)
        staged.paths = []
    return staged
