"""Export: every chart a page draws comes out as a PNG, a valid SVG and a CSV of its data, and
the page as a Markdown handout with its settings and link (AppTest, then the files opened)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from components import export
from tests.apptest_util import open_page


def drawn(at):
    charts = at.session_state[export.DRAWN]
    assert charts, "the page remembered no chart"
    return charts


@pytest.mark.parametrize("page", ["pages/19_decoding.py", "pages/02_layers.py"])
def test_every_chart_exports_png_svg_and_csv(page):
    at = open_page(page)
    assert not at.exception
    charts = drawn(at)
    labels = [b.label for b in at.get("download_button")]
    assert labels.count("PNG") == labels.count("SVG") == labels.count("CSV") == len(charts)
    for _, chart in charts[:3]:
        png = export.to_png(chart)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        root = ET.fromstring(export.to_svg(chart))
        assert root.tag.endswith("svg")
        assert root.findall(".//{http://www.w3.org/2000/svg}text") or root.findall(".//text")
        table = pd.read_csv(io.BytesIO(export.to_csv(chart)))
        assert list(table.columns) == [str(c) for c in export.chart_frame(chart).columns]
        assert len(table) == len(export.chart_frame(chart))


def test_the_playground_on_page_02_exports_its_picture():
    at = open_page("pages/02_layers.py")
    boundary = [c for _, c in drawn(at) if {"x", "y", "p"} <= set(export.chart_frame(c).columns)]
    assert boundary, "the playground's decision boundary was not remembered"
    assert export.to_png(boundary[0])[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.fromstring(export.to_svg(boundary[0]))
    assert len(list(root.iter())) > 100  # the boundary's cells and the points are drawn


def test_the_handout_carries_the_settings_and_the_link():
    at = open_page("pages/19_decoding.py")
    at.slider(key="decoding.temperature").set_value(1.5).run()
    at.button(key="lesson.add").click().run()  # the app's own capture of this view
    settings = at.session_state["lesson.draft"][-1].settings
    assert settings == {"decoding.temperature": "1.5"}
    text = export.handout(
        "19 · Decoding",
        "Greedy, beam.",
        "http://x/decoding?decoding.temperature=1.5",
        settings,
        [],
        drawn(at),
    )
    assert "| `decoding.temperature` | 1\\.5 |" in text
    assert "<http://x/decoding?decoding.temperature=1.5>" in text
    assert "## Figures" in text
    assert any(b.label == "Download handout (.md)" for b in at.get("download_button"))
