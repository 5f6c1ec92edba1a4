"""Page 09 (Multi-head attention): head roles measured on one set of texts, over several seeds,
labelled by thresholds the page states; the key/value sharing read from the config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from apptest_util import open_page

from core import attention as A


def test_head_roles_batch_equals_each_seed_alone_on_the_same_texts(lm):
    half, seeds = 8, 3
    roles = A.head_roles(lm.model, half=half, seeds=seeds)
    per_seed = []
    for s in range(seeds):  # reference: one forward pass per sequence
        ids = A.repeated_random_ids(lm.config.vocab_size, half, s)
        with torch.inference_mode():
            out = lm.model(torch.as_tensor(ids)[None], output_attentions=True)
        att = torch.stack([a[0] for a in out.attentions]).float().numpy()  # (L, H, 2h, 2h)
        rows = np.arange(half + 1, 2 * half)
        per_seed.append((*A.pattern_scores(att), att[..., rows, rows - half + 1].mean(-1)))
    prev, sink, self_, ind = (np.stack(x) for x in zip(*per_seed))  # each (S, L, H)
    for ours, ref in (
        (roles.previous, prev),
        (roles.sink, sink),
        (roles.self_, self_),
        (roles.induction, ind),
    ):
        np.testing.assert_allclose(ours, ref.mean(0), atol=2e-3)
    np.testing.assert_allclose(roles.induction_low, ind.min(0), atol=2e-3)
    np.testing.assert_allclose(roles.induction_high, ind.max(0), atol=2e-3)
    assert roles.seeds == seeds
    top = np.unravel_index(np.argmax(roles.induction), roles.induction.shape)
    assert roles.induction_high[top] - roles.induction_low[top] > 0.01  # seeds do disagree


def test_labels_follow_the_stated_thresholds_in_priority_order():
    t = A.HEAD_LABEL_THRESHOLD
    z = np.zeros((1, 4), dtype=np.float32)
    profile = A.HeadProfile(
        previous=np.array([[0.0, 0.0, t + 0.01, 0.1]], dtype=np.float32),
        sink=np.array([[0.6, 0.1, 0.5, 0.2]], dtype=np.float32),
        self_=z,
        induction=np.array([[t + 0.15, t + 0.16, t - 0.01, 0.1]], dtype=np.float32),
    )
    # heads 0 and 1 have near-equal induction scores: the same label, whatever else they do
    assert [profile.label(0, h) for h in range(4)] == [
        "induction",
        "induction",
        "previous-token",
        "mixed",
    ]
    assert A.HeadProfile.PRIORITY[0] == "induction" and set(A.HeadProfile.PRIORITY) == set(
        A.HeadProfile.PATTERNS
    )


@pytest.fixture(scope="module")
def page():
    return open_page("pages/09_multi_head.py")


def test_multi_head_page_states_its_measurement_and_the_shared_key_values(page, lm):
    at = page
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    group = lm.config.num_attention_heads // lm.config.num_key_value_heads
    assert f"each group of {group} query heads reads the same keys and values" in text
    assert "own small W_Q, W_K and W_V" not in text
    assert f"on {A.INDUCTION_SEEDS} random sequences" in text
    assert f"{A.HEAD_LABEL_THRESHOLD:.0%}" in text and "not your prompt" in text
    table = next(d.value for d in at.dataframe if "induction lowest seed" in d.value.columns)
    assert (table["induction lowest seed"] <= table["induction"] + 1e-6).all()
    assert (table["induction"] <= table["induction highest seed"] + 1e-6).all()
    for head, row in table.iterrows():  # the shown role is the stated rule applied to the row
        expected = next(
            (p for p in A.HeadProfile.PRIORITY if row[p] >= A.HEAD_LABEL_THRESHOLD), "mixed"
        )
        assert row["role"] == expected, head


def test_page_opens_on_the_first_layer_with_a_previous_token_head(page):
    """Layer 0 is all 'mixed' on SmolLM2: the page opens where its own table names a head."""
    at = page
    layer = at.slider(key="multi_head.layer").value
    table = next(d.value for d in at.dataframe if "induction lowest seed" in d.value.columns)
    assert (table["previous-token"] >= A.HEAD_LABEL_THRESHOLD).any()  # this layer shows one
    from components.multi_head import cached_profile

    prof = cached_profile(
        at.session_state["shared.model"]
        if "shared.model" in at.session_state
        else "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    before = prof.previous[:layer] >= A.HEAD_LABEL_THRESHOLD
    assert not before.any()  # and it is the first such layer
