"""Custom functions typed as text: what is accepted computes the right values and gradients,
everything else is refused with a message that points at the offending part."""
import math

import pytest
import torch

from engine.expression import MAX_DEPTH, ExpressionError, compile_expression, make_custom_function
from engine.functions import TestFunction
from engine.registry import ConfigError

E = math.e

# text, (x, y), value, (df/dx, df/dy) -- worked out by hand
ACCEPTED = [
    ("x", (2.0, 5.0), 2.0, (1.0, 0.0)),
    ("y", (2.0, 5.0), 5.0, (0.0, 1.0)),
    ("3", (2.0, 5.0), 3.0, (0.0, 0.0)),
    ("-2.5", (2.0, 5.0), -2.5, (0.0, 0.0)),
    ("+x", (2.0, 5.0), 2.0, (1.0, 0.0)),
    ("x + 2*y", (1.0, 3.0), 7.0, (1.0, 2.0)),
    ("x - y", (1.0, 3.0), -2.0, (1.0, -1.0)),
    ("x * y", (2.0, 3.0), 6.0, (3.0, 2.0)),
    ("x / y", (3.0, 2.0), 1.5, (0.5, -0.75)),
    ("x**2 + 3*y**2", (1.0, 2.0), 13.0, (2.0, 12.0)),
    ("-x**2", (3.0, 0.0), -9.0, (-6.0, 0.0)),  # ** binds tighter than unary minus, as in Python
    ("2**3**2", (0.0, 0.0), 512.0, (0.0, 0.0)),  # right-associative
    ("x**y", (2.0, 3.0), 8.0, (12.0, 8 * math.log(2))),
    ("(1 - x)**2 + 100*(y - x**2)**2", (0.0, 1.0), 101.0, (-2.0, 200.0)),
    ("sin(x) * cos(y)", (math.pi / 2, 0.0), 1.0, (0.0, 0.0)),
    ("sin(x) * cos(y)", (0.0, math.pi), 0.0, (-1.0, 0.0)),
    ("tan(x)", (math.pi / 4, 0.0), 1.0, (2.0, 0.0)),
    ("exp(x + y)", (1.0, -1.0), 1.0, (1.0, 1.0)),
    ("log(x*y)", (E, 1.0), 1.0, (1 / E, 1.0)),
    ("log10(x)", (100.0, 0.0), 2.0, (1 / (100 * math.log(10)), 0.0)),
    ("sqrt(x**2 + y**2)", (3.0, 4.0), 5.0, (0.6, 0.8)),
    ("abs(x) + abs(y)", (-2.0, 3.0), 5.0, (-1.0, 1.0)),
    ("tanh(x)", (0.0, 0.0), 0.0, (1.0, 0.0)),
    ("sinh(x) + cosh(y)", (0.0, 0.0), 1.0, (1.0, 0.0)),
    ("atan(x) + arctan(y)", (1.0, 0.0), math.pi / 4, (0.5, 1.0)),
    ("asin(x) + arccos(y)", (0.0, 0.0), math.pi / 2, (1.0, -1.0)),
    ("atan2(y, x)", (1.0, 1.0), math.pi / 4, (-0.5, 0.5)),
    ("min(x, y) + max(x, 2)", (1.0, 3.0), 3.0, (1.0, 0.0)),
    ("pi * x + e", (2.0, 0.0), 2 * math.pi + E, (math.pi, 0.0)),
    ("1e-3 * x", (2.0, 0.0), 2e-3, (1e-3, 0.0)),
    ("  x * ((y))  ", (2.0, 3.0), 6.0, (3.0, 2.0)),
    ("sin(cos(exp(0)))", (0.0, 0.0), math.sin(math.cos(1.0)), (0.0, 0.0)),
]


