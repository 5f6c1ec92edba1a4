"""A calculator a model may call: numbers and arithmetic only, never `eval`.

The text is parsed with `ast.parse(mode="eval")` (parsing runs nothing) and the tree is walked
by hand: only number literals, + - * / // % ** and unary signs are allowed; every other node
(names, calls, attributes, subscripts, strings, lambdas, comprehensions) is refused. Work is
bounded before it happens: the text's length, the tree's size, the exponent, and the size of
every intermediate result.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

MAX_CHARS = 200
MAX_NODES = 60
MAX_EXPONENT = 100
MAX_ABS = 1e30  # results beyond this are refused, so 9**9**9 never becomes a huge integer

BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
UNARY: dict[type, Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorError(ValueError):
    """The text is not plain arithmetic, or its result would be too large."""


@dataclass(frozen=True)
class Calculation:
    expression: str
    value: float | int | None
    error: str  # "" on success

    @property
    def text(self) -> str:
        if self.error:
            return f"Error: {self.error}"
        v = self.value
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            v = int(v)
        return f"{v:.10g}" if isinstance(v, float) else str(v)


def _check_size(x: float | int) -> float | int:
    if isinstance(x, float) and not math.isfinite(x) or abs(x) > MAX_ABS:
        raise CalculatorError(f"the result is larger than {MAX_ABS:.0e}")
    return x


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check_size(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (
            abs(right) > MAX_EXPONENT or (left == 0 and right < 0)
        ):
            raise CalculatorError(f"exponents are limited to ±{MAX_EXPONENT} (and 0 to ≥ 0)")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise CalculatorError("division by zero")
        if isinstance(node.op, ast.Pow) and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * math.log10(abs(left)) > math.log10(MAX_ABS):
                raise CalculatorError(f"the result is larger than {MAX_ABS:.0e}")
        result = BINARY[type(node.op)](left, right)
        if isinstance(result, complex):
            raise CalculatorError("the result is not a real number")
        return _check_size(result)
    raise CalculatorError(f"only numbers and + - * / // % ** are allowed, not {_name(node)}")


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        return f"a {type(node.value).__name__} constant"
    return f"'{type(node).__name__}'"


def calculate(expression: str) -> Calculation:
    """Evaluate plain arithmetic; every refusal is a Calculation with an error, never a raise."""
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("^", "**")
    try:
        if not text:
            raise CalculatorError("empty expression")
        if len(text) > MAX_CHARS:
            raise CalculatorError(f"longer than {MAX_CHARS} characters")
        try:
            tree = ast.parse(text, mode="eval")
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            raise CalculatorError("not a valid arithmetic expression") from None
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            raise CalculatorError(f"more than {MAX_NODES} parts")
        return Calculation(expression, _eval(tree), "")
    except CalculatorError as exc:
        return Calculation(expression, None, str(exc))
    except (OverflowError, ArithmeticError, RecursionError) as exc:
        return Calculation(expression, None, f"cannot compute it ({type(exc).__name__})")
