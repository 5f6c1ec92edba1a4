"""Pre-training a tiny GPT on the shipped corpus, minGPT-style, one step at a time.

The corpus is Python's documentation (`core.shared.corpus`), split 90/10 into training and held-out
validation tokens. Two vocabularies: the selected LM's own BPE restricted to the ids that
occur in the corpus and renumbered 0..V-1 (a few thousand of its 49,152 ids: the embedding
table shrinks tenfold and the model trains that much faster), or one id per character.

Also here: the warmup + cosine learning-rate schedule, a simulated data-parallel step, and the
memory and communication arithmetic of data, tensor and pipeline parallel training with ZeRO.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.nn import functional as F

from core.shared.corpus import pydoc_topics

Report = Callable[..., None]
VAL_FRACTION = 0.1
STEP_CAP = 600  # a run never trains more steps than this, whatever the slider says
SAMPLE_TOKENS = 48  # tokens generated for each sample shown while training
EVAL_BATCHES = 4  # fixed batches averaged for the train/validation loss at each evaluation
SAMPLE_PROMPT = "The"


# ---- the corpus as token ids -------------------------------------------------------------------


def corpus_text() -> str:
    """Every documentation topic, in name order, separated by blank lines."""
    return "\n\n".join(pydoc_topics().values())


@dataclass(frozen=True)
class TokenizedCorpus:
    kind: str  # "bpe" or "char"
    train: torch.Tensor  # (n_train,) local ids
    val: torch.Tensor  # (n_val,) local ids, the last 10 % of the corpus
    vocab_size: int
    decode: Callable[[Sequence[int]], str] = field(repr=False)
    encode: Callable[[str], list[int]] = field(repr=False)
    full_vocab: int  # the tokenizer's own vocabulary size (characters: distinct characters)


def _split(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cut = int(len(ids) * (1 - VAL_FRACTION))
    return ids[:cut], ids[cut:]


def char_corpus(text: str | None = None) -> TokenizedCorpus:
    """One id per distinct character of the corpus."""
    text = corpus_text() if text is None else text
    chars = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    train, val = _split(ids)
    return TokenizedCorpus(
        "char",
        train,
        val,
        len(chars),
        decode=lambda seq: "".join(chars[i] for i in seq),
        encode=lambda s: [index[c] for c in s if c in index],
        full_vocab=len(chars),
    )


# Before the last newline of a blank line followed by a letter: a byte-level pre-tokenizer
# (GPT-2's regex) splits there anyway, so pieces cut there tokenize as the whole text does
# (tested for SmolLM2). A SentencePiece tokenizer of a picked hub model may mark each piece's
# start with its leading-space symbol: a token more at some of the ~1,300 cuts.
PIECE_BOUNDARY = re.compile(r"(?<=\n)(?=\n[A-Za-z])")
PIECES_PER_CALL = 64


def tokenize_in_pieces(tokenizer, text: str) -> list[int]:
    """The text's ids, tokenized a few pieces at a time: one call on the whole 465k-character
    corpus holds about 75 MB of encodings at once, this about 5 MB (and is faster)."""
    pieces = [p for p in PIECE_BOUNDARY.split(text) if p]
    ids: list[int] = []
    for start in range(0, len(pieces), PIECES_PER_CALL):
        batch = pieces[start : start + PIECES_PER_CALL]
        for row in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            ids += row
    return ids


def bpe_corpus(tokenizer, text: str | None = None) -> TokenizedCorpus:
    """The tokenizer's BPE, keeping only the ids that occur in the corpus, renumbered densely."""
    text = corpus_text() if text is None else text
    original = tokenize_in_pieces(tokenizer, text)
    kept = sorted(set(original))
    local = {t: i for i, t in enumerate(kept)}
    ids = torch.tensor([local[t] for t in original], dtype=torch.long)
    train, val = _split(ids)
    return TokenizedCorpus(
        "bpe",
        train,
        val,
        len(kept),
        decode=lambda seq: tokenizer.decode([kept[i] for i in seq]),
        encode=lambda s: [
            local[t] for t in tokenizer(s, add_special_tokens=False)["input_ids"] if t in local
        ],
        full_vocab=len(tokenizer),
    )


# ---- the model: minGPT's decoder, pre-LayerNorm, its own output layer ------------------------------


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    context: int = 64
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128


