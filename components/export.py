"""Export: every chart a page drew, as PNG, SVG and its data as CSV, and the page as one small
Markdown handout (its title, settings, link, figures and questions). Files are made only when
their button is pressed (Streamlit's deferred download data), so drawing a page costs nothing.

Charts are rendered by vl-convert (Vega's own renderer, run on the server): the same spec the
page shows, at a fixed width, so the files do not depend on the reader's browser. Streamlit's
chart toolbar offers a PNG too; it has no SVG or CSV.
"""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd
import streamlit as st

DRAWN = "export.charts"  # this run's charts: list of (title, chart)
MAX_CHARTS = 24  # per page and run (a fragment that redraws keeps adding until the next run)
EXPORT_WIDTH = 640  # px of the plot in exported pictures


EXPORT_LABEL = "Export: handout and figures"  # the last element of every page


def begin() -> None:
    """At the top of a page run: forget the previous run's charts."""
    st.session_state[DRAWN] = []


def remember(chart: alt.TopLevelMixin) -> None:
    """draw_chart calls this for every chart it draws."""
    drawn = st.session_state.get(DRAWN)
    if drawn is not None and len(drawn) < MAX_CHARTS:
        drawn.append((chart_title(chart, len(drawn) + 1), chart))


def chart_title(chart: alt.TopLevelMixin, number: int) -> str:
    title = getattr(chart, "title", alt.Undefined)
    text = getattr(title, "text", title)
    if isinstance(text, list):
        text = " ".join(map(str, text))
    return str(text) if isinstance(text, str) and text.strip() else f"Chart {number}"


def chart_frame(chart: alt.TopLevelMixin) -> pd.DataFrame:
    """The chart's data as one table: its own data, or its layers' data stacked with a
    'layer' column when they differ."""
    from components.charts import _parts

    frames = []
    for i, part in enumerate(_parts(chart)):
        data = getattr(part, "data", None)
        if isinstance(data, pd.DataFrame) and not any(data is f for _, f in frames):
            frames.append((i, data))
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0][1]
    return pd.concat([f.assign(layer=i) for i, f in frames], ignore_index=True)


def to_csv(chart: alt.TopLevelMixin) -> bytes:
    return chart_frame(chart).to_csv(index=False).encode("utf-8")


def _spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec with its data inline and a fixed width for a file."""
    fixed = chart
    if getattr(chart, "width", alt.Undefined) in (alt.Undefined, "container") and hasattr(
        chart, "mark"
    ):
        fixed = chart.properties(width=EXPORT_WIDTH)
    from components.charts import escape_fields

    with alt.data_transformers.enable("default", max_rows=None):
        spec = escape_fields(fixed.to_dict())  # a field name with a dot or bracket stays one
    spec.pop("usermeta", None)
    autosize = spec.get("autosize")
    if isinstance(autosize, dict) and autosize.get("type") == "fit-x":
        spec["autosize"] = {"type": "pad"}  # a file has no column to fit
    return spec


def to_svg(chart: alt.TopLevelMixin) -> bytes:
    import vl_convert as vlc

    return vlc.vegalite_to_svg(_spec(chart)).encode("utf-8")


def to_png(chart: alt.TopLevelMixin) -> bytes:
    import vl_convert as vlc

    return vlc.vegalite_to_png(_spec(chart), scale=2)


def _slug_name(text: str) -> str:
    keep = "".join(ch if ch.isalnum() else "-" for ch in text.lower())
    return "-".join(filter(None, keep.split("-")))[:40] or "chart"


def handout(
    title: str, summary: str, link: str, settings: dict, questions: list, drawn: list
) -> str:
    """The page as a small Markdown handout. Settings and questions are computed values and
    option labels; the page's own text never goes in unescaped."""
    from components.tokens import escape_markdown

    lines = [f"# {escape_markdown(title)}", "", escape_markdown(summary), ""]
    lines += [f"Open this view: <{link}>", "", "## Settings", ""]
    if settings:
        lines += ["| control | value |", "| --- | --- |"]
        for key, value in settings.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            lines.append(f"| `{key}` | {escape_markdown(str(shown))} |")
    else:
        lines.append("Every control at its default.")
    if drawn:
        lines += ["", "## Figures", ""]
        for name, chart in drawn:
            frame = chart_frame(chart)
            lines.append(
                f"- {escape_markdown(name)}: {len(frame):,} rows of "
                f"{', '.join(map(str, frame.columns[:8]))}"
            )
    if questions:
        lines += ["", "## Check yourself", ""]
        for i, q in enumerate(questions, 1):
            lines.append(f"{i}. {escape_markdown(q.text)}")
            lines += [f"   - {escape_markdown(o)}" for o in q.options]
            lines.append(f"   - *Answer:* {escape_markdown(q.answer)}. {escape_markdown(q.why)}")
    lines += ["", f"*LLM Explorer, {date.today().isoformat()}*", ""]
    return "\n".join(lines)


def export_panel(slug: str, title: str, summary: str, questions: list) -> None:
    """The page's "Export" expander: the handout, and each chart as PNG, SVG and CSV."""
    from components import url_state

    with st.expander(EXPORT_LABEL, icon=":material/download:"):
        settings = url_state.view_settings(slug)
        drawn = st.session_state.get(DRAWN) or []
        link = url_state.base_url().rstrip("/") + url_state.page_link(slug)
        st.download_button(
            "Download handout (.md)",
            data=lambda: handout(title, summary, link, settings, questions, list(drawn)),
            file_name=f"{slug}-handout.md",
            mime="text/markdown",
            key="export.handout",
            icon=":material/description:",
        )
        if not drawn:
            st.caption("This view draws no chart.")
        for i, (name, chart) in enumerate(drawn):
            st.caption(name)
            base = f"{slug}-{i + 1}-{_slug_name(name)}"
            a, b, c = st.columns(3)
            a.download_button(
                "PNG", lambda ch=chart: to_png(ch), f"{base}.png", "image/png", key=f"export.png{i}"
            )
            b.download_button(
                "SVG",
                lambda ch=chart: to_svg(ch),
                f"{base}.svg",
                "image/svg+xml",
                key=f"export.svg{i}",
            )
            c.download_button(
                "CSV", lambda ch=chart: to_csv(ch), f"{base}.csv", "text/csv", key=f"export.csv{i}"
            )


__all__ = ["begin", "export_panel", "handout", "remember", "to_csv", "to_png", "to_svg"]
