"""The teacher's kit in a real browser (the real server, headless Chromium):
- a shipped lesson's link walks 6 steps with Next, each page opening with its settings;
- no chart or diagram text under 12 px on any page at 1280x720 (SVG text measured as drawn),
  in the normal and the presenter view;
- the presenter view folds the sidebar and keeps its flag in the link;
- nothing cut at 1280 px in the normal view (clipped text, a table wider than its box, chart
  text outside its chart), and in the presenter view the explanation folded and the page's
  first graphic or button on the first 1280x720 screen.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from components.export import EXPORT_LABEL
from components.frame import INTRO_LABEL
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


CHARTS_DRAWN_JS = """
() => [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
  .filter(el => el.offsetParent !== null)  // not in a closed expander or another tab
  .every(el => el.querySelector('svg, canvas') && el.getBoundingClientRect().height > 20)
"""


def settle(page) -> None:
    page.wait_for_timeout(600)
    page.wait_for_selector(READY, timeout=300_000)
    page.wait_for_timeout(600)
    page.wait_for_selector(READY, timeout=300_000)


def settle_whole(page) -> None:
    """Until the page's script has run to its end (its last element, the export panel, is
    drawn; a run between two reruns looks finished too) and its charts are drawn."""
    settle(page)
    page.get_by_text(EXPORT_LABEL).first.wait_for(timeout=300_000)
    settle(page)
    page.wait_for_function(CHARTS_DRAWN_JS, timeout=30_000)


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


# Text cut at the projector's width, in the normal view (the sidebar open):
# 1. HTML text clipped by its own box (ellipsis, hidden overflow), main page and sidebar;
# 2. a data grid wider than its box (its last columns hidden behind a sideways scroll);
# 3. visible chart or diagram text drawn outside its chart (Vega hides overlapping axis labels
#    with opacity 0: those are left out). Diagrams in a box that scrolls sideways count too.
CUT_JS = """
() => {
  const bad = [];
  const scope = "[data-testid='stMain'] *, [data-testid='stSidebar'] *";
  for (const el of document.querySelectorAll(scope)) {
    if (el.closest("[data-testid='stCode'], pre, textarea, input, .katex-mathml")) continue;
    const cs = getComputedStyle(el);
    if (!['hidden', 'clip'].includes(cs.overflowX) && cs.textOverflow !== 'ellipsis') continue;
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && el.textContent.trim())
      bad.push('text cut: "' + el.textContent.trim().slice(0, 50) + '" (' + el.clientWidth +
               ' of ' + el.scrollWidth + ' px)');
  }
  for (const s of document.querySelectorAll("[data-testid='stDataFrame'] .dvn-scroller")) {
    if (s.clientWidth > 0 && s.scrollWidth > s.clientWidth + 2)
      bad.push('a table ' + s.scrollWidth + ' px wide in a ' + s.clientWidth + ' px box');
  }
  const charts = "[data-testid='stVegaLiteChart'], [data-testid='stGraphVizChart']";
  for (const host of document.querySelectorAll(charts)) {
    const svg = host.querySelector('svg');
    if (!svg) continue;
    const a = svg.getBoundingClientRect(), b = host.getBoundingClientRect();
    const left = Math.max(a.left, b.left), right = Math.min(a.right, b.right);
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (!t.textContent.trim() || r.width === 0 || getComputedStyle(t).opacity === '0') continue;
      if (r.left < left - 3 || r.right > right + 3)
        bad.push('chart text "' + t.textContent.trim().slice(0, 30) + '" at ' +
                 Math.round(r.left) + '-' + Math.round(r.right) + ' px, its chart ' +
                 Math.round(left) + '-' + Math.round(right));
    }
  }
  return [...new Set(bad)].slice(0, 10);
}
"""


@pytest.mark.parametrize("concept", available_concepts(), ids=lambda c: c.slug)
def test_nothing_cut_at_1280_px(server, browser, concept):  # noqa: F811
    page = browser.new_page(viewport={"width": PROJECTOR[0], "height": PROJECTOR[1]})
    try:
        page.goto(f"{server}/{concept.slug}", timeout=60_000)
        settle_whole(page)
        page.mouse.wheel(0, 20_000)  # lazy content: scroll through once
        page.wait_for_timeout(500)
        cut = page.evaluate(CUT_JS)
    finally:
        page.close()
    assert not cut, cut


# Where the page starts working in the presenter view: its first graphic (chart, diagram,
# table, image, token strip) or its first button, whichever comes first, and its first control.
FIRST_SCREEN_JS = """
() => {
  const main = document.querySelector("[data-testid='stMain']");
  const top = sel => {
    const e = [...main.querySelectorAll(sel)].find(e => e.getBoundingClientRect().height > 0
        && !e.closest("[data-testid='stExpanderDetails']"));
    return e ? e.getBoundingClientRect().top + main.scrollTop : null;
  };
  const graphic = top("[data-testid='stVegaLiteChart'], [data-testid='stGraphVizChart'], " +
      "[data-testid='stDataFrame'], [data-testid='stImage'], [data-testid='stDeckGlJsonChart'], " +
      ".token-strip, [data-testid='stButton']");
  const control = top("[data-testid='stSlider'], [data-testid='stSelectbox'], " +
      "[data-testid='stTextInput'], [data-testid='stTextArea'], [data-testid='stNumberInput'], " +
      "[data-testid='stRadio'], [data-testid='stButton'], [data-testid='stCheckbox'], " +
      "[data-testid='stMultiSelect'], [data-testid='stSelectSlider'], [data-testid='stButtonGroup']");
  return {graphic, control};
}
"""
FIRST_SCREEN_ROOM = 100  # px of the first screen the page's start must leave below it


@pytest.mark.parametrize("concept", available_concepts(), ids=lambda c: c.slug)
def test_presenter_view_starts_the_page_on_the_first_screen(server, browser, concept):  # noqa: F811
    page = browser.new_page(viewport={"width": PROJECTOR[0], "height": PROJECTOR[1]})
    try:
        page.goto(f"{server}/{concept.slug}?present=1", timeout=60_000)
        settle_whole(page)
        folded = page.locator("[data-testid='stExpander'] summary", has_text=INTRO_LABEL)
        assert folded.count() == 1, "the explanation is not folded in the presenter view"
        where = page.evaluate(FIRST_SCREEN_JS)
    finally:
        page.close()
    limit = PROJECTOR[1] - FIRST_SCREEN_ROOM
    assert where["control"] is not None and where["control"] < limit, where
    assert where["graphic"] is not None and where["graphic"] < limit, where
