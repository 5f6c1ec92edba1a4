"""Page 12 (The LM Objective): surprisal and mean loss against the model's own loss,
alternatives at a position, the guessing game, and the page through AppTest."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from apptest_util import chart_data, chart_specs, open_page
from apptest_util import metric as _metric

from core import lm_objective as obj
from core.inspect.trace import run_trace

TEXT = "The capital of France is Paris, and the capital of Italy is Rome."


BLOCK, FULL, OBJ = "pages/10_block.py", "pages/11_full_model.py", "pages/12_lm_objective.py"


LONG = " ".join(f"word{i} and then" for i in range(40))  # about 120+ tokens


def test_mean_surprisal_equals_the_models_loss(any_lm):
    trace = run_trace(any_lm, TEXT)
    s = obj.surprisal(trace)
    ids = torch.tensor([trace.ids.tolist()])
    with torch.inference_mode():
        loss = float(any_lm.model(ids, labels=ids).loss)
    assert s.mean_nats == pytest.approx(loss, rel=1e-4)
    assert s.perplexity == pytest.approx(math.exp(loss), rel=1e-4)
    np.testing.assert_allclose(s.bits, s.nats / math.log(2))
    assert len(s.nats) == trace.length - 1


def test_surprisal_of_each_token_is_minus_log_softmax(lm):
    trace = run_trace(lm, TEXT)
    ids = torch.tensor([trace.ids.tolist()])
    with torch.inference_mode():
        lp = torch.log_softmax(lm.model(ids).logits[0].double(), -1)
    ref = -lp[:-1].gather(1, ids[0, 1:, None])[:, 0].numpy()
    np.testing.assert_allclose(obj.surprisal(trace).nats, ref, rtol=1e-4, atol=1e-5)


def test_alternatives_at_a_position(lm):
    trace = run_trace(lm, TEXT)
    pos = trace.tokens.index(" Paris")
    top = tuple(lm.tokenizer.decode([int(i)]) for i in trace.top_ids[pos - 1])
    alt = obj.alternatives(trace, pos, top)
    assert alt.actual == " Paris" and alt.tokens == top
    assert alt.probs[0] >= alt.probs[-1]
    if alt.actual_rank is not None:
        assert alt.probs[alt.actual_rank - 1] == pytest.approx(alt.actual_prob, rel=1e-3)
    assert obj.alternatives(trace, 0, top).position == 1  # clamped: token 0 has no prediction


def test_guessing_game_scores_player_and_model(lm):
    trace = run_trace(lm, TEXT)
    state = obj.new_game(trace, start=trace.tokens.index(" Paris"))
    top1 = lm.tokenizer.decode([int(trace.top_ids[state.position - 1, 0])])
    state = obj.play(state, trace, "  PARIS ", top1)
    assert state.player_score == 1 and state.rounds[0].actual == " Paris"
    assert state.model_score == int(
        int(trace.top_ids[state.position - 2, 0]) == trace.ids[state.position - 1]
    )
    state = obj.play(state, trace, "definitely wrong", "x")
    assert state.player_score == 1 and len(state.rounds) == 2
    while not obj.game_over(state, trace):
        state = obj.play(state, trace, "", "")
    assert obj.play(state, trace, "x", "x") == state  # nothing after the last token


def test_objective_page_loss_equals_the_models_loss(lm):
    at = open_page(OBJ)
    assert not at.exception, at.exception
    text = "The capital of France is Paris, and the capital of Italy is Rome."
    at.text_area(key="lm_objective.text").set_value(text).run()
    assert not at.exception
    ids = torch.tensor([run_trace(lm, text).ids.tolist()])
    with torch.inference_mode():
        loss = float(lm.model(ids, labels=ids).loss)
    assert float(_metric(at, "loss (mean surprisal)").split()[0]) == pytest.approx(loss, abs=6e-4)
    assert float(_metric(at, "perplexity").replace(",", "")) == pytest.approx(
        math.exp(loss), abs=0.06
    )  # shown with one decimal
    grid = chart_data(at, "bits")
    assert len(grid) == ids.shape[1]  # every token has its cell, the first one too
    assert np.isnan(grid["bits"].iloc[0]) and grid["bits"].iloc[1:].notna().all()
    worst = int(grid.loc[grid["bits"].idxmax(), "position"])
    # text colour from the same scale as the fill: the most surprising (darkest) cell is white
    assert grid.loc[grid["bits"].idxmax(), "ink"] == "#ffffff"
    assert grid.loc[grid["bits"].idxmin(), "ink"] != "#ffffff"
    assert any(f"Position {worst}." in m.value for m in at.markdown)  # picked to start
    spec = next(
        s for s in chart_specs(at) if "picked" in str(s.get("params", "")) or "picked" in str(s)
    )
    assert f'"position": {worst}' in str(spec).replace("'", '"')
    at.text_area(key="lm_objective.text").set_value("  ").run()
    assert not at.exception and any("empty" in i.value for i in at.info)


def test_guessing_game_keeps_score(lm):
    from core.lm_objective import GAME_TEXTS

    at = open_page(OBJ)
    at.selectbox(key="lm_objective.game_text").set_value("Capitals").run()
    assert not at.exception
    trace = run_trace(lm, GAME_TEXTS[1])
    start = 4  # new_game's default
    left = int(_metric(at, "tokens left"))
    assert left == trace.length - start
    at.text_input(key="lm_objective.guess").input(trace.tokens[start].strip())
    at.button(key="lm_objective.submit").click().run()
    assert not at.exception
    assert _metric(at, "you") == "1 / 1"
    model_right = int(trace.top_ids[start - 1, 0]) == int(trace.ids[start])
    assert _metric(at, "the model") == f"{int(model_right)} / 1"
    at.text_input(key="lm_objective.guess").input("zzzz-not-a-token")
    at.button(key="lm_objective.submit").click().run()
    assert _metric(at, "you") == "1 / 2" and int(_metric(at, "tokens left")) == left - 2
    # tokens in the feedback are quoted: a lone "," is a token, not the sentence's comma
    from components.tokens import visible

    feedback = next(m.value for m in at.markdown if "you typed" in m.value)
    assert f"you typed “`{visible('zzzz-not-a-token')}`”" in feedback
    assert f"next token was “`{visible(trace.tokens[start + 1])}`”" in feedback
    at.button(key="lm_objective.restart").click().run()
    assert _metric(at, "you") == "0 / 0"
