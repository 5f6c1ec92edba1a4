"""AppTest helpers: every page is reached through app.py, on the real embedded model."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 240  # first use may convert the GGUF (about 30 s) on a fresh machine


def open_page(page_file: str, timeout: float = TIMEOUT) -> AppTest:
    """Start at the home page, then switch to `page_file` (e.g. 'pages/19_decoding.py')."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    assert not at.exception, at.exception
    at.switch_page(page_file).run()
    return at


def chart_specs(at: AppTest) -> list[dict]:
    """The Vega-Lite specs of every Altair chart on the page."""
    import json

    return [json.loads(el.proto.spec) for el in at.get("arrow_vega_lite_chart")] + [
        json.loads(el.proto.spec) for el in at.get("vega_lite_chart")
    ]


def chart_frames(at: AppTest) -> list[list]:
    """The datasets of every Altair chart, as lists of pandas DataFrames."""
    import pyarrow as pa

    frames = []
    for kind in ("arrow_vega_lite_chart", "vega_lite_chart"):
        for el in at.get(kind):
            dfs = []
            for ds in el.proto.datasets:
                reader = pa.ipc.open_stream(ds.data.data)
                dfs.append(reader.read_all().to_pandas())
            frames.append(dfs)
    return frames


def chart_data(at: AppTest, *columns: str, exact: bool = False):
    """The first chart dataset (a pandas DataFrame) that has all these columns (or exactly
    them, with exact=True): find a chart's data by what it holds, never by its position."""
    wanted = set(columns)
    found = [
        df
        for dfs in chart_frames(at)
        for df in dfs
        if (set(df.columns) == wanted if exact else wanted <= set(df.columns))
    ]
    if not found:
        shown = [list(df.columns) for dfs in chart_frames(at) for df in dfs]
        raise AssertionError(f"no chart has columns {sorted(wanted)}; charts have {shown}")
    return found[0]


def all_chart_data(at: AppTest, *columns: str) -> list:
    """Every chart dataset that has all these columns, in page order."""
    return [df for dfs in chart_frames(at) for df in dfs if set(columns) <= set(df.columns)]


# What a learner may type into any text field: blank, very long, emoji, CJK, right-to-left,
# zero-width characters, HTML and Markdown/LaTeX specials.
BAD_INPUTS = [
    "   \n\t ",
    "x" * 20_000,
    "I love 🍕 👩🏽‍💻",
    "我喜欢机器学习。",
    "مرحبا بالعالم",
    "zero\u200bwidth\u200d",
    "<script>alert('x')</script><b>bold</b>",
    "$x^2$ and $$\\frac{a}{b}$$ **not bold** # heading",
]


def metric(at: AppTest, label: str) -> str:
    """The value an st.metric with this label shows."""
    return next(m.value for m in at.metric if m.label == label)
