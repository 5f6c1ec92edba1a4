"""The shared chart helpers: readable text on coloured cells, labels that never overlap,
diagrams that follow the theme, bars that keep every label."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest

from components.charts import (
    DARK_INK,
    LIGHT_INK,
    bar_chart,
    graph_colours,
    ink_for,
    place_labels,
    scheme_colour,
)


def test_ink_follows_the_scale_not_a_fixed_threshold():
    # the same value is dark on a wide domain and light when it is the domain's top
    assert ink_for([5.0], "orangered", (0.0, 20.0)) == [DARK_INK]
    assert ink_for([5.0], "orangered", (0.0, 5.0)) == [LIGHT_INK]
    assert ink_for([0.0, np.nan], "blues", (-0.2, 1.0)) == [DARK_INK, DARK_INK]
    assert scheme_colour("orangered", 1.0) == "#7f0000"
    assert scheme_colour("orangered", 0.0) == "#fff7ec"


def _boxes(x, y, labels, shown, side, width, height, char_px=6.6, line_px=14):
    span = lambda v, s: (v - v.min()) / (v.max() - v.min()) * s  # noqa: E731
    px, py = span(np.asarray(x, float), width), span(np.asarray(y, float), height)
    out = []
    for i in np.flatnonzero(shown):
        w = char_px * len(labels[i]) + 8
        out.append(
            {
                1: (px[i] + 6, py[i] - line_px / 2, px[i] + 6 + w, py[i] + line_px / 2),
                -1: (px[i] - 6 - w, py[i] - line_px / 2, px[i] - 6, py[i] + line_px / 2),
                2: (px[i] - w / 2, py[i] + 6, px[i] + w / 2, py[i] + 6 + line_px),
                -2: (px[i] - w / 2, py[i] - 6 - line_px, px[i] + w / 2, py[i] - 6),
            }[int(side[i])]
        )
    return out


def test_placed_labels_never_overlap_and_crowded_ones_are_hidden():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=60), rng.normal(size=60)
    labels = [f"word{i}" for i in range(60)]
    shown, side = place_labels(x, y, labels, width=300, height=300)
    assert 0 < shown.sum() < 60  # crowded: some hidden (the page says how many)
    boxes = _boxes(x, y, labels, shown, side, 300, 300)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
        assert a[0] >= -2 and a[2] <= 302  # inside the plot
    far = place_labels([0.0, 10.0], [0.0, 10.0], ["a", "b"])[0]
    assert far.all()


def test_diagrams_have_a_transparent_background_and_themed_text():
    from components.training import expression_dot
    from core import training as optim

    nodes = optim.expression_graph(1.0, -2.0, 0.5, 0.8, 0.1, 1.0)
    light, dark = (
        expression_dot(nodes, graph_colours("light")),
        expression_dot(nodes, graph_colours("dark")),
    )
    for dot, kind in ((light, "light"), (dark, "dark")):
        assert 'bgcolor="transparent"' in dot
        assert f'fontcolor="{graph_colours(kind)["text"]}"' in dot
    assert "#ffffff" not in dark and "#f8f9fa" not in dark  # no white panels in dark mode


def test_bar_chart_keeps_every_label():
    df = pd.DataFrame({"token": [f"t{i}" for i in range(10)], "cosine": np.linspace(1, 0, 10)})
    spec = bar_chart(df, "token", "cosine", "ten bars").to_dict()
    assert spec["encoding"]["y"]["axis"]["labelOverlap"] is False
    assert spec["height"] >= 20 * len(df)  # room for each label


def test_map_labels_one_per_word_even_with_a_repeated_index():
    from components.embeddings import labelled_points

    df = pd.DataFrame(
        {
            "x": [0.0, 1.0, 2.0, 3.0],
            "y": [0.0, 1.0, 0.0, 1.0],
            "word": list("abcd"),
            "group": list("gghh"),
        },
        index=[0, 1, 0, 1],
    )
    out, hidden = labelled_points(df)
    assert len(out) == 4 and out["word"].tolist() == list("abcd")
    assert hidden == int((out["label_side"] == 0).sum())


def test_each_map_label_is_drawn_by_exactly_one_layer():
    from components.embeddings import embedding_map_chart

    df = pd.DataFrame({"x": [0.0], "y": [0.0], "word": ["a"], "group": ["g"], "tokens": [1]})
    for side in (1, -1, 2, -2, 0):
        layers = embedding_map_chart(df.assign(label_side=side), "t").to_dict()["layer"]
        filters = [lyr["transform"][0]["filter"] for lyr in layers[1:]]
        assert all(f.startswith("datum.label_side == ") for f in filters)
        drawn = [f for f in filters if int(f.split("==")[1]) == side]
        assert len(drawn) == (0 if side == 0 else 1)


# Files whose charts other branches are rewriting at the time of writing: they still call
# st.altair_chart directly and are converted to draw_chart when those branches merge.
NOT_YET_CONVERTED: set[str] = set()


def test_fitted_charts_keep_their_own_height_and_theme_their_text():
    import altair as alt

    from components.charts import TEXT_INK, fitted

    bars = alt.Chart(pd.DataFrame({"n": [1, 2]})).mark_bar().encode(x="n:Q")
    layered = (bars + bars.mark_text()).properties(height=90)
    for theme in ("light", "dark"):
        spec = fitted(layered, theme).to_dict()
        # fit-x: the declared height is the plot's; axes and legends are added around it
        # (Streamlit's default "fit" squeezed them into 90 px and the bars vanished)
        assert spec["autosize"]["type"] == "fit-x"
        assert spec["height"] == 90
        assert spec["config"]["text"]["color"] == TEXT_INK[theme]
    assert TEXT_INK["light"] != TEXT_INK["dark"]


def test_every_chart_is_drawn_through_draw_chart():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    direct = [
        str(f.relative_to(root))
        for folder in ("pages", "components")
        for f in sorted((root / folder).glob("*.py"))
        if ".altair_chart(" in f.read_text()
        and str(f.relative_to(root)) not in NOT_YET_CONVERTED | {"components/charts.py"}
    ]
    assert not direct, f"st.altair_chart called directly (use charts.draw_chart): {direct}"


def test_needle_rows_keep_a_readable_height_for_any_number_of_lengths():
    from components.context_window import NEEDLE_ROW_PX, needle_chart
    from core.context_window import NeedleTrial

    trials = [
        NeedleTrial(n, n, d, "12345", "The secret number is 12345.", d < 0.5, 1.0)
        for n in (128, 256, 512, 1024, 2048)
        for d in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    spec = needle_chart(trials).to_dict()
    assert spec["height"] == {"step": NEEDLE_ROW_PX} and NEEDLE_ROW_PX >= 24


def test_logit_lens_cells_drop_words_when_too_narrow_and_thin_their_axis():
    from components.full_model import LENS_CELL_CHARS, lens_cell_min_px, lens_chart

    df = pd.DataFrame(
        {
            "layer": [0, 0, 1, 1],
            "position": ["0 a", "1 b"] * 2,
            "order": [0, 1] * 2,
            "p": [0.1, 0.9, 0.5, 1.0],
            "cell": ["a\n10%", "b\n90%", "c\n50%", "d\n100%"],
            "next in text": ["b", "c"] * 2,
            "top 1": ["x"] * 4,
        }
    )
    df["ink"] = ink_for(df["p"].to_numpy(), "blues", (0.0, 1.0))
    spec = lens_chart(df).to_dict()
    rect, text = spec["layer"]
    px = text["mark"]["fontSize"]
    assert px >= 12
    # a cell's words show only where LENS_CELL_CHARS monospace characters (0.6 em) fit
    assert lens_cell_min_px(px) >= LENS_CELL_CHARS * 0.6 * px
    assert f"bandwidth('x') >= {lens_cell_min_px(px)}" in text["mark"]["opacity"]["expr"]
    # two lines (token, probability) fit a row without overlapping the next
    assert (
        text["mark"]["lineHeight"] >= px
        and spec["height"]["step"] >= 2 * text["mark"]["lineHeight"]
    )
    assert rect["encoding"]["x"]["axis"]["labelOverlap"] == "parity"
    assert "datum.ink" in text["encoding"]["color"]["condition"]["test"]  # ink follows the scale


def test_map_words_use_the_theme_text_colour_and_dots_the_group():
    from components.embeddings import embedding_map_chart

    df = pd.DataFrame({"x": [0.0], "y": [0.0], "word": ["a"], "group": ["g"], "tokens": [1]})
    dots, *words = embedding_map_chart(df.assign(label_side=1), "t").to_dict()["layer"]
    assert dots["encoding"]["color"]["field"] == "group"
    assert all("color" not in w.get("encoding", {}) for w in words)


def test_bottom_legends_take_as_many_columns_as_fit_the_plot():
    from components.charts import fitting_columns

    expr = fitting_columns(["1.0e+19", "1.0e+25"], char_px=6, entry_px=30).to_dict()["expr"]
    assert expr == "max(1, floor(width / 72))"  # 7 characters of 6 px plus symbol and gap
    assert "/ 192)" in fitting_columns(["Chinchilla fit (Approach 3)"], 6, 30).to_dict()["expr"]


def test_bar_labels_take_the_ink_that_reads_on_their_bar():
    from components.charts import ink_on
    from components.pretraining_data import MEASURE_COLOURS, MEASURES, funnel_chart

    assert ink_on("#f08c00") == DARK_INK and ink_on("#1c7ed6") == LIGHT_INK
    df = pd.DataFrame(
        {"stage": ["raw", "raw"], "measure": MEASURES, "share": [1.0, 1.0], "kept": [9, 99]}
    )
    _, labels = funnel_chart(df).to_dict()["layer"]
    colour = labels["encoding"]["color"]
    assert colour["condition"]["value"] == ink_on(MEASURE_COLOURS.range[0])
    assert colour["value"] == ink_on(MEASURE_COLOURS.range[1]) == DARK_INK  # not white on orange


def test_token_chips_start_from_the_theme_background_and_keep_readable_ink():
    from components.charts import ink_on
    from components.tokens import token_strip_html

    for theme, neutral in (("light", "#ffffff"), ("dark", "#343a40")):
        html = token_strip_html(["a", "b", "c"], values=[0.0, 1.0, -1.0], theme=theme)
        assert f"background:{neutral}" in html  # no white chip on the dark theme
        for bg in (neutral, "#e8590c" if theme == "dark" else "#ff8737"):
            assert f"background:{bg};color:{ink_on(bg)}" in html


def test_rag_rank_cells_print_in_the_ink_of_their_colour():
    import json

    from components.rag import rank_chart

    df = pd.DataFrame(
        {
            "chunk": list("abc"),
            "id": [1, 2, 3],
            "method": ["BM25"] * 3,
            "rank": [1, 30, 900],
            "score": [1.0, 0.5, 0.1],
            "in top k": [True, True, True],
        }
    )
    spec = rank_chart(df).to_dict()
    rows = {r["rank"]: r["ink"] for r in next(iter(spec["datasets"].values()))}
    assert rows[1] == DARK_INK  # rank 1 is viridis' bright yellow: white did not read
    assert rows[900] == LIGHT_INK  # the worst rank is dark purple
    top = spec["layer"][0]["encoding"]["x"]["axis"]
    assert top["labelOverlap"] is False  # every method keeps its column name
    assert "bandwidth('x')" in top["labelLimit"]["expr"]  # ... cut to its own column
    assert top["labelAlign"] == "center"
    assert "datum.ink" in json.dumps(spec["layer"][1]["encoding"]["color"])


def test_draw_chart_calls_pass_only_what_it_takes():
    import ast
    from pathlib import Path

    allowed = {"width", "where", "key", "on_select", "selection_mode"}
    root = Path(__file__).resolve().parent.parent
    bad = []
    for f in [*(root / "pages").glob("*.py"), *(root / "components").glob("*.py")]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "draw_chart":
                bad += [
                    f"{f.name}:{node.lineno} {k.arg}" for k in node.keywords if k.arg not in allowed
                ]
    assert not bad, bad


def _vega_access_path(p: str) -> list[str]:
    """vega-util's `splitAccessPath` (the parser Vega-Lite applies to every field), ported
    line by line: raises where Vega throws ("Access path missing closing quote")."""
    path, n = [], len(p)
    q, b, s, i, j = None, 0, "", 0, 0

    def push():
        nonlocal s, i
        path.append(s + p[i:j])
        s, i = "", j + 1

    while j < n:
        c = p[j]
        if c == "\\":
            s += p[i:j]
            j += 1
            i = j
        elif c == q:
            push()
            q, b = None, -1
        elif q:
            pass
        elif i == b and c in "\"'":
            i, q = j + 1, c
        elif c == "." and not b:
            if j > i:
                push()
            else:
                i = j + 1
        elif c == "[":
            if j > i:
                push()
            b = i = j + 1
        elif c == "]":
            if not b:
                raise ValueError("Access path missing open bracket: " + p)
            if b > 0:
                push()
            b, i = 0, j + 1
        j += 1
    if b:
        raise ValueError("Access path missing closing bracket: " + p)
    if q:
        raise ValueError("Access path missing closing quote: " + p)
    if j > i:
        j += 1
        push()
    return path


def _fields(spec, out=None) -> list[str]:
    out = [] if out is None else out
    if isinstance(spec, list):
        for v in spec:
            _fields(v, out)
    elif isinstance(spec, dict):
        for k, v in spec.items():
            if k in ("datasets", "data"):
                continue
            if k == "field" and isinstance(v, str):
                out.append(v)
            elif k in ("groupby", "fold") and isinstance(v, list):
                out += [x for x in v if isinstance(x, str)]
            else:
                _fields(v, out)
    return out


def test_field_names_with_quotes_dots_and_brackets_reach_vega_as_one_column():
    from streamlit.testing.v1 import AppTest

    def script():
        import altair as alt
        import pandas as pd

        from components.charts import draw_chart

        names = ["model's answer", "accuracy at 0.5", "x[0]", "back\\slash", 'say "hi"']
        df = pd.DataFrame({n: [1.0, 2.0] for n in names} | {"plain": ["a", "b"]})
        bars = (
            alt.Chart(df)
            .mark_bar()
            .encode(
                x=alt.X("model's answer:Q"),
                y=alt.Y("plain:N", sort=alt.EncodingSortField("accuracy at 0.5", op="sum")),
                color="x[0]:Q",
                tooltip=[
                    alt.Tooltip("back\\slash", type="quantitative"),
                    alt.Tooltip('say "hi":Q'),
                ],
            )
        )
        folded = alt.Chart(df).transform_fold(["accuracy at 0.5", "x[0]"]).mark_point()
        folded = folded.encode(x="value:Q", y="key:N")
        draw_chart(bars + bars.mark_text().encode(text="model's answer:Q"))
        draw_chart(folded, width="content")

    at = AppTest.from_function(script, default_timeout=60).run()
    assert not at.exception, at.exception
    import json

    kinds = ("arrow_vega_lite_chart", "vega_lite_chart")
    specs = [json.loads(el.proto.spec) for kind in kinds for el in at.get(kind)]
    assert len(specs) == 2
    columns = {"model's answer", "accuracy at 0.5", "x[0]", "back\\slash", 'say "hi"'}
    columns |= {"plain", "key", "value"}
    seen = set()
    for spec in specs:
        for field in _fields(spec):
            path = _vega_access_path(field)  # raises where Vega refuses to draw the chart
            assert len(path) == 1 and path[0] in columns, (field, path)
            seen.add(path[0])
    assert seen == columns
    # the axis still reads the column's own name, not its escaped form
    x = specs[0]["layer"][0]["encoding"]["x"]
    assert x["title"] == "model's answer"


def test_raised_text_keeps_its_lines_apart():
    """readable() raises a text mark's size to the smallest readable one; its line height
    grows with it (9 px text on 10 px lines became 12 px text on 10 px lines: overlapped)."""
    from components.charts import readable

    df = pd.DataFrame({"x": [0], "t": ["a\nb"]})
    chart = (
        alt.Chart(df)
        .mark_text(fontSize=9, lineHeight=10, lineBreak="\n")
        .encode(x="x:Q", text="t:N")
    )
    mark = readable(chart, theme="light", px=12).to_dict()["mark"]
    assert mark["fontSize"] == 12
    assert mark["lineHeight"] == pytest.approx(10 * 12 / 9)


def _legends(spec) -> list[dict]:
    """Every legend block in a chart's spec, nested layers and concatenations included."""
    if isinstance(spec, dict):
        own = [spec["legend"]] if isinstance(spec.get("legend"), dict) else []
        return own + [x for v in spec.values() for x in _legends(v)]
    if isinstance(spec, list):
        return [x for v in spec for x in _legends(v)]
    return []


