"""The live playground, a shared view (pages 02, 04 and 05 embed it): a small network trained on
2-D data while the learner watches, with its controls, decision boundary and loss curves."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import replace

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import StopException

from components.charts import draw_chart
from components.jobs import after_stop, stopped_by_header
from core import layers as pgc

NEG = np.array([245, 147, 34], dtype=np.float32)  # TensorFlow Playground's orange
POS = np.array([8, 119, 189], dtype=np.float32)  # and blue
WHITE = np.array([255, 255, 255], dtype=np.float32)
REDRAW_S = 0.15  # while playing, a redraw is requested every 150 ms (at most 6.7 a second)
TRAIN_BUDGET_S = 0.03  # training time per redraw, so the redraw rate holds on a busy machine
TEST_RING = "#7048e8"  # violet: reads on the orange/white/blue plane and on either theme
PLAY_CPU_SHARE = 0.35  # while playing, a session's redraws use at most this share of a core
# Streamlit's own CPU per redraw outside the fragment, which the fragment cannot time: starting
# the rerun and sending the elements, plus serving each picture to the browser. On a busy
# 2-core machine bench/playground_bench.py measured 9 ms a redraw with 4 pictures and 16 ms
# with 8; the pacing adds this estimate to the work it times itself.
STREAMLIT_RERUN_S = 0.002
STREAMLIT_PICTURE_S = 0.002


def streamlit_cpu(pictures: int) -> float:
    """Estimated CPU seconds Streamlit spends on a redraw with this many pictures, outside it."""
    return STREAMLIT_RERUN_S + STREAMLIT_PICTURE_S * pictures


def pause_after(cpu_s: float, clock_s: float | None = None, share: float = PLAY_CPU_SHARE) -> float:
    """Seconds to rest after a redraw that used `cpu_s` of the server's CPU and took `clock_s`
    on the clock (the same by default), so that the CPU stays at most `share` of the wall time
    from this redraw's start to the next one's. The redraw timer keeps firing meanwhile, but a
    timed redraw that comes during a run waits for it (rest included) to end."""
    clock = max(0.0, cpu_s) if clock_s is None else clock_s
    return max(0.0, max(0.0, cpu_s) / share - clock)


ORANGE_BLUE = alt.Scale(
    domain=[0, 0.5, 1], range=["#f59322", "#ffffff", "#0877bd"], interpolate="rgb"
)


# ---- pure chart builders ------------------------------------------------------------------


def heat_rgb(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] -> an RGB image: orange for negative, white at 0, blue for positive."""
    v = np.clip(values, -1, 1)[..., None]
    rgb = np.where(v >= 0, WHITE + (POS - WHITE) * v, WHITE + (NEG - WHITE) * -v)
    return np.flipud(rgb).astype(np.uint8)  # row 0 of the grid is the bottom of the plane


def neuron_image(values: np.ndarray) -> np.ndarray:
    """A hidden neuron over the plane, scaled by its own largest magnitude."""
    scale = float(np.abs(values).max()) or 1.0
    return heat_rgb(values / scale)


