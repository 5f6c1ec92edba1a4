"""Check yourself: every page asks at least one question, and its right answer is the one this
test recomputes from the model (a fresh forward pass of our own) or the core function directly,
at the page's current settings. Choosing it says "Right"; another option says "Not quite"."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from components.state import DEFAULT_PROMPT
from core import activations, context_window, rag
from core import multimodal as mm
from core import pretraining_data as dp
from core import pretraining_loop as pt
from core import scaling as sc
from core.agents import calculator
from core.concepts import CONCEPTS
from core.embeddings import word_ids
from core.neuron import layer_similarity
from core.runtime.models import load_embedded
from tests.apptest_util import open_page

PROMPT = DEFAULT_PROMPT


@pytest.fixture(scope="module")
def lm():
    return load_embedded()


def visible(text: str) -> str:
    from components.tokens import visible as v

    return v(text)


def forward(lm, text: str, attentions: bool = False):
    """Our own forward pass: token strings, logits (T, V), hidden states, attention maps."""
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"][:, :256]
    with torch.no_grad():
        out = lm.model(ids, output_hidden_states=True, output_attentions=attentions)
    tokens = [lm.tokenizer.decode([int(i)]) for i in ids[0]]
    return ids[0], tokens, out


def tok(tokens, i):
    return f"#{i} '{visible(tokens[i])}'"


def s(at, key):
    return at.session_state[key]


def expect_neuron(at, lm):
    keys = ("x1", "x2", "w1", "w2", "b", "activation")
    x1, x2, w1, w2, b, act = (s(at, f"neuron.{k}") for k in keys)
    z = w1 * x1 + w2 * x2 + b
    return f"{float(activations.ACTIVATIONS[act].f(torch.tensor(z, dtype=torch.float64))):.3f}"


def expect_layers(at, lm):
    _, _, out = forward(lm, PROMPT)
    hidden = torch.stack(out.hidden_states)[:, 0].numpy()  # (L+1, T, d)
    # the page compares the last layer after the final norm
    hidden[-1] = lm.model.model.norm(out.hidden_states[-1])[0].detach().numpy()
    m = layer_similarity(hidden[:, 1:], s(at, "layers.similarity"))
    adjacent = [float(m[i, i + 1]) for i in range(m.shape[0] - 1)]
    best = int(np.argmax(adjacent))
    return f"layers {best} and {best + 1}"


def expect_activations(at, lm):
    lo, _ = s(at, "activations.range")
    chosen = s(at, "activations.chosen")
    x = torch.tensor(float(lo), dtype=torch.float64)
    values = {n: float(activations.ACTIVATIONS[n].f(x)) for n in chosen}
    return activations.LABELS[min(values, key=values.get)]


def expect_training(at, lm):
    names = ("x1", "x2", "w1", "w2", "b", "target")
    v = {n: torch.tensor(float(s(at, f"training.{n}")), requires_grad=True) for n in names}
    loss = (torch.tanh(v["x1"] * v["w1"] + v["x2"] * v["w2"] + v["b"]) - v["target"]) ** 2
    loss.backward()  # autograd, not the page's hand-written chain rule
    return f"{float(v['w1'].grad):.3f}"


def expect_overfitting(at, lm):
    from core import overfitting

    r = overfitting.fit(
        overfitting.FitConfig(
            n_train=s(at, "overfitting.n"),
            noise=s(at, "overfitting.noise"),
            width=s(at, "overfitting.width"),
            weight_decay=s(at, "overfitting.decay"),
            dropout=s(at, "overfitting.dropout"),
            early_stopping=s(at, "overfitting.early"),
            patience=s(at, "overfitting.patience"),
            seed=int(s(at, "overfitting.seed")),
        )
    )
    return "held-out loss" if r.final_val > r.final_train else "training loss"


def expect_tokenization(at, lm):
    text = s(at, "tokenization.text")
    return f"{len(lm.tokenizer(text, add_special_tokens=False)['input_ids'])}"


def expect_embeddings(at, lm):
    table = lm.model.get_input_embeddings().weight.detach().float()
    word = s(at, "embeddings.word").strip()
    ids = list(word_ids(lm.tokenizer, word))
    return ids, None, table  # checked below with its own cosine


def expect_attention(at, lm):
    layer, head = int(s(at, "attention.layer")), int(s(at, "attention.head"))
    _, tokens, out = forward(lm, PROMPT, attentions=True)
    row = out.attentions[layer][0, head, -1].double().numpy()
    return tok(tokens, int(np.argmax(row)))


def expect_multi_head(at, lm):
    layer = int(s(at, "multi_head.layer"))
    _, _, out = forward(lm, PROMPT, attentions=True)
    w = out.attentions[layer][0].double().numpy()  # (heads, T, T)
    prev = [np.mean([w[h, t, t - 1] for t in range(1, w.shape[-1])]) for h in range(len(w))]
    return f"head {int(np.argmax(prev))}"


def expect_block(at, lm):
    block = lm.model.model.layers[0]
    attn = sum(p.numel() for p in block.self_attn.parameters())
    mlp = sum(p.numel() for p in block.mlp.parameters())
    return attn, mlp


def top_token(lm, logits):
    return f"'{visible(lm.tokenizer.decode([int(torch.argmax(logits))]))}'"


def expect_full_model(at, lm):
    _, _, out = forward(lm, PROMPT)
    return top_token(lm, out.logits[0, -1])


def expect_lm_objective(at, lm):
    ids, tokens, out = forward(lm, s(at, "lm_objective.text"))
    logp = torch.log_softmax(out.logits[0].double(), -1)
    nats = -logp[torch.arange(len(ids) - 1), ids[1:]]
    return tok(tokens, int(torch.argmax(nats)) + 1)


def expect_pretraining_data(at, lm):
    k = "pretraining_data"
    v = {n: s(at, f"{k}.{n}") for n in ("english", "min_words", "symbols", "stop", "caps")}
    v |= {n: s(at, f"{k}.{n}") for n in ("boiler", "lines", "top2", "dup5", "shingle")}
    v |= {n: s(at, f"{k}.{n}") for n in ("perm", "bands", "jaccard")}
    pipeline = dp.PIPELINE.with_steps(
        dp.LanguageFilter(min_english=v["english"]),
        dp.QualityFilter(
            min_words=v["min_words"],
            max_symbol_ratio=v["symbols"],
            min_stopword_ratio=v["stop"],
            max_caps_ratio=v["caps"],
            max_boilerplate_lines=v["boiler"],
        ),
        dp.RepetitionFilter(
            max_dup_lines=v["lines"], max_top_bigram=v["top2"], max_dup_5gram=v["dup5"]
        ),
        dp.NearDedup(
            shingle=v["shingle"], num_perm=v["perm"], bands=v["bands"], jaccard=v["jaccard"]
        ),
    )
    result = dp.run_pipeline(dp.sample_corpus(), pipeline)
    return Counter(x.stage for x in result.dropped).most_common(1)[0][0]


def expect_pretraining_loop(at, lm):
    lr, warmup = s(at, "pretraining_loop.lr"), int(s(at, "pretraining_loop.warmup"))
    steps = int(s(at, "pretraining_loop.steps"))
    warmup = min(warmup, steps)
    return f"{lr * pt.lr_factor(warmup // 2, warmup, steps, 0.1):.2e}"


def expect_scaling(at, lm):
    c = 10 ** float(s(at, "scaling.log_c"))
    f = sc.CHINCHILLA
    # minimise E + A/N^alpha + B/D^beta with 6ND = C: N = G (C/6)^a, the paper's eq. 4
    g = (f.alpha * f.A / (f.beta * f.B)) ** (1 / (f.alpha + f.beta))
    return f"{g * (c / 6) ** (f.beta / (f.alpha + f.beta)):.1e}"


def expect_fine_tuning(at, lm):
    rank, targets = int(s(at, "fine_tuning.rank")), s(at, "fine_tuning.targets")
    total = 0
    for layer in lm.model.model.layers:
        for name, mod in layer.named_modules():
            if name in targets:
                total += rank * (mod.in_features + mod.out_features)
    return f"{total:,}"


def expect_rlhf(at, lm):
    n = int(at.session_state["rlhf.n"]) if "rlhf.n" in at.session_state else 4
    return f"{math.log(n) - (n - 1) / n:.3f}"


def expect_inference_loop(at, lm):
    c = lm.config
    tokens = len(lm.tokenizer(PROMPT)["input_ids"]) + int(s(at, "inference_loop.max_tokens"))
    head = c.hidden_size // c.num_attention_heads
    width = next(lm.model.parameters()).element_size()
    return f"{2 * c.num_hidden_layers * c.num_key_value_heads * head * tokens * width / 1e6:.2f} MB"


def expect_decoding(at, lm):
    from transformers import (
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    ids, _, out = forward(lm, PROMPT)
    assert s(at, "decoding.repetition") == 1
    scores = out.logits[0, -1:].float()
    scores = TemperatureLogitsWarper(s(at, "decoding.temperature"))(ids[None], scores)
    if s(at, "decoding.top_k"):
        scores = TopKLogitsWarper(s(at, "decoding.top_k"))(ids[None], scores)
    if s(at, "decoding.top_p") < 1:
        scores = TopPLogitsWarper(s(at, "decoding.top_p"))(ids[None], scores)
    if s(at, "decoding.min_p") > 0:
        scores = MinPLogitsWarper(s(at, "decoding.min_p"))(ids[None], scores)
    # drawable: a float32 softmax that does not round the token's probability to 0
    return f"{int((scores.softmax(-1) > 0).sum()):,}"


def expect_context_window(at, lm):
    ids = lm.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    budget, strategy = int(s(at, "context_window.budget")), s(at, "context_window.strategy")
    cut = context_window.truncate(ids, budget, strategy)
    assert len(cut.kept) == min(budget, len(ids))
    return f"{len(ids) - min(budget, len(ids))}"


def expect_rag(at, lm):
    return f"{len(rag.corpus_chunks(s(at, 'rag.size'), s(at, 'rag.overlap')))}"


def expect_agents(at, lm):
    return calculator.calculate(s(at, "agents.expr")).text


def expect_prompting(at, lm):
    return f"{len(lm.tokenizer(s(at, 'prompting.template'))['input_ids'])}"


def expect_multimodal(at, lm):
    return f"{(mm.IMAGE_SIDE // int(s(at, 'multimodal.patch'))) ** 2}"


def expect_limits(at, lm):
    return f"{len(lm.tokenizer('strawberry', add_special_tokens=False)['input_ids'])}"


EXPECT = {
    name[len("expect_") :]: fn for name, fn in globals().items() if name.startswith("expect_")
}


def right_option(slug, at, lm, radio):
    got = EXPECT[slug](at, lm)
    if slug == "embeddings":  # the nearest token by our own cosine over the whole table
        ids, _, table = got
        v = table[ids].mean(0)
        cos = torch.nn.functional.cosine_similarity(table, v[None], dim=1)
        cos[ids] = -2
        return f"{visible(lm.tokenizer.decode([int(torch.argmax(cos))]))}"
    if slug == "block":
        attn, mlp = got
        return next(o for o in radio.options if ("mlp" if mlp > attn else "attention") in o.lower())
    return got


@pytest.mark.parametrize("c", CONCEPTS, ids=lambda c: c.slug)
def test_each_page_asks_a_question_whose_answer_the_model_gives(c, lm):
    at = open_page(c.page_file)
    assert not at.exception, at.exception
    radios = [r for r in at.radio if (r.key or "").startswith(f"quiz.{c.slug}.")]
    assert radios, f"{c.slug}: no Check yourself question"
    first = radios[0]
    right = right_option(c.slug, at, lm, first)
    assert right in first.options, (c.slug, right, first.options)
    wrong = next(o for o in first.options if o != right)
    first.set_value(wrong).run()
    assert any("Not quite" in e.value for e in at.error)
    at.radio(key=first.key).set_value(right).run()
    assert any(x.value.startswith("Right") for x in at.success), c.slug
