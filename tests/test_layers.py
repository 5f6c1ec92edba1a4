"""Page 02 (Layers): what its text says about XOR, the Playground and the similarity map."""

from __future__ import annotations

import math

import numpy as np
import torch
from apptest_util import open_page

from core import layers as pgc


def _xor(hidden: tuple[int, ...], seed: int) -> pgc.Playground:
    pg = pgc.Playground(pgc.PlaygroundConfig(dataset="xor", hidden=hidden, seed=seed))
    pg.train_epochs(200)
    return pg


def test_xor_without_hidden_layer_stays_at_coin_flip_loss_but_not_at_chance_accuracy():
    best_line = 0.0
    for seed in range(3):
        flat = _xor((), seed)
        assert abs(flat.test_loss[-1] - math.log(2)) < 0.02  # the loss of answering 50 %
        assert flat.accuracy("test") <= 0.75  # a line gets at most three quadrants right
        best_line = max(best_line, flat.accuracy("test"))
    assert best_line > 0.6  # above chance all the same: "cannot do better than chance" is false
    assert _xor((4,), 0).accuracy("test") > 0.9  # one hidden layer of four tanh neurons


def test_the_last_similarity_row_is_the_last_block_after_the_final_norm(lm):
    from core.inspect.trace import run_trace

    trace = run_trace(lm, "The quick brown fox jumps over the lazy dog.")
    captured = {}
    handle = lm.model.model.layers[-1].register_forward_hook(
        lambda m, i, o: captured.setdefault("out", (o[0] if isinstance(o, tuple) else o).detach())
    )
    try:
        with torch.inference_mode():
            lm.model(torch.tensor([trace.ids.tolist()]))
    finally:
        handle.remove()
    block_out = captured["out"][0]  # (T, d) the last block's output, before the final norm
    with torch.inference_mode():
        normed = lm.model.model.norm(block_out).numpy()
    np.testing.assert_allclose(trace.hidden_states[-1], normed, rtol=1e-4, atol=1e-3)
    assert not np.allclose(trace.hidden_states[-1], block_out.numpy(), atol=1.0)


def test_layers_page_says_what_is_true():
    at = open_page("pages/02_layers.py")
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "cannot do better than chance" not in text and "exactly the loop" not in text
    assert f"ln 2 ≈ {math.log(2):.2f}" in text and "three of the four quadrants" in text
    assert "tanh output" in text and "squared error" in text
    assert "after the final norm" in text
    assert any("after the final norm" in c.value for c in at.caption)


def test_loss_frame_thins_the_curves_and_marks_only_the_latest_epoch():
    from components.playground import loss_frame

    train = tuple(1 / (1 + e) for e in range(300))
    test = tuple(float("inf") if e == 7 else 2 / (1 + e) for e in range(300))
    df = loss_frame(train, test)
    for split, curve in (("train", train), ("test", test)):
        rows = df[df["set"] == split]
        assert rows["epoch"].iloc[0] == 0 and rows["epoch"].iloc[-1] == 299
        assert len(rows) <= 150
        np.testing.assert_array_equal(rows["loss"], [curve[e] for e in rows["epoch"]])
        assert rows["last"].tolist() == [e == 299 for e in rows["epoch"]]
    assert np.isfinite(df["loss"]).all()  # a diverged epoch is left out, not drawn at infinity
    one = loss_frame((0.7,), (0.8,))  # epoch 0 alone: both points are the latest
    assert one["last"].all() and len(one) == 2


def test_loss_spec_is_the_altair_chart_without_its_data_and_ignores_the_epoch():
    from components.playground import loss_chart, loss_frame, loss_spec

    early = loss_frame((0.7, 0.6), (0.7, 0.65))
    late = loss_frame(tuple(np.linspace(0.7, 0.1, 120)), tuple(np.linspace(0.7, 0.2, 120)))
    for df in (early, late):
        spec = loss_chart(df, 300).to_dict()
        spec.pop("data")
        spec.pop("datasets")
        assert spec == loss_spec(300)  # the same chart, so the paused view is unchanged
    spec = loss_spec(300)
    assert "data" not in spec and "datasets" not in spec
    assert {"filter": "datum.last"} in spec["layer"][1]["transform"]
    spec["layer"].clear()  # a caller's change must not reach the next redraw's spec
    assert loss_spec(300)["layer"]


