"""Custom test functions typed by the user as text, e.g. ``sin(x) * cos(y) + 0.1*(x**2 + y**2)``.

The text is parsed with ``ast.parse`` and the tree is checked against a whitelist while it is turned
into a tree of torch closures. Nothing from the text is ever evaluated by Python (no eval, exec or
compiled code objects), so the text can only ever compute arithmetic on the tensors x and y.
"""
from __future__ import annotations

import ast
import math
from typing import Callable

import torch
from torch import Tensor

from .functions import Point, TestFunction, check_domain
from .registry import ConfigError

MAX_LENGTH = 500
MAX_DEPTH = 50

Expr = Callable[[Tensor, Tensor], Tensor]

# name -> (torch function, number of arguments)
FUNCTIONS_ALLOWED: dict[str, tuple[Callable[..., Tensor], int]] = {
    "sin": (torch.sin, 1),
    "cos": (torch.cos, 1),
    "tan": (torch.tan, 1),
    "asin": (torch.asin, 1),
    "arcsin": (torch.asin, 1),
    "acos": (torch.acos, 1),
    "arccos": (torch.acos, 1),
    "atan": (torch.atan, 1),
    "arctan": (torch.atan, 1),
    "atan2": (torch.atan2, 2),
    "sinh": (torch.sinh, 1),
    "cosh": (torch.cosh, 1),
    "tanh": (torch.tanh, 1),
    "exp": (torch.exp, 1),
    "log": (torch.log, 1),
    "log10": (torch.log10, 1),
    "sqrt": (torch.sqrt, 1),
    "abs": (torch.abs, 1),
    "min": (torch.minimum, 2),
    "max": (torch.maximum, 2),
}
CONSTANTS = {"pi": math.pi, "e": math.e}
VARIABLES = ("x", "y")

_BINARY = {
    ast.Add: torch.add,
    ast.Sub: torch.sub,
    ast.Mult: torch.mul,
    ast.Div: torch.div,
    ast.Pow: torch.pow,
}
_OPERATOR_TEXT = {
    ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.Not: "not", ast.Invert: "~",
}
# What the user wrote, in words, for the node types that are refused outright.
_REFUSED = {
    ast.Subscript: "indexing is", ast.Lambda: "lambda is",
    ast.IfExp: "conditional expressions (if/else) are", ast.Compare: "comparisons are",
    ast.BoolOp: "boolean operators (and/or) are", ast.JoinedStr: "f-strings are",
    ast.NamedExpr: "assignment expressions (:=) are",
    ast.ListComp: "comprehensions are", ast.SetComp: "comprehensions are", ast.DictComp: "comprehensions are",
    ast.GeneratorExp: "generator expressions are", ast.Tuple: "tuples are", ast.List: "lists are",
    ast.Set: "sets are", ast.Dict: "dictionaries are", ast.Starred: "starred arguments are",
    ast.Await: "await is", ast.Yield: "yield is", ast.YieldFrom: "yield is",
}
_FUNCTION_LIST = ", ".join(FUNCTIONS_ALLOWED)


class ExpressionError(ConfigError):
    """Refused or malformed expression text; ``column`` (1-based) points at the offending part."""

    def __init__(self, problem: str, column: int | None = None, line: int | None = None):
        self.column, self.line = column, line
        if column is not None:
            problem += f" (line {line}, column {column})" if line and line > 1 else f" (column {column})"
        super().__init__("expression", problem)


