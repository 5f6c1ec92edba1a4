"""A static call graph of pages, components and core, for tests that must follow calls across
modules (no job inside a fragment; what a job's work reaches).

Resolved: calls to a module-level function of the same module, to a name imported with
`from X import f`, and to `alias.f` where `alias` is an imported module (`from components
import jobs as j`, `import core.rag as rag`). A function's calls include those of the functions
and lambdas nested in it (its `work` closures). Method calls on objects are not followed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("components", "core")

Ref = tuple[str, str]  # (module, function name)


@dataclass
class Module:
    name: str
    tree: ast.Module
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    names: dict[str, Ref] = field(default_factory=dict)  # imported function names
    modules: dict[str, str] = field(default_factory=dict)  # alias -> module


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _load(path: Path) -> Module:
    mod = Module(_module_name(path), ast.parse(path.read_text(encoding="utf-8")))
    for node in mod.tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mod.functions[node.name] = node
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                target = f"{node.module}.{a.name}"
                if (ROOT / Path(*target.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*target.split(".")) / "__init__.py"
                ).exists():
                    mod.modules[a.asname or a.name] = target
                else:
                    mod.names[a.asname or a.name] = (node.module, a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    mod.modules[a.asname or a.name] = a.name
    return mod


class CallGraph:
    def __init__(self) -> None:
        self.modules: dict[str, Module] = {}
        paths = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
        paths += sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
        for path in paths:
            mod = _load(path)
            self.modules[mod.name] = mod

    def resolve(self, mod: Module, func: ast.expr) -> Ref | None:
        if isinstance(func, ast.Name):
            if func.id in mod.functions:
                return (mod.name, func.id)
            return mod.names.get(func.id)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            target = mod.modules.get(func.value.id)
            if target is not None:
                return (target, func.attr)
        if isinstance(func, ast.Attribute):  # pkg.sub.f
            dotted = ast.unparse(func.value)
            if dotted in self.modules:
                return (dotted, func.attr)
        return None

    def calls_in(self, mod: Module, node: ast.AST) -> list[Ref]:
        """Functions called anywhere inside `node` (nested functions and lambdas included),
        and functions passed by name as arguments (a `work` handed to run_job)."""
        out = []
        for c in ast.walk(node):
            if isinstance(c, ast.Call):
                for f in [c.func, *c.args, *(k.value for k in c.keywords)]:
                    ref = self.resolve(mod, f) if isinstance(f, (ast.Name, ast.Attribute)) else None
                    if ref is not None:
                        out.append(ref)
        return out

    def function(self, ref: Ref) -> tuple[Module, ast.FunctionDef] | None:
        mod = self.modules.get(ref[0])
        if mod is None:
            return None
        if ref[1] in mod.functions:
            return mod, mod.functions[ref[1]]
        if ref[1] in mod.names:  # re-exported from another module
            return self.function(mod.names[ref[1]])
        return None

    def reach(self, mod: Module, node: ast.AST) -> dict[Ref, list[Ref]]:
        """Every function reachable from `node`, each with one call path leading to it."""
        seen: dict[Ref, list[Ref]] = {}
        todo = [(ref, [ref]) for ref in self.calls_in(mod, node)]
        while todo:
            ref, path = todo.pop()
            if ref in seen:
                continue
            seen[ref] = path
            found = self.function(ref)
            if found is not None:
                m, f = found
                todo += [(r, path + [r]) for r in self.calls_in(m, f)]
        return seen


def decorated(node: ast.AST, word: str) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
        word in ast.unparse(d) for d in node.decorator_list
    )
