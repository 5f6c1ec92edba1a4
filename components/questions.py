"""Check yourself: one to three questions per page whose right answer is computed from the live
model or the page's own computation at the learner's current settings. One builder per page
slug; each reads the same cached wrappers the page uses, so asking costs no new computation.
Answers live in the session only (widget state), nothing is stored about a learner."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from components import export, frame
from components.state import PROMPT_KEY
from components.tokens import escape_markdown
from core.lessons import SLUGS


@dataclass(frozen=True)
class Question:
    text: str
    options: tuple[str, ...]
    answer: str  # one of options
    why: str  # shown after an answer


BUILDERS: dict[str, Callable[[], list[Question]]] = {}


def builder(slug: str):
    def register(fn: Callable[[], list[Question]]):
        BUILDERS[slug] = fn
        return fn

    return register


def _pick(answer: str, others: list[str], n: int = 4) -> tuple[str, ...]:
    """The answer and up to n-1 different distractors, in a stable order (sorted), so the
    question keeps its widget while the settings stay the same."""
    seen = [answer]
    for o in others:
        if o not in seen:
            seen.append(o)
        if len(seen) == n:
            break
    return tuple(sorted(seen))


def _num(x: float, fmt: str = ".3f") -> str:
    return format(x, fmt)


def _state(key: str):
    return st.session_state[key]  # drawn on the page already: the learner's current value


def _prompt() -> str:
    from components.models import get_prompt
    from components.state import DEFAULT_PROMPT

    return get_prompt() if get_prompt().strip() else DEFAULT_PROMPT


def _tok(tokens, i: int) -> str:
    from components.tokens import visible

    return f"#{i} '{visible(tokens[i])}'"


@builder("neuron")
def _neuron() -> list[Question]:
    from core import activations

    w1, w2, b = _state("neuron.w1"), _state("neuron.w2"), _state("neuron.b")
    x1, x2, act = _state("neuron.x1"), _state("neuron.x2"), _state("neuron.activation")
    z, a = activations.neuron(x1, x2, w1, w2, b, act)
    others = [_num(z), _num(-a), _num(a + 0.5), _num(a - 0.5)]
    return [
        Question(
            "With your weights, bias and inputs, what does the neuron output (a = f(z))?",
            _pick(_num(a), others),
            _num(a),
            f"z = w1·x1 + w2·x2 + b = {z:.3f}, and the activation turns it into {a:.3f}.",
        )
    ]


@builder("layers")
def _layers() -> list[Question]:
    from components.layers import cached_layer_similarity
    from components.models import current_model_id

    method = _state("layers.similarity")
    matrix, _ = cached_layer_similarity(current_model_id(), _prompt(), method)
    adjacent = [float(matrix[i, i + 1]) for i in range(matrix.shape[0] - 1)]
    best = max(range(len(adjacent)), key=adjacent.__getitem__)
    label = lambda i: f"layers {i} and {i + 1}"  # noqa: E731
    spread = sorted(range(len(adjacent)), key=adjacent.__getitem__)
    return [
        Question(
            f"By {method}, which two neighbouring layers see your prompt most alike?",
            _pick(label(best), [label(i) for i in spread[:3]]),
            label(best),
            f"Their similarity is {adjacent[best]:.3f}, the highest of the {len(adjacent)} "
            "neighbouring pairs: each block changes the stream only a little there.",
        )
    ]


@builder("activations")
def _activations() -> list[Question]:
    from core import activations

    chosen = tuple(_state("activations.chosen"))
    lo, hi = _state("activations.range")
    if len(chosen) < 2:
        return []
    c = activations.curves(chosen, lo, hi)
    at_lo = {n: float(c.values[n][0]) for n in chosen}
    best = min(chosen, key=at_lo.__getitem__)
    label = activations.LABELS.get
    return [
        Question(
            f"At x = {lo:g}, the left end of your range, which chosen activation gives the "
            "lowest output?",
            _pick(label(best), [label(n) for n in chosen]),
            label(best),
            "Values there: " + ", ".join(f"{label(n)} {v:.3f}" for n, v in at_lo.items()) + ".",
        )
    ]


@builder("training")
def _training() -> list[Question]:
    from core import training as optim

    names = ("x1", "x2", "w1", "w2", "b", "target")
    vals = [float(_state(f"training.{n}")) for n in names]
    g = optim.hand_gradients(*vals)
    right = _num(g["w1"])
    return [
        Question(
            "At your values, what is the gradient ∂L/∂w1 that backpropagation computes?",
            _pick(right, [_num(g["w2"]), _num(g["b"]), _num(-g["w1"]), _num(g["z"])]),
            right,
            f"∂L/∂w1 = ∂L/∂z · x1 = {g['z']:.3f} × {vals[0]:g}: the chain rule, link by link.",
        )
    ]


@builder("overfitting")
def _overfitting() -> list[Question]:
    from components.overfitting import cached_fit
    from core import overfitting as overfit

    config = overfit.FitConfig(
        n_train=_state("overfitting.n"),
        noise=_state("overfitting.noise"),
        width=_state("overfitting.width"),
        weight_decay=_state("overfitting.decay"),
        dropout=_state("overfitting.dropout"),
        early_stopping=_state("overfitting.early"),
        patience=_state("overfitting.patience"),
        seed=int(_state("overfitting.seed")),
    )
    r = cached_fit(config)
    ratio = r.final_val / max(r.final_train, 1e-12)
    right = "held-out loss" if r.final_val > r.final_train else "training loss"
    return [
        Question(
            "At your settings, which loss ends higher: the training loss or the held-out loss?",
            ("held-out loss", "training loss"),
            right,
            f"Training {r.final_train:.4f}, held-out {r.final_val:.4f} ({ratio:.1f}×): "
            "the gap is what memorising costs on new data.",
        )
    ]


@builder("tokenization")
def _tokenization() -> list[Question]:
    from components.tokenization import tokenize_all

    text = _state("tokenization.text")
    if not text.strip():
        return []
    results = tokenize_all(text)
    counts = {r.name: r.count for r in results}
    why = "Counts: " + ", ".join(f"{n} {c}" for n, c in counts.items()) + "."
    first = results[0]
    out = [
        Question(
            f"How many tokens does {first.name} cut your text into?",
            _pick(
                f"{first.count}",
                [f"{first.count * 2}", f"{max(first.count // 2, 1)}", f"{len(text)}"],
            ),
            f"{first.count}",
            why,
        )
    ]
    fewest = min(counts.values())
    winners = [n for n, c in counts.items() if c == fewest]
    if len(winners) == 1:
        out.append(
            Question(
                "Which tokenizer cuts your text into the fewest tokens?",
                tuple(sorted(counts)),
                winners[0],
                why,
            )
        )
    return out


@builder("embeddings")
def _embeddings() -> list[Question]:
    from components import embeddings as ce
    from components.models import current_model_id

    word = _state("embeddings.word").strip()[:40]
    if not word:
        return []
    choices = ce.token_choices(current_model_id(), word)  # the page's token for the word
    ids = choices.get(st.session_state.get("embeddings.token"), next(iter(choices.values())))
    nb = ce.cached_neighbours(current_model_id(), ids, 12)
    tokens = list(nb["token"])
    return [
        Question(
            f"Which of these tokens has the embedding closest to '{word}'?",
            _pick(tokens[0], tokens[-3:]),
            tokens[0],
            f"Its cosine similarity is {nb['cosine'].iloc[0]:.3f}; the others here are "
            "further down the neighbour list.",
        )
    ]


@builder("attention")
def _attention() -> list[Question]:
    import numpy as np

    from components.attention import attention_trace

    layer, head = int(_state("attention.layer")), int(_state("attention.head"))
    trace = attention_trace(_prompt())
    row = np.asarray(trace.attentions[layer, head][-1], dtype=np.float64)  # (T,)
    order = [int(i) for i in np.argsort(-row)]
    t = trace.tokens
    return [
        Question(
            f"In layer {layer}, head {head}: which token does the last token attend to most?",
            _pick(_tok(t, order[0]), [_tok(t, i) for i in order[1:4]]),
            _tok(t, order[0]),
            f"It gets {row[order[0]]:.2f} of the last row's weight (the row sums to 1).",
        )
    ]


@builder("multi_head")
def _multi_head() -> list[Question]:
    import numpy as np

    from components.attention import attention_trace

    layer = int(_state("multi_head.layer"))
    trace = attention_trace(_prompt())
    w = np.asarray(trace.attentions[layer], dtype=np.float64)  # (heads, T, T)
    if w.shape[-1] < 3:
        return []
    prev = [float(np.mean([w[h, t, t - 1] for t in range(1, w.shape[-1])])) for h in range(len(w))]
    best = int(np.argmax(prev))
    label = lambda h: f"head {h}"  # noqa: E731
    return [
        Question(
            f"In layer {layer}, which head puts the most weight on the previous token?",
            _pick(label(best), [label(h) for h in np.argsort(prev)[:3]]),
            label(best),
            f"Head {best} gives the previous token {prev[best]:.2f} of each row on average.",
        )
    ]


@builder("block")
def _block() -> list[Question]:
    from components import block as cb
    from components.models import current_model_id

    _, rows = cb.cached_parameters(current_model_id())
    parts = cb.params_frame(rows).groupby("part")["parameters"].sum().to_dict()
    best = max(parts, key=parts.get)
    return [
        Question(
            "Which part of one block holds the most parameters?",
            tuple(sorted(parts)),
            best,
            ", ".join(f"{p} {n:,}" for p, n in parts.items()) + ".",
        )
    ]


def _top_tokens(logits, k: int = 4) -> list[str]:
    import numpy as np

    from components.models import get_lm
    from components.tokens import visible

    tok = get_lm().tokenizer
    ids = np.argsort(-np.asarray(logits, dtype=np.float64))[:k]
    return [f"'{visible(tok.decode([int(i)]))}'" for i in ids]


@builder("full_model")
def _full_model() -> list[Question]:
    from components.models import get_trace

    trace = get_trace(_prompt())
    top = _top_tokens(trace.last_logits)
    return [
        Question(
            "After the last layer, which token does the model rank first to come next?",
            _pick(top[0], top[1:]),
            top[0],
            "It has the largest logit at the last position; the others are its runners-up.",
        )
    ]


@builder("lm_objective")
def _lm_objective() -> list[Question]:
    import numpy as np

    from components.models import get_trace
    from core.lm_objective import surprisal

    text = _state("lm_objective.text")
    trace = get_trace(text if text.strip() else _prompt())
    if trace.length < 3:
        return []
    s = surprisal(trace)
    order = [int(s.positions[i]) for i in np.argsort(-s.nats)]
    worst = order[0]
    return [
        Question(
            "Which token of your text surprised the model most?",
            _pick(_tok(trace.tokens, worst), [_tok(trace.tokens, i) for i in order[-3:]]),
            _tok(trace.tokens, worst),
            f"-log p = {float(np.max(s.nats)):.2f} nats: the model gave it the lowest "
            "probability of any token it had to predict.",
        )
    ]


@builder("pretraining_loop")
def _pretraining_loop() -> list[Question]:
    from core import pretraining_loop as pt

    lr, warmup = _state("pretraining_loop.lr"), int(_state("pretraining_loop.warmup"))
    steps = int(_state("pretraining_loop.steps"))
    warmup = min(warmup, steps)
    at = max(warmup // 2, 0)
    got = pt.lr_schedule(lr, warmup, steps, 0.1)[at]
    right = f"{got:.2e}"
    return [
        Question(
            f"With your schedule, what is the learning rate at step {at}?",
            _pick(right, [f"{lr:.2e}", f"{lr * 0.1:.2e}", f"{lr * 0.25:.2e}"]),
            right,
            f"Warmup climbs linearly to {lr:g} over {warmup} steps, then a cosine decays it.",
        )
    ]


@builder("scaling")
def _scaling() -> list[Question]:
    from core import scaling as sc

    log_c = float(_state("scaling.log_c"))
    n, d = sc.CHINCHILLA.optimal(10**log_c)
    fmt = lambda x: f"{x:.1e}"  # noqa: E731
    return [
        Question(
            f"At a budget of 10^{log_c:g} FLOPs, about how many parameters does the "
            "Chinchilla fit say the best model has?",
            _pick(fmt(n), [fmt(n * 10), fmt(n / 10), fmt(d)]),
            fmt(n),
            f"N = {n:.2e} parameters trained on D = {d:.2e} tokens, with 6·N·D = C.",
        )
    ]


@builder("fine_tuning")
def _fine_tuning() -> list[Question]:
    from components.models import get_lm
    from core import fine_tuning as ft

    rank, targets = int(_state("fine_tuning.rank")), tuple(_state("fine_tuning.targets"))
    if not targets:
        return []
    got = ft.lora_parameter_formula(get_lm().model, targets, rank)
    return [
        Question(
            f"At rank {rank} on {', '.join(targets)}, how many parameters does LoRA train?",
            _pick(f"{got:,}", [f"{got * 2:,}", f"{got // 2:,}", f"{got * 8:,}"]),
            f"{got:,}",
            "r · (d_in + d_out) for every adapted matrix of every block.",
        )
    ]


@builder("rlhf")
def _rlhf() -> list[Question]:
    from core import rlhf

    n = int(st.session_state.get("rlhf.n", 4))  # asked before the slider exists, too
    right = f"{rlhf.best_of_n_kl_bound(n):.3f}"
    others = [f"{rlhf.best_of_n_kl_bound(m):.3f}" for m in (n + 1, n * 2, max(n - 1, 2), 16)]
    return [
        Question(
            f"Keeping the best of n = {n} answers: how far (KL, nats) does it move from the "
            "policy at most?",
            _pick(right, others),
            right,
            f"log {n} - {n - 1}/{n} = {right} nats when no two answers tie.",
        )
    ]


@builder("inference_loop")
def _inference_loop() -> list[Question]:
    from components.models import get_lm
    from core import inference_loop as inf

    lm = get_lm()
    new = int(_state("inference_loop.max_tokens"))
    tokens = len(lm.tokenizer(_prompt())["input_ids"][:256]) + new
    width = inf.model_dtype_bytes(lm.model)
    got = inf.kv_cache_bytes(lm.config, tokens, width)
    mb = lambda b: f"{b / 1e6:.2f} MB"  # noqa: E731
    return [
        Question(
            f"Your prompt plus {new} new tokens: how much memory does the KV cache hold at "
            "the end?",
            _pick(mb(got), [mb(got / 2), mb(got * 2), mb(got / tokens)]),
            mb(got),
            f"2 (keys and values) × layers × key/value heads × head size × {tokens} tokens "
            f"× {width} bytes.",
        )
    ]


@builder("decoding")
def _decoding() -> list[Question]:
    from components.models import get_lm, get_trace
    from components.tokens import visible
    from core.decoding import next_token_view
    from core.runtime.generation import DecodingSettings

    lm = get_lm()
    text = _prompt()
    if st.session_state.get("decoding.chat"):
        text = lm.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
    trace = get_trace(text)
    s = DecodingSettings(
        temperature=_state("decoding.temperature"),
        top_k=_state("decoding.top_k"),
        top_p=_state("decoding.top_p"),
        min_p=_state("decoding.min_p"),
        repetition_penalty=_state("decoding.repetition"),
    )
    view = next_token_view(trace.last_logits, s, tuple(int(i) for i in trace.ids), top=25)
    label = lambda i: f"'{visible(lm.tokenizer.decode([view.ids[i]]))}'"  # noqa: E731
    kept = [i for i, p in enumerate(view.filtered) if p > 0]
    gone = [i for i, p in enumerate(view.filtered) if p == 0]
    out = [
        Question(
            "At your settings, how many tokens of the whole vocabulary can be drawn next?",
            _pick(
                f"{view.survivors:,}",
                [f"{view.survivors * 2:,}", f"{max(view.survivors // 2, 1):,}", "1", "49,152"],
            ),
            f"{view.survivors:,}",
            "The filters (top-k, top-p, min-p) keep these; every other token has probability 0.",
        )
    ]
    if kept and len(gone) >= 3:
        out.append(
            Question(
                "At this temperature and these filters, which of these tokens can be drawn?",
                _pick(label(kept[-1]), [label(i) for i in gone[:3]]),
                label(kept[-1]),
                "The others were filtered out: their probability after the filters is 0.",
            )
        )
    return out


@builder("context_window")
def _context_window() -> list[Question]:
    from components.context_window import cached_token_count
    from components.models import current_model_id, get_lm
    from core import context_window

    ids = cached_token_count(current_model_id(), st.session_state.get(PROMPT_KEY, ""))
    if not ids:
        ids = tuple(context_window.filler_ids(get_lm().tokenizer, 24))
    budget, strategy = int(_state("context_window.budget")), _state("context_window.strategy")
    cut = context_window.truncate(ids, budget, strategy)
    right = f"{cut.dropped}"
    return [
        Question(
            f"With a budget of {budget} tokens ({strategy}), how many tokens of the prompt "
            "does the model never see?",
            _pick(right, [f"{len(ids)}", f"{max(len(ids) - 1, 0)}", "0", f"{budget}"]),
            right,
            f"The prompt has {len(ids)} tokens; {len(cut.kept)} are kept.",
        )
    ]


@builder("rag")
def _rag() -> list[Question]:
    from core import rag

    size, overlap = _state("rag.size"), _state("rag.overlap")
    n = len(rag.corpus_chunks(size, overlap))
    return [
        Question(
            f"Cut into chunks of {size} with an overlap of {overlap}, how many chunks does "
            "the corpus make?",
            _pick(f"{n}", [f"{n * 2}", f"{max(n // 2, 1)}", f"{n + 7}"]),
            f"{n}",
            "A larger overlap makes more chunks from the same text; a larger size fewer.",
        )
    ]


@builder("agents")
def _agents() -> list[Question]:
    from core.agents import calculator

    expr = _state("agents.expr")[:200]
    calc = calculator.calculate(expr)
    if calc.error:
        return []
    right = calc.text
    return [
        Question(
            "What does the calculator tool return for your expression?",
            _pick(right, [f"{calc.value * 2:g}", f"{calc.value + 1:g}", f"{-calc.value:g}"]),
            right,
            "The tool evaluates plain arithmetic exactly; a model writing the answer itself "
            "only predicts digits.",
        )
    ]


@builder("prompting")
def _prompting() -> list[Question]:
    from components.models import get_lm

    template = _state("prompting.template")
    n = len(get_lm().tokenizer(template)["input_ids"])
    return [
        Question(
            "How many tokens does the model read for your prompt template?",
            _pick(f"{n}", [f"{n + 3}", f"{max(n - 3, 1)}", f"{len(template.split())}"]),
            f"{n}",
            "Each technique adds its own tokens around this template.",
        )
    ]


@builder("multimodal")
def _multimodal() -> list[Question]:
    from core import multimodal as mm

    patch = int(_state("multimodal.patch"))
    n = (mm.IMAGE_SIDE // patch) ** 2
    return [
        Question(
            f"At a patch size of {patch} pixels, how many patch tokens does one "
            f"{mm.IMAGE_SIDE}×{mm.IMAGE_SIDE} image become?",
            _pick(f"{n}", [f"{mm.IMAGE_SIDE // patch}", f"{n * 4}", f"{mm.IMAGE_SIDE**2}"]),
            f"{n}",
            f"({mm.IMAGE_SIDE} / {patch})² patches, each a token for the encoder.",
        )
    ]


@builder("limits")
def _limits() -> list[Question]:
    from components.models import get_lm

    tok = get_lm().tokenizer
    n = len(tok("strawberry", add_special_tokens=False)["input_ids"])
    return [
        Question(
            "The model is asked how many r's 'strawberry' has. How many tokens does it "
            "actually see for the word?",
            _pick(f"{n}", ["10", "1", "3", "2"]),
            f"{n}",
            "It sees tokens, not letters: the count is not in its input directly.",
        )
    ]


@builder("pretraining_data")
def _pretraining_data() -> list[Question]:
    from collections import Counter

    from components import pretraining_data as pdv
    from core import pretraining_data as dp

    k = "pretraining_data"
    v = {n: _state(f"{k}.{n}") for n in ("english", "min_words", "symbols", "stop", "caps")}
    v |= {n: _state(f"{k}.{n}") for n in ("boiler", "lines", "top2", "dup5", "shingle")}
    v |= {n: _state(f"{k}.{n}") for n in ("perm", "bands", "jaccard")}
    pipeline = dp.PIPELINE.with_steps(  # the steps as the page's settings panel builds them
        dp.LanguageFilter(v["english"]),
        dp.QualityFilter(v["min_words"], v["symbols"], v["stop"], v["caps"], v["boiler"]),
        dp.RepetitionFilter(v["lines"], v["top2"], v["dup5"]),
        dp.NearDedup(v["shingle"], v["perm"], v["bands"], v["jaccard"]),
    )
    stages = Counter(x.stage for x in pdv.cached_pipeline(pipeline).dropped)
    if not stages:
        return []
    best, n = stages.most_common(1)[0]
    if list(stages.values()).count(n) > 1:
        return []
    return [
        Question(
            "At your thresholds, which stage of the pipeline drops the most documents?",
            tuple(sorted(stages)),
            best,
            ", ".join(f"{s}: {c}" for s, c in stages.most_common()) + " documents dropped.",
        )
    ]


def _ask(slug: str, i: int, q: Question) -> None:
    key = f"quiz.{slug}.{i}"
    picked = st.radio(
        escape_markdown(q.text), q.options, index=None, key=key, horizontal=len(q.options) <= 4
    )
    if picked is None:
        return
    if picked == q.answer:
        st.success(f"Right. {escape_markdown(q.why)}")
    else:
        st.error(f"Not quite: the answer is {escape_markdown(q.answer)}. {escape_markdown(q.why)}")


def concept_by_slug(slug: str):
    return SLUGS[slug]


def check_yourself(slug: str | None = None) -> None:
    """Call last on every concept page: its questions, then the notes about its link."""
    if slug is None:
        slug = frame.page_slug(sys._getframe(1).f_code.co_filename)
    run = st.session_state.get("frame.run")
    if st.session_state.get("quiz.drawn") == run:
        return  # a page that stops early asked already, before its st.stop()
    st.session_state["quiz.drawn"] = run
    build = BUILDERS.get(slug)
    questions: list[Question] = []
    if build is not None:
        try:
            questions = build()
        except Exception:  # noqa: BLE001  (a question never breaks the page it ends)
            questions = []
        if questions:
            with st.expander("Check yourself", icon=":material/quiz:"):
                st.caption(
                    "Computed from the model at your current settings: change them "
                    "and the questions change."
                )
                for i, q in enumerate(questions):
                    _ask(slug, i, q)
    c = concept_by_slug(slug)
    export.export_panel(slug, f"{c.number:02d} · {c.title}", c.summary, questions)
    frame.page_end()
