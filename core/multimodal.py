"""A mini-CLIP trained live on scikit-learn's 8x8 handwritten digits and their captions.

Images are cut into p x p patches (p = 1, 2 or 4 pixels: 64, 16 or 4 patch tokens), each
patch linearly projected and given a learned position, then one transformer layer and a mean
pool give a 32-d image vector. Captions ("a handwritten digit seven", a few templates) go
through MiniLM once (frozen, 384-d) and then a small trainable MLP to 32-d. Both sides are
L2-normalised and trained with CLIP's symmetric InfoNCE loss and a learned temperature:
logits = exp(s) * img @ txt.T, loss = (CE(logits, diag) + CE(logits.T, diag)) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from core.shared.corpus import DATA as DATA_DIR

DIGIT_WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
TEMPLATES: tuple[str, ...] = (
    "a handwritten digit {word}",
    "a photo of the number {word}",
    "the digit {d} written by hand",
    "a blurry scan of a {word}",
)
PATCH_SIZES: tuple[int, ...] = (1, 2, 4)
IMAGE_SIDE = 8
TEST_SIZE = 540
MAX_STEPS = 1000
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps the learned scale at 100


@dataclass(frozen=True)
class DigitData:
    x_train: np.ndarray  # (n, 8, 8) float32 in [0, 1]
    y_train: np.ndarray  # (n,) int64
    x_test: np.ndarray  # (540, 8, 8)
    y_test: np.ndarray


DIGITS_FILE = DATA_DIR / "digits_split.npz"


@lru_cache(maxsize=1)  # a 60 KB data file, read once: a per-process constant
def digit_data() -> DigitData:
    """scikit-learn's 1,797 digits, 540 held out for testing, stratified by digit.

    Read from a snapshot in `data/` of `load_digits()` split by `train_test_split(test_size=540,
    random_state=0, stratify=target)` (a test checks it equals that split): importing
    scikit-learn would cost the server about 67 MB for a 60 KB table.
    """
    with np.load(DIGITS_FILE) as z:
        parts = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    return DigitData(
        (parts["x_train"] / 16.0).astype(np.float32),
        parts["y_train"].astype(np.int64),
        (parts["x_test"] / 16.0).astype(np.float32),
        parts["y_test"].astype(np.int64),
    )


def sklearn_digit_split(seed: int = 0) -> DigitData:
    """The same split computed by scikit-learn (the reference for the snapshot)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(
        x, d.target, test_size=TEST_SIZE, random_state=seed, stratify=d.target
    )
    return DigitData(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64))


def caption(template: int, digit: int) -> str:
    return TEMPLATES[template].format(word=DIGIT_WORDS[digit], d=digit)


def all_captions() -> tuple[str, ...]:
    """Caption index t * 10 + d: template t for digit d."""
    return tuple(caption(t, d) for t in range(len(TEMPLATES)) for d in range(10))


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 8, 8) -> (B, (8/p)^2, p*p): patches in reading order, pixels row by row."""
    b = images.shape[0]
    g = IMAGE_SIDE // patch
    x = images.reshape(b, g, patch, g, patch).permute(0, 1, 3, 2, 4)  # (B, g, g, p, p)
    return x.reshape(b, g * g, patch * patch)


class ImageTower(nn.Module):
    def __init__(self, patch: int, width: int = 32, out: int = 32) -> None:
        super().__init__()
        self.patch = patch
        n = (IMAGE_SIDE // patch) ** 2
        self.project = nn.Linear(patch * patch, width)
        self.position = nn.Parameter(torch.randn(n, width) * 0.02)
        self.layer = nn.TransformerEncoderLayer(
            width,
            nhead=4,
            dim_feedforward=2 * width,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.project(patchify(images, self.patch)) + self.position  # (B, n, width)
        pooled = self.norm(self.layer(tokens)).mean(1)  # (B, width)
        return self.head(pooled)  # (B, out)


class TextTower(nn.Module):
    def __init__(self, d_in: int = 384, hidden: int = 64, out: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, out))

    def forward(self, sentence_vectors: torch.Tensor) -> torch.Tensor:
        return self.net(sentence_vectors)


class MiniClip(nn.Module):
    def __init__(
        self, patch: int, temperature: float = 0.07, learn_temperature: bool = True, width: int = 32
    ) -> None:
        super().__init__()
        self.image = ImageTower(patch, width)
        self.text = TextTower(out=width)
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / temperature)), requires_grad=learn_temperature
        )

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.image(images), dim=-1)

    def encode_text(self, vectors: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.text(vectors), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()


def clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: image i should pick caption i among the batch, and caption i image i."""
    logits = scale * img @ txt.T  # (B, B)
    target = torch.arange(img.shape[0])
    return (
        nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)
    ) / 2


@dataclass(frozen=True)
class ClipConfig:
    patch: int = 2
    steps: int = 300
    batch: int = 64
    lr: float = 3e-3
    temperature: float = 0.07  # starting value (CLIP's)
    learn_temperature: bool = True
    eval_every: int = 20
    seed: int = 0


@dataclass(frozen=True)
class Curve:
    steps: tuple[int, ...]
    loss: tuple[float, ...]
    eval_steps: tuple[int, ...]
    zero_shot: tuple[float, ...]  # accuracy on the held-out digits


