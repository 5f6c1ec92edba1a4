"""The teacher's kit in a real browser (the real server, headless Chromium):
- a shipped lesson's link walks 6 steps with Next, each page opening with its settings;
- no chart or diagram text under 12 px on any page at 1280x720 (SVG text measured as drawn),
  in the normal and the presenter view;
- the presenter view folds the sidebar and keeps its flag in the link.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from core.concepts import available_concepts
from core.lessons import shipped_lesson
from tests.test_browser import PROJECTOR, browser, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser
READY = "[data-testid='stApp'][data-test-script-state='notRunning']"

# Rendered size of every text in charts (Vega SVG) and diagrams (Graphviz SVG): the computed
# font size times the SVG's scale on screen. Canvas charts (over 2,000 rows) are not measured.
FONT_JS = """
() => {
  const out = [];
  for (const t of document.querySelectorAll(
      "[data-testid='stVegaLiteChart'] svg text, [data-testid='stGraphVizChart'] svg text")) {
    if (!t.textContent.trim() || t.getBoundingClientRect().width === 0) continue;
    const m = t.getScreenCTM();
    const scale = m ? Math.hypot(m.a, m.b) : 1;
    const px = parseFloat(getComputedStyle(t).fontSize) * scale;
    out.push([t.textContent.trim().slice(0, 30), Math.round(px * 10) / 10]);
  }
  return out;
}
"""


def settle(page) -> None:
    page.wait_for_timeout(600)
    page.wait_for_selector(READY, timeout=300_000)
    page.wait_for_timeout(600)
    page.wait_for_selector(READY, timeout=300_000)


def widget_value(page, key: str) -> str | None:
    """The value a settings widget shows: a slider's handle, an input's text, a select's
    label."""
    box = page.locator(f".st-key-{key.replace('.', '-')}")
    if box.count() == 0:
        return None
    slider = box.locator("[role='slider']")
    if slider.count():
        return slider.first.get_attribute("aria-valuenow")
    field = box.locator("input, textarea")
    if field.count():
        return field.first.input_value()
    return box.first.inner_text()


def same(shown: str | None, value: str) -> bool:
    if shown is None:
        return False
    try:
        return float(shown) == float(value)
    except ValueError:
        return shown == value


def test_a_lesson_link_walks_six_steps_with_settings_restored(server, browser):  # noqa: F811
    name = "transformer_reads_a_sentence"
    lesson = shipped_lesson(name)
    page = browser.new_page(viewport={"width": PROJECTOR[0], "height": PROJECTOR[1]})
    try:
        first = lesson.steps[0]
        page.goto(f"{server}/{first.page}?lesson={name}&step=1", timeout=60_000)
        settle(page)
        for i, step in enumerate(lesson.steps[:6]):
            if i:
                page.get_by_role("button", name="Next →").click()
                settle(page)
            assert urlparse(page.url).path == f"/{step.page}", (i, page.url)
            banner = page.locator(".st-key-lesson_banner").inner_text()
            assert f"step {i + 1} of {len(lesson.steps)}" in banner
            assert step.say[:40] in banner
            query = parse_qs(urlparse(page.url).query)
            for key, value in step.settings.items():
                if key == "prompt":
                    shown = page.locator(".st-key-sidebar-prompt textarea").input_value()
                    assert shown == value
                    continue
                assert query.get(key) == [value], (key, query)
                assert same(widget_value(page, key), value), (key, widget_value(page, key))
            assert not page.locator("[data-testid='stException']").count()
    finally:
        page.close()


def _fonts(browser, url: str) -> list:  # noqa: F811
    page = browser.new_page(viewport={"width": PROJECTOR[0], "height": PROJECTOR[1]})
    try:
        page.goto(url, timeout=60_000)
        settle(page)
        page.mouse.wheel(0, 20_000)  # lazy content: scroll through once
        page.wait_for_timeout(500)
        return page.evaluate(FONT_JS)
    finally:
        page.close()


@pytest.mark.parametrize("concept", available_concepts(), ids=lambda c: c.slug)
def test_no_chart_text_under_12_px(server, browser, concept):  # noqa: F811
    small = [t for t in _fonts(browser, f"{server}/{concept.slug}") if t[1] < 11.95]
    assert not small, small[:8]


@pytest.mark.parametrize("slug", ["decoding", "scaling", "neuron"])
def test_presenter_view_has_larger_chart_text_and_a_folded_sidebar(server, browser, slug):  # noqa: F811
    texts = _fonts(browser, f"{server}/{slug}?present=1")
    assert texts and min(px for _, px in texts) >= 14.95
    page = browser.new_page(viewport={"width": PROJECTOR[0], "height": PROJECTOR[1]})
    try:
        page.goto(f"{server}/{slug}?present=1", timeout=60_000)
        settle(page)
        right = page.evaluate(
            "() => document.querySelector(\"[data-testid='stSidebar']\")"
            ".getBoundingClientRect().right"
        )
        assert right <= 1, f"the sidebar is open ({right} px)"
        # the presenter's style arrives with the page's elements: wait for it (at most 15 s)
        # rather than read the body between a rerun's removal and re-insertion of the style
        page.wait_for_function(
            "() => parseFloat(getComputedStyle(document.body).fontSize) >= 18", timeout=15_000
        )
        size = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 18
        assert "present=1" in page.url
    finally:
        page.close()
