"""AppTest tests of pages 01-05: drive the main controls, check the visuals change as the
concept says. Every page is reached through app.py on the real embedded model."""

from __future__ import annotations

import re

import numpy as np
from apptest_util import chart_data, chart_frames, chart_specs, open_page

from core import training as optim


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


def _html(at) -> str:
    return " ".join(el.proto.body for el in at.get("html"))


def test_neuron_page_formula_plane_and_real_neuron():
    at = open_page("pages/01_neuron.py")
    assert not at.exception
    at.slider(key="neuron.w1").set_value(2.0).run()
    at.slider(key="neuron.w2").set_value(0.0).run()
    at.slider(key="neuron.b").set_value(-1.0).run()
    # z = 2·x1 + 0·x2 - 1 at the default input x1 = 1: z = 1
    assert "= 1.000" in at.latex[0].value
    line = chart_data(at, "x1", "x2", exact=True)  # the neuron's line, drawn on its plane
    np.testing.assert_allclose(line["x1"], 0.5, atol=1e-9)  # the line 2·x1 - 1 = 0
    caption = next(c.value for c in at.caption if "match the model" in c.value)
    assert float(re.search(r"within ([0-9.e+-]+)\.", caption).group(1)) < 1e-4
    # it opens on a neuron with a pattern: its top-activating tokens on the sample text are
    # mostly one token (neuron 0's are scattered), by the page's own table
    top = next(d.value for d in at.dataframe if "activation" in d.value.columns)
    assert at.number_input(key="neuron.index").value != 0
    assert top["token"].value_counts().iloc[0] >= len(top) // 2, top["token"].tolist()
    assert not at.warning  # no "default value also set via Session State" warning
    strip_before = _html(at)
    at.number_input(key="neuron.index").set_value(7).run()
    assert not at.exception and _html(at) != strip_before
    layer = at.slider(key="neuron.layer")
    layer.set_value(layer.max).run()
    assert not at.exception


def test_layers_page_xor_needs_a_hidden_layer_and_play_animates():
    at = open_page("pages/02_layers.py")
    assert not at.exception
    at.button(key="layers.play").click().run()
    assert at.session_state["layers.playing"]
    first = int(_metrics(at)["Epoch (of 300)"].split()[0])
    at.run()
    assert int(_metrics(at)["Epoch (of 300)"].split()[0]) > first
    at.button(key="layers.play").click().run()  # pause
    paused = _metrics(at)["Epoch (of 300)"]
    at.run()
    assert _metrics(at)["Epoch (of 300)"] == paused

    at.selectbox(key="layers.dataset").set_value("xor").run()
    at.slider(key="layers.depth").set_value(0).run()
    at.button(key="layers.finish").click().run()
    assert _metrics(at)["Epoch (of 300)"].startswith("300")
    assert _percent(_metrics(at)["Test accuracy"]) < 0.75  # a straight line cannot do XOR

    at.slider(key="layers.depth").set_value(1).run()
    at.number_input(key="layers.width1").set_value(4).run()
    assert at.selectbox(key="layers.activation").value == "tanh"
    at.button(key="layers.finish").click().run()
    assert not at.exception
    assert _percent(_metrics(at)["Test accuracy"]) > 0.95
    assert len(at.get("image")) >= 2  # the input features and the hidden layer's neurons

    sim = next(s for s in chart_specs(at) if "similarity" in str(s.get("encoding", {})))
    n = int(sim["title"].split()[0]) + 1
    frame = chart_data(at, "similarity")
    assert len(frame) == n * n
    diag = frame[frame["layer"] == frame["other layer"]]["similarity"]
    np.testing.assert_allclose(diag, 1.0, atol=1e-3)


def test_layers_page_noise_changes_the_points():
    at = open_page("pages/02_layers.py")
    before = next(f for f in chart_frames(at) if any("label" in d.columns for d in f))
    at.slider(key="layers.noise").set_value(50).run()
    after = next(f for f in chart_frames(at) if any("label" in d.columns for d in f))
    points = [d for d in before if "label" in d.columns][0]
    noisy = [d for d in after if "label" in d.columns][0]
    assert not points["label"].equals(noisy["label"])


def test_activations_page_curves_range_and_histogram():
    at = open_page("pages/03_activations.py")
    assert not at.exception
    at.multiselect(key="activations.chosen").set_value(["relu", "tanh"]).run()
    values = chart_data(at, "activation", "x", "y")
    assert set(values["activation"]) == {"ReLU", "tanh"}
    relu = values[values["activation"] == "ReLU"]
    np.testing.assert_allclose(relu["y"], np.maximum(relu["x"], 0))
    at.slider(key="activations.range").set_value((-1.0, 2.0)).run()
    x = chart_data(at, "activation", "x", "y")["x"]
    assert x.min() == -1.0 and x.max() == 2.0
    hist_before = chart_data(at, "count", "side")["count"].tolist()
    at.slider(key="activations.layer").set_value(0).run()
    assert not at.exception
    assert chart_data(at, "count", "side")["count"].tolist() != hist_before
    assert any("are negative" in c.value for c in at.caption)


def test_training_page_gradients_and_divergence():
    at = open_page("pages/04_training.py")
    assert not at.exception
    dot = at.get("graphviz_chart")[0].proto.spec
    at.slider(key="training.w1").set_value(-1.0).run()
    assert at.get("graphviz_chart")[0].proto.spec != dot
    assert not any("diverged" in w.value for w in at.warning)
    at.select_slider(key="training.lr").set_value(0.3).run()
    assert 0.3 > optim.divergence_threshold()
    warnings = [w.value for w in at.warning if "diverged" in w.value]
    assert any(w.startswith("SGD diverged") for w in warnings)
    at.select_slider(key="training.lr").set_value(0.1).run()
    assert not any("diverged" in w.value for w in at.warning)


def test_overfitting_page_gap_responds_to_data_and_weight_decay():
    at = open_page("pages/05_overfitting.py")
    assert not at.exception
    m = _metrics(at)
    base_gap = float(m["Gap"])
    assert float(m["Validation MSE"]) > 3 * float(m["Training MSE"])
    at.select_slider(key="overfitting.decay").set_value(0.003).run()
    assert float(_metrics(at)["Gap"]) < base_gap
    at.select_slider(key="overfitting.decay").set_value(0.0).run()
    at.slider(key="overfitting.n").set_value(100).run()
    assert float(_metrics(at)["Gap"]) < 0.5 * base_gap
    at.checkbox(key="overfitting.early").check().run()
    assert not at.exception
    assert any("Early stopping kept" in c.value for c in at.caption)


def test_model_pages_survive_hostile_prompts():
    hostile = ("<script>alert(1)</script> $x$ **b** 🙂 漢字 مرحبا \u200b " * 800)[:20_000]
    at = open_page("pages/01_neuron.py")
    for prompt in ("", "   ", hostile):
        at.sidebar.text_area(key="sidebar.prompt").set_value(prompt).run()
        assert not at.exception, prompt[:20]
        assert "<script>" not in _html(at)
    assert any("first 256" in i.value for i in at.info)
    for page in ("pages/02_layers.py", "pages/03_activations.py"):
        at.switch_page(page).run()
        assert not at.exception, page
