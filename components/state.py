"""Session keys shared by every page (no torch here: the home page imports this)."""

from __future__ import annotations

MODEL_KEY = "shared.model"  # non-widget session keys: they survive page switches
PROMPT_KEY = "shared.prompt"
LINKED_MODEL_KEY = "shared.linked_model"  # a model a link or lesson asked for, until it loads
DEFAULT_PROMPT = "The quick brown fox jumps over the lazy dog. Transformers read text as tokens"
