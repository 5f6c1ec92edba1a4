"""Learning from preferences: a Bradley-Terry reward head, best-of-n, KL, reward hacking, DPO.

A reward model reads (prompt, answer) and returns one number; Bradley-Terry says a labeller
prefers answer c over r with probability sigmoid(r_c - r_r), so the head is trained to minimise
-log sigmoid(r_chosen - r_rejected). Here the head is linear, on the LM's last hidden state at the
answer's end-of-turn token (the features are computed once; the head then trains in a blink).
Best-of-n draws n answers and keeps the one the reward model likes best; its KL from the
policy is at most log n - (n-1)/n. DPO (Rafailov et al., 2023) skips the reward model and trains
the policy on the pairs directly, with loss -log sigmoid(beta * (policy margin - reference margin)).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.fine_tuning import conversation, encode, masked_chat, render
from core.runtime.generation import DecodingSettings, generate_stream
from core.runtime.models import LoadedModel, heavy_work
from core.shared.chat import eos_ids
from core.shared.corpus import DATA as DATA_DIR

DATA = DATA_DIR / "preference_pairs.json"
Report = Callable[..., None]
TEMPERATURES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0)  # policies for DPO
ANSWER_TOKEN_CAP = 256  # tokens of an answer read by the reward model
ANSWER_CHARS = 1500  # cap on a typed answer
FILLER_REPEATS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class PreferenceData:
    pairs: tuple[Pair, ...]
    held_out: int  # the last this-many pairs are never trained on
    filler: str

    @property
    def n_train(self) -> int:
        return len(self.pairs) - self.held_out


def load_pairs(path: Path = DATA) -> PreferenceData:
    raw = json.loads(path.read_text(encoding="utf-8"))
    pairs = tuple(Pair(p["prompt"], p["chosen"], p["rejected"]) for p in raw["pairs"])
    return PreferenceData(pairs, int(raw["held_out"]), raw["filler"])


def answers_of(data: PreferenceData) -> list[tuple[str, str]]:
    """(prompt, answer) for every answer: pair i's chosen is item 2i, its rejected 2i+1."""
    out = []
    for p in data.pairs:
        out += [(p.prompt, p.chosen), (p.prompt, p.rejected)]
    return out


def filler_items(data: PreferenceData, prompts: int = 3) -> list[tuple[str, str]]:
    """Held-out chosen answers with 0, 1, 2 ... sentences of meaningless filler appended."""
    held = data.pairs[data.n_train :][:prompts]
    return [(p.prompt, p.chosen + data.filler * k) for p in held for k in FILLER_REPEATS]


# --- features from the LM -------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerFeatures:
    features: np.ndarray  # (N, d) last hidden state at the answer's last token
    logp: np.ndarray  # (N, len(TEMPERATURES)) log-probability of the answer given the prompt
    tokens: np.ndarray  # (N,) answer tokens (with the end-of-turn marker)


def _one(lm: LoadedModel, prompt: str, answer: str) -> tuple[np.ndarray, np.ndarray, int]:
    chat = masked_chat(lm.tokenizer, conversation(prompt, answer[:ANSWER_CHARS]))
    last = max(i for i, m in enumerate(chat.mask) if m) if chat.counted else len(chat.ids) - 1
    first = last - min(chat.counted, ANSWER_TOKEN_CAP) + 1
    ids = torch.tensor([chat.ids[: last + 1]])
    with heavy_work(), torch.inference_mode():
        out = lm.model(ids, output_hidden_states=True, use_cache=False)
    feature = out.hidden_states[-1][0, last].float().numpy()  # (d,)
    logits = out.logits[0, first - 1 : last].float()  # (answer tokens, V): predicts first..last
    target = ids[0, first : last + 1]
    logp = [
        float(torch.log_softmax(logits / t, -1).gather(1, target[:, None]).sum())
        for t in TEMPERATURES
    ]
    return feature, np.array(logp), last - first + 1


def answer_features(
    lm: LoadedModel, items: Sequence[tuple[str, str]], report: Report = lambda *a, **k: None
) -> AnswerFeatures:
    feats, logps, tokens = [], [], []
    for i, (prompt, answer) in enumerate(items):
        f, lp, n = _one(lm, prompt, answer)
        feats.append(f)
        logps.append(lp)
        tokens.append(n)
        report((i + 1) / len(items), f"Read answer {i + 1} of {len(items)}")
    return AnswerFeatures(np.stack(feats), np.stack(logps), np.array(tokens))


