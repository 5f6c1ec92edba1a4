"""Model ids, kept apart from core.runtime.models so the home page can name them without importing torch."""

from __future__ import annotations

EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
ENCODER_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
HUB_CHOICES: tuple[str, ...] = ("gpt2", "distilgpt2", "HuggingFaceTB/SmolLM2-360M-Instruct")