@dataclass(frozen=True)
class ClipResult:
    config: ClipConfig
    model: MiniClip  # trained, eval mode; read only
    curve: Curve
    accuracy: float
    temperature: float  # 1 / exp(learned logit scale)
    image_vectors: np.ndarray  # (540, 32) unit rows: the held-out digits
    class_vectors: np.ndarray  # (10, 32) unit rows: each digit's captions, averaged
    confusion: np.ndarray  # (10, 10) true digit x predicted digit counts
    loss_floor: float  # mean in-batch floor over the batches trained on


def class_text_vectors(model: MiniClip, caption_vectors: torch.Tensor) -> torch.Tensor:
    """Each digit's text vector: its captions under every template, averaged ('prompt
    ensembling' in CLIP), then renormalised: (10, d)."""
    t = model.encode_text(caption_vectors).reshape(len(TEMPLATES), 10, -1)
    return nn.functional.normalize(t.mean(0), dim=-1)


def zero_shot_predictions(
    model: MiniClip, images: torch.Tensor, caption_vectors: torch.Tensor
) -> torch.Tensor:
    with torch.no_grad():
        sims = model.encode_image(images) @ class_text_vectors(model, caption_vectors).T
    return sims.argmax(1)


def train_mini_clip(
    cfg: ClipConfig, caption_vectors: np.ndarray, report: Callable[..., None] = lambda *a, **k: None
) -> ClipResult:
    """Train on random batches of (image, caption of its digit under a random template)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = digit_data()
    xtr, xte = torch.from_numpy(data.x_train), torch.from_numpy(data.x_test)
    ytr, yte = data.y_train, torch.from_numpy(data.y_test)
    caps = torch.tensor(np.asarray(caption_vectors, dtype=np.float32))  # (40, 384)
    model = MiniClip(cfg.patch, cfg.temperature, cfg.learn_temperature)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.01
    )
    steps, losses, eval_steps, accs, floors = [], [], [], [], []
    for step in range(1, min(cfg.steps, MAX_STEPS) + 1):
        idx = rng.choice(len(ytr), cfg.batch, replace=False)
        tmpl = rng.integers(0, len(TEMPLATES), cfg.batch)
        model.train()
        loss = clip_loss(
            model.encode_image(xtr[idx]),
            model.encode_text(caps[tmpl * 10 + ytr[idx]]),
            model.scale(),
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps.append(step)
        losses.append(loss.item())
        floors.append(in_batch_floor(ytr[idx]))
        if step % cfg.eval_every == 0 or step == cfg.steps:
            model.eval()
            eval_steps.append(step)
            accs.append(float((zero_shot_predictions(model, xte, caps) == yte).float().mean()))
        report(
            step / cfg.steps,
            f"step {step} of {cfg.steps}, loss {losses[-1]:.3f}",
            partial=Curve(tuple(steps), tuple(losses), tuple(eval_steps), tuple(accs)),
        )
    curve = Curve(tuple(steps), tuple(losses), tuple(eval_steps), tuple(accs))
    return _finish(cfg, model, curve, float(np.mean(floors)), xte, data.y_test, caps)


def in_batch_floor(labels: np.ndarray) -> float:
    """The lowest loss reachable on a batch whose captions only say which digit it is: an image
    cannot tell its own caption from the other captions of the same digit, so at best it spreads
    its probability over them: mean ln(number of same-digit pairs in the batch)."""
    counts = np.bincount(labels, minlength=10)
    return float(np.mean(np.log(counts[labels])))


def _finish(
    cfg: ClipConfig,
    model: MiniClip,
    curve: Curve,
    floor: float,
    xte: torch.Tensor,
    yte: np.ndarray,
    caps: torch.Tensor,
) -> ClipResult:
    model.eval()
    model.requires_grad_(False)
    with torch.no_grad():
        img = model.encode_image(xte).numpy()
        cls = class_text_vectors(model, caps).numpy()
    pred = (img @ cls.T).argmax(1)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (yte, pred), 1)
    temp = 1.0 / float(model.scale())
    return ClipResult(
        cfg, model, curve, float((pred == yte).mean()), temp, img, cls, confusion, floor
    )


def similarity_matrix(result: ClipResult, per_digit: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of the first `per_digit` test images of each digit against each digit's text
    vector: ((10 * per_digit, 10) matrix, the images' indices in the test set)."""
    y = digit_data().y_test
    rows = np.concatenate([np.flatnonzero(y == d)[:per_digit] for d in range(10)])
    return result.image_vectors[rows] @ result.class_vectors.T, rows


def matched_gap(result: ClipResult) -> tuple[float, float]:
    """Mean cosine of each test image with its own digit's text, and with the other nine."""
    sims = result.image_vectors @ result.class_vectors.T  # (540, 10)
    y = digit_data().y_test
    own = sims[np.arange(len(y)), y]
    others = (sims.sum(1) - own) / 9
    return float(own.mean()), float(others.mean())


def score_text(result: ClipResult, sentence_vector: np.ndarray) -> np.ndarray:
    """Cosine of one caption (a MiniLM sentence vector, 384-d) with every test image: (540,)."""
    with torch.no_grad():
        t = result.model.encode_text(
            torch.from_numpy(np.asarray(sentence_vector, dtype=np.float32))[None]
        )[0].numpy()
    return result.image_vectors @ t
