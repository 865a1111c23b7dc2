"""The engine's shape (issue 11): no import cycle, not even through a lazy import inside a function."""
from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "opportunity_engine"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_imports() -> dict[str, set[str]]:
    """module → the engine modules it imports anywhere in its text (top level or inside a function)."""
    modules = {_module_name(p): p for p in ENGINE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rsplit(".", 1)[0]
                target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
                for alias in node.names:  # "from . import qia" names a module; "from .qia import x" the module qia
                    candidate = f"{target}.{alias.name}"
                    found.add(candidate if candidate in modules else target)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")
                       and not (modules[m].name == "__init__.py" and m == package)}
    return graph


def test_the_engine_has_no_import_cycle():
    graph = engine_imports()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != "open", "import cycle: " + " → ".join(path[path.index(nxt):] + [nxt])
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_scheme_record_the_plan_and_the_qia_never_import_the_workflow():
    graph = engine_imports()
    base = "opportunity_engine.delivery."
    assert {base + "plans", base + "qia", base + "schemes"} <= graph[base + "workflow"] | {base + "schemes"}
    for module in ("schemes", "plans", "qia", "tracking"):
        assert base + "workflow" not in graph[base + module], module
    assert base + "qia" not in graph[base + "schemes"]  # the old lazy import back from the record


def test_every_script_in_pages_is_a_registered_page():
    """Streamlit makes every pages/*.py routable (before st.navigation runs, a fresh server serves
    any of them), so a helper module there would become a page: helpers live beside ui.py."""
    import re

    root = ENGINE.parent
    registered = set(re.findall(r'st\.Page\("pages/(\w+)\.py"', (root / "app.py").read_text(encoding="utf-8")))
    scripts = {p.stem for p in (root / "pages").glob("*.py")}
    assert scripts == registered


def test_the_readme_module_map_matches_the_tree():
    """Every engine module has its line in the README's module map, and every line names a real file."""
    import re

    root = ENGINE.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Module map", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `([\w/]+\.py)`", section, re.M))
    modules = {p.relative_to(ENGINE).as_posix() for p in ENGINE.rglob("*.py") if p.name != "__init__.py"}
    front = {"app.py", "ui.py", "ui_workspace.py"}
    assert modules - listed == set(), "modules missing from the README's module map"
    assert listed - modules - front == set(), "README module map names files that do not exist"
    assert all((root / f).exists() for f in front & listed)
