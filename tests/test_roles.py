"""What each role may do is written once, as capabilities on the User (issue 11): this is the matrix."""
from __future__ import annotations

import pytest

from opportunity_engine.users import ROLES, User

# role → (is_admin, can_edit_schemes, has_finance_duties, can_manage_data, can_triage_feedback)
MATRIX = {
    "admin": (True, True, True, True, True),
    "finance": (False, True, True, False, False),
    "csu": (False, True, False, False, False),
    "viewer": (False, False, False, False, False),
}


@pytest.mark.parametrize("role", ROLES)
def test_each_roles_capabilities(role):
    user = User("u", "U", "", role, ("A",) if role == "csu" else ())
    assert (user.is_admin, user.can_edit_schemes, user.has_finance_duties, user.can_manage_data,
            user.can_triage_feedback) == MATRIX[role]
    assert user.role_label[0].isupper()  # a word for the sidebar ("CSU team"), not the code


def test_no_page_or_engine_module_compares_role_names():
    """Rights are asked by capability; a role name in a comparison is a rule written twice."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = [root / "app.py", root / "ui.py", *sorted((root / "pages").glob("*.py")),
             *sorted((root / "opportunity_engine").rglob("*.py"))]
    pattern = re.compile(r"\.role\s*(==|!=|in|not in)\s")
    offenders = [f"{f.relative_to(root)}:{n}" for f in files if f.name != "users.py"
                 for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert offenders == []
