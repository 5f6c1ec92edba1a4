"""Page 17: Bradley-Terry and DPO losses against their formulas, best-of-n KL against its closed
form and a simulation, the answer log-probabilities against the model's own loss, the page."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from core import rlhf
from core.fine_tuning import conversation, masked_chat


def test_bradley_terry_loss_is_mean_minus_log_sigmoid():
    rc = torch.tensor([2.0, -1.0, 0.3, 5.0])
    rr = torch.tensor([1.0, 1.0, 0.3, -2.0])
    by_hand = np.mean(
        [-math.log(1 / (1 + math.exp(-(c - r)))) for c, r in zip(rc.tolist(), rr.tolist())]
    )
    assert float(rlhf.bradley_terry_loss(rc, rr)) == pytest.approx(by_hand, rel=1e-6)
    assert float(rlhf.bradley_terry_loss(rr[:1], rr[:1])) == pytest.approx(math.log(2))


def test_dpo_loss_equals_its_formula_and_ln2_at_the_reference():
    rng = np.random.default_rng(0)
    pc, pr, rc, rr = (rng.normal(-30, 8, 12) for _ in range(4))
    for beta in (0.1, 0.5, 2.0):
        ours = rlhf.dpo_losses(pc, pr, rc, rr, beta)
        for i in range(12):
            z = beta * (math.log(math.exp(pc[i] - rc[i])) - (pr[i] - rr[i]))
            assert ours[i] == pytest.approx(-math.log(1 / (1 + math.exp(-z))), rel=1e-9)
    assert np.allclose(rlhf.dpo_losses(pc, pr, pc, pr, 0.3), math.log(2))


def test_best_of_n_kl_matches_the_closed_form():
    for n in (1, 2, 4, 8, 16):
        exact = rlhf.best_of_n_kl_exact(200_000, n)
        assert exact == pytest.approx(rlhf.best_of_n_kl_bound(n), abs=1e-3)
        assert rlhf.best_of_n_kl_exact(20, n) <= rlhf.best_of_n_kl_bound(n) + 1e-12
    assert rlhf.best_of_n_kl_bound(1) == 0.0


def test_best_of_n_distribution_matches_a_simulation():
    rng = np.random.default_rng(1)
    probs = np.array([0.4, 0.3, 0.2, 0.1])  # outcomes from worst to best reward
    draws = rng.choice(4, size=(200_000, 3), p=probs).max(axis=1)
    simulated = np.bincount(draws, minlength=4) / len(draws)
    assert np.allclose(rlhf.best_of_n_distribution(probs, 3), simulated, atol=5e-3)


def test_kl_penalty_trades_reward_for_drift():
    rewards = np.array([-2.0, 0.0, 1.0, 3.0])
    loose, tight = rlhf.kl_penalised(rewards, 0.01), rlhf.kl_penalised(rewards, 1e4)
    assert loose.expected_reward == pytest.approx(3.0) and loose.kl == pytest.approx(math.log(4))
    assert tight.expected_reward == pytest.approx(rewards.mean(), abs=1e-3)
    assert tight.kl == pytest.approx(0.0, abs=1e-6)


def test_reward_model_loss_falls_and_ranks_separable_pairs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 16))
    direction = rng.normal(size=16)
    score = x @ direction
    pairs = [(i, i + 1) if score[i] > score[i + 1] else (i + 1, i) for i in range(0, 40, 2)]
    model = rlhf.train_reward_model(x, pairs[:15], pairs[15:], steps=100, lr=0.05)
    assert model.losses[0] == pytest.approx(math.log(2))
    assert model.losses[-1] < 0.5 * model.losses[0]
    assert model.train_accuracy == 1.0
    assert model.held_out_accuracy[-1] >= 0.6
    flipped = rlhf.train_reward_model(
        x, [(b, a) for a, b in pairs[:15]], pairs[15:], steps=100, lr=0.05
    )
    assert flipped.held_out_accuracy[-1] <= 0.4


def test_answer_logprob_equals_model_loss(lm):
    prompt, answer = "What is 2 plus 2?", "2 plus 2 is 4."
    got = rlhf.answer_features(lm, [(prompt, answer)])
    chat = masked_chat(lm.tokenizer, conversation(prompt, answer))
    ids = torch.tensor([chat.ids])
    labels = ids.masked_fill(~torch.tensor([chat.mask]), -100)
    with torch.inference_mode():
        out = lm.model(ids, labels=labels, output_hidden_states=True)
    t1 = rlhf.TEMPERATURES.index(1.0)
    assert got.logp[0, t1] == pytest.approx(-float(out.loss) * chat.counted, rel=1e-4)
    assert got.tokens[0] == chat.counted
    last = max(i for i, m in enumerate(chat.mask) if m)  # the end-of-turn token
    assert lm.tokenizer.decode([chat.ids[last]]) == "<|im_end|>"
    assert np.allclose(got.features[0], out.hidden_states[-1][0, last].numpy(), atol=1e-4)
    assert got.logp[0, 0] != got.logp[0, t1]


def test_pairs_file_is_well_formed():
    raw = json.loads(rlhf.DATA.read_text())
    data = rlhf.load_pairs()
    assert data.n_train >= 16 and data.held_out >= 4
    assert all(p["chosen"] != p["rejected"] for p in raw["pairs"])
    train, held = rlhf.pair_indices(data, flipped=(0,))
    assert train[0] == (1, 0) and train[1] == (2, 3) and len(held) == data.held_out


def test_page_trains_reward_model_and_reacts_to_labels():
    from apptest_util import chart_frames, open_page

    at = open_page("pages/17_rlhf.py")
    assert not at.exception, at.exception
    start = [b for b in at.button if b.label.startswith("Read every answer with the LM")]
    assert start
    start[0].click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Training loss"]) < math.log(2)
    assert metrics["Mean DPO loss at this policy"] == "0.6931"
    held_before = metrics["Held-out pairs ranked right"]

    at.select_slider(key="rlhf.t").set_value(0.5).run()
    assert {m.label: m.value for m in at.metric}["Mean DPO loss at this policy"] != "0.6931"

    at.text_area(key="rlhf.mine").set_value("<b>$5</b> 🤖 <|im_end|> 中文").run()
    assert not at.exception
    assert "Reward of your answer" in {m.label for m in at.metric}

    at.slider(key="rlhf.n").set_value(2).run()
    draw = [b for b in at.button if b.label.startswith("Draw 2 answers")]
    draw[0].click().run()
    assert not at.exception, at.exception
    kl = [f[0] for f in chart_frames(at) if "KL (nats)" in f[0].columns and "curve" in f[0]]
    assert kl

    # the learner flips every training label: the reward model turns against held-out labels
    n_train = rlhf.load_pairs().n_train
    at.session_state["rlhf.choices"] = dict.fromkeys(range(n_train), "B")
    at.run()
    assert not at.exception, at.exception
    held_after = {m.label: m.value for m in at.metric}["Held-out pairs ranked right"]
    assert int(held_after.rstrip("%")) < int(held_before.rstrip("%"))


def test_labelling_cards_show_both_answers_and_count_the_learners_labels():
    """One pair at a time, answers A and B side by side as text, a button under each; a click
    labels the pair, moves on and counts ("labelled 1 of 32")."""
    from apptest_util import open_page

    data = rlhf.load_pairs()
    at = open_page("pages/17_rlhf.py")
    assert not at.exception, at.exception
    texts = [t.value for t in at.text]
    assert data.pairs[0].chosen.strip() in texts and data.pairs[0].rejected.strip() in texts
    assert any(f"Labelled 0 of {data.n_train}" in str(p.proto) for p in at.get("progress"))
    at.button(key="rlhf.pickB").click().run()
    assert not at.exception, at.exception
    assert at.session_state["rlhf.choices"] == {0: "B"}
    assert any(f"Labelled 1 of {data.n_train}" in str(p.proto) for p in at.get("progress"))
    texts = [t.value for t in at.text]
    assert data.pairs[1].chosen.strip() in texts  # the next pair is shown
    assert any("prefer B in 1 pair" in c.value for c in at.caption)


def test_best_of_n_chart_counts_answers_in_whole_numbers_from_one():
    # The x axis of the best-of-n KL chart read 0.0, 1.0, ... 16.0 for a count of answers.
    from components.rlhf import N_MAX, kl_chart, kl_frame

    spec = kl_chart(kl_frame(4)).to_dict()
    x = spec["layer"][0]["encoding"]["x"] if "layer" in spec else spec["encoding"]["x"]
    assert x["axis"]["format"] == "d" and x["axis"]["tickMinStep"] == 1
    assert x["scale"]["domain"] == [1, N_MAX] and x["scale"]["nice"] is False
    legend = spec["layer"][0]["encoding"]["color"]["legend"]
    assert "floor(width /" in legend["columns"]["expr"]  # the long label was cut on a phone