class Block(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(c.d_model, 4 * c.d_model), nn.GELU(), nn.Linear(4 * c.d_model, c.d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, head_dim)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, c: GPTConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = c
        with torch.random.fork_rng(devices=[]):  # seeded, without moving the global generator
            torch.manual_seed(seed)
            self.tok = nn.Embedding(c.vocab_size, c.d_model)
            self.pos = nn.Embedding(c.context, c.d_model)
            self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
            self.ln_f = nn.LayerNorm(c.d_model)
            self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
            self.apply(self._init)
            for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
                if name.endswith(("proj.weight", "mlp.2.weight")):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))
        # a zero output layer makes every first logit 0: a uniform guess, loss exactly ln V
        nn.init.zeros_(self.head.weight)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T))  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))  # (B, T, V)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def sample(
        self, prompt: list[int], n: int, temperature: float = 0.8, seed: int = 0
    ) -> list[int]:
        """Plain ancestral sampling from this tiny model (not the shared LM's generation door)."""
        g = torch.Generator().manual_seed(seed)
        ids = list(prompt) or [0]
        for _ in range(n):
            ctx = torch.tensor([ids[-self.config.context :]])
            probs = torch.softmax(self(ctx)[0, -1] / temperature, dim=-1)
            ids.append(int(torch.multinomial(probs, 1, generator=g)))
        return ids[len(prompt) :]


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def config_parameter_count(cfg: GPTConfig) -> int:
    """The parameters TinyGPT(cfg) would have, counted on the meta device: no memory is
    allocated (the full 49k-token vocabulary would take 50 MB for a moment)."""
    with torch.device("meta"):
        return parameter_count(TinyGPT(cfg))


# ---- batches and the learning-rate schedule -----------------------------------------------------


