"""The one way to hook the shared model: scoped, filtered by thread, removed in `finally`.

The loaded model is shared by every session of the app, and Streamlit runs each session's
script in its own thread. A hook is therefore only ever installed through `scoped_hooks`:

1. Scope. Hooks are registered on entry and removed in `finally`, whatever happens inside.
2. Isolation. Each hook remembers the thread that entered and does nothing in any other
   thread, so another session's forward pass that runs meanwhile is neither recorded nor
   changed (without this, a capture once came back with another request's tensor).

`capture_outputs` and `capture_inputs` record tensors; an intervention passes its own
forward-pre hook (which may return replacement arguments) to `scoped_hooks`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch

Kind = Literal["forward", "forward_pre"]


@dataclass(frozen=True)
class Hook:
    """One hook to install: `fn(module, args)` for "forward_pre", `fn(module, args, output)`
    for "forward" (torch's own signatures; returning a value replaces args or output)."""

    module: Any  # a torch.nn.Module
    kind: Kind
    fn: Callable[..., Any]
    prepend: bool = False  # run before the hooks already installed (transformers' recorders)


def _only_in(owner: int, fn: Callable[..., Any]) -> Callable[..., Any]:
    def hook(*args: Any) -> Any:
        if threading.get_ident() != owner:
            return None  # another session's forward pass: leave it alone
        return fn(*args)

    return hook


@contextmanager
def scoped_hooks(*hooks: Hook) -> Iterator[None]:
    """Inside the block the hooks run, for calls made from this thread only; then removed."""
    owner = threading.get_ident()
    handles = []
    try:
        for h in hooks:
            wrapped = _only_in(owner, h.fn)
            if h.kind == "forward":
                handles.append(h.module.register_forward_hook(wrapped, prepend=h.prepend))
            elif h.kind == "forward_pre":
                handles.append(h.module.register_forward_pre_hook(wrapped, prepend=h.prepend))
            else:
                raise ValueError(f"unknown hook kind {h.kind!r}")
        yield
    finally:
        for handle in handles:
            handle.remove()


def first_tensor(value: Any) -> torch.Tensor:
    """Attention modules return (output, weights) and older blocks tuples: the first tensor."""
    return value[0] if isinstance(value, tuple) else value


@contextmanager
def capture_outputs(modules: Mapping[str, Any]) -> Iterator[dict[str, torch.Tensor]]:
    """Each module's output (its first tensor), recorded under its key; last call wins."""
    captured: dict[str, torch.Tensor] = {}

    def recorder(key: str) -> Callable[..., None]:
        def record(_module: Any, _args: Any, output: Any) -> None:
            captured[key] = first_tensor(output).detach()

        return record

    with scoped_hooks(*(Hook(m, "forward", recorder(k)) for k, m in modules.items())):
        yield captured


@contextmanager
def capture_inputs(modules: Mapping[str, Any]) -> Iterator[dict[str, torch.Tensor]]:
    """Each module's first positional input, recorded under its key; last call wins."""
    captured: dict[str, torch.Tensor] = {}

    def recorder(key: str) -> Callable[..., None]:
        def record(_module: Any, args: tuple) -> None:
            captured[key] = args[0].detach()

        return record

    with scoped_hooks(*(Hook(m, "forward_pre", recorder(k)) for k, m in modules.items())):
        yield captured
