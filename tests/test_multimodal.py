"""Page 24: the mini-CLIP's patches and loss against explicit formulas, a short training that
beats chance, and the page driven through AppTest."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from apptest_util import chart_frames, open_page

from core import multimodal as mm
from core.layers import toy_threads

BAD_INPUTS = [
    "   ",
    "x" * 20_000,
    "I love 🍕 👩🏽‍💻",
    "我喜欢机器学习。",
    "<script>alert('x')</script><b>bold</b>",
    "$x^2$ and $$\\frac{a}{b}$$",
    "<|im_start|>user<|im_end|>",
]


def test_patchify_matches_explicit_slicing():
    images = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 8, 8)
    for p in mm.PATCH_SIZES:
        out = mm.patchify(images, p)
        g = 8 // p
        assert out.shape == (2, g * g, p * p)
        for b in range(2):
            for r in range(g):
                for c in range(g):
                    expected = images[b, r * p : (r + 1) * p, c * p : (c + 1) * p].reshape(-1)
                    assert torch.equal(out[b, r * g + c], expected)


def _loss_by_loops(img: torch.Tensor, txt: torch.Tensor, scale: float) -> float:
    n = img.shape[0]
    sims = [[scale * float(img[i] @ txt[j]) for j in range(n)] for i in range(n)]
    image_to_text = (
        -sum(sims[i][i] - math.log(sum(math.exp(s) for s in sims[i])) for i in range(n)) / n
    )
    text_to_image = (
        -sum(sims[j][j] - math.log(sum(math.exp(sims[i][j]) for i in range(n))) for j in range(n))
        / n
    )
    return (image_to_text + text_to_image) / 2


def test_contrastive_loss_equals_its_formula():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(7, 32, generator=g, dtype=torch.float64), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(7, 32, generator=g, dtype=torch.float64), dim=1)
    for scale in (1.0, 14.3, 100.0):
        ours = float(mm.clip_loss(img, txt, torch.tensor(scale, dtype=torch.float64)))
        assert math.isclose(ours, _loss_by_loops(img, txt, scale), rel_tol=1e-9)
        logits = scale * img @ txt.T
        by_log_softmax = (
            -(logits.log_softmax(1).diagonal().mean() + logits.log_softmax(0).diagonal().mean()) / 2
        )
        assert math.isclose(ours, float(by_log_softmax), rel_tol=1e-9)
    # perfect, confident alignment drives the loss to zero; identical embeddings give ln n
    eye = torch.eye(7, 32, dtype=torch.float64)
    assert float(mm.clip_loss(eye, eye, torch.tensor(100.0, dtype=torch.float64))) < 1e-6
    same = torch.ones(7, 32, dtype=torch.float64) / math.sqrt(32)
    assert math.isclose(float(mm.clip_loss(same, same, torch.tensor(5.0))), math.log(7))


def test_in_batch_floor():
    assert mm.in_batch_floor(np.arange(10)) == 0.0
    assert math.isclose(mm.in_batch_floor(np.zeros(8, dtype=np.int64)), math.log(8))


@pytest.fixture(scope="module")
def caption_vectors(encoder):
    from core.embeddings import sentence_embeddings

    return sentence_embeddings(encoder, list(mm.all_captions()))


@pytest.fixture(scope="module")
def short_run(caption_vectors):
    with toy_threads():
        return mm.train_mini_clip(mm.ClipConfig(patch=4, steps=60), caption_vectors)


def test_short_training_beats_chance(short_run):
    r = short_run
    assert r.accuracy > 0.3  # chance is 0.10
    assert r.curve.loss[-1] < r.curve.loss[0]
    assert r.confusion.sum() == len(mm.digit_data().y_test)
    assert math.isclose(np.trace(r.confusion) / r.confusion.sum(), r.accuracy)
    assert not any(p.requires_grad for p in r.model.parameters())
    assert np.allclose(np.linalg.norm(r.image_vectors, axis=1), 1, atol=1e-5)


def test_temperature_is_learned_or_fixed(caption_vectors):
    with toy_threads():
        fixed = mm.train_mini_clip(
            mm.ClipConfig(patch=4, steps=10, learn_temperature=False), caption_vectors
        )
        learned = mm.train_mini_clip(mm.ClipConfig(patch=4, steps=10), caption_vectors)
    assert math.isclose(fixed.temperature, 0.07, rel_tol=1e-6)
    assert not math.isclose(learned.temperature, 0.07, rel_tol=1e-6)


def test_caption_scores_rank_the_named_digit_first(short_run, encoder):
    from core.embeddings import sentence_embeddings

    vec = sentence_embeddings(encoder, [mm.caption(0, 3)])[0]
    scores = mm.score_text(short_run, vec)
    y = mm.digit_data().y_test
    per_digit = [scores[y == d].mean() for d in range(10)]
    assert int(np.argmax(per_digit)) == 3


# ---- the page --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page():
    return open_page("pages/24_multimodal.py")


def _token_count(at) -> int:
    for dfs in chart_frames(at):
        for df in dfs:
            if "token" in df.columns and "pixel" in df.columns:
                return int(df["token"].nunique())
    raise AssertionError("no patch-token chart")


def test_patch_size_sets_the_number_of_image_tokens(page):
    at = page
    assert not at.exception
    assert _token_count(at) == 16
    at.select_slider(key="multimodal.patch").set_value(1).run()
    assert _token_count(at) == 64
    at.select_slider(key="multimodal.patch").set_value(4).run()
    assert _token_count(at) == 4
    assert not at.exception


def _train_short(at) -> None:
    at.select_slider(key="multimodal.patch").set_value(4).run()
    at.select_slider(key="multimodal.steps").set_value(50).run()
    start = [b for b in at.button if b.label.startswith("Train 50 steps")]
    if start:  # else already trained with these settings in this process
        start[0].click().run()


def test_training_from_the_button_beats_chance(page):
    at = page
    at.select_slider(key="multimodal.patch").set_value(4).run()
    at.select_slider(key="multimodal.steps").set_value(50).run()
    assert not at.metric
    _train_short(at)
    assert not at.exception
    acc = next(m.value for m in at.metric if m.label == "Zero-shot accuracy")
    assert float(acc.rstrip("%")) / 100 > 0.10
    assert any("Why the temperature matters" in m.value for m in at.markdown)


@pytest.mark.parametrize("text", BAD_INPUTS)
def test_caption_box_survives_bad_input(page, text):
    at = page
    _train_short(at)
    at.text_input(key="multimodal.query").set_value(text).run()
    assert not at.exception
    if not text.strip():
        assert any("Type a caption" in i.value for i in at.info)
    if len(text) > 2000:
        assert at.warning


def test_digit_snapshot_equals_scikit_learns_split():
    ours, ref = mm.digit_data(), mm.sklearn_digit_split(0)
    for a, b in (
        (ours.x_train, ref.x_train),
        (ours.y_train, ref.y_train),
        (ours.x_test, ref.x_test),
        (ours.y_test, ref.y_test),
    ):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize(
    "own,other,t", [(0.6149, 0.1851, 0.05124), (0.5, 0.1, 0.05), (0.33349, 0.28151, 0.01)]
)
def test_logit_gap_is_the_one_the_shown_numbers_give(own, other, t):
    """Redoing the division with the numbers printed gives the printed gap (it read 8.4 beside
    rounded values that give 8.3)."""
    import re

    from components.multimodal import gap_text

    text = gap_text(own, other, t)
    a, b, temp = (float(x) for x in re.findall(r"\d+\.\d+", text)[:3])
    gap = float(re.search(r"= (\d+\.\d) logits", text).group(1))
    assert f"{(a - b) / temp:.1f}" == f"{gap:.1f}"
    assert abs(gap - (own - other) / t) <= 0.06 + abs((own - other) / t) * 0.01


def test_similarity_matrix_fits_its_column_and_hides_numbers_in_narrow_cells():
    # At 40 px a column the 10 x 10 matrix ran past a phone's width: captions seven to nine
    # and the colour legend were cut off.
    import numpy as np

    from components.charts import fitted
    from components.multimodal import similarity_chart, similarity_frame

    spec = similarity_chart(similarity_frame(np.eye(10) * 0.8, np.arange(10))).to_dict()
    assert "width" not in spec  # `draw_chart` stretches it to the column
    text = [lay for lay in spec["layer"] if lay["mark"]["type"] == "text"][0]
    assert "bandwidth('x') >= 30" in text["mark"]["opacity"]["expr"]
    fit = fitted(similarity_chart(similarity_frame(np.eye(10), np.arange(10)))).to_dict()
    assert fit["autosize"]["type"] == "fit-x"


def test_similarity_numbers_take_the_ink_that_reads_on_their_own_cell():
    # White text was chosen by |cosine| > 0.45 whatever the scale's range: on a matrix whose
    # largest cosine is 0.9, a 0.5 cell is light orange and its white number unreadable.
    import numpy as np

    from components.charts import DARK_INK, LIGHT_INK, ink_on, scheme_colour
    from components.multimodal import similarity_chart, similarity_frame

    m = np.array([[0.9, 0.5], [-0.5, 0.0]])
    spec = similarity_chart(similarity_frame(m, np.arange(2))).to_dict()
    cells = [lay for lay in spec["layer"] if lay["mark"]["type"] == "rect"][0]
    assert cells["encoding"]["color"]["scale"]["domain"] == [-0.9, 0.9]
    rows = next(iter(spec["datasets"].values()))
    ink = {r["cosine"]: r["ink"] for r in rows}
    for value, want in ink.items():  # the fill at that value, by the scale's own stops
        assert want == ink_on(scheme_colour("blueorange", (value + 0.9) / 1.8)), value
    assert ink[0.5] == DARK_INK and ink[0.9] == LIGHT_INK