def get_batch(
    data: torch.Tensor, batch_size: int, context: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of `context` tokens; the targets are the same windows shifted by one."""
    starts = torch.randint(0, len(data) - context - 1, (batch_size,), generator=g)
    x = torch.stack([data[s : s + context] for s in starts.tolist()])  # (B, T)
    y = torch.stack([data[s + 1 : s + 1 + context] for s in starts.tolist()])
    return x, y


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    """Linear warmup from 0, then a cosine from 1 down to `min_ratio` at `total` steps
    (transformers' get_cosine_with_min_lr_schedule_with_warmup, num_cycles 0.5)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return min_ratio + (1 - min_ratio) * cosine


def lr_schedule(lr: float, warmup: int, total: int, min_ratio: float = 0.1) -> list[float]:
    return [lr * lr_factor(s, warmup, total, min_ratio) for s in range(total)]


# ---- training ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16
    context: int = 64
    lr: float = 3e-3
    warmup: int = 20
    steps: int = 200
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # 0 = off
    weight_decay: float = 0.1
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128
    eval_every: int = 20
    sample_every: int = 50
    seed: int = 0


@dataclass(frozen=True)
class Evaluation:
    step: int
    train: float  # mean loss on fixed training batches
    val: float  # mean loss on fixed held-out batches


@dataclass(frozen=True)
class TrainLog:
    """What a run has produced so far: the live partial result, and the final one."""

    vocab_size: int
    n_params: int
    steps_planned: int
    losses: tuple[float, ...] = ()  # per step, on that step's batch, before its update
    lrs: tuple[float, ...] = ()
    grad_norms: tuple[float, ...] = ()  # before clipping
    evals: tuple[Evaluation, ...] = ()
    samples: tuple[tuple[int, str], ...] = ()  # (step, prompt + generated text)
    tokens: int = 0
    seconds: float = 0.0

    @property
    def initial_loss(self) -> float:
        return self.evals[0].val if self.evals else float("nan")

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def ln_vocab(self) -> float:
        return math.log(self.vocab_size)


@torch.no_grad()
def evaluate(model: TinyGPT, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    return float(sum(model.loss(x, y) for x, y in batches) / len(batches))


def fixed_batches(data: torch.Tensor, cfg: TrainConfig, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    return [get_batch(data, cfg.batch_size, cfg.context, g) for _ in range(EVAL_BATCHES)]


def make_model(corpus: TokenizedCorpus, cfg: TrainConfig) -> TinyGPT:
    return make_model_for(corpus.vocab_size, cfg)


def make_model_for(vocab_size: int, cfg: TrainConfig) -> TinyGPT:
    return TinyGPT(
        GPTConfig(vocab_size, cfg.context, cfg.n_layer, cfg.n_head, cfg.d_model), seed=cfg.seed
    )


def train(
    corpus: TokenizedCorpus, cfg: TrainConfig, report: Report = lambda *a, **k: None
) -> TrainLog:
    """Train a fresh TinyGPT for `cfg.steps` (at most STEP_CAP) AdamW steps, reporting each."""
    steps = min(cfg.steps, STEP_CAP)
    model = make_model(corpus, cfg)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95)
    )
    g = torch.Generator().manual_seed(cfg.seed)
    evals_train, evals_val = fixed_batches(corpus.train, cfg, 1), fixed_batches(corpus.val, cfg, 2)
    prompt = corpus.encode(SAMPLE_PROMPT)
    log = TrainLog(corpus.vocab_size, parameter_count(model), steps)
    losses, lrs, norms, evals, samples = [], [], [], [], []
    t0 = time.perf_counter()
    for step in range(steps + 1):
        if step % cfg.eval_every == 0 or step == steps:
            evals.append(Evaluation(step, evaluate(model, evals_train), evaluate(model, evals_val)))
        if step % cfg.sample_every == 0 or step == steps:
            samples.append(
                (step, corpus.decode(prompt + model.sample(prompt, SAMPLE_TOKENS, seed=step)))
            )
        if step == steps:
            break
        lr = cfg.lr * lr_factor(step, cfg.warmup, steps, cfg.min_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = get_batch(corpus.train, cfg.batch_size, cfg.context, g)
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(
            model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        )
        opt.step()
        losses.append(loss.item())
        lrs.append(lr)
        norms.append(float(norm))
        log = replace(
            log,
            losses=tuple(losses),
            lrs=tuple(lrs),
            grad_norms=tuple(norms),
            evals=tuple(evals),
            samples=tuple(samples),
            tokens=(step + 1) * cfg.batch_size * cfg.context,
            seconds=time.perf_counter() - t0,
        )
        report(
            (step + 1) / steps, f"step {step + 1} of {steps} · loss {losses[-1]:.2f}", partial=log
        )
    log = replace(log, evals=tuple(evals), samples=tuple(samples), seconds=time.perf_counter() - t0)
    report(1.0, f"done: validation loss {evals[-1].val:.2f}", partial=log)  # with the last eval
    return log


# ---- a simulated data-parallel step ---------------------------------------------------------------


@dataclass(frozen=True)
class DataParallelCheck:
    workers: int
    shard_size: int
    n_values: int  # gradient entries compared
    worker_grad_norms: tuple[float, ...]
    full_grad_norm: float
    averaged_grad_norm: float
    max_abs_diff: float  # largest |averaged - full| over every parameter


def _norm(tensors: Sequence[torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in tensors))


def data_parallel_check(
    model: TinyGPT, x: torch.Tensor, y: torch.Tensor, workers: int
) -> DataParallelCheck:
    """Each worker takes an equal shard of the batch and computes its own mean-loss gradient;
    the all-reduce averages them. That average must equal the full batch's gradient.

    Parameter by parameter, with a running sum: holding every worker's flattened gradient
    and stacking them took about 90 MB at the page's batch, this about 3 copies of the
    model's size."""
    if x.shape[0] % workers:
        raise ValueError("the batch must split into equal shards")
    params = list(model.parameters())
    model.zero_grad(set_to_none=True)
    model.loss(x, y).backward()
    full = [p.grad.clone() for p in params]
    summed = [torch.zeros_like(g) for g in full]
    shard = x.shape[0] // workers
    norms = []
    for w in range(workers):
        model.zero_grad(set_to_none=True)
        model.loss(x[w * shard : (w + 1) * shard], y[w * shard : (w + 1) * shard]).backward()
        norms.append(_norm([p.grad for p in params]))
        for total, p in zip(summed, params, strict=True):
            total += p.grad
    model.zero_grad(set_to_none=True)
    averaged = [total / workers for total in summed]  # an all-reduce: sum, then / workers
    return DataParallelCheck(
        workers,
        shard,
        sum(g.numel() for g in full),
        tuple(norms),
        _norm(full),
        _norm(averaged),
        max(float((a - f).abs().max()) for a, f in zip(averaged, full, strict=True)),
    )


# ---- memory and communication of parallel training ----------------------------------------------

BYTES_PER_PARAM = {  # (weights, gradients, optimizer state) for AdamW
    "fp32": (4, 4, 8),  # fp32 weights and grads, Adam's m and v in fp32
    "mixed bf16": (2, 2, 12),  # bf16 weights and grads; fp32 master copy, m and v (ZeRO paper)
}


@dataclass(frozen=True)
class ParallelPlan:
    params: int
    n_layer: int
    d_model: int
    seq_len: int = 2048
    micro_batch: int = 1  # sequences per GPU per micro-batch
    micro_batches: int = 8  # per step, per pipeline
    dp: int = 1
    tp: int = 1
    pp: int = 1
    zero: int = 0  # ZeRO stage 0-3, over the data-parallel group
    precision: str = "fp32"

    @property
    def gpus(self) -> int:
        return self.dp * self.tp * self.pp


@dataclass(frozen=True)
class MemoryPlan:
    weights: float  # bytes per GPU
    grads: float
    optimizer: float
    dp_bytes: float  # bytes each GPU sends per step for the gradient all-reduce
    tp_bytes: float  # ... for tensor-parallel all-reduces of activations
    pp_bytes: float  # ... for activations/gradients passed between pipeline stages
    bubble: float  # fraction of a pipeline step spent idle

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer


def ring_allreduce_bytes(size: float, n: int) -> float:
    """A ring all-reduce sends 2 (n-1)/n of the buffer from each of n participants."""
    return 2 * (n - 1) / n * size if n > 1 else 0.0


def memory_plan(p: ParallelPlan) -> MemoryPlan:
    w, g, o = BYTES_PER_PARAM[p.precision]
    shard = p.params / (p.tp * p.pp)  # tensor and pipeline parallel split the model itself
    weights = shard * w / (p.dp if p.zero >= 3 else 1)
    grads = shard * g / (p.dp if p.zero >= 2 else 1)
    optimizer = shard * o / (p.dp if p.zero >= 1 else 1)
    # ZeRO-3 gathers the weights again for the forward and backward: 1.5x the all-reduce volume
    dp = ring_allreduce_bytes(shard * g, p.dp) * (1.5 if p.zero >= 3 else 1.0)
    act = p.micro_batch * p.seq_len * p.d_model * w  # one layer's output activations
    layers_here = p.n_layer / p.pp
    # Megatron: 2 all-reduces forward + 2 backward per layer, for every micro-batch
    tp = 4 * ring_allreduce_bytes(act, p.tp) * layers_here * p.micro_batches
    pp = 2 * act * p.micro_batches if p.pp > 1 else 0.0  # forward activations, backward grads
    bubble = (p.pp - 1) / (p.micro_batches + p.pp - 1)
    return MemoryPlan(weights, grads, optimizer, dp, tp, pp, bubble)


def adamw_state_bytes(model: nn.Module) -> dict[str, int]:
    """Measured bytes of weights, gradients and AdamW state (m and v) after one step."""
    opt = torch.optim.AdamW(model.parameters())
    x = torch.randint(0, model.config.vocab_size, (2, 8))
    model.loss(x, x).backward()
    opt.step()
    state = [t for s in opt.state.values() for k, t in s.items() if k in ("exp_avg", "exp_avg_sq")]
    return {
        "weights": sum(p.numel() * p.element_size() for p in model.parameters()),
        "grads": sum(p.grad.numel() * p.grad.element_size() for p in model.parameters()),
        "optimizer": sum(t.numel() * t.element_size() for t in state),
    }


# ---- how long a run takes ------------------------------------------------------------------------

# Training arithmetic this machine sustains for the tiny GPT on one thread, FLOPs per second of
# wall time (6 N per trained token): 0.2 s per default step (1.76M parameters x 1,024 tokens),
# about 5e10, measured on 2 shared cores with other work running. Small models are dominated
# by a fixed cost per step instead (Python, optimizer, kernel launches): about 10 ms.
CPU_FLOPS = 5e10
STEP_OVERHEAD_S = 0.01


def training_estimate_s(n_params: int, cfg: TrainConfig) -> float:
    """Idle-machine seconds: training (6 N per token), evaluations and samples (2 N per token),
    at CPU_FLOPS, plus the fixed cost of each step and each evaluated batch. (The app's job
    store scales it by the server's load and by how long earlier runs really took.)"""
    steps = min(cfg.steps, STEP_CAP)
    tokens = cfg.batch_size * cfg.context
    n_evals = steps // cfg.eval_every + 1
    n_samples = steps // cfg.sample_every + 1
    train = 6 * n_params * tokens * steps
    evals = 2 * n_params * tokens * EVAL_BATCHES * 2 * n_evals
    samples = 2 * n_params * cfg.context * SAMPLE_TOKENS * n_samples
    overhead = steps + n_evals * EVAL_BATCHES * 2 + n_samples * SAMPLE_TOKENS / 4
    return (train + evals + samples) / CPU_FLOPS + overhead * STEP_OVERHEAD_S
