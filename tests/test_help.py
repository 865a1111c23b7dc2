"""Every control a user can operate carries contextual help (issue 5: help= on every control)."""
from __future__ import annotations

import ast

from .conftest import ROOT

WIDGETS = {"selectbox", "text_input", "text_area", "number_input", "toggle", "radio", "button", "date_input",
           "segmented_control", "file_uploader", "download_button", "form_submit_button", "popover", "multiselect",
           "checkbox", "slider"}


def test_every_control_has_help():
    missing = []
    for path in [ROOT / "app.py", ROOT / "ui.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WIDGETS:
                if not any(k.arg == "help" for k in node.keywords):
                    missing.append(f"{path.name}:{node.lineno} {node.func.attr}")
    assert not missing, "controls without help=: " + ", ".join(missing)
