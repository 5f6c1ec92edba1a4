"""The one registry of the concepts: the home page, the sidebar and the tests read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES_DIR = ROOT / "pages"

SECTIONS: tuple[str, ...] = (
    "Foundations",
    "Language",
    "The Transformer",
    "Training",
    "Inference",
    "Applications & Limits",
)


@dataclass(frozen=True)
class Concept:
    number: int
    title: str
    section: str
    summary: str
    slug: str  # file is pages/NN_slug.py, served at /slug

    @property
    def page_file(self) -> str:
        return f"pages/{self.number:02d}_{self.slug}.py"

    @property
    def label(self) -> str:
        return f"{self.number:02d} · {self.title}"

    def exists(self, pages_dir: Path = PAGES_DIR) -> bool:
        return (pages_dir / f"{self.number:02d}_{self.slug}.py").is_file()


CONCEPTS: tuple[Concept, ...] = (
    Concept(
        1, "The Neuron", "Foundations", "A weighted sum followed by a non-linearity.", "neuron"
    ),
    Concept(
        2,
        "Layers & Deep Networks",
        "Foundations",
        "Stacking layers builds more abstract features.",
        "layers",
    ),
    Concept(
        3,
        "Activation Functions",
        "Foundations",
        "ReLU, GELU, sigmoid and friends give networks expressive power.",
        "activations",
    ),
    Concept(
        4,
        "Training & Backpropagation",
        "Foundations",
        "Gradients flow backwards to update weights.",
        "training",
    ),
    Concept(
        5,
        "Overfitting & Generalization",
        "Foundations",
        "Memorising training data fails on new data.",
        "overfitting",
    ),
    Concept(
        6, "Tokenization", "Language", "Raw text split into sub-word integers.", "tokenization"
    ),
    Concept(7, "Embeddings", "Language", "Dense vectors that encode meaning.", "embeddings"),
    Concept(
        8,
        "The Attention Mechanism",
        "The Transformer",
        "Which earlier tokens each position looks at.",
        "attention",
    ),
    Concept(
        9,
        "Multi-Head Attention",
        "The Transformer",
        "Attention in parallel subspaces.",
        "multi_head",
    ),
    Concept(
        10,
        "The Transformer Block",
        "The Transformer",
        "Attention + feed-forward + residuals + normalisation.",
        "block",
    ),
    Concept(
        11,
        "Stacking Layers (The Full Model)",
        "The Transformer",
        "Dozens of blocks make an LLM.",
        "full_model",
    ),
    Concept(
        12,
        "The Language Modeling Objective",
        "The Transformer",
        "Predict the next token.",
        "lm_objective",
    ),
    Concept(
        13,
        "Pre-training Data",
        "Training",
        "Corpora, filtering pipelines, mixtures.",
        "pretraining_data",
    ),
    Concept(
        14,
        "The Pre-training Loop",
        "Training",
        "Batches, forward pass, loss, update.",
        "pretraining_loop",
    ),
    Concept(15, "Compute & Scale", "Training", "Scaling laws and compute budgets.", "scaling"),
    Concept(
        16,
        "Fine-tuning & Instruction Tuning",
        "Training",
        "Adapting a model to follow instructions.",
        "fine_tuning",
    ),
    Concept(17, "RLHF", "Training", "Learning from human preferences.", "rlhf"),
    Concept(
        18,
        "The Inference Loop",
        "Inference",
        "One token at a time with the KV cache.",
        "inference_loop",
    ),
    Concept(
        19,
        "Decoding Strategies",
        "Inference",
        "Greedy, beam, top-k, nucleus, temperature.",
        "decoding",
    ),
    Concept(
        20,
        "Context Window",
        "Inference",
        "The maximum sequence a model attends to.",
        "context_window",
    ),
    Concept(21, "RAG", "Applications & Limits", "Retrieve documents, then generate.", "rag"),
    Concept(
        22,
        "AI Agents & Tool Use",
        "Applications & Limits",
        "Models that call tools in a loop.",
        "agents",
    ),
    Concept(
        23,
        "Prompt Engineering",
        "Applications & Limits",
        "Better inputs, better outputs.",
        "prompting",
    ),
    Concept(
        24,
        "Multimodal Models",
        "Applications & Limits",
        "Images and text in one model.",
        "multimodal",
    ),
    Concept(
        25,
        "What LLMs Can't Do (Yet)",
        "Applications & Limits",
        "Reasoning, grounding, reliability.",
        "limits",
    ),
)


def concept(number: int) -> Concept:
    return CONCEPTS[number - 1]


def available_concepts(pages_dir: Path = PAGES_DIR) -> list[Concept]:
    """Concepts whose page file exists: only these are linked anywhere."""
    return [c for c in CONCEPTS if c.exists(pages_dir)]


def by_section(concepts: list[Concept]) -> dict[str, list[Concept]]:
    grouped: dict[str, list[Concept]] = {s: [] for s in SECTIONS}
    for c in concepts:
        grouped[c.section].append(c)
    return {s: cs for s, cs in grouped.items() if cs}