@pytest.mark.parametrize("text, point, expected, grad", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_expression_values_and_gradients(text, point, expected, grad):
    f = compile_expression(text)
    x = torch.tensor(point[0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor(point[1], dtype=torch.float64, requires_grad=True)
    out = f(x, y)
    assert out.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    out.backward()
    gx = 0.0 if x.grad is None else x.grad.item()
    gy = 0.0 if y.grad is None else y.grad.item()
    assert (gx, gy) == pytest.approx(grad, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("text", ["3", "x", "y", "pi", "x + sin(y)"])
def test_result_is_shaped_like_the_points_and_keeps_their_dtype(text):
    f = compile_expression(text)
    for dtype in (torch.float32, torch.float64):
        x, y = torch.rand(4, 5, dtype=dtype), torch.rand(4, 5, dtype=dtype)
        out = f(x, y)
        assert out.shape == (4, 5) and out.dtype == dtype


def test_constant_function_gives_zero_gradients_not_an_error():
    fn = make_custom_function("3")
    P = torch.rand(6, 2, requires_grad=True)
    fn(P).sum().backward()
    assert torch.equal(P.grad, torch.zeros(6, 2))


def test_non_finite_results_are_data():
    f = compile_expression("log(x) + 1/y + sqrt(x)")
    out = f(torch.tensor([-1.0, 1.0, 1.0]), torch.tensor([1.0, 0.0, 1.0]))
    assert math.isnan(out[0]) and math.isinf(out[1]) and out[2] == 2.0
    assert torch.isinf(compile_expression("9**9**9**9")(torch.zeros(2), torch.zeros(2))).all()


def test_long_sums_are_not_counted_as_nesting():
    text = " + ".join(f"x**{k}" for k in range(60))
    assert compile_expression(text)(torch.tensor(1.0), torch.tensor(0.0)).item() == 60.0


REFUSED = [
    ("__import__('os').system('x')", "function '__import__' is not allowed; allowed: sin, cos", 1),
    ("x.__class__", "attribute access '__class__' is not allowed", 3),
    ("().__class__.__bases__", "tuples are not allowed", 1),
    ("(x).__class__", "attribute access '__class__' is not allowed", 5),
    ("sin(x).real", "attribute access 'real' is not allowed", 8),
    ("[x for x in y]", "comprehensions are not allowed", 1),
    ("lambda: 1", "lambda is not allowed", 1),
    ("'a'*3", "strings are not allowed", 1),
    ("b'a'", "bytes values are not allowed", 1),
    ("f'{x}'", "f-strings are not allowed", 1),
    ("x[0]", "indexing is not allowed", 1),
    ("open('f')", "function 'open' is not allowed", 1),
    ("globals()", "function 'globals' is not allowed", 1),
    ("eval('1')", "function 'eval' is not allowed", 1),
    ("x if y else 1", "conditional expressions (if/else) are not allowed", 1),
    ("x < y", "comparisons are not allowed", 1),
    ("x and y", "boolean operators (and/or) are not allowed", 1),
    ("not x", "operator 'not' is not allowed", 1),
    ("~x", "operator '~' is not allowed", 1),
    ("x % 2", "operator '%' is not allowed", 3),
    ("x // 2", "operator '//' is not allowed", 3),
    ("x @ y", "operator '@' is not allowed", 3),
    ("(x) ^ 2", "operator '^' is not allowed; write ** for powers", 5),
    ("(y := 2)", "assignment expressions (:=) are not allowed", 2),
    ("[x, y]", "lists are not allowed", 1),
    ("x, y", "tuples are not allowed", 1),
    ("{x: y}", "dictionaries are not allowed", 1),
    ("1j", "complex numbers are not allowed", 1),
    ("True", "'True' is not allowed", 1),
    ("None", "'None' is not allowed", 1),
    ("1e999", "number is too large", 1),
    ("9" * 400, "number is too large", 1),
    ("sin(x, y)", "sin() takes 1 argument, got 2", 1),
    ("atan2(y)", "atan2() takes 2 arguments, got 1", 1),
    ("sin(x=1)", "keyword arguments are not allowed in sin()", 5),
    ("sin(*x)", "starred arguments are not allowed", 5),
    ("sin", "function 'sin' must be called, e.g. sin(x)", 1),
    ("os", "unknown name 'os'; allowed: x, y, pi, e", 1),
    ("x + z", "unknown name 'z'", 5),
    ("x(2)", "'x' is not a function; write '*' to multiply", 1),
    ("sin(x)(y)", "only named functions can be called", 1),
    ("x +", "syntax error", 4),
    ("sin(x", "syntax error: '(' was never closed", 4),
    ("  x + foo", "unknown name 'foo'", 7),  # columns count what the user typed
    ("é + x", "unknown name 'é'", 1),
    ("x + é", "unknown name 'é'", 5),  # characters, not UTF-8 bytes
]


@pytest.mark.parametrize("text, fragment, column", REFUSED, ids=[r[0][:30] for r in REFUSED])
def test_refused_expressions_name_the_part_and_column(text, fragment, column):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    message = str(info.value)
    assert fragment in message
    assert info.value.column == column
    assert message.endswith(f"(column {column})")
    assert isinstance(info.value, ConfigError) and info.value.field == "expression"


@pytest.mark.parametrize("text, fragment", [
    ("", "expression is empty"),
    ("   \t", "expression is empty"),
    ("x + " * 130 + "x", "expression is too long (521 characters; at most 500)"),
    ("x\0", "null bytes"),
    ("-" * (MAX_DEPTH + 5) + "x", f"nested too deeply (more than {MAX_DEPTH} levels)"),
    ("2**" * (MAX_DEPTH + 5) + "x", "nested too deeply"),
    ("sin(" * (MAX_DEPTH + 5) + "x" + ")" * (MAX_DEPTH + 5), "nested too deeply"),
])
def test_refused_text_without_a_tree(text, fragment):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert fragment in str(info.value)


def test_refusal_reports_the_line_of_a_multiline_expression():
    with pytest.raises(ExpressionError, match=r"unknown name 'foo'.*\(line 2, column 3\)"):
        compile_expression("(x +\n  foo)")


def test_non_text_is_refused():
    with pytest.raises(ExpressionError, match="expected text, got int"):
        compile_expression(3)


def test_refused_text_has_no_side_effect(tmp_path):
    target = tmp_path / "pwned_opti"
    attempts = [
        f"__import__('os').system('touch {target}')",
        f"open('{target}', 'w')",
        f"().__class__.__base__.__subclasses__()[0]('{target}')",
        f"(lambda: __import__('os').system('touch {target}'))()",
    ]
    for text in attempts:
        with pytest.raises(ExpressionError):
            compile_expression(text)
    assert not target.exists()


def test_nothing_is_evaluated_while_checking_or_running(monkeypatch):
    import ast
    import builtins

    real_compile = builtins.compile

    def parse_only(source, filename, mode, flags=0, *args, **kwargs):
        # ast.parse is compile(..., PyCF_ONLY_AST): it makes a tree, never code that could run.
        assert flags & ast.PyCF_ONLY_AST, "user text must never be compiled to code"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must never run on user text")

    monkeypatch.setattr(builtins, "compile", parse_only)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    f = compile_expression("sin(x) + y**2")
    assert f(torch.tensor(0.0), torch.tensor(2.0)).item() == 4.0
    with pytest.raises(ExpressionError):
        compile_expression("__import__('os')")


# --- make_custom_function -----------------------------------------------------------------------

def test_custom_function_is_a_test_function():
    f = make_custom_function("x**2 + 3*y**2", domain=((-2, 2), (-1, 1)), name="bowl", label="My bowl")
    assert isinstance(f, TestFunction)
    assert (f.name, f.label, f.formula) == ("bowl", "My bowl", "x**2 + 3*y**2")
    assert f.minima == () and f.min_value is None and f.params == ()
    assert f.domain == ((-2.0, 2.0), (-1.0, 1.0))
    assert f.start == (-1.0, 0.5)
    P = torch.tensor([[1.0, 1.0], [2.0, 0.0]], requires_grad=True)
    out = f(P)
    torch.testing.assert_close(out, torch.tensor([4.0, 4.0]))
    out.sum().backward()
    torch.testing.assert_close(P.grad, torch.tensor([[2.0, 6.0], [4.0, 0.0]]))
    xs, ys, Z = f.grid(5, 3)
    assert Z.shape == (3, 5) and Z[2, 4] == xs[4] ** 2 + 3 * ys[2] ** 2


def test_custom_function_defaults():
    f = make_custom_function("  sin(x) ")
    assert f.name == "custom" and f.label == "f(x, y) = sin(x)" and f.domain == ((-3.0, 3.0), (-3.0, 3.0))


def test_custom_constant_grid_has_full_shape():
    _, _, Z = make_custom_function("2").grid(4, 3)
    assert Z.shape == (3, 4) and (Z == 2).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"domain": ((3, -3), (-3, 3))}, r"domain\.x: xmin must be less than xmax"),
    ({"domain": ((-3, 3), (0, math.inf))}, r"domain\.y: bounds must be finite"),
    ({"domain": "big"}, r"domain: expected"),
    ({"start": (5.0, 0.0)}, r"start: \(5, 0\) is outside the domain"),
    ({"start": "here"}, r"start: expected \(x, y\)"),
])
def test_custom_function_settings_are_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_custom_function("x", **kwargs)


def test_custom_function_refuses_bad_text_before_anything_else():
    with pytest.raises(ExpressionError, match="unknown name 'q'"):
        make_custom_function("q", domain=((3, -3), (0, 1)))
