"""Dependencies, checked: every package the code imports is declared in requirements, and the lock
file `make` installs from pins each of them at its listed version (so a fresh install has it).

The wing layering and "the engine never imports streamlit" are import-linter contracts in
pyproject.toml (`make lint` runs `lint-imports`); tests/test_structure.py checks there is no cycle.
"""
from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from .conftest import ROOT

PACKAGE = "opportunity_engine"


def _declared() -> set[str]:
    """Distribution names listed in requirements.txt and requirements-dev.txt, normalised."""
    names = set()
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / file).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                names.add(re.split(r"[<>=!~\[; ]", line)[0].lower().replace("_", "-"))
    return names


def _imported_top_level(paths: list[Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_imported_package_is_declared():
    paths = [*ROOT.glob("*.py"), *(ROOT / "pages").glob("*.py"), *(ROOT / PACKAGE).rglob("*.py"),
             *(ROOT / "tools").glob("*.py"), *(ROOT / "tests").glob("*.py")]
    local = {PACKAGE, "ui", "tools", "tests"} | {p.stem for p in ROOT.glob("*.py")}
    third_party = _imported_top_level(paths) - local - set(sys.stdlib_module_names) - {"__future__"}
    dists = packages_distributions()
    declared = _declared()
    undeclared = {name for name in third_party
                  if not any(d.lower().replace("_", "-") in declared for d in dists.get(name, [name]))}
    assert undeclared == set(), f"imported but not in requirements*.txt: {sorted(undeclared)}"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_the_lock_pins_every_requirement_at_its_listed_version():
    """`make` installs from requirements.lock only: a package added to requirements*.txt without
    `make lock` would silently be missing from a fresh install."""
    locked = _pins(ROOT / "requirements.lock")
    listed = _pins(ROOT / "requirements.txt") | _pins(ROOT / "requirements-dev.txt")
    assert listed and {name: locked.get(name) for name in listed} == listed