def montage(images: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Small RGB heatmaps stacked top to bottom as one RGBA picture per layer, so an animation
    frame costs the browser a few image fetches instead of dozens. The gaps are transparent:
    the page's own background shows through them in the light and the dark theme."""
    h, w = images[0].shape[:2]
    out = np.zeros((len(images) * (h + gap) - gap, w, 4), np.uint8)
    for i, img in enumerate(images):
        out[i * (h + gap) : i * (h + gap) + h, :, :3] = img
        out[i * (h + gap) : i * (h + gap) + h, :, 3] = 255
    return out


def boundary_image(
    output: np.ndarray, data: pgc.Dataset, show_test: bool = True, size: int = 340
) -> np.ndarray:
    """The decision boundary and points as a picture: redrawn several times a second while
    training plays, where re-rendering a 2,000-mark Vega chart would take longer than a tick."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(heat_rgb(2 * output - 1)).resize((size, size), Image.BILINEAR)
    img = Image.blend(Image.new("RGB", img.size, "white"), img, 0.8)
    draw = ImageDraw.Draw(img)
    splits = [(data.x_train, data.y_train, "white")]
    if show_test:
        splits.append((data.x_test, data.y_test, TEST_RING))
    for xy, labels, outline in splits:
        px = (xy[:, 0] + pgc.DOMAIN) / (2 * pgc.DOMAIN) * size
        py = (1 - (xy[:, 1] + pgc.DOMAIN) / (2 * pgc.DOMAIN)) * size
        for x, y, label in zip(px, py, labels, strict=True):
            fill = tuple(int(c) for c in (POS if label > 0.5 else NEG))
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=fill, outline=outline)
    return np.asarray(img)


def boundary_chart(
    output: np.ndarray, grid: np.ndarray, data: pgc.Dataset, show_test: bool = True
) -> alt.Chart:
    """P(class 1) over the plane as a heatmap, with training points (filled) and test points."""
    step = float(grid[1] - grid[0])
    gx, gy = np.meshgrid(grid, grid)
    cells = pd.DataFrame(
        {
            "x": gx.ravel() - step / 2,
            "x2": gx.ravel() + step / 2,
            "y": gy.ravel() - step / 2,
            "y2": gy.ravel() + step / 2,
            "p": output.ravel().round(3),
        }
    )
    heat = (
        alt.Chart(cells)
        .mark_rect(opacity=0.8)
        .encode(
            x=alt.X("x:Q", scale=alt.Scale(domain=[-6, 6]), title=None),
            x2="x2",
            y=alt.Y("y:Q", scale=alt.Scale(domain=[-6, 6]), title=None),
            y2="y2",
            color=alt.Color(
                "p:Q",
                scale=ORANGE_BLUE,
                title="P(blue)",
                legend=alt.Legend(orient="bottom", direction="horizontal", gradientLength=110),
            ),
        )
    )
    frames = [
        pd.DataFrame(
            {
                "x": data.x_train[:, 0],
                "y": data.x_train[:, 1],
                "label": data.y_train,
                "split": "train",
            }
        )
    ]
    if show_test:
        frames.append(
            pd.DataFrame(
                {
                    "x": data.x_test[:, 0],
                    "y": data.x_test[:, 1],
                    "label": data.y_test,
                    "split": "test",
                }
            )
        )
    points = (
        alt.Chart(pd.concat(frames))
        .mark_point(filled=True, size=28, clip=True)  # noisy points beyond ±6 stay inside
        .encode(
            x="x:Q",
            y="y:Q",
            color=alt.Color("label:Q", scale=ORANGE_BLUE, legend=None),
            stroke=alt.Stroke(
                "split:N",
                scale=alt.Scale(domain=["train", "test"], range=["#ffffff", TEST_RING]),
                title="points",
                legend=alt.Legend(orient="bottom"),
            ),
            shape=alt.Shape(
                "split:N", scale=alt.Scale(domain=["train", "test"], range=["circle", "square"])
            ),
        )
    )
    return (heat + points).resolve_scale(color="independent").properties(height=320)


def loss_frame(train: tuple[float, ...], test: tuple[float, ...]) -> pd.DataFrame:
    """Train and test loss per epoch, thinned to at most 150 epochs per curve (the first and
    the latest always kept); `last` marks the latest epoch, drawn as a dot."""
    keep = np.unique(np.linspace(0, len(train) - 1, min(len(train), 150)).astype(int))
    df = pd.concat(
        [
            pd.DataFrame({"epoch": keep, "loss": np.asarray(train)[keep], "set": "train"}),
            pd.DataFrame({"epoch": keep, "loss": np.asarray(test)[keep], "set": "test"}),
        ],
        ignore_index=True,
    )
    df["last"] = df["epoch"] == keep[-1]
    return df[np.isfinite(df["loss"])]


LOSS_DOT_AREA = 50  # px²: a circle of radius 4 px
LOSS_DOT_PAD = 8  # px of domain above the highest loss and below the lowest


def loss_chart(
    df: pd.DataFrame, cap: int | None = None, title: str = "loss (binary cross-entropy)"
) -> alt.LayerChart:
    """Train and test loss per epoch; the latest values are dots, so the chart shows something
    from epoch 0 (a line needs two epochs). The dots come from the data (`last`), so the spec
    stays the same while the curves grow."""
    x_scale = alt.Scale(domain=[0, cap]) if cap else alt.Undefined
    base = alt.Chart(df, title=alt.Title(title, fontSize=12)).encode(
        x=alt.X("epoch:Q", scale=x_scale),
        # padding: the domain grows by a dot's radius and more, so the dot of the highest loss
        # (at epoch 0, the only values) is drawn inside the plot, not half above its top
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=True, padding=LOSS_DOT_PAD)),
        color=alt.Color(
            "set:N", scale=alt.Scale(domain=["train", "test"], range=["#868e96", "#e8590c"])
        ),
        tooltip=["set", "epoch", alt.Tooltip("loss:Q", format=".3f")],
    )
    last = base.transform_filter("datum.last").mark_circle(size=LOSS_DOT_AREA)
    return (base.mark_line() + last).properties(height=180)


@functools.lru_cache(maxsize=16)  # tiny and bounded: a few kB of JSON per (cap, title)
def _loss_spec(cap: int | None, title: str) -> str:
    spec = loss_chart(loss_frame((1.0,), (1.0,)), cap, title).to_dict()
    for k in ("data", "datasets"):
        spec.pop(k, None)
    return json.dumps(spec)


def loss_spec(cap: int | None = None, title: str = "loss (binary cross-entropy)") -> dict:
    """loss_chart's Vega-Lite spec without its data, built once per (cap, title): Altair
    validates a spec against its schema on every to_dict (16 ms here), which a redraw several
    times a second should not pay, and an unchanged spec lets the browser update only the
    data instead of re-embedding the chart."""
    return json.loads(_loss_spec(cap, title))


# ---- the playground widget ----------------------------------------------------------------


def _controls(
    prefix: str, d: pgc.PlaygroundConfig, show: set[str]
) -> tuple[pgc.PlaygroundConfig, bool]:
    """The Playground's controls; every one is bound to the URL so a copied link reopens it."""
    q = "query-params"
    values: dict = {}
    # Two rows of controls so that the plane fits on a projector's first screen; the settings
    # one changes less often (noise, split, regularization) sit in a popover.
    c1, c2, c3, c4 = st.columns(4)
    if "data" in show:
        values["dataset"] = c1.selectbox(
            "Dataset",
            pgc.DATASETS,
            index=pgc.DATASETS.index(d.dataset),
            key=f"{prefix}.dataset",
            bind=q,
        )
    extra = {"data", "regularization"} & show
    more = c1.popover("Data and regularization", width="stretch") if extra else None
    if "data" in show:
        values["noise"] = more.slider("Noise (%)", 0, 50, d.noise, 5, key=f"{prefix}.noise", bind=q)
        values["train_ratio"] = more.slider(
            "Training data (%)", 10, 90, d.train_ratio, 10, key=f"{prefix}.ratio", bind=q
        )
    if "regularization" in show:
        values["regularization"] = more.selectbox(
            "Regularization",
            pgc.REGULARIZATIONS,
            index=pgc.REGULARIZATIONS.index(d.regularization),
            key=f"{prefix}.reg",
            bind=q,
        )
        values["reg_rate"] = more.select_slider(
            "Regularization rate", pgc.REG_RATES, d.reg_rate, key=f"{prefix}.reg_rate", bind=q
        )
    if "features" in show:
        chosen = c2.multiselect(
            "Input features",
            pgc.FEATURES,
            default=list(d.features),
            key=f"{prefix}.features",
            bind=q,
        )
        values["features"] = tuple(f for f in pgc.FEATURES if f in chosen)
    if "network" in show:
        values["activation"] = c3.selectbox(
            "Activation",
            pgc.ACTIVATIONS,
            index=pgc.ACTIVATIONS.index(d.activation),
            key=f"{prefix}.activation",
            bind=q,
        )
        depth = c2.slider(
            "Hidden layers", 0, pgc.MAX_LAYERS, len(d.hidden), key=f"{prefix}.depth", bind=q
        )
        widths = []
        cols = c3.columns(3)
        for i in range(depth):
            default = d.hidden[i] if i < len(d.hidden) else 4
            widths.append(
                cols[i % 3].number_input(
                    f"Layer {i + 1}",
                    1,
                    pgc.MAX_NEURONS,
                    default,
                    key=f"{prefix}.width{i + 1}",
                    bind=q,
                )
            )
        values["hidden"] = tuple(int(w) for w in widths)
    if "training" in show:
        values["learning_rate"] = c4.select_slider(
            "Learning rate", pgc.LEARNING_RATES, d.learning_rate, key=f"{prefix}.lr", bind=q
        )
        values["batch_size"] = c4.slider(
            "Batch size", 1, 30, d.batch_size, key=f"{prefix}.batch", bind=q
        )
    values["show_test"] = c1.checkbox("Show test data", True, key=f"{prefix}.show_test")
    values["seed"] = st.session_state.setdefault(f"{prefix}.seed", d.seed)
    if not values.get("features", True):
        st.warning("Pick at least one input feature; using x and y meanwhile.")
        values["features"] = ("x", "y")
    show_test = values.pop("show_test")
    return replace(d, **values), show_test


def _sync(prefix: str, config: pgc.PlaygroundConfig) -> pgc.Playground:
    """The session's network: rebuilt when data or shape change, retuned otherwise."""
    key = f"{prefix}.trainer"
    pg: pgc.Playground | None = st.session_state.get(key)
    if pg is None or pg.config.structure() != config.structure():
        pg = pgc.Playground(config)
        st.session_state[key] = pg
        st.session_state[f"{prefix}.playing"] = False
    elif pg.config != config:
        pg.retune(config)
    return pg


def _buttons(prefix: str, pg: pgc.Playground, cap: int) -> None:
    playing_key = f"{prefix}.playing"

    def toggle() -> None:
        st.session_state[playing_key] = not st.session_state.get(playing_key, False)

    def step() -> None:
        st.session_state[playing_key] = False
        if pg.epoch < cap:
            pg.train_epochs(1)

    def reset() -> None:
        st.session_state.pop(f"{prefix}.trainer", None)

    def regenerate() -> None:
        st.session_state[f"{prefix}.seed"] = st.session_state.get(f"{prefix}.seed", 0) + 1

    def finish() -> None:
        st.session_state[playing_key] = False
        pg.train_epochs(max(0, cap - pg.epoch))

    playing = st.session_state.get(playing_key, False)
    b = st.columns([1, 1, 1, 1.4, 1.6, 2])
    b[0].button(
        "Pause" if playing else "Play",
        key=f"{prefix}.play",
        on_click=toggle,
        icon=":material/pause:" if playing else ":material/play_arrow:",
        type="primary",
        disabled=pg.epoch >= cap and not playing,
    )
    b[1].button("Step", key=f"{prefix}.step", on_click=step, help="Train one epoch.")
    b[2].button("Reset", key=f"{prefix}.reset", on_click=reset, help="Fresh random weights.")
    b[3].button(
        "Regenerate",
        key=f"{prefix}.regen",
        on_click=regenerate,
        help="Draw a new sample of the dataset.",
    )
    b[4].button(
        f"Train to {cap}",
        key=f"{prefix}.finish",
        on_click=finish,
        help=f"Run the remaining epochs at once (at most {cap}).",
    )
    b[5].slider(
        "Epochs per redraw (at most)",
        1,
        10,
        3,
        key=f"{prefix}.speed",
        help=f"Each redraw trains at most this many epochs and stops after the first "
        f"epoch that passes {TRAIN_BUDGET_S * 1000:.0f} ms, so the animation stays "
        f"smooth on a busy machine.",
    )


def _draw(prefix: str, pg: pgc.Playground, cap: int, show_test: bool, playing: bool) -> int:
    """The network, the plane, the metrics and the loss curves; returns how many pictures it
    sent (each one the browser fetches from the server)."""
    snap = pg.snapshot()
    if pg.diverged:
        st.warning("The loss became infinite: the learning rate is too large. Lower it and reset.")
    layers = len(snap.neurons)
    cols = st.columns([1] * (1 + layers) + [max(3, layers + 1), 1.3])
    with cols[-1]:  # beside the plane, so the first screen holds controls and picture
        st.metric(f"Epoch (of {cap})", snap.epoch)  # "123 / 300" would not fit the column
        st.metric("Training loss", f"{snap.train_loss[-1]:.3f}")
        st.metric("Test loss", f"{snap.test_loss[-1]:.3f}")
        st.metric("Training accuracy", f"{snap.train_accuracy:.1%}")
        st.metric("Test accuracy", f"{snap.test_accuracy:.1%}")
    with cols[0]:
        st.caption("Features: " + ", ".join(pg.config.features))
        st.image(montage([heat_rgb(np.tanh(f / 3)) for f in snap.inputs]), width=54)
    for i, acts in enumerate(snap.neurons):
        with cols[1 + i]:
            st.caption(f"Layer {i + 1}: {len(acts)} neurons")
            st.image(montage([neuron_image(a) for a in acts]), width=54)
    with cols[-2]:
        if playing:  # a picture while animating; the interactive chart once paused
            st.image(
                boundary_image(snap.output, pg.data, show_test),
                width="stretch",
                caption="x and y from -6 to 6; white rings: training, violet: test points",
            )
        else:
            draw_chart(
                boundary_chart(snap.output, snap.grid, pg.data, show_test),
                key=f"{prefix}.boundary",
                width="stretch",
            )
    st.vega_lite_chart(
        loss_frame(snap.train_loss, snap.test_loss), loss_spec(cap), key=f"{prefix}.loss"
    )
    return 1 + layers + (1 if playing else 0)


ALL_CONTROLS = frozenset({"data", "features", "network", "training", "regularization"})
DEFAULT_CONFIG = pgc.PlaygroundConfig()


def playground(
    prefix: str,
    defaults: pgc.PlaygroundConfig = DEFAULT_CONFIG,
    show: frozenset[str] = ALL_CONTROLS,
    cap: int = pgc.EPOCH_CAP,
) -> pgc.Playground:
    """TensorFlow Playground in a page: controls, buttons and the animated network."""
    config, show_test = _controls(prefix, defaults, set(show))
    pg = _sync(prefix, config)
    _buttons(prefix, pg, cap)
    playing_key = f"{prefix}.playing"
    playing = st.session_state.get(playing_key, False)

    @st.fragment(run_every=REDRAW_S if playing else None)
    def live() -> None:
        if playing and not st.session_state.get(playing_key, False):
            st.rerun()  # stopped since the timer started (Pause, the cap, the header's Stop)
        try:
            _live()
            if st.session_state.get(playing_key, False):
                st.empty()  # after the rest: a point where the header's Stop is seen here
        except StopException:
            if stopped_by_header():  # end Play, as Pause does (a click's new run plays on)
                after_stop(lambda: st.session_state.update({playing_key: False}))
            raise

    def _live() -> None:
        now_playing = st.session_state.get(playing_key, False)
        start, cpu_start = time.perf_counter(), time.thread_time()
        if now_playing:
            pg.train_epochs(
                min(st.session_state.get(f"{prefix}.speed", 3), cap - pg.epoch),
                budget_s=TRAIN_BUDGET_S,
            )
            if pg.epoch >= cap or pg.diverged:
                st.session_state[playing_key] = False
                st.rerun()  # the whole page, so the timer stops and Play comes back
        cpu_trained = time.thread_time()
        pictures = _draw(prefix, pg, cap, show_test, now_playing)
        if now_playing:
            count = st.session_state[f"{prefix}.redraws"] = (
                st.session_state.get(f"{prefix}.redraws", 0) + 1
            )
            # The share of a core is CPU time: on a busy machine the clock also counts the
            # time this thread waited for a core, which is rest for the server already.
            cpu_done = time.thread_time()
            clock = time.perf_counter() - start
            rest = pause_after(cpu_done - cpu_start + streamlit_cpu(pictures), clock)
            st.caption(
                f"Redraw {count}: training {1000 * (cpu_trained - cpu_start):.0f} ms and "
                f"drawing {1000 * (cpu_done - cpu_trained):.0f} ms of the server's CPU "
                f"({1000 * clock:.0f} ms on the clock; Streamlit "
                f"adds about {1000 * streamlit_cpu(pictures):.0f} ms), "
                + (
                    f"then {1000 * rest:.0f} ms of rest."
                    if rest >= 0.0005
                    else f"and no rest: that CPU is under {PLAY_CPU_SHARE:.0%} of the clock."
                )
            )
            time.sleep(rest)  # pacing: one learner's Play never holds a whole core

    live()
    st.caption(
        f"Each run stops by itself after {cap} epochs (an epoch is one pass over the "
        f"training points, in mini-batches). While playing, the network trains up to "
        f"{st.session_state.get(f'{prefix}.speed', 3)} epochs between redraws (fewer when "
        f"they pass {TRAIN_BUDGET_S * 1000:.0f} ms), at most {1 / REDRAW_S:.1f} redraws a "
        f"second, resting after each so that one learner's Play uses at most "
        f"{PLAY_CPU_SHARE:.0%} of a server core."
    )
    return pg