def compile_expression(text: str) -> Expr:
    """Check ``text`` and build ``f(x, y) -> Tensor``: elementwise, differentiable, shaped like x and y."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected text, got {type(text).__name__}")
    if not text.strip():
        raise ExpressionError("expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is too long ({len(text)} characters; at most {MAX_LENGTH})")
    source = text.strip()  # eval mode refuses leading blanks; positions are mapped back below
    lead = text[: len(text) - len(text.lstrip())]
    lines_before, columns_before = lead.count("\n"), len(lead) - (lead.rfind("\n") + 1)

    def position(line: int, column: int) -> dict:
        return {"line": line + lines_before, "column": column + (columns_before if line == 1 else 0)}

    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        column = err.offset if err.offset and err.offset > 0 else len(source) + 1  # 0 means at the end
        raise ExpressionError(f"syntax error: {err.msg}", **position(err.lineno or 1, column)) from None
    except (ValueError, RecursionError, MemoryError) as err:  # null bytes; nesting the parser cannot take
        raise ExpressionError(f"cannot read the expression: {err}") from None
    body = _Builder(source, position).build(tree.body, 0)
    uses_xy = any(isinstance(n, ast.Name) and n.id in VARIABLES for n in ast.walk(tree))

    def f(x: Tensor, y: Tensor) -> Tensor:
        out = body(x, y)
        if not uses_xy:
            # A constant must still be a tensor shaped like the points and joined to the autograd
            # graph, so that f(P).sum().backward() gives zero gradients instead of an error.
            out = out + 0 * (x + y)
        return out

    f.__doc__ = f"f(x, y) = {source}"
    return f


def make_custom_function(
    text: str,
    domain=((-3.0, 3.0), (-3.0, 3.0)),
    name: str = "custom",
    label: str | None = None,
    start: Point | None = None,
) -> TestFunction:
    """A TestFunction from user text. Minima are unknown; the start defaults to the upper-left quarter."""
    expr = compile_expression(text)
    (x0, x1), (y0, y1) = check_domain(domain)
    if start is None:
        start = (x0 + 0.25 * (x1 - x0), y0 + 0.75 * (y1 - y0))
    else:
        try:
            sx, sy = (float(v) for v in start)
        except (TypeError, ValueError):
            raise ConfigError("start", f"expected (x, y), got {start!r}") from None
        if not (x0 <= sx <= x1 and y0 <= sy <= y1):
            raise ConfigError("start", f"({sx:g}, {sy:g}) is outside the domain [{x0:g}, {x1:g}] x [{y0:g}, {y1:g}]")
        start = (sx, sy)
    return TestFunction(
        name=name,
        label=label or f"f(x, y) = {text.strip()}",
        formula=text.strip(),
        fn=lambda x, y, params: expr(x, y),
        domain=((x0, x1), (y0, y1)),
        minima=(),
        min_value=None,
        start=start,
        description="Custom function typed by the user.",
    )


class _Builder:
    """Walks the tree once, refusing anything off the whitelist, and returns nested closures."""

    def __init__(self, source: str, position: Callable[[int, int], dict]):
        self.lines = source.splitlines() or [source]
        self.position = position

    def where(self, node: ast.AST, line: int | None = None, col_offset: int | None = None) -> dict:
        """Position for an error: the node's start, or an explicit (line, byte offset)."""
        line = node.lineno if line is None else line
        col = node.col_offset if col_offset is None else col_offset
        source = self.lines[line - 1].encode()
        # ast columns count UTF-8 bytes; users count characters.
        return self.position(line, len(source[:col].decode(errors="ignore")) + 1)

    def operator_where(self, node: ast.BinOp) -> dict:
        # The operator has no node of its own: it is the first character after the left operand
        # that is not a blank or a closing parenthesis.
        line, col = node.left.end_lineno, node.left.end_col_offset
        source = self.lines[line - 1].encode()
        while col < len(source) and source[col:col + 1] in b" \t)":
            col += 1
        return self.where(node, line, col)

    def build(self, node: ast.AST, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)", **self.where(node))
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                hint = "; write ** for powers" if isinstance(node.op, ast.BitXor) else ""
                raise ExpressionError(f"operator '{_OPERATOR_TEXT.get(type(node.op), '?')}' is not allowed{hint}",
                                      **self.operator_where(node))
            # A left-leaning chain such as x + x**2 + x**3 is long, not deep: only the right side nests.
            left_depth = depth if isinstance(node.left, ast.BinOp) and not isinstance(node.op, ast.Pow) else depth + 1
            left, right = self.build(node.left, left_depth), self.build(node.right, depth + 1)
            return lambda x, y: op(left(x, y), right(x, y))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                operand = self.build(node.operand, depth + 1)
                return lambda x, y: torch.neg(operand(x, y))
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, depth + 1)
            raise ExpressionError(f"operator '{_OPERATOR_TEXT.get(type(node.op), '?')}' is not allowed", **self.where(node))
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Attribute):
            self.build(node.value, depth + 1)  # report problems in reading order: the object comes first
            raise ExpressionError(f"attribute access '{node.attr}' is not allowed",
                                  **self.where(node, node.end_lineno, node.end_col_offset - len(node.attr)))
        what = _REFUSED.get(type(node), f"'{type(node).__name__}' is")
        raise ExpressionError(f"{what} not allowed", **self.where(node))

    def constant(self, node: ast.Constant) -> Expr:
        value = node.value
        if isinstance(value, str):
            raise ExpressionError("strings are not allowed", **self.where(node))
        if isinstance(value, bool) or value is None or value is ...:
            raise ExpressionError(f"'{value!r}' is not allowed; only numbers, x, y, pi and e", **self.where(node))
        if isinstance(value, complex):
            raise ExpressionError("complex numbers are not allowed", **self.where(node))
        if not isinstance(value, (int, float)):
            raise ExpressionError(f"{type(value).__name__} values are not allowed", **self.where(node))
        try:
            number = float(value)
        except OverflowError:  # an int literal beyond float range
            number = math.inf
        if not math.isfinite(number):
            raise ExpressionError("number is too large", **self.where(node))
        return _constant(number)

    def name(self, node: ast.Name) -> Expr:
        if node.id == "x":
            return lambda x, y: x
        if node.id == "y":
            return lambda x, y: y
        if node.id in CONSTANTS:
            return _constant(CONSTANTS[node.id])
        if node.id in FUNCTIONS_ALLOWED:
            raise ExpressionError(f"function '{node.id}' must be called, e.g. {node.id}(x)", **self.where(node))
        raise ExpressionError(f"unknown name '{node.id}'; allowed: x, y, pi, e", **self.where(node))

    def call(self, node: ast.Call, depth: int) -> Expr:
        func = node.func
        if not isinstance(func, ast.Name):
            self.build(func, depth + 1)  # names the real problem if there is one, e.g. an attribute
            raise ExpressionError(f"only named functions can be called; allowed: {_FUNCTION_LIST}", **self.where(node))
        if func.id in VARIABLES or func.id in CONSTANTS:
            raise ExpressionError(f"'{func.id}' is not a function; write '*' to multiply", **self.where(func))
        if func.id not in FUNCTIONS_ALLOWED:
            raise ExpressionError(f"function '{func.id}' is not allowed; allowed: {_FUNCTION_LIST}", **self.where(func))
        if node.keywords:
            kw = node.keywords[0]
            raise ExpressionError(f"keyword arguments are not allowed in {func.id}()", **self.where(kw))
        torch_fn, arity = FUNCTIONS_ALLOWED[func.id]
        if len(node.args) != arity:
            raise ExpressionError(
                f"{func.id}() takes {arity} argument{'s' if arity > 1 else ''}, got {len(node.args)}", **self.where(func))
        args = [self.build(a, depth + 1) for a in node.args]
        if arity == 1:
            (a,) = args
            return lambda x, y: torch_fn(a(x, y))
        a, b = args
        return lambda x, y: torch_fn(a(x, y), b(x, y))


def _constant(value: float) -> Expr:
    # A 0-d tensor of x's dtype: broadcasting does the rest, and all arithmetic stays in torch
    # (a Python int 9**9**9 would hang; a tensor just overflows to inf).
    return lambda x, y: torch.tensor(value, dtype=x.dtype, device=x.device)
