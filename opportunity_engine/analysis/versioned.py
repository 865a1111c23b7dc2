"""A cache of results for the database's current data version only.

The engine keeps what it computes (opportunities, the tables the pages derive from them, the
case-mix references) per data version: a fresh UUID at every import, unit-cost edit or demo
build. The app's database only moves forward, so when a new version's result is stored, every
older version's entry is dead weight that nobody can ask for again. Kept until the size limit
pushed them out, they made the server hold a little more after every monthly refresh. So the
first result of a new version stored in any of these caches drops the older versions' entries
from all the caches of its family, also from those of pages nobody has opened since the refresh.

A family is one kind of version: the data version (imports) or the records version (schemes,
plans: every save). Each moves on its own, so a save must not empty the data's caches (a first
version of this module swept across families and doubled the CPU of a page view with 20 users).

Two databases in one process (the tests, a copy opened beside the live one) then take turns
rather than share the cache: each change of version costs one computation, never a wrong answer,
because the version is part of every key.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
MISSING = object()  # what get() returns for a key not held (None can be a result)

ALL: list[VersionedCache] = []  # every cache made (the app's memory report reads them too, ui.py)
_newest: dict[str, str] = {}  # family -> the version last stored in it


class VersionedCache(Generic[V]):
    """Up to ``size`` results of one data version, least recently used first out; thread-safe
    (Streamlit serves sessions on threads). Version "0" (nothing ever loaded, e.g. a scratch
    database) is never stored: two such databases would share it."""

    def __init__(self, size: int, family: str) -> None:
        self.size = size
        self.family = family
        self._entries: OrderedDict[tuple[str, Hashable], V] = OrderedDict()
        self._lock = threading.Lock()
        ALL.append(self)

    def get(self, version: str, key: Hashable) -> V | object:
        with self._lock:
            hit = self._entries.get((version, key), MISSING)
            if hit is not MISSING:
                self._entries.move_to_end((version, key))
            return hit

    def put(self, version: str, key: Hashable, value: V) -> None:
        if version == "0":
            return
        if version != _newest.get(self.family):
            _newest[self.family] = version
            for cache in ALL:
                if cache.family == self.family:
                    cache._keep_only(version)
        with self._lock:
            self._keep_only_locked(version)  # (another thread may have stored an older one meanwhile)
            self._entries[(version, key)] = value
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def _keep_only(self, version: str) -> None:
        with self._lock:
            self._keep_only_locked(version)

    def _keep_only_locked(self, version: str) -> None:
        for stale in [k for k in self._entries if k[0] != version]:
            del self._entries[stale]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
