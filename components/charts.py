"""Shared chart helpers every page can use: draw a chart so that it fits its column, small
multiples that fit, readable text on coloured cells, long-form frames of matrices, generic bars.
Chart builders elsewhere are pure `data -> alt.Chart`.

Fitting: Streamlit does not tell the script how wide a column is, so charts are sized by the
browser. Every chart goes through `draw_chart`, which stretches single, layered and simply
stacked (vconcat) charts to their column's width only, keeping the plot's own height (axes and
legends added around it), and gives unstyled text the theme's colour; a Vega facet keeps its
fixed size and runs past a narrow column, so `draw_panels` draws one stretched chart per panel
in Streamlit columns instead (they stack on a phone). Category axes that can hold more labels
than fit use `THINNED_AXIS` and say so with `thinned_note`; bottom legends take
`fitting_columns`; text on a coloured cell takes `ink_for` / `ink_on`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

ORANGE, BLUE, GREY = "#e8590c", "#4c6ef5", "#adb5bd"  # one palette for the model pages
HEAT = alt.Scale(scheme="oranges", domain=[0, 1])
# Vega hides every other label (then every fourth...) of an axis that has more than fit, rather
# than drawing them over each other; pair it with `thinned_note` so readers know.
THINNED_AXIS = {"labelOverlap": "parity", "labelLimit": 90}

# Sampled stops of Vega's schemes, to pick text that stays readable on a cell whose
# fill follows the same scale (see `ink_for`).
SCHEMES = {
    # Vega's diverging blueOrange, as vega-scale defines it (11 stops)
    "blueorange": [
        "#134b85",
        "#2f78b3",
        "#5da2cb",
        "#9dcae1",
        "#d2e5ef",
        "#f2f0eb",
        "#fce0ba",
        "#fbbf74",
        "#e8932f",
        "#c5690d",
        "#994a07",
    ],
    "oranges": [
        "#fff5eb",
        "#fee6ce",
        "#fdd0a2",
        "#fdae6b",
        "#fd8d3c",
        "#f16913",
        "#d94801",
        "#a63603",
        "#7f2704",
    ],
    "orangered": [
        "#fff7ec",
        "#fee8c8",
        "#fdd49e",
        "#fdbb84",
        "#fc8d59",
        "#ef6548",
        "#d7301f",
        "#b30000",
        "#7f0000",
    ],
    "blues": [
        "#f7fbff",
        "#deebf7",
        "#c6dbef",
        "#9ecae1",
        "#6baed6",
        "#4292c6",
        "#2171b5",
        "#08519c",
        "#08306b",
    ],
    "viridis": [
        "#440154",
        "#472c7a",
        "#3b518b",
        "#2c718e",
        "#21908d",
        "#27ad81",
        "#5cc863",
        "#aadc32",
        "#fde725",
    ],
}
DARK_INK, LIGHT_INK = "#222222", "#ffffff"


# Graphviz colours per theme: a transparent background, text and edges that read on the page,
# fills that stay tinted but dark enough for light text in dark mode.
GRAPH_THEMES = {
    "light": {
        "text": "#212529",
        "edge": "#868e96",
        "node": "#f1f3f5",
        "blue": "#e7f5ff",
        "yellow": "#fff3bf",
        "orange": "#fff4e6",
        "green": "#ebfbee",
        "white": "#ffffff",
    },
    "dark": {
        "text": "#f1f3f5",
        "edge": "#adb5bd",
        "node": "#343a40",
        "blue": "#1c3a57",
        "yellow": "#4d3f00",
        "orange": "#5c3300",
        "green": "#1f4226",
        "white": "#2b3035",
    },
}


def theme_type() -> str:
    """ "light" or "dark": the reader's theme as the browser reports it (light when unknown,
    e.g. in tests or before the browser has told the server)."""
    try:
        kind = st.context.theme.type
    except (AttributeError, KeyError, RuntimeError):
        kind = None
    return kind if kind in GRAPH_THEMES else "light"


def graph_colours(kind: str | None = None) -> dict[str, str]:
    """The Graphviz palette for `kind` (default: the reader's theme)."""
    return GRAPH_THEMES[kind or theme_type()]


def graph_defaults(c: dict[str, str]) -> str:
    """DOT lines every diagram starts with: transparent background, themed text and edges."""
    return (
        f'bgcolor="transparent"; fontcolor="{c["text"]}";\n'
        f'node [fontname="Helvetica", fontsize=10, color="{c["edge"]}", '
        f'fontcolor="{c["text"]}"];\n'
        f'edge [color="{c["edge"]}", fontcolor="{c["text"]}", fontname="Helvetica", '
        "fontsize=9.5];"
    )


# Text marks without a colour of their own (bar values, point labels) are black in Vega, which
# vanishes on the dark theme: `fitted` gives them the theme's text colour.
TEXT_INK = {"light": "#31333f", "dark": "#e6e9ef"}


def fitted(chart: alt.TopLevelMixin, theme: str | None = None) -> alt.TopLevelMixin:
    """The chart as `draw_chart` sends it: stretched to its column's width only ("fit-x"), so
    the plot keeps its own height and axes, titles and legends are added around it (Streamlit's
    default "fit" squeezes them into the declared height: a short chart with a legend collapsed
    to a few pixels); unstyled text in the reader's theme (default: as the browser reports it)."""
    return readable(
        chart.properties(autosize=alt.AutoSizeParams(type="fit-x", contains="padding")), theme
    )


SVG_MAX_ROWS = 2_000  # larger charts stay on canvas (Streamlit's own choice): SVG would crawl


def _parts(chart) -> list:
    """The chart and every sub-chart of a layer, concat, facet or repeat."""
    out = [chart]
    for attr in ("layer", "hconcat", "vconcat", "concat"):
        sub = getattr(chart, attr, alt.Undefined)
        if isinstance(sub, list):
            for part in sub:
                out += _parts(part)
    spec = getattr(chart, "spec", alt.Undefined)
    if spec is not alt.Undefined and not isinstance(spec, dict):
        out += _parts(spec)
    return out


def _rows(parts: list) -> int:
    return sum(len(p.data) for p in parts if isinstance(getattr(p, "data", None), pd.DataFrame))


def _at_least(obj, attr: str, px: int) -> None:
    value = getattr(obj, attr, alt.Undefined)
    if isinstance(value, int | float) and not isinstance(value, bool) and value < px:
        setattr(obj, attr, px)


def readable(chart: alt.TopLevelMixin, theme: str | None = None, px: int | None = None):
    """No chart text under `px` (12 px; larger in the presenter view): axis, legend, header and
    title text by the chart's config, text marks and titles that set a smaller size of their own
    raised to it. Unstyled text in the theme's colour. Small charts render as SVG, so their
    text can be measured and exported as it reads."""
    from components import presenter

    px = px or presenter.chart_text_px()
    parts = _parts(chart)
    for part in parts:
        mark = getattr(part, "mark", alt.Undefined)
        if isinstance(mark, alt.MarkDef):
            size, line = mark.fontSize, mark.lineHeight
            _at_least(mark, "fontSize", px)
            if isinstance(size, int | float) and isinstance(line, int | float) and size < px:
                mark.lineHeight = line * px / size  # lines of raised text must not overlap
        title = getattr(part, "title", alt.Undefined)
        if isinstance(title, alt.TitleParams):
            _at_least(title, "fontSize", px)
    if _rows(parts) <= SVG_MAX_ROWS:
        chart = chart.properties(usermeta={"embedOptions": {"renderer": "svg"}})
    return (
        chart.configure_text(color=TEXT_INK[theme or theme_type()], fontSize=px)
        .configure_axis(labelFontSize=px, titleFontSize=px + 1)
        .configure_legend(labelFontSize=px, titleFontSize=px)
        .configure_header(labelFontSize=px, titleFontSize=px + 1)
        .configure_title(fontSize=px + 2)
    )


# Vega-Lite reads a field name as an access path: `.` and `[...]` reach into nested objects, a
# quote opens a string, a backslash escapes. Columns are flat names, so every one of these
# characters in a name is escaped, or the chart is not drawn ("Access path missing closing
# quote" for "model's answer") or silently reads nothing ("accuracy at 0.5").
_PATH_CHARS = re.compile(r"([\\.\[\]'\"])")
# keys whose value is a list of field names (transforms, selections)
_FIELD_LISTS = ("groupby", "fields", "fold", "pivot")


def escape_field(name: str) -> str:
    """A column name as a Vega-Lite field that reads exactly that column."""
    return _PATH_CHARS.sub(r"\\\1", name)


def escape_fields(spec):
    """The Vega-Lite dict `spec` with every field name escaped (see `escape_field`); a channel
    whose name changed keeps the column's own name as its title. Data are left alone."""
    if isinstance(spec, list):
        return [escape_fields(v) for v in spec]
    if not isinstance(spec, dict):
        return spec
    out = {}
    for key, value in spec.items():
        if key in ("datasets", "values", "data"):
            out[key] = value
        elif key == "field" and isinstance(value, str):
            out[key] = escape_field(value)
        elif key in _FIELD_LISTS and isinstance(value, list):
            out[key] = [escape_field(v) if isinstance(v, str) else v for v in value]
        elif key == "pivot" and isinstance(value, str):
            out[key] = escape_field(value)
        else:
            out[key] = escape_fields(value)
    field = spec.get("field")
    if isinstance(field, str) and out["field"] != field and "type" in spec and "title" not in spec:
        out["title"] = field
    return out


def _escaped(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """`chart`, whose spec (as Streamlit asks for it) has its field names escaped."""
    chart = chart.copy()
    to_dict = chart.to_dict
    # an instance attribute (SchemaBase.__setattr__ would store it as a chart property)
    object.__setattr__(chart, "to_dict", lambda *a, **k: escape_fields(to_dict(*a, **k)))
    return chart


def draw_chart(chart: alt.TopLevelMixin, width: str = "stretch", where=None, **kwargs):
    """st.altair_chart (or `where.altair_chart`, e.g. a column) sized to fit its column: the
    chart's width stretched to the column (axes and legend included), its height its own plus
    what its axes and legends need. `width="content"` keeps the spec's own size (only for charts
    known to be narrow). Other keyword arguments (key, on_select) go to st.altair_chart, whose
    result is returned. Every chart of the app goes through here (a test checks)."""
    from components import export

    target = where if where is not None else st
    if width == "content":
        chart = readable(chart.properties(autosize=alt.AutoSizeParams(type="pad")))
        export.remember(chart)  # export escapes the field names itself (export._spec)
        return target.altair_chart(_escaped(chart), width="content", **kwargs)
    chart = fitted(chart)
    export.remember(chart)
    return target.altair_chart(_escaped(chart), width=width, height="content", **kwargs)


def draw_panels(
    df: pd.DataFrame,
    panel: str,
    build: Callable[[pd.DataFrame, str], alt.Chart],
    columns: int = 2,
    gap: str = "small",
) -> None:
    """Small multiples that fit: `build(rows of one panel, panel name)` for each value of
    `df[panel]` (in order of appearance), `columns` to a row, each chart stretched to its
    Streamlit column. Used instead of a Vega facet, whose fixed size overflows narrow columns.
    Give every panel the same colour domain in `build` so they compare."""
    names = list(dict.fromkeys(df[panel]))
    for start in range(0, len(names), columns):
        cols = st.columns(columns, gap=gap)
        for col, name in zip(cols, names[start : start + columns], strict=False):
            draw_chart(build(df[df[panel] == name], name), where=col)


def fitting_columns(labels, char_px: float = 6.5, entry_px: float = 34) -> alt.ExprRef:
    """Legend `columns` for a bottom legend that never runs past the plot's right edge: as many
    entries of the longest label as fit in the plot's width (Vega's `width` signal, known only
    in the browser), at least one. A fixed count that fits a desktop is cut on a phone."""
    widest = max((len(str(x)) for x in labels), default=1) * char_px + entry_px
    return alt.expr(f"max(1, floor(width / {widest:.0f}))")


def thinned_note(n_labels: int, what: str = "tokens") -> str:
    """The sentence that goes under a chart using `THINNED_AXIS` with `n_labels` labels."""
    return (
        f"With {n_labels} {what}, a narrow screen cannot print every label: the chart then "
        "shows every other one (or fewer) instead of overlapping them; hover a cell for its "
        "full labels."
    )


def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64) / 255


def _luminance(rgb: np.ndarray) -> float:
    lin = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(lin @ np.array([0.2126, 0.7152, 0.0722]))


def scheme_colour(scheme: str, t: float) -> str:
    """The colour of `scheme` at `t` in [0, 1] (linear between the sampled stops)."""
    stops = np.array([_hex_rgb(c) for c in SCHEMES[scheme]])
    x = min(max(float(t), 0.0), 1.0) * (len(stops) - 1)
    lo = int(np.floor(x))
    hi = min(lo + 1, len(stops) - 1)
    rgb = stops[lo] + (stops[hi] - stops[lo]) * (x - lo)
    return "#" + "".join(f"{round(v * 255):02x}" for v in rgb)


def ink_on(colour: str) -> str:
    """White or near-black text, whichever contrasts more with a cell filled with `colour`
    ('#rrggbb')."""
    lum = _luminance(_hex_rgb(colour))
    # contrast ratio against white (L=1) and against the dark ink (L~0.016)
    return LIGHT_INK if (1.05 / (lum + 0.05)) > ((lum + 0.05) / 0.066) else DARK_INK


def ink_for(values: np.ndarray, scheme: str, domain: tuple[float, float]) -> list[str]:
    """Text colour per value for cells filled from `scheme` over `domain` (the same scale the
    chart uses): white or near-black, whichever contrasts more with that cell's fill."""
    lo, hi = domain
    span = (hi - lo) or 1.0
    out = []
    for v in np.asarray(values, dtype=np.float64):
        if not np.isfinite(v):
            out.append(DARK_INK)
            continue
        out.append(ink_on(scheme_colour(scheme, (v - lo) / span)))
    return out


def place_labels(
    x: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    width: float = 300,
    height: float = 300,
    char_px: float = 6.6,
    line_px: float = 14,
) -> tuple[np.ndarray, np.ndarray]:
    """Which point labels of a scatter can be printed without overlapping, and on which side.

    Placed greedily (in the given order, so put the important ones first) in a plot of
    `width` x `height` pixels, the smallest the chart is drawn at: a wider plot only spreads
    the points, so labels that do not overlap here never overlap there. Returns (shown, side)
    with side +1 for right of the point, -1 left, +2 above, -2 below (y grows upwards). Say
    how many were hidden.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def scaled(v: np.ndarray, size: float) -> np.ndarray:
        span = float(v.max() - v.min()) if v.size else 0.0
        return (v - v.min()) / span * size if span > 0 else np.full_like(v, size / 2)

    px, py = scaled(x, width), scaled(y, height)
    boxes: list[tuple[float, float, float, float]] = []
    # the points themselves are obstacles too (radius ~5 px)
    dots = [(a - 5, b - 5, a + 5, b + 5) for a, b in zip(px, py, strict=True)]
    shown = np.zeros(len(labels), dtype=bool)
    side = np.ones(len(labels), dtype=np.int8)

    def free(box: tuple[float, float, float, float], own: int) -> bool:
        x0, y0, x1, y1 = box
        if x0 < -2 or x1 > width + 2:
            return False
        hits = [o for o in boxes if x0 < o[2] and o[0] < x1 and y0 < o[3] and o[1] < y1]
        dot_hits = [
            i
            for i, o in enumerate(dots)
            if i != own and x0 < o[2] and o[0] < x1 and y0 < o[3] and o[1] < y1
        ]
        return not hits and not dot_hits

    for i, text in enumerate(labels):
        w = char_px * len(text) + 8
        candidates = {
            1: (px[i] + 6, py[i] - line_px / 2, px[i] + 6 + w, py[i] + line_px / 2),
            -1: (px[i] - 6 - w, py[i] - line_px / 2, px[i] - 6, py[i] + line_px / 2),
            2: (px[i] - w / 2, py[i] + 6, px[i] + w / 2, py[i] + 6 + line_px),
            -2: (px[i] - w / 2, py[i] - 6 - line_px, px[i] + w / 2, py[i] - 6),
        }
        for s, box in candidates.items():
            if free(box, i):
                boxes.append(box)
                shown[i], side[i] = True, s
                break
    return shown, side


def ink_encoding(field: str = "ink") -> alt.condition:
    """The text colour channel for a column filled by `ink_for`: a condition on the value, not
    a colour scale (a layered chart shares one colour scale, and a nominal one beside the
    cells' quantitative scale leaves the chart blank)."""
    return alt.condition(
        f"datum.{field} == '{LIGHT_INK}'", alt.value(LIGHT_INK), alt.value(DARK_INK)
    )


def matrix_frame(
    m: np.ndarray, name: str, rows: list[str], cols: list[str] | None = None
) -> pd.DataFrame:
    r, c = np.indices(m.shape)
    cols = cols or [str(i) for i in range(m.shape[1])]
    return pd.DataFrame(
        {
            "row": np.array(rows)[r.ravel()],
            "col": np.array(cols)[c.ravel()],
            "value": m.ravel().astype(np.float32),
            "panel": name,
        }
    )


def bar_chart(df: pd.DataFrame, label: str, value: str, title: str) -> alt.Chart:
    """Horizontal bars, one labelled row each: the height grows with the rows (22 px a bar) and
    labels are never thinned (`labelOverlap=False`), so every bar keeps its name."""
    return (
        alt.Chart(df, title=title)
        .mark_bar(color="#3182bd")
        .encode(
            y=alt.Y(
                f"{label}:N",
                sort=None,
                title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=160),
            ),
            x=alt.X(f"{value}:Q"),
            tooltip=[label, alt.Tooltip(f"{value}:Q", format=".3f")],
        )
        .properties(height=22 * len(df))
    )


def sources_line(names, sources) -> str:
    """Where each row of a table comes from, as one caption under it (a table's own source
    column pushed its other columns off a projector's width). Escaped: a hub id is typed by
    the learner. Rows with the same source are grouped."""
    from components.tokens import escape_markdown

    grouped: dict[str, list[str]] = {}
    for name, source in zip(names, sources, strict=True):
        grouped.setdefault(str(source), []).append(str(name))
    return "Sources: " + "; ".join(
        f"{', '.join(escape_markdown(n) for n in rows)}: {escape_markdown(src)}"
        for src, rows in grouped.items()
    )
