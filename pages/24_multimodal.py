"""24 Multimodal Models: a mini-CLIP trained live on handwritten digits and their captions."""

import streamlit as st

from components import multimodal as mmv
from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.jobs import finished_result, run_job
from components.questions import check_yourself
from components.tokens import token_strip
from core import multimodal as mm
from core.layers import toy_threads

page_frame()
with intro():
    st.markdown(
        "A vision-language model turns an image into tokens too: it cuts the picture into "
        "patches, projects each patch to a vector and adds its position, exactly as text tokens "
        "get an embedding and a position. **CLIP** trains an image encoder and a text encoder "
        "together so that a picture and its caption land close together: in a batch of N pairs, "
        "each image must pick its own caption among the N, and each caption its image "
        "(the symmetric contrastive loss). Below, a miniature CLIP learns from scikit-learn's "
        "8×8 handwritten digits and captions such as “a handwritten digit seven”, read by MiniLM."
    )

data = mm.digit_data()
c1, c2, c3 = st.columns([1, 1, 2])
patch = c1.select_slider(
    "Patch size (pixels)", mm.PATCH_SIZES, 2, key="multimodal.patch", bind="query-params"
)
index = c2.number_input("Test image", 0, len(data.y_test) - 1, 0, key="multimodal.image")
template = c3.selectbox(
    "Caption template",
    range(len(mm.TEMPLATES)),
    key="multimodal.template",
    format_func=lambda t: mm.TEMPLATES[t].format(word="…", d="…"),
)
image, digit = data.x_test[int(index)], int(data.y_test[int(index)])
text = mm.caption(int(template), digit)
n_patches = (mm.IMAGE_SIDE // patch) ** 2
left, mid, right = st.columns([1, 2, 2])
draw_chart(mmv.image_chart(mmv.image_frame(image, patch), patch), where=left)
draw_chart(mmv.tokens_chart(mmv.tokens_frame(image, patch)), where=mid)
mid.caption(
    f"{n_patches} image tokens: each column is one {patch}×{patch} patch "
    f"({patch * patch} pixel values), read left to right, top to bottom."
)
with right:
    caption_tokens = mmv.cached_caption_tokens(text)
    st.markdown(f"Its caption, **{text}**, as {len(caption_tokens)} MiniLM tokens:")
    token_strip(caption_tokens)
    st.caption(
        "Both sequences become vectors of the same width (32 here) before they meet: "
        "the image through one transformer layer, the caption through MiniLM and a "
        "small MLP."
    )

st.subheader("Train the mini-CLIP")
t1, t2 = st.columns(2)
steps = t1.select_slider(
    "Training steps",
    (50, 100, 200, 300, 500, 1000),
    300,
    key="multimodal.steps",
    bind="query-params",
)
learn_temp = t2.checkbox(
    "Learn the temperature",
    True,
    key="multimodal.learn_temp",
    help="Off: the temperature stays at CLIP's starting value, 0.07.",
)
config = mm.ClipConfig(patch=patch, steps=steps, learn_temperature=learn_temp)


def train(report):
    vectors = mmv.cached_caption_vectors()  # MiniLM, once per process
    with toy_threads():
        return mm.train_mini_clip(config, vectors, report)


job_key = ("multimodal", "clip", config)
fresh = finished_result(job_key) is None
result = run_job(
    job_key,
    train,
    start_label=f"Train {steps} steps",
    estimate_s=mmv.training_estimate_s(steps, patch),
    caps=f"Batches of {config.batch} pairs, at most {mm.MAX_STEPS} steps; "
    f"{len(data.y_train):,} training digits, {len(data.y_test)} held out.",
    on_partial=lambda c: mmv.draw_curves(c, steps),
)
if result is not None and fresh:
    st.rerun()  # redraw from the shared result: drops the live curves and the progress bar
if result is None:
    st.info(
        "Press the button to train: the loss curve and the zero-shot accuracy on the "
        "held-out digits appear as it learns."
    )
else:
    mmv.results_section(result)
    st.subheader("Search the test images with your own caption")
    query = st.text_input(
        "Caption", "a handwritten digit three", key="multimodal.query", max_chars=20_000
    )
    mmv.caption_search(result, query)

with st.expander("Go deeper: real vision-language models"):
    st.markdown(
        f"OpenAI's CLIP ViT-B/32 cuts a 224×224 image into 32×32-pixel patches: "
        f"{(224 // 32) ** 2} tokens (ViT-B/16: {(224 // 16) ** 2}), a 12-layer transformer "
        "instead of one, and 400 million image-caption pairs from the web instead of "
        f"{len(data.y_train):,} digits; the loss is the one above. Models such as LLaVA or "
        "SmolVLM then feed the image tokens from such an encoder, through a projection, into a "
        "language model's input sequence beside the text tokens. With internet access those "
        "checkpoints load from the Hugging Face hub with transformers; none ships offline."
    )

show_code(mm.patchify, mm.clip_loss, mm.train_mini_clip)

check_yourself()
