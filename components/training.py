"""Training (concept 04): the expression graph, the loss surface and optimiser paths."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import draw_chart, graph_colours, graph_defaults
from core import layers as pgc
from core import training as optim
from core.training import loss_surface, optimizer_path


def expression_dot(nodes, colours: dict[str, str] | None = None) -> str:
    """Graphviz DOT of the expression graph: each box shows value and gradient. `colours`
    from `charts.graph_colours()` (the reader's theme); light when not given."""
    c = colours or graph_colours("light")
    lines = [
        "digraph G {",
        "rankdir=TB; nodesep=0.25; ranksep=0.3;",
        graph_defaults(c),
        f'node [shape=record, style=filled, fillcolor="{c["node"]}"];',
    ]
    for n in nodes:
        ident = f"n{abs(hash(n.name)) % 10**8}"
        fill = c["yellow"] if n.op == "input" else c["blue"]
        label = (
            f"{n.name} | {{value {n.value:.4f} | grad {n.grad:.4f}}}"  # value over grad: narrower
        )
        lines.append(f'{ident} [label="{label}", fillcolor="{fill}"];')
        if n.op != "input":
            op_id = f"{ident}op"
            lines.append(f'{op_id} [label="{n.op}", shape=circle, fillcolor="{c["white"]}"];')
            lines.append(f"{op_id} -> {ident};")
            for src in n.inputs:
                lines.append(f"n{abs(hash(src)) % 10**8} -> {op_id};")
    lines.append("}")
    return "\n".join(lines)


def surface_chart(
    ws: np.ndarray,
    bs: np.ndarray,
    loss: np.ndarray,
    paths: dict[str, np.ndarray],
    truth: tuple[float, float],
) -> alt.Chart:
    """log10 loss over (w, b) with each optimiser's path drawn on top."""
    dw, db = float(ws[1] - ws[0]), float(bs[1] - bs[0])
    gw, gb = np.meshgrid(ws, bs)
    cells = pd.DataFrame(
        {
            "w": gw.ravel() - dw / 2,
            "w2": gw.ravel() + dw / 2,
            "b": gb.ravel() - db / 2,
            "b2": gb.ravel() + db / 2,
            "log10 loss": np.log10(loss.ravel()).round(3),
        }
    )
    sw = alt.Scale(domain=[float(ws[0]), float(ws[-1])], clamp=True)
    sb = alt.Scale(domain=[float(bs[0]), float(bs[-1])], clamp=True)
    heat = (
        alt.Chart(cells)
        .mark_rect()
        .encode(
            x=alt.X("w:Q", scale=sw, title="weight w"),
            x2="w2",
            y=alt.Y("b:Q", scale=sb, title="bias b"),
            y2="b2",
            color=alt.Color("log10 loss:Q", scale=alt.Scale(scheme="greys", reverse=True)),
        )
    )
    frames = [
        pd.DataFrame({"w": p[:, 0], "b": p[:, 1], "step": np.arange(len(p)), "optimiser": name})
        for name, p in paths.items()
    ]
    df = (
        pd.concat(frames)
        if frames
        else pd.DataFrame({"w": [], "b": [], "step": [], "optimiser": []})
    )
    df = df[np.isfinite(df["w"]) & np.isfinite(df["b"])]
    path = (
        alt.Chart(df)
        .mark_line(point=alt.OverlayMarkDef(size=14), clip=True)
        .encode(
            x=alt.X("w:Q", scale=sw),
            y=alt.Y("b:Q", scale=sb),
            order="step:Q",
            color=alt.Color(
                "optimiser:N",
                scale=alt.Scale(
                    domain=["SGD", "momentum", "Adam"], range=["#e03131", "#1971c2", "#2f9e44"]
                ),
            ),
            tooltip=["optimiser", "step", "w", "b"],
        )
    )
    best = (
        alt.Chart(pd.DataFrame({"w": [truth[0]], "b": [truth[1]]}))
        .mark_point(shape="diamond", size=120, color="#f59f00", filled=True)
        .encode(x="w:Q", y="b:Q")
    )
    return alt.layer(heat, path, best).properties(height=360)


def path_loss_chart(losses: dict[str, np.ndarray]) -> alt.Chart:
    frames = [
        pd.DataFrame({"step": np.arange(len(v)), "loss": v, "optimiser": k})
        for k, v in losses.items()
    ]
    df = pd.concat(frames) if frames else pd.DataFrame({"step": [], "loss": [], "optimiser": []})
    df = df[np.isfinite(df["loss"]) & (df["loss"] > 0)]
    return (
        alt.Chart(df)
        .mark_line()
        .encode(
            x="step:Q",
            y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="loss (log scale)"),
            color=alt.Color(
                "optimiser:N",
                scale=alt.Scale(
                    domain=["SGD", "momentum", "Adam"], range=["#e03131", "#1971c2", "#2f9e44"]
                ),
            ),
        )
        .properties(height=360)
    )


@st.cache_data(max_entries=4, show_spinner=False)
def cached_loss_surface(seed: int = 0):

    return loss_surface(seed=seed)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_optimizer_path(optimizer: str, lr: float, batch_size: int, steps: int):

    with pgc.toy_threads():
        return optimizer_path(optimizer, lr, batch_size, steps)


def surface_section(paths: dict, steps: int) -> None:
    """Play / Step / Show all, and the optimisers' paths on the loss surface with their loss
    curves, animated in a fragment."""
    st.session_state.setdefault("training.shown", steps)
    st.session_state.setdefault("training.animating", False)

    def _toggle() -> None:
        st.session_state["training.animating"] = not st.session_state["training.animating"]
        if st.session_state["training.animating"]:
            st.session_state["training.shown"] = 0

    b1, b2, b3, _ = st.columns([1, 1, 1, 4])
    animating = st.session_state["training.animating"]
    b1.button(
        "Pause" if animating else "Play",
        on_click=_toggle,
        icon=":material/pause:" if animating else ":material/play_arrow:",
        key="training.play",
        type="primary",
    )
    if b2.button("Step", key="training.step"):
        st.session_state["training.animating"] = False
        st.session_state["training.shown"] = min(st.session_state["training.shown"] + 1, steps)
    if b3.button("Show all", key="training.all"):
        st.session_state["training.animating"] = False
        st.session_state["training.shown"] = steps

    @st.fragment(run_every=0.25 if st.session_state["training.animating"] else None)
    def surface() -> None:
        if st.session_state["training.animating"]:
            st.session_state["training.shown"] = min(st.session_state["training.shown"] + 2, steps)
            if st.session_state["training.shown"] >= steps:
                st.session_state["training.animating"] = False
                st.rerun()
        shown = min(st.session_state["training.shown"], steps)
        ws, bs, loss = cached_loss_surface()
        left, right = st.columns([4, 3])
        draw_chart(
            surface_chart(
                ws,
                bs,
                loss,
                {k: p.points[: shown + 1] for k, p in paths.items()},
                (optim.TRUE_W, optim.TRUE_B),
            ),
            key="training.surface",
            where=left,
        )
        draw_chart(
            path_loss_chart({k: p.losses[: shown + 1] for k, p in paths.items()}),
            key="training.curves",
            where=right,
        )
        st.caption(
            f"Step {shown} of {steps} (at most {optim.STEP_CAP}); the diamond marks the "
            "parameters that generated the data."
        )

    surface()
