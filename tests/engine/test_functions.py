"""The 2D test-function registry: gradients, minima, grids, parameters."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.functions import FUNCTIONS, TestFunction, check_domain, get_function
from engine.registry import ConfigError

NAMES = FUNCTIONS.names()
REQUIRED = {"quadratic", "ravine", "rosenbrock", "beale", "himmelblau", "booth", "saddle", "rastrigin",
            "ackley", "six_hump_camel", "styblinski_tang"}


def f64(*xy):
    return torch.tensor(xy, dtype=torch.float64)


def value(f, x, y, params=None):
    return f(f64(x, y), params).item()


def autograd(f, x, y, params=None):
    P = f64(x, y).requires_grad_(True)
    f(P, params).backward()
    return P.grad


def central_difference(f, x, y, params=None, h=1e-6):
    return f64(
        (value(f, x + h, y, params) - value(f, x - h, y, params)) / (2 * h),
        (value(f, x, y + h, params) - value(f, x, y - h, params)) / (2 * h),
    )


def sample_points(f, n=6, seed=0):
    """Points strictly inside the domain, away from the origin where Ackley has its kink."""
    rng = np.random.default_rng(seed)
    (x0, x1), (y0, y1) = f.domain
    xs = rng.uniform(x0 + 0.05 * (x1 - x0), x1 - 0.05 * (x1 - x0), n)
    ys = rng.uniform(y0 + 0.05 * (y1 - y0), y1 - 0.05 * (y1 - y0), n)
    return [(float(x), float(y)) for x, y in zip(xs, ys)] + [f.start]


def non_default_params(f):
    """Every parameter moved off its default, inside its range."""
    return {p.name: p.default * 3 if p.log else (p.default + p.maximum) / 2 for p in f.params}


def test_registry_holds_the_standard_set():
    assert REQUIRED <= set(NAMES)
    for name in NAMES:
        assert get_function(name) is FUNCTIONS.get(name)
        assert get_function(name).name == name


def test_unknown_function_is_a_config_error_listing_known_names():
    with pytest.raises(ConfigError, match="unknown function 'nope'.*rosenbrock"):
        get_function("nope")


def test_registry_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        FUNCTIONS.register("rosenbrock", get_function("booth"))
    assert get_function("rosenbrock").label == "Rosenbrock"


@pytest.mark.parametrize("name", NAMES)
def test_spec_is_complete_and_consistent(name):
    f = get_function(name)
    assert f.label and f.formula and f.description
    (x0, x1), (y0, y1) = f.domain
    assert x0 < x1 and y0 < y1
    sx, sy = f.start
    assert x0 <= sx <= x1 and y0 <= sy <= y1
    for mx, my in f.minima_for():
        assert x0 <= mx <= x1 and y0 <= my <= y1
    assert math.isfinite(value(f, sx, sy))
    assert autograd(f, sx, sy).norm() > 1e-3, "the default start should not be a stationary point"


@pytest.mark.parametrize("name", NAMES)
def test_autograd_matches_central_difference(name):
    f = get_function(name)
    for params in ({}, non_default_params(f)):
        for x, y in sample_points(f):
            g = autograd(f, x, y, params)
            fd = central_difference(f, x, y, params)
            scale = 1.0 + abs(value(f, x, y, params))
            torch.testing.assert_close(g, fd, rtol=1e-6, atol=1e-7 * scale)


@pytest.mark.parametrize("name", [n for n in NAMES if get_function(n).minima])
def test_listed_minima_are_stationary_and_lowest_nearby(name):
    f = get_function(name)
    for params in ({}, non_default_params(f)):
        for mx, my in f.minima_for(params):
            g = autograd(f, mx, my, params)
            assert g.abs().max() < 1e-8, (mx, my, g)
            here = value(f, mx, my, params)
            for r in (1e-3, 1e-2):
                for k in range(16):
                    a = 2 * math.pi * k / 16
                    assert here <= value(f, mx + r * math.cos(a), my + r * math.sin(a), params)


@pytest.mark.parametrize("name", [n for n in NAMES if get_function(n).min_value is not None])
def test_min_value_is_reached_at_a_listed_minimum(name):
    f = get_function(name)
    values = [value(f, *m) for m in f.minima]
    assert min(values) == pytest.approx(f.min_value, rel=1e-14, abs=1e-14)
    assert all(v >= f.min_value - 1e-12 for v in values)


@pytest.mark.parametrize("name, point, expected", [
    ("quadratic", (0.0, 0.0), 0.0),
    ("ravine", (0.0, 0.0), 0.0),
    ("rosenbrock", (1.0, 1.0), 0.0),
    ("himmelblau", (3.0, 2.0), 0.0),
    ("booth", (1.0, 3.0), 0.0),
    ("beale", (3.0, 0.5), 0.0),
    ("rastrigin", (0.0, 0.0), 0.0),
    ("ackley", (0.0, 0.0), 0.0),
    ("saddle", (0.0, 0.0), 0.0),
])
def test_exact_minimum_values(name, point, expected):
    assert value(get_function(name), *point) == expected


def test_styblinski_tang_global_minimum():
    f = get_function("styblinski_tang")
    t = -2.903534027771178  # the value usually quoted
    assert value(f, t, t) == pytest.approx(-78.33233140754282, rel=1e-15)
    assert f.min_value == -78.33233140754282


def test_multimodal_functions_list_all_their_minima():
    assert len(get_function("himmelblau").minima) == 4
    assert len(get_function("styblinski_tang").minima) == 4
    camel = get_function("six_hump_camel")
    assert len(camel.minima) == 6
    globals_ = [m for m in camel.minima if value(camel, *m) == pytest.approx(camel.min_value, abs=1e-14)]
    assert len(globals_) == 2


def test_ackley_gradient_is_finite_at_its_minimum():
    f = get_function("ackley")
    P = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    f(P).sum().backward()
    assert torch.equal(P.grad, torch.zeros(3, 2, dtype=torch.float64))


def test_saddle_is_unbounded_with_no_minima():
    f = get_function("saddle")
    assert f.min_value is None and f.minima == ()
    assert value(f, 0.0, 1e3) < -1e5


# --- closed forms ------------------------------------------------------------------------------

@pytest.mark.parametrize("kappa, angle", [(10.0, 0.0), (1.0, 0.0), (100.0, 30.0), (1e4, -60.0)])
def test_quadratic_closed_form(kappa, angle):
    f = get_function("quadratic")
    params = {"kappa": kappa, "angle": angle}
    a = math.radians(angle)
    R = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], dtype=torch.float64)
    H = R.T @ torch.diag(torch.tensor([1.0, kappa], dtype=torch.float64)) @ R
    for x, y in sample_points(f):
        p = f64(x, y)
        assert value(f, x, y, params) == pytest.approx(0.5 * (p @ H @ p).item(), rel=1e-12)
        torch.testing.assert_close(autograd(f, x, y, params), H @ p, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("a, b", [(1.0, 100.0), (0.5, 10.0), (-1.0, 1000.0)])
def test_rosenbrock_closed_form(a, b):
    f = get_function("rosenbrock")
    params = {"a": a, "b": b}
    for x, y in sample_points(f):
        expected = f64(-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x))
        assert value(f, x, y, params) == pytest.approx((a - x) ** 2 + b * (y - x * x) ** 2, rel=1e-12)
        torch.testing.assert_close(autograd(f, x, y, params), expected, rtol=1e-12, atol=1e-9)
    assert f.minima_for(params) == ((a, a * a),)


def test_booth_closed_form_gradient():
    f = get_function("booth")
    for x, y in sample_points(f):
        u, v = x + 2 * y - 7, 2 * x + y - 5
        torch.testing.assert_close(autograd(f, x, y), f64(2 * u + 4 * v, 4 * u + 2 * v))


# --- evaluation, batching, params --------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_batched_evaluation_is_elementwise(name):
    f = get_function(name)
    P = torch.tensor(sample_points(f), dtype=torch.float64)
    one_by_one = torch.stack([f(p) for p in P])
    torch.testing.assert_close(f(P), one_by_one)
    assert f(P.reshape(7, 1, 2)).shape == (7, 1)
    assert f(torch.tensor(f.start)).dtype == torch.float32


def test_batch_of_particles_gets_independent_gradients():
    f = get_function("rosenbrock")
    P = torch.tensor([[-1.2, 1.0], [0.5, 0.5], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    f(P).sum().backward()
    for i in range(3):
        torch.testing.assert_close(P.grad[i], autograd(f, *P[i].tolist()))


def test_points_must_have_two_coordinates():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        get_function("booth")(torch.zeros(4, 3))


def test_params_are_validated_with_the_function_named():
    f = get_function("quadratic")
    with pytest.raises(ConfigError, match=r"function quadratic\.kappa: must be at least 1"):
        f(f64(1.0, 1.0), {"kappa": 0.5})
    with pytest.raises(ConfigError, match=r"function quadratic\.gamma: unknown setting; known: angle, kappa"):
        f(f64(1.0, 1.0), {"gamma": 2})
    with pytest.raises(ConfigError, match=r"function booth\.kappa: unknown setting; known: none"):
        get_function("booth")(f64(1.0, 1.0), {"kappa": 2})
    assert value(f, 1.0, 1.0, {"kappa": "4"}) == 2.5  # text from a form is converted


# --- grid --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_grid_is_row_major_over_the_domain(name):
    f = get_function(name)
    xs, ys, Z = f.grid(7, 5)
    (x0, x1), (y0, y1) = f.domain
    assert xs.shape == (7,) and ys.shape == (5,) and Z.shape == (5, 7) and Z.dtype == np.float64
    assert (xs[0], xs[-1], ys[0], ys[-1]) == (x0, x1, y0, y1)
    for j in range(5):
        for i in range(7):
            assert Z[j, i] == value(f, xs[i], ys[j])


def test_grid_uses_params_and_refuses_bad_sizes():
    f = get_function("quadratic")
    _, _, Z1 = f.grid(3, 3)
    _, _, Z2 = f.grid(3, 3, {"kappa": 100.0})
    assert Z2[0, 1] == 100 * Z1[0, 1] / 10
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ConfigError, match="grid.nx"):
            f.grid(bad, 3)


def test_grid_keeps_non_finite_values():
    f = TestFunction("log", "log", "log x", lambda x, y, p: torch.log(x) + 0 * y, ((-1, 1), (-1, 1)), (), None, (0.5, 0.5))
    xs, ys, Z = f.grid(3, 2)
    assert np.isnan(Z[:, 0]).all() and np.isneginf(Z[:, 1]).all() and (Z[:, 2] == 0).all()


def test_grid_runs_without_autograd():
    f = get_function("rosenbrock")
    _, _, Z = f.grid(4, 4)
    assert not isinstance(Z, torch.Tensor) and Z.flags.writeable


# --- domain ------------------------------------------------------------------------------------

@pytest.mark.parametrize("domain, message", [
    (((1, -1), (0, 1)), r"domain\.x: xmin must be less than xmax"),
    (((0, 1), (2, 2)), r"domain\.y: ymin must be less than ymax"),
    (((0, math.inf), (0, 1)), r"domain\.x: bounds must be finite"),
    (((0, 1), (0, float("nan"))), r"domain\.y: bounds must be finite"),
    (((0, "1"), (0, 1)), r"domain\.x: bounds must be finite numbers"),
    ((0, 1), r"domain: expected \(\(xmin, xmax\), \(ymin, ymax\)\)"),
])
def test_bad_domains_are_refused_naming_the_axis(domain, message):
    with pytest.raises(ConfigError, match=message):
        check_domain(domain)


def test_engine_does_not_import_qt():
    code = ("import sys, engine.functions, engine.expression; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
