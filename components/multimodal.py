"""Page 24 (multimodal): patches beside caption tokens, the mini-CLIP's curves, similarity
matrix and caption search, with cached wrappers around core.multimodal."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import draw_chart, ink_encoding, ink_for
from core import multimodal as mm
from core.embeddings import MAX_SENTENCE_TOKENS

# Estimated cost of one training step (batch 64, evaluation every 20 steps included) on one
# idle core: 300 steps at patch 2 took about 5 s when first measured; the ratios
# between patch sizes (64 tokens ~3.5x, 4 tokens ~0.7x the 16-token cost) were measured here
# (bench/multimodal_bench.py), on a loaded machine where every step took 2-3x longer.
MS_PER_STEP = {1: 60.0, 2: 17.0, 4: 12.0}


def training_estimate_s(steps: int, patch: int) -> float:
    return steps * MS_PER_STEP[patch] / 1000 + 0.5


CAPTION_CHAR_CAP = 2_000


@st.cache_resource(show_spinner="Embedding the captions with MiniLM…")
def cached_caption_vectors() -> np.ndarray:
    from components.models import get_encoder
    from core.embeddings import sentence_embeddings

    vectors = sentence_embeddings(get_encoder(), list(mm.all_captions()))
    vectors.setflags(write=False)
    return vectors


@st.cache_data(show_spinner=False, max_entries=256)
def cached_sentence_vector(text: str) -> np.ndarray:
    from components.models import get_encoder
    from core.embeddings import sentence_embeddings

    return sentence_embeddings(get_encoder(), [text])[0]


@st.cache_data(show_spinner=False, max_entries=64)
def cached_caption_tokens(text: str) -> tuple[str, ...]:
    from components.models import get_encoder

    tok = get_encoder().tokenizer
    return tuple(tok.convert_ids_to_tokens(tok(text, truncation=True)["input_ids"]))


# ---- frames and charts ---------------------------------------------------------------------


def image_frame(image: np.ndarray, patch: int) -> pd.DataFrame:
    rows, cols = np.indices(image.shape)
    g = mm.IMAGE_SIDE // patch
    return pd.DataFrame(
        {
            "x": cols.ravel(),
            "y": rows.ravel(),
            "ink": image.ravel().round(3),
            "patch": ((rows // patch) * g + cols // patch).ravel(),
        }
    )


def image_chart(df: pd.DataFrame, patch: int) -> alt.Chart:
    """The 8x8 digit with its patch grid; hover a pixel for its patch token."""
    pixels = (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("x:O", title=None, axis=None),
            y=alt.Y("y:O", title=None, axis=None),
            color=alt.Color("ink:Q", scale=alt.Scale(scheme="greys", domain=[0, 1]), legend=None),
            tooltip=["patch", "x", "y", "ink"],
        )
    )
    edges = [i * patch - 0.5 for i in range(1, mm.IMAGE_SIDE // patch)]
    lines = pd.DataFrame({"at": edges})
    v = (
        alt.Chart(lines)
        .mark_rule(color="#e8590c", strokeWidth=2)
        .encode(x=alt.X("at:Q", scale=alt.Scale(domain=[-0.5, 7.5]), axis=None))
    )
    h = (
        alt.Chart(lines)
        .mark_rule(color="#e8590c", strokeWidth=2)
        .encode(y=alt.Y("at:Q", scale=alt.Scale(domain=[7.5, -0.5]), axis=None))
    )
    layers = [pixels] if not edges else [pixels, v, h]
    return (
        alt.layer(*layers)
        .resolve_scale(x="independent", y="independent")
        .properties(width=180, height=180)
    )


def tokens_frame(image: np.ndarray, patch: int) -> pd.DataFrame:
    import torch

    tokens = mm.patchify(torch.from_numpy(image[None].astype(np.float32)), patch)[0].numpy()
    t, p = np.indices(tokens.shape)
    return pd.DataFrame({"token": t.ravel(), "pixel": p.ravel(), "ink": tokens.ravel().round(3)})


def tokens_chart(df: pd.DataFrame) -> alt.Chart:
    n = int(df["token"].max()) + 1
    axis = alt.Axis(values=list(range(0, n, max(1, n // 16))))
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("token:O", title=f"patch token (showing all {n})", axis=axis),
            y=alt.Y("pixel:O", title="pixel in patch"),
            color=alt.Color("ink:Q", scale=alt.Scale(scheme="greys", domain=[0, 1]), legend=None),
            tooltip=["token", "pixel", "ink"],
        )
        .properties(height=180)
    )


def curve_frames(curve: mm.Curve) -> tuple[pd.DataFrame, pd.DataFrame]:
    keep = np.unique(np.linspace(0, len(curve.steps) - 1, min(len(curve.steps), 200)).astype(int))
    loss = pd.DataFrame(
        {"step": np.asarray(curve.steps)[keep], "loss": np.asarray(curve.loss)[keep]}
    )
    acc = pd.DataFrame({"step": curve.eval_steps, "zero-shot accuracy": curve.zero_shot})
    return loss, acc


def loss_chart(df: pd.DataFrame, steps: int, floor: float | None = None) -> alt.Chart:
    line = (
        alt.Chart(df)
        .mark_line(color="#1c7ed6")
        .encode(
            x=alt.X("step:Q", scale=alt.Scale(domain=[0, steps])),
            y=alt.Y("loss:Q", title="contrastive loss (nats)"),
        )
    )
    if floor is None:
        return line.properties(height=200)
    rule = (
        alt.Chart(pd.DataFrame({"loss": [floor]}))
        .mark_rule(strokeDash=[4, 3], color="#868e96")
        .encode(y="loss:Q")
    )
    return alt.layer(line, rule).properties(height=200)


def accuracy_chart(df: pd.DataFrame, steps: int) -> alt.Chart:
    line = (
        alt.Chart(df)
        .mark_line(point=True, color="#2f9e44")
        .encode(
            x=alt.X("step:Q", scale=alt.Scale(domain=[0, steps])),
            y=alt.Y(
                "zero-shot accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")
            ),
        )
    )
    chance = (
        alt.Chart(pd.DataFrame({"zero-shot accuracy": [0.1]}))
        .mark_rule(strokeDash=[4, 3], color="#e03131")
        .encode(y="zero-shot accuracy:Q")
    )
    return alt.layer(line, chance).properties(height=200)


def draw_curves(curve: mm.Curve, steps: int, floor: float | None = None) -> None:
    loss, acc = curve_frames(curve)
    c1, c2 = st.columns(2)
    draw_chart(loss_chart(loss, steps, floor), where=c1)
    draw_chart(accuracy_chart(acc, steps), where=c2)


def similarity_frame(matrix: np.ndarray, digits: np.ndarray) -> pd.DataFrame:
    i, j = np.indices(matrix.shape)
    return pd.DataFrame(
        {
            "image": [f"test image of a {digits[r]}" for r in i.ravel()],
            "caption": [mm.DIGIT_WORDS[c] for c in j.ravel()],
            "cosine": matrix.ravel().round(3),
        }
    )


def similarity_chart(df: pd.DataFrame) -> alt.Chart:
    images = list(dict.fromkeys(df["image"]))
    captions = list(dict.fromkeys(df["caption"]))
    # a domain symmetric about 0, so that the text's ink is picked from the cell's own fill
    edge = float(np.abs(df["cosine"]).max()) or 1.0
    df = df.assign(ink=ink_for(df["cosine"].to_numpy(), "blueorange", (-edge, edge)))
    base = alt.Chart(df).encode(
        x=alt.X(
            "caption:N",
            sort=captions,
            title="captions of the digit (averaged)",
            axis=alt.Axis(labelAngle=-40, labelOverlap=False),
        ),
        y=alt.Y("image:N", sort=images, title=None),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("cosine:Q", scale=alt.Scale(scheme="blueorange", domain=[-edge, edge])),
        tooltip=["image", "caption", "cosine"],
    )
    # the numbers only where a column is wide enough to hold "−0.22" (a phone shows the colours)
    text = base.mark_text(fontSize=10, opacity=alt.expr("bandwidth('x') >= 30 ? 1 : 0")).encode(
        text=alt.Text("cosine:Q", format=".2f"),
        color=ink_encoding(),  # white or dark, whichever reads on the cell's own colour
    )
    # stretched to its column: a fixed 40 px a column ran past a phone's width (three captions
    # and the legend cut off)
    return alt.layer(cells, text).properties(height=alt.Step(24))


def digit_strip(images: np.ndarray, scale: int = 6, gap: int = 2) -> np.ndarray:
    """Digits side by side as one picture: dark ink on white, each pixel scale x scale."""
    tiles = [np.kron(1.0 - im, np.ones((scale, scale))) for im in images]
    h = tiles[0].shape[0]
    out = np.ones((h, len(tiles) * (h + gap) - gap))
    for k, tile in enumerate(tiles):
        out[:, k * (h + gap) : k * (h + gap) + h] = tile
    return (out * 255).astype(np.uint8)


def per_digit_frame(scores: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "digit": [str(d) for d in range(10)],
            "mean cosine": [float(scores[labels == d].mean()) for d in range(10)],
        }
    )


def per_digit_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("digit:N", title="true digit of the test images", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("mean cosine:Q", title="mean cosine with your caption"),
            color=alt.condition(
                "datum['mean cosine'] > 0", alt.value("#1c7ed6"), alt.value("#e03131")
            ),
        )
        .properties(height=200)
    )


def clean_caption(text: str) -> str | None:
    """The caption to score, or None (with a message) when there is nothing to score."""
    if not text.strip():
        st.info("Type a caption, e.g. 'a handwritten digit three', to rank the test images.")
        return None
    if len(text) > CAPTION_CHAR_CAP:
        st.warning(
            f"That caption has {len(text):,} characters; the first {CAPTION_CHAR_CAP:,} "
            f"are used (MiniLM reads at most {MAX_SENTENCE_TOKENS} tokens of it)."
        )
        text = text[:CAPTION_CHAR_CAP]
    return text


# ---- sections (drawing) --------------------------------------------------------------------


def gap_text(own: float, other: float, temperature: float) -> str:
    """The logit gap worked out from the numbers the sentence shows (3 decimals for the
    cosines, 4 for T), so a reader who redoes the division gets the same figure."""
    a, b, t = round(own, 3), round(other, 3), round(temperature, 4)
    return (
        f"matched pairs average a cosine of {a:.3f} and mismatched ones {b:.3f}; divided by "
        f"T = {t:.4f}, that gap is ({a:.3f} − {b:.3f}) / {t:.4f} = {(a - b) / t:.1f} logits."
    )


def results_section(result: mm.ClipResult) -> None:
    data, cfg = mm.digit_data(), result.config
    draw_curves(result.curve, cfg.steps, result.loss_floor)
    own, other = mm.matched_gap(result)
    scale = 1 / result.temperature
    m = st.columns(4)
    m[0].metric(
        "Zero-shot accuracy",
        f"{result.accuracy:.1%}",
        f"{result.accuracy - 0.1:+.1%} vs chance (10%)",
        help=f"Each of the {len(data.y_test)} held-out images gets the digit whose "
        "captions are closest: no classifier was trained.",
    )
    m[1].metric(
        "Temperature T",
        f"{result.temperature:.4f}",
        help=f"Logit scale 1/T = {scale:.1f}; started at 1/{cfg.temperature} = "
        f"{1 / cfg.temperature:.1f}" + ("" if cfg.learn_temperature else ", kept fixed"),
    )
    m[2].metric("Cosine, matched", f"{own:.2f}", help="Test image with its own digit's text.")
    m[3].metric("Cosine, other digits", f"{other:.2f}")
    st.caption(
        f"Dashed red: chance. Dashed grey: the lowest loss reachable here, "
        f"{result.loss_floor:.2f} nats: a batch of {cfg.batch} holds several images of "
        "each digit whose captions say the same thing, so an image cannot tell its own "
        "caption from the others of its digit."
    )
    st.markdown(
        "**Why the temperature matters.** The loss reads logits = cosine / T. Here "
        + gap_text(own, other, result.temperature)
        + " CLIP's learned scale rises to its cap of 100 (T = 0.01), where a cosine gap of 0.1 "
        "already gives 10 logits and a near-certain softmax: nothing pushes matched pairs "
        "higher, which is why real CLIP models score matched image-caption pairs at only "
        "about 0.25-0.3 cosine."
    )
    matrix, rows = mm.similarity_matrix(result)
    st.image(
        digit_strip(data.x_test[rows], scale=3),
        caption="The matrix's rows: the first test image of each digit, 0 to 9. A good "
        "model has the largest cosine of every row on the diagonal.",
    )
    draw_chart(similarity_chart(similarity_frame(matrix, data.y_test[rows])))


def caption_search(result: mm.ClipResult, text: str) -> None:
    data = mm.digit_data()
    query = clean_caption(text)
    if query is None:
        return
    scores = mm.score_text(result, cached_sentence_vector(query))
    top = np.argsort(-scores)[:10]
    st.image(
        digit_strip(data.x_test[top]),
        caption="The 10 closest test images, best first: "
        + ", ".join(f"{data.y_test[i]} ({scores[i]:.2f})" for i in top),
    )
    draw_chart(per_digit_chart(per_digit_frame(scores, data.y_test)))
    st.caption(
        f"The model trained on only {len(mm.all_captions())} captions; MiniLM puts new "
        "wordings near ones it knows and the text tower follows, but words it never "
        "learned land anywhere."
    )