def _charts_with_bottom_legends():
    """Charts of pages 13-25 whose legend sits under the plot (built from small frames)."""
    from components import agents, limits, pretraining_data, pretraining_loop, rag
    from core.limits import YearResult

    curves = ["train (each step)", "train (fixed batches)", "validation"]
    yield (
        "loss",
        pretraining_loop.loss_chart(
            pd.DataFrame({"step": [0, 0, 0], "loss": [4.6, 4.6, 4.6], "curve": curves}), 4.6, 10
        ),
    )
    kinds = ["one worker's shard", "all-reduce average", "full batch"]
    yield (
        "data parallel",
        pretraining_loop.dp_chart(
            pd.DataFrame(
                {"gradient": ["w1", "avg", "full"], "norm": [1.0, 1.0, 1.0], "kind": kinds}
            )
        ),
    )
    parts = ["weights", "gradients", "optimizer (Adam m, v)"]
    yield (
        "memory",
        pretraining_loop.memory_chart(
            pd.DataFrame({"where": ["one GPU"] * 3, "part": parts, "GB": [1.0, 1.0, 2.0]}), 80
        ),
    )
    yield (
        "agent mask",
        agents.mask_chart(
            pd.DataFrame(
                {
                    "position": [0],
                    "token": ["{"],
                    "allowed": [3],
                    "forced": [False],
                    "model's first choice": ["{"],
                    "top p before mask": [0.5],
                    "top p after mask": [0.9],
                }
            ),
            49152,
        ),
    )
    yield (
        "years",
        limits.years_chart(
            YearResult(
                ("The latest year I know is", "It is now the year"),
                (2020, 2021),
                ((0.5, 0.5), (0.4, 0.6)),
                (1.0, 1.0),
            )
        ),
    )
    yield (
        "jaccard",
        pretraining_data.jaccard_chart(
            pd.DataFrame(
                {
                    "true Jaccard": [0.5, 0.6],
                    "MinHash estimate": [0.5, 0.6],
                    "pair": ["near", "random"],
                }
            )
        ),
    )
    yield (
        "recall",
        rag.recall_chart(
            pd.DataFrame(
                {
                    "k": [1, 1],
                    "recall@k": [0.5, 0.7],
                    "method": ["BM25 (keywords)", "MiniLM embeddings"],
                    "context tokens": [100, 100],
                }
            )
        ),
    )


def test_bottom_legends_of_pages_13_to_25_wrap_to_the_plot_width():
    # A bottom legend without `columns` lays its entries in one row: on a phone (390 px) the
    # last entries ran past the chart's edge and were cut ("valid...", "one w...").
    for name, chart in _charts_with_bottom_legends():
        bottom = [g for g in _legends(chart.to_dict()) if g.get("orient") == "bottom"]
        assert bottom, name
        for legend in bottom:
            assert "floor(width /" in legend.get("columns", {}).get("expr", ""), (name, legend)
