"""Instruction tuning: the chat template, the supervised loss mask, and LoRA on a copy of the LM.

Supervised fine-tuning trains on whole conversations but counts the loss only on the tokens the
assistant wrote (and its end-of-turn marker): the system prompt, the user's words and the role
headers are context, not targets. LoRA (Hu et al., 2021) freezes every weight W and learns a
low-rank update B @ A (r x d_in and d_out x r), so an adapted module gains r * (d_in + d_out)
trainable numbers. peft's `get_peft_model` rewrites the model it is given in place, so the
fine-tune always works on a deep copy and frees it afterwards, keeping only the adapter weights.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.inspect.anatomy import anatomy
from core.runtime.generation import DecodingSettings, generate_stream
from core.runtime.models import LoadedModel, heavy_work
from core.shared.corpus import DATA as DATA_DIR

DATA = DATA_DIR / "finetune_pirate.json"
Report = Callable[..., None]

# ChatML, for tokenizers that bring no chat template of their own (GPT-2 and other base models).
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MAX_STEPS = 60
MAX_RANK = 64
ANSWER_TOKENS = 24  # greedy tokens per before/after answer
REQUEST_CHARS = 600  # cap on a typed request


@dataclass(frozen=True)
class FineTuneData:
    examples: tuple[tuple[str, str], ...]  # (user, assistant)
    held_out: tuple[str, ...]  # prompts never trained on
    style: str
    marker: str  # a word the taught style uses, counted in answers


def load_data(path: Path = DATA) -> FineTuneData:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return FineTuneData(
        tuple((e["user"], e["assistant"]) for e in raw["examples"]),
        tuple(raw["held_out"]),
        raw["style"],
        raw["marker"],
    )


def conversation(user: str, assistant: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "user", "content": user}]
    return msgs + ([{"role": "assistant", "content": assistant}] if assistant is not None else [])


# --- the chat template and the loss mask ------------------------------------------------------


def template_of(tokenizer: Any) -> tuple[str, bool]:
    """The tokenizer's own chat template, or ChatML; the flag says whether it is the model's own."""
    own = getattr(tokenizer, "chat_template", None)
    return (own, True) if isinstance(own, str) and own else (FALLBACK_TEMPLATE, False)


def render(tokenizer: Any, messages: Sequence[dict[str, str]], generation_prompt: bool) -> str:
    template, _ = template_of(tokenizer)
    return tokenizer.apply_chat_template(
        list(messages),
        chat_template=template,
        tokenize=False,
        add_generation_prompt=generation_prompt,
    )


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class MaskedChat:
    ids: tuple[int, ...]
    mask: tuple[bool, ...]  # True where the loss counts the token (it is a target)
    roles: tuple[str, ...]  # the message each token belongs to ("template" for glue)

    @property
    def counted(self) -> int:
        return sum(self.mask)

    @property
    def share(self) -> float:
        return self.counted / len(self.ids) if self.ids else 0.0


def masked_chat(tokenizer: Any, messages: Sequence[dict[str, str]]) -> MaskedChat:
    """Token ids of a rendered conversation and which ones the supervised loss counts.

    Each assistant turn is found by rendering the conversation up to it with and without that
    turn: the text in between is the answer plus its end-of-turn marker (trailing whitespace
    after the marker is glue, not a target). Each piece is tokenized on its own, so the
    boundaries are exact; for chat templates made of special tokens this equals tokenizing the
    whole text at once (the tests check it against transformers' own assistant mask).
    """
    pieces: list[tuple[str, bool, str]] = []  # (text, counted, role)
    done = ""
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], generation_prompt=True)
        after = render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not before.startswith(done) or not after.startswith(before):
            raise ValueError("This chat template does not render turns as growing prefixes.")
        answer = after[len(before) :]
        target = answer.rstrip()
        pieces += [
            (before[len(done) :], False, "context"),
            (target, True, "assistant"),
            (answer[len(target) :], False, "context"),
        ]
        done = after
    full = render(tokenizer, messages, generation_prompt=False)
    pieces.append((full[len(done) :], False, "context"))
    ids: list[int] = []
    mask: list[bool] = []
    roles: list[str] = []
    for text, counted, role in pieces:
        got = encode(tokenizer, text) if text else []
        ids += got
        mask += [counted] * len(got)
        roles += [role] * len(got)
    return MaskedChat(tuple(ids), tuple(mask), tuple(roles))


def template_problem(tokenizer: Any) -> str | None:
    """Why this tokenizer's chat template cannot give a loss mask, or None when it can."""
    try:
        chat = masked_chat(tokenizer, conversation("Hi", "Hello!"))
    except Exception as exc:  # a template may raise anything (jinja errors, role checks...)
        return f"Its chat template cannot be split into turns ({str(exc)[:200]})."
    return None if chat.counted else "Its chat template leaves no assistant tokens to train on."


def special_tokens_in(tokenizer: Any, text: str) -> list[str]:
    """Special tokens typed inside a message: the tokenizer reads them as real control tokens."""
    specials = [t for t in getattr(tokenizer, "all_special_tokens", []) if t and len(t) > 1]
    extra = [
        str(t)
        for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
        if getattr(t, "special", False)
    ]
    return sorted({t for t in [*specials, *extra] if t in text})


def masked_lm_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each counted token given the tokens before it.

    logits (B, T, V); ids, mask (B, T): position t's logits predict token t+1.
    """
    keep = mask[:, 1:].bool().reshape(-1)  # (B*(T-1),)
    pred = logits[:, :-1].float().reshape(-1, logits.shape[-1])[keep]  # (counted, V)
    target = ids[:, 1:].reshape(-1)[keep]
    return torch.nn.functional.cross_entropy(pred, target)


# --- LoRA ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearModule:
    name: str  # relative to a block, as peft's target_modules takes it ("self_attn.q_proj")
    d_in: int
    d_out: int


def _shape(module: Any) -> tuple[int, int] | None:
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":  # GPT-2 stores its projections transposed
        d_in, d_out = module.weight.shape
        return int(d_in), int(d_out)
    return None


def decoder_layers(model: Any) -> list[Any]:
    """The model's blocks (UnsupportedArchitecture for a model without a decoder stack)."""
    return list(anatomy(model).blocks)


def adaptable_modules(model: Any) -> tuple[LinearModule, ...]:
    """The weight matrices inside one block that LoRA can adapt, as the model names them."""
    block = decoder_layers(model)[0]
    found = []
    for name, module in block.named_modules():
        shape = _shape(module)
        if name and shape is not None:
            found.append(LinearModule(name, *shape))
    return tuple(found)


def lora_parameter_formula(model: Any, targets: Sequence[str], rank: int) -> int:
    """r * (d_in + d_out) for every adapted module of every block."""
    total = 0
    for block in decoder_layers(model):
        for name, module in block.named_modules():
            shape = _shape(module)
            if shape is not None and name in targets:
                total += rank * (shape[0] + shape[1])
    return total


def parameter_total(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def default_targets(modules: Sequence[LinearModule]) -> tuple[str, ...]:
    """The query and value projections (LoRA paper's choice), or the first attention module."""
    names = [m.name for m in modules]
    picked = [n for n in names if n.split(".")[-1] in ("q_proj", "v_proj")]
    return tuple(picked or names[:1])


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    targets: tuple[str, ...] = ()
    steps: int = 20
    learning_rate: float = 2e-3
    batch: int = 4
    seed: int = 0
    answer_tokens: int = ANSWER_TOKENS  # greedy tokens per held-out answer, before and after


@dataclass(frozen=True)
class Answer:
    prompt: str
    before: str
    after: str


@dataclass(frozen=True)
class FineTuneResult:
    losses: tuple[float, ...]  # per step, on that step's batch
    trainable: int
    total: int  # parameters of the adapted copy's base
    answers: tuple[Answer, ...]  # held-out prompts, greedy, before and after
    adapter: dict[str, Any] = field(repr=False)  # the LoRA weights kept (CPU tensors)
    adapter_bytes: int = 0
    copy_bytes: int = 0
    peak_rss_rise: int | None = None  # bytes above the process's memory at the start
    seconds_per_step: float = 0.0
    shared_unchanged: bool = True
    tokens_per_step: float = 0.0


def weights_fingerprint(model: Any, every: int = 16) -> str:
    """A hash of every `every`-th tensor of the state dict (cheap, and enough to catch writes)."""
    h = hashlib.sha256()
    for i, (name, t) in enumerate(model.state_dict().items()):
        if i % every == 0:
            h.update(name.encode())
            h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _rss() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


def _batches(data: FineTuneData, tokenizer: Any, s: LoraSettings) -> list[list[MaskedChat]]:
    chats = [masked_chat(tokenizer, conversation(u, a)) for u, a in data.examples]
    order = torch.randperm(len(chats), generator=torch.Generator().manual_seed(s.seed)).tolist()
    per = max(1, min(s.batch, len(chats)))
    return [
        [chats[order[(step * per + j) % len(chats)]] for j in range(per)] for step in range(s.steps)
    ]


def _tensors(batch: list[MaskedChat], pad: int) -> tuple[torch.Tensor, ...]:
    width = max(len(c.ids) for c in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.bool)
    for i, c in enumerate(batch):  # right padding: padded positions are neither seen nor counted
        ids[i, : len(c.ids)] = torch.tensor(c.ids)
        attn[i, : len(c.ids)] = 1
        mask[i, : len(c.ids)] = torch.tensor(c.mask)
    return ids, attn, mask


def greedy_answer(
    lm: LoadedModel,
    user: str,
    max_new_tokens: int = ANSWER_TOKENS,
    templated: bool = True,
    on_token: Callable[[int], None] | None = None,
    may_stop: bool = True,
) -> str:
    """A greedy answer through the one generation door, with or without the chat template;
    `on_token(n)` after each of its n tokens (a progress report, a point where Stop acts);
    `may_stop=False` forbids the special tokens (end of turn, end of text) at every step."""
    text = render(lm.tokenizer, conversation(user), generation_prompt=True) if templated else user
    ids = encode(lm.tokenizer, text)
    s = DecodingSettings(temperature=0.0, max_new_tokens=max_new_tokens)
    mask = None
    if not may_stop:
        allowed = torch.ones(lm.model.config.vocab_size, dtype=torch.bool)
        special = set(_stop_ids(lm)) | set(getattr(lm.tokenizer, "all_special_ids", []))
        allowed[[i for i in special if i < allowed.shape[0]]] = False
        mask = lambda _ids: allowed  # noqa: E731
    out: list[int] = []
    for step in generate_stream(lm, ids, s, mask=mask):
        out.append(step.token_id)
        if on_token is not None:
            on_token(len(out))
    eos = set(_stop_ids(lm))
    return lm.tokenizer.decode([t for t in out if t not in eos], skip_special_tokens=False)


def _stop_ids(lm: LoadedModel) -> list[int]:
    eos = lm.model.generation_config.eos_token_id
    return [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))


# One fine-tune at a time in the process: each holds a ~0.5 GB copy and peaks near 2 GB.
FINE_TUNE_LOCK = threading.Lock()


def _wait_for_turn(report: Report) -> None:
    waited = 0.0
    while not FINE_TUNE_LOCK.acquire(timeout=0.5):
        waited += 0.5
        report(0.0, f"Another learner's fine-tune is running; waiting for it ({waited:.0f} s)")


def held_out_answers(
    lm: LoadedModel,
    data: FineTuneData,
    tokens: int = ANSWER_TOKENS,
    report: Report = lambda *a, **k: None,
) -> tuple[str, ...]:
    out = []
    n = len(data.held_out)
    for i, prompt in enumerate(data.held_out):
        text = f"Answering held-out prompt {i + 1} of {n}"
        report(i / n, text)
        out.append(
            greedy_answer(
                lm, prompt, tokens, on_token=lambda k, i=i, t=text: report((i + k / tokens) / n, t)
            )
        )
    report(1.0, f"Answered {n} held-out prompts")
    return tuple(out)


def fine_tune(
    lm: LoadedModel,
    data: FineTuneData,
    s: LoraSettings,
    report: Report = lambda *a, **k: None,
    before: Sequence[str] | Callable[[Report], Sequence[str]] | None = None,
) -> FineTuneResult:
    """LoRA on a deep copy of `lm.model`; the shared model is only read (and checked).

    `before` gives the original model's held-out answers (they do not depend on the LoRA
    settings): the answers themselves, a function of a report callback computing them (called
    inside the fine-tune's turn, so the answers of the original model already count as this
    run's work), or None to compute them here.
    """
    _wait_for_turn(report)
    try:
        return _fine_tune_locked(lm, data, s, report, before)
    finally:
        FINE_TUNE_LOCK.release()
        gc.collect()


def lora_copy(model: Any, s: LoraSettings) -> Any:
    """A deep copy of `model` with LoRA injected: get_peft_model rewrites what it is given."""
    from peft import LoraConfig, get_peft_model

    from core.runtime.models import freeze_after_import

    freeze_after_import("peft")  # keeps every later rerun's garbage collection short

    transposed = any(type(m).__name__ == "Conv1D" for m in model.modules())  # GPT-2 layout
    config = LoraConfig(
        r=s.rank,
        lora_alpha=2 * s.rank,
        target_modules=list(s.targets),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        fan_in_fan_out=transposed,
    )
    return get_peft_model(copy.deepcopy(model), config)


def _train(
    peft_model: Any,
    batches: list[list[MaskedChat]],
    s: LoraSettings,
    pad: int,
    report: Report,
    span: tuple[float, float] = (0.0, 1.0),
) -> tuple[list[float], float, int]:
    """AdamW on the LoRA weights only; returns losses, seconds per step and peak memory.
    Progress is reported within `span` of the whole run's fraction."""
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=0.0)
    losses: list[float] = []
    peak = 0
    peft_model.train()
    t0 = time.perf_counter()
    for step, batch in enumerate(batches):
        ids, attn, mask = _tensors(batch, pad)
        with heavy_work():  # per step, so other learners' pages run between steps
            out = peft_model(input_ids=ids, attention_mask=attn, use_cache=False)
            loss = masked_lm_loss(out.logits, ids, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        losses.append(float(loss.detach()))
        peak = max(peak, _rss() or 0)
        report(
            span[0] + (span[1] - span[0]) * (step + 1) / len(batches),
            f"Step {step + 1}/{len(batches)}: loss {losses[-1]:.2f}",
            partial=tuple(losses),
        )
    peft_model.eval()
    return losses, (time.perf_counter() - t0) / max(1, len(batches)), peak


def _fine_tune_locked(
    lm: LoadedModel,
    data: FineTuneData,
    s: LoraSettings,
    report: Report,
    before: Sequence[str] | None,
) -> FineTuneResult:
    from peft import get_peft_model_state_dict

    if not s.targets:
        raise ValueError("Pick at least one module to adapt.")
    fingerprint, rss0 = weights_fingerprint(lm.model), _rss()
    batches = _batches(data, lm.tokenizer, s)
    # Progress in units of about a training step each: one per held-out answer, before and
    # after, and one per step, so the bar moves from the first answer on.
    answers = len(data.held_out)
    units = len(batches) + 2 * answers
    first, last = answers / units, (answers + len(batches)) / units

    def phase(start: float, end: float, label: str, partial: Any = None) -> Report:
        return lambda f, t="", p=None: report(
            start + (end - start) * f, f"{t} ({label})", partial=partial
        )

    report(0.0, "Answering the held-out prompts with the original model")
    if before is None:
        before = held_out_answers(lm, data, s.answer_tokens, phase(0.0, first, "original model"))
    elif callable(before):
        before = before(phase(0.0, first, "original model"))
    torch.manual_seed(s.seed)
    peft_model = lora_copy(lm.model, s)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    losses, per_step, peak = _train(peft_model, batches, s, pad, report, (first, last))
    adapter = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    tuned = LoadedModel(
        lm.model_id + " + LoRA", peft_model.merge_and_unload(), lm.tokenizer, "fine-tuned copy"
    )
    after = held_out_answers(
        tuned, data, s.answer_tokens, phase(last, 1.0, "LoRA copy", tuple(losses))
    )
    copy_bytes = sum(p.numel() * p.element_size() for p in tuned.model.parameters())
    del tuned, peft_model
    gc.collect()
    return FineTuneResult(
        losses=tuple(losses),
        trainable=trainable,
        total=parameter_total(lm.model),
        answers=tuple(Answer(p, b, a) for p, b, a in zip(data.held_out, before, after)),
        adapter=adapter,
        adapter_bytes=sum(v.numel() * v.element_size() for v in adapter.values()),
        copy_bytes=copy_bytes,
        peak_rss_rise=(peak - rss0) if rss0 and peak else None,
        seconds_per_step=per_step,
        shared_unchanged=weights_fingerprint(lm.model) == fingerprint,
        tokens_per_step=sum(len(c.ids) for b in batches for c in b) / max(1, len(batches)),
    )


@dataclass(frozen=True)
class TemplateComparison:
    request: str
    plain_prompt: str
    chat_prompt: str
    plain_answer: str
    chat_answer: str
    # bare text once more with every end-of-turn/end-of-text token forbidden: an instruct
    # model's first choice on bare text is often to stop at once, which shows nothing
    plain_forced: str = ""


def compare_template(
    lm: LoadedModel,
    request: str,
    max_new_tokens: int = ANSWER_TOKENS,
    report: Report = lambda *a, **k: None,
) -> TemplateComparison:
    """The same request as bare text and wrapped in the chat template, answered greedily."""
    report(0.0, "Without the template")
    plain = greedy_answer(lm, request, max_new_tokens, templated=False)
    forced = ""
    if not plain.strip():
        report(0.3, "Without the template, its end-of-turn forbidden")
        forced = greedy_answer(lm, request, max_new_tokens, templated=False, may_stop=False)
    report(0.6, "With the template")
    chat = greedy_answer(lm, request, max_new_tokens, templated=True)
    report(1.0, "Done")
    return TemplateComparison(
        request, request, render(lm.tokenizer, conversation(request), True), plain, chat, forced
    )


def marker_share(answers: Sequence[str], marker: str) -> float:
    """The share of answers that use the taught style's marker word."""
    if not answers:
        return 0.0
    return sum(marker.lower() in a.lower() for a in answers) / len(answers)
