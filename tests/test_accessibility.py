"""WCAG 2.1 A and AA in Chromium: axe-core (the npm package `make test` installs) is injected into every
page as finance, as a CSU user in presentation mode and as an admin, and any violation fails the test
with the rule, the element and what to fix. NHS services must meet WCAG 2.1 AA.

axe reads the DOM: chart marks drawn on a canvas are outside its reach, which is why every chart's axis
and legend text is set to the NHS text colour by the app's Altair theme (ui._chart_theme)."""
from __future__ import annotations

import os

import pytest

from .browser_fixtures import settle, sign_in
from .conftest import ROOT

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
if not AXE.exists():
    if os.environ.get("CI"):
        raise RuntimeError("axe-core is missing: `make test` installs it with npm ci")
    pytest.skip("axe-core not installed (make test runs npm ci)", allow_module_level=True)

METRIC = "/metric?csu=EMA&specialty=300&metric=alos_non_elective"
PAGES = {
    "finance": ["/", "/explore", "/explore?csu=EMA", METRIC, "/shortlist", "/tracking", "/library", "/feedback",
                "/guide"],
    "csu": ["/", "/explore", METRIC, "/shortlist", "/tracking", "/library", "/guide"],
    "admin": ["/data", "/adoption", "/feedback"],
}
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async (tags) => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
        return r.violations.flatMap(v => v.nodes.map(n =>
            `${v.id} (${v.impact}): ${n.target.join(' ')}: ${n.failureSummary.split('\\n').slice(1, 2).join(' ')}`));
    }""", WCAG_AA)
    return list(found)


@pytest.mark.parametrize(("user", "mode"), [("finance", ""), ("csu", "present=1"), ("admin", "")])
def test_every_page_meets_wcag_21_aa(server, browser, user, mode):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    sign_in(page, server, user)
    problems = []
    for path in PAGES[user]:
        joined = path + (("&" if "?" in path else "?") + mode if mode else "")
        page.goto(server + joined)
        settle(page)
        assert page.locator('[data-testid="stException"]').count() == 0, joined
        problems += [f"{joined}: {v}" for v in violations(page)]
    context.close()
    assert not problems, "\n".join(problems)


def test_every_control_shows_where_the_keyboard_is(server, browser):
    """Tab through the sidebar: each focused link or control draws the app's focus ring (2.4.7)."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    sign_in(page, server, "finance")
    seen = 0
    for _ in range(12):
        page.keyboard.press("Tab")
        outline = page.evaluate("""() => { const e = document.activeElement;
            if (!e || e === document.body) return null;
            const s = getComputedStyle(e); return [e.tagName, s.outlineStyle, s.outlineWidth, s.outlineColor]; }""")
        if outline is None:
            continue
        tag, style, width, colour = outline
        assert style == "solid" and width == "3px" and colour == "rgb(0, 48, 135)", outline
        seen += 1
    context.close()
    assert seen >= 5
