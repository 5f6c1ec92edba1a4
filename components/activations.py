"""Activation functions (concept 03): curves and slopes, the training race, and the
pre-activation histogram of the LM."""

from __future__ import annotations

import time
from dataclasses import replace

import altair as alt
import numpy as np
import pandas as pd

from components.jobs import Report, run_job
from core import layers as pgc
from core.activations import LABELS, NAMES


def activation_curves_chart(c, derivative: bool) -> alt.Chart:
    """Every chosen activation (or its derivative) over the chosen range, one line each."""

    source = c.derivatives if derivative else c.values
    df = (
        pd.concat(
            [pd.DataFrame({"x": c.x, "y": v, "activation": LABELS[k]}) for k, v in source.items()]
        )
        if source
        else pd.DataFrame({"x": [], "y": [], "activation": []})
    )
    return (
        alt.Chart(df)
        .mark_line()
        .encode(
            x="x:Q",
            y=alt.Y("y:Q", title="f′(x)" if derivative else "f(x)"),
            color=alt.Color("activation:N"),
            tooltip=["activation", "x", "y"],
        )
        .properties(title="derivative" if derivative else "activation", height=300)
    )


def histogram_chart(h, title: str) -> alt.Chart:
    df = pd.DataFrame(
        {
            "from": h.edges[:-1],
            "to": h.edges[1:],
            "count": h.counts,
            "side": np.where(h.edges[1:] <= 0, "negative", "positive"),
        }
    )
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("from:Q", title="pre-activation value"),
            x2="to",
            y=alt.Y("count:Q"),
            color=alt.Color(
                "side:N",
                scale=alt.Scale(domain=["negative", "positive"], range=["#4dabf7", "#f76707"]),
            ),
            tooltip=["from", "to", "count"],
        )
        .properties(title=title, height=260)
    )


COMPARISON = pgc.PlaygroundConfig(dataset="spiral", hidden=(8, 8), learning_rate=0.3, batch_size=30)


COMPARISON_EPOCHS = 150


# Idle-machine seconds to train the comparison network once (150 epochs of the spiral, 2 cores):
# about 1.5 s measured; the job store corrects it from the runs this server sees.
RUN_SECONDS = 1.5
CHUNK_EPOCHS = 15  # progress (and a chance for Stop) every 15 epochs


def activation_run(
    name: str, epochs: int = COMPARISON_EPOCHS, report: Report | None = None
) -> dict:
    """The comparison network trained with one activation: final numbers for the table.
    Trained in chunks of epochs (the same result as one call: the network shuffles with its
    own generator), reporting the share done after each."""
    start = time.perf_counter()
    pg = pgc.Playground(replace(COMPARISON, activation=name))
    while pg.epoch < epochs:
        pg.train_epochs(min(CHUNK_EPOCHS, epochs - pg.epoch))
        if report is not None:
            report(pg.epoch / epochs, f"{LABELS[name]}: epoch {pg.epoch} of {epochs}")
    return {
        "train loss": pg.train_loss[-1],
        "test loss": pg.test_loss[-1],
        "test accuracy": pg.accuracy(),
        "seconds": time.perf_counter() - start,
    }


def comparison_estimate_s(epochs: int = COMPARISON_EPOCHS) -> float:
    return len(NAMES) * RUN_SECONDS * epochs / COMPARISON_EPOCHS


def comparison_job(epochs: int = COMPARISON_EPOCHS) -> pd.DataFrame | None:
    """The same network trained with every activation in turn, behind a button (progress, Stop,
    one result shared by every learner): a table sorted by test loss, or None before the run."""

    def work(report: Report) -> pd.DataFrame:
        rows = []
        for i, name in enumerate(NAMES):

            def part(f: float, text: str = "", partial: object = None, i: int = i) -> None:
                report((i + f) / len(NAMES), text)

            rows.append({"activation": LABELS[name], **activation_run(name, epochs, part)})
        return pd.DataFrame(rows).sort_values("test loss")

    return run_job(
        ("activations", "comparison", COMPARISON, epochs),
        work,
        start_label=f"Train all {len(NAMES)}",
        estimate_s=comparison_estimate_s(epochs),
        caps=f"{len(NAMES)} runs of {epochs} epochs each, one after the other.",
    )