# --- the Bradley-Terry reward head ------------------------------------------------------------


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r_chosen - r_rejected)."""
    return -torch.nn.functional.logsigmoid(r_chosen - r_rejected).mean()


@dataclass(frozen=True)
class RewardModel:
    weight: np.ndarray  # (d,) on standardised features
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    bias: float  # makes the mean training answer score 0 (Bradley-Terry ignores any bias)
    losses: tuple[float, ...]  # training loss per step
    held_out_accuracy: tuple[float, ...]  # pairwise accuracy on held-out pairs, per step
    train_accuracy: float

    def score(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.weight + self.bias


def train_reward_model(
    features: np.ndarray,
    train: Sequence[tuple[int, int]],
    held: Sequence[tuple[int, int]],
    steps: int = 150,
    lr: float = 0.02,
    weight_decay: float = 0.01,
) -> RewardModel:
    """Fit w so that w . x_chosen > w . x_rejected; pairs index rows of `features`."""
    used = sorted({i for pair in train for i in pair})
    x = torch.tensor(features, dtype=torch.float32)
    mean, scale = x[used].mean(0), x[used].std(0) + 1e-6
    z = (x - mean) / scale  # (N, d)
    c, r = (torch.tensor([p[k] for p in train]) for k in (0, 1))
    hc, hr = (torch.tensor([p[k] for p in held], dtype=torch.long) for k in (0, 1))
    w = torch.zeros(z.shape[1], requires_grad=True)  # all rewards 0: the loss starts at ln 2
    opt = torch.optim.Adam([w], lr=lr)
    losses, held_acc = [], []
    for _ in range(steps):
        rewards = z @ w
        loss = bradley_terry_loss(rewards[c], rewards[r])
        opt.zero_grad()
        (loss + weight_decay * (w * w).sum()).backward()
        opt.step()
        losses.append(float(loss.detach()))
        with torch.no_grad():
            rw = z @ w
            held_acc.append(float((rw[hc] > rw[hr]).float().mean()) if len(held) else math.nan)
    with torch.no_grad():
        final = z @ w
        acc = float((final[c] > final[r]).float().mean())
        bias = -float(final[used].mean())
    return RewardModel(
        w.detach().numpy(), mean.numpy(), scale.numpy(), bias, tuple(losses), tuple(held_acc), acc
    )


def pair_indices(data: PreferenceData, flipped: Sequence[int] = ()) -> tuple[list, list]:
    """(chosen row, rejected row) for training and held-out pairs; `flipped` swaps a label."""
    flips = set(flipped)
    pairs = [
        ((2 * i + 1, 2 * i) if i in flips else (2 * i, 2 * i + 1)) for i in range(len(data.pairs))
    ]
    return pairs[: data.n_train], pairs[data.n_train :]


# --- best-of-n, its KL, and the KL-penalised optimum ------------------------------------------


def sample_answers(
    lm: LoadedModel,
    prompt: str,
    n: int,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    seed: int = 0,
    report: Report = lambda *a, **k: None,
) -> tuple[str, ...]:
    """n answers drawn through the one generation door, seeds seed, seed+1, ..."""
    ids = encode(lm.tokenizer, render(lm.tokenizer, conversation(prompt), generation_prompt=True))
    stop = set(eos_ids(lm))
    out = []
    for i in range(n):
        s = DecodingSettings(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed + i)
        got = [st.token_id for st in generate_stream(lm, ids, s) if st.token_id not in stop]
        out.append(lm.tokenizer.decode(got, skip_special_tokens=True).strip())
        report((i + 1) / n, f"Sample {i + 1} of {n}")
    return tuple(out)


def best_of_n_kl_bound(n: int) -> float:
    """KL(best-of-n || policy) = log n - (n-1)/n when no two samples tie (Stiennon et al.)."""
    return math.log(n) - (n - 1) / n


def best_of_n_distribution(probs: np.ndarray, n: int) -> np.ndarray:
    """Exact best-of-n over outcomes listed from worst to best reward: F(i)^n - F(i-1)^n."""
    cdf = np.cumsum(probs)
    return np.diff(np.concatenate([[0.0], cdf**n]))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


def best_of_n_kl_exact(outcomes: int, n: int) -> float:
    """KL of best-of-n from a uniform policy over `outcomes` distinct-reward answers."""
    base = np.full(outcomes, 1.0 / outcomes)
    return kl_divergence(best_of_n_distribution(base, n), base)


@dataclass(frozen=True)
class Tilted:
    beta: float  # the KL penalty's weight
    expected_reward: float
    kl: float  # nats from the policy's own distribution over the pool


def kl_penalised(rewards: np.ndarray, beta: float) -> Tilted:
    """The maximiser of E[r] - beta KL(pi || policy) over a pool of equally likely samples.

    Its closed form is pi(y) proportional to policy(y) exp(r(y) / beta): a large beta keeps the
    policy (no drift, average reward), a small one piles onto the best sample (KL up to log n).
    """
    base = np.full(len(rewards), 1.0 / len(rewards))
    logits = np.asarray(rewards, dtype=np.float64) / max(beta, 1e-9)
    pi = np.exp(logits - logits.max())
    pi /= pi.sum()
    return Tilted(beta, float(pi @ rewards), kl_divergence(pi, base))


# --- DPO --------------------------------------------------------------------------------------


def dpo_losses(
    policy_chosen: np.ndarray,
    policy_rejected: np.ndarray,
    ref_chosen: np.ndarray,
    ref_rejected: np.ndarray,
    beta: float,
) -> np.ndarray:
    """Per pair: -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), in log-probabilities."""
    margin = beta * (
        (np.asarray(policy_chosen) - ref_chosen) - (np.asarray(policy_rejected) - ref_rejected)
    )
    return np.logaddexp(0.0, -margin)  # softplus(-m) = -log sigmoid(m), stable for large |m|


def correlation(x: Sequence[float], y: Sequence[float]) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])