def test_freezing_keeps_objects_from_the_collector_but_still_frees_them():
    import gc
    import weakref

    from core.runtime.models import freeze_long_lived

    class Thing:
        pass

    kept, freed = Thing(), Thing()
    kept.me, freed.me = kept, freed  # reference cycles, the kind only the collector frees
    gone = weakref.ref(freed)
    freed.me = None  # ...unless the cycle is broken: then the reference count frees it
    assert freeze_long_lived() > 0
    assert not any(o is kept for o in gc.get_objects())  # a full collection skips it
    del freed
    assert gone() is None


def test_play_pacing_counts_streamlits_own_work_per_picture():
    from components.playground import PLAY_CPU_SHARE, pause_after, streamlit_cpu

    assert streamlit_cpu(8) > streamlit_cpu(4) > streamlit_cpu(0) > 0
    for work, pictures in ((0.02, 4), (0.09, 8)):
        total = work + streamlit_cpu(pictures)  # the fragment's CPU and Streamlit's around it
        for clock in (total, 2 * total, 5 * total):  # on a busy machine the clock runs ahead
            rest = pause_after(total, clock)
            assert total / (clock + rest) <= PLAY_CPU_SHARE + 1e-9
        assert pause_after(total, 5 * total) == 0  # waiting for a core was rest enough


def test_montage_stacks_neurons_with_transparent_gaps():
    from components.playground import heat_rgb, montage

    a = heat_rgb(np.array([[-1.0, 0.0], [0.5, 1.0]]))  # (2, 2, 3)
    b = heat_rgb(np.array([[1.0, 1.0], [-1.0, -0.5]]))
    out = montage([a, b], gap=3)
    assert out.shape == (2 + 3 + 2, 2, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:2, :, :3], a)
    np.testing.assert_array_equal(out[5:, :, :3], b)
    assert (out[:2, :, 3] == 255).all() and (out[5:, :, 3] == 255).all()
    assert (out[2:5] == 0).all()  # the gap: fully transparent, any theme shows through
    # heat_rgb itself: blue at +1, orange at -1, white at 0, the plane's top row first
    np.testing.assert_array_equal(a[1, 0], [245, 147, 34])  # -1 (bottom-left of the plane)
    np.testing.assert_array_equal(a[1, 1], [255, 255, 255])
    np.testing.assert_array_equal(a[0, 1], [8, 119, 189])  # +1 (top-right)


def test_boundary_points_never_leave_the_plot_frame():
    from components import playground as cp
    from core import layers as pgc

    pg = pgc.Playground(pgc.PlaygroundConfig(dataset="spiral", noise=50))
    snap = pg.snapshot()
    spec = cp.boundary_chart(snap.output, snap.grid, pg.data).to_dict()
    heat, points = spec["layer"]
    assert heat["encoding"]["x"]["scale"]["domain"] == [-6, 6]
    assert points["mark"]["clip"] is True  # points beyond the ±6 domain are cut at the frame


def test_loss_dots_at_epoch_0_are_drawn_inside_the_plot():
    """At epoch 0 the dots are the only values, so the highest sits on the y domain's top: the
    scale pads the domain by more than a dot's radius (Vega-Lite's continuous-scale padding)."""
    import math

    from components.playground import loss_spec

    spec = loss_spec(300)
    y = spec["encoding"]["y"] if "encoding" in spec else spec["layer"][0]["encoding"]["y"]
    dot = next(lyr["mark"] for lyr in spec["layer"] if lyr["mark"]["type"] == "circle")
    radius = math.sqrt(dot["size"] / math.pi)
    assert y["scale"]["padding"] > radius and y["scale"]["zero"] is True
