"""2D test functions for optimisers, written in torch so that autograd supplies every gradient.

Each function is elementwise over batches: ``f(P)`` with ``P`` of shape ``(..., 2)`` returns shape
``(...)``, so ``f(P).sum()`` gives N independent trajectories in one optimiser step.
Formulas and domains follow the usual references (Wikipedia "Test functions for optimization",
Surjanovic & Bingham's Virtual Library of Simulation Experiments).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from .registry import ConfigError, Param, Registry, resolve_params

Point = tuple[float, float]
Domain = tuple[tuple[float, float], tuple[float, float]]


MAX_DOMAIN = 1e6


def check_domain(domain: Any, where: str = "domain") -> Domain:
    """``((xmin, xmax), (ymin, ymax))`` as floats, finite and increasing, or a ConfigError naming the axis."""
    try:
        (x0, x1), (y0, y1) = domain
    except (TypeError, ValueError):
        raise ConfigError(where, f"expected ((xmin, xmax), (ymin, ymax)), got {domain!r}") from None
    out = []
    for axis, (lo, hi) in (("x", (x0, x1)), ("y", (y0, y1))):
        field = f"{where}.{axis}"
        for value in (lo, hi):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(field, f"bounds must be finite numbers, got {value!r}")
        if not lo < hi:
            raise ConfigError(field, f"{axis}min must be less than {axis}max, got {lo:g} and {hi:g}")
        if max(abs(lo), abs(hi)) > MAX_DOMAIN:
            # Far beyond any landscape worth drawing, and squares of such coordinates overflow float64.
            raise ConfigError(field, f"bounds must be within ±{MAX_DOMAIN:g}, got {lo:g} and {hi:g}")
        out.append((float(lo), float(hi)))
    return out[0], out[1]


@dataclass(frozen=True)
class TestFunction:
    """A named 2D landscape: formula, domain to draw, known minima and a start point worth watching."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    label: str
    formula: str
    fn: Callable[[Tensor, Tensor, dict[str, Any]], Tensor]
    domain: Domain
    minima: tuple[Point, ...]
    min_value: float | None  # None: unbounded below (the saddle) or unknown (custom functions)
    start: Point
    params: tuple[Param, ...] = ()
    description: str = ""
    minima_fn: Callable[[dict[str, Any]], tuple[Point, ...]] | None = None  # when minima move with params
    data: Any = None  # a minibatch.DataObjective when the function is a mean over a data set

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", check_domain(self.domain))

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return resolve_params(self.params, params, f"function {self.name}")

    def __call__(self, P: Tensor, params: Mapping[str, Any] | None = None) -> Tensor:
        if P.shape[-1:] != (2,):
            raise ValueError(f"function {self.name}: expected points of shape (..., 2), got {tuple(P.shape)}")
        return self.fn(P[..., 0], P[..., 1], self.resolve(params))

    def minima_for(self, params: Mapping[str, Any] | None = None) -> tuple[Point, ...]:
        if self.minima_fn is None:
            return self.minima
        return self.minima_fn(self.resolve(params))

    def grid(self, nx: int, ny: int, params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample the domain: ``Z[j, i] = f(xs[i], ys[j])`` (row-major, rows are y), float64.

        Non-finite values are kept; the GUI masks them.
        """
        for field, n in (("nx", nx), ("ny", ny)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 2:
                raise ConfigError(f"grid.{field}", f"must be a whole number of at least 2, got {n!r}")
        (x0, x1), (y0, y1) = self.domain
        xs, ys = np.linspace(x0, x1, nx), np.linspace(y0, y1, ny)
        p = self.resolve(params)
        with torch.no_grad():
            X, Y = torch.meshgrid(torch.from_numpy(xs), torch.from_numpy(ys), indexing="xy")
            Z = self.fn(X, Y, p)
        Z = torch.broadcast_to(Z, X.shape)  # a formula may ignore x or y
        return xs, ys, Z.numpy().astype(np.float64, copy=True)


FUNCTIONS: Registry[TestFunction] = Registry("function")


def get_function(name: str) -> TestFunction:
    return FUNCTIONS.get(name)


def _add(f: TestFunction) -> TestFunction:
    return FUNCTIONS.register(f.name, f)


# --- convex quadratics -------------------------------------------------------------------------

def _quadratic(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    # Rotating the axes leaves the condition number alone but breaks the alignment with the
    # coordinate axes that per-coordinate methods (Adagrad, RMSprop, Adam) exploit.
    a = math.radians(p.get("angle", 0.0))
    c, s = math.cos(a), math.sin(a)
    u = c * x + s * y
    v = -s * x + c * y
    return 0.5 * (u * u + p["kappa"] * v * v)


def _kappa(default: float) -> Param:
    return Param(
        "kappa", "Condition number", default,
        "ratio of the steepest to the flattest curvature; large values make a narrow valley",
        minimum=1.0, maximum=1e4, log=True, typical="1 - 1000",
    )


_add(TestFunction(
    name="quadratic",
    label="Quadratic bowl",
    formula=r"\tfrac12 (u^2 + \kappa v^2),\ (u, v) = R_\theta (x, y)",
    fn=_quadratic,
    domain=((-3.0, 3.0), (-3.0, 3.0)),
    minima=((0.0, 0.0),),
    min_value=0.0,
    start=(-2.5, 1.0),
    params=(
        _kappa(10.0),
        Param("angle", "Rotation (degrees)", 0.0, "turns the bowl's axes away from the coordinate axes",
              minimum=-90.0, maximum=90.0, typical="0 - 45"),
    ),
    description="Convex bowl whose curvature differs by a factor kappa between its two axes.",
))

_add(TestFunction(
    name="ravine",
    label="Ravine",
    formula=r"\tfrac12 (x^2 + \kappa y^2)",
    fn=_quadratic,
    domain=((-4.0, 4.0), (-2.0, 2.0)),
    minima=((0.0, 0.0),),
    min_value=0.0,
    start=(-3.5, 0.8),
    params=(_kappa(50.0),),
    description="Long narrow valley: plain gradient descent zig-zags across it, momentum runs along it.",
))


# --- classic landscapes ------------------------------------------------------------------------

def _rosenbrock(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    return (p["a"] - x) ** 2 + p["b"] * (y - x * x) ** 2


_add(TestFunction(
    name="rosenbrock",
    label="Rosenbrock",
    formula=r"(a - x)^2 + b (y - x^2)^2",
    fn=_rosenbrock,
    domain=((-2.0, 2.0), (-1.0, 3.0)),
    minima=((1.0, 1.0),),
    min_value=0.0,
    start=(-1.2, 1.0),  # Rosenbrock's own 1960 start
    params=(
        Param("a", "a", 1.0, "position of the minimum, at (a, a^2)", minimum=-1.5, maximum=1.5),
        Param("b", "b", 100.0, "steepness of the valley walls", minimum=1.0, maximum=1000.0, log=True,
              typical="10 - 100"),
    ),
    description="Curved banana-shaped valley: easy to reach, slow to follow to the minimum at (a, a^2).",
    minima_fn=lambda p: ((p["a"], p["a"] ** 2),),
))


def _beale(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


_add(TestFunction(
    name="beale",
    label="Beale",
    formula=r"(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
    fn=_beale,
    domain=((-4.5, 4.5), (-4.5, 4.5)),
    minima=((3.0, 0.5),),
    min_value=0.0,
    start=(1.0, 1.5),
    description="Flat plateau with steep ridges at the corners; the minimum sits in a narrow arm at (3, 0.5).",
))


def _himmelblau(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    return (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2


_add(TestFunction(
    name="himmelblau",
    label="Himmelblau",
    formula=r"(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
    fn=_himmelblau,
    domain=((-5.0, 5.0), (-5.0, 5.0)),
    minima=(
        (3.0, 2.0),
        (-2.805118086952745, 3.131312518250573),
        (-3.779310253377747, -3.2831859912861696),
        (3.5844283403304917, -1.8481265269644036),
    ),
    min_value=0.0,
    start=(-0.5, -0.5),
    description="Four equal minima: which one an optimiser finds depends on where it starts.",
))


def _booth(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    return (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2


_add(TestFunction(
    name="booth",
    label="Booth",
    formula=r"(x + 2y - 7)^2 + (2x + y - 5)^2",
    fn=_booth,
    domain=((-10.0, 10.0), (-10.0, 10.0)),
    minima=((1.0, 3.0),),
    min_value=0.0,
    start=(-8.0, 8.0),
    description="Tilted convex quadratic (condition number 9) with its minimum at (1, 3).",
))


def _saddle(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    return x * x - y * y


_add(TestFunction(
    name="saddle",
    label="Saddle",
    formula=r"x^2 - y^2",
    fn=_saddle,
    domain=((-2.0, 2.0), (-2.0, 2.0)),
    minima=(),
    min_value=None,
    start=(-1.8, 0.01),  # just off the stable direction: shows how long each method lingers
    description="Saddle point at the origin, unbounded below: tests escaping a saddle.",
))


def _rastrigin(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    tau = 2 * math.pi
    return 20 + (x * x - 10 * torch.cos(tau * x)) + (y * y - 10 * torch.cos(tau * y))


_add(TestFunction(
    name="rastrigin",
    label="Rastrigin",
    formula=r"20 + x^2 - 10\cos(2\pi x) + y^2 - 10\cos(2\pi y)",
    fn=_rastrigin,
    domain=((-5.12, 5.12), (-5.12, 5.12)),
    minima=((0.0, 0.0),),  # plus a local minimum near every integer point; no exact closed form
    min_value=0.0,
    start=(3.3, -2.7),
    description="Egg-crate of regularly spaced local minima on a bowl; global minimum at the origin.",
))


def _ackley(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    # sqrt has an infinite derivative at 0, which autograd turns into NaN at the minimum; routing
    # r2 == 0 through a constant branch gives the subgradient 0 there and leaves values unchanged.
    r2 = 0.5 * (x * x + y * y)
    r = torch.where(r2 > 0, torch.sqrt(torch.where(r2 > 0, r2, 1.0)), 0.0)
    tau = 2 * math.pi
    wave = 0.5 * (torch.cos(tau * x) + torch.cos(tau * y))
    # expm1 form of -20 exp(-0.2 r) - exp(wave) + e + 20: exactly 0 at the origin, no cancellation.
    return -20 * torch.expm1(-0.2 * r) - math.e * torch.expm1(wave - 1)


_add(TestFunction(
    name="ackley",
    label="Ackley",
    formula=r"-20 e^{-0.2\sqrt{(x^2+y^2)/2}} - e^{(\cos 2\pi x + \cos 2\pi y)/2} + e + 20",
    fn=_ackley,
    domain=((-5.0, 5.0), (-5.0, 5.0)),
    minima=((0.0, 0.0),),
    min_value=0.0,
    start=(-3.3, 2.4),
    description="Nearly flat outer region covered in ripples around a sharp funnel at the origin.",
))


def _six_hump_camel(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    x2, y2 = x * x, y * y
    return (4 - 2.1 * x2 + x2 * x2 / 3) * x2 + x * y + (-4 + 4 * y2) * y2


_add(TestFunction(
    name="six_hump_camel",
    label="Six-hump camel",
    formula=r"(4 - 2.1x^2 + x^4/3) x^2 + xy + (-4 + 4y^2) y^2",
    fn=_six_hump_camel,
    domain=((-3.0, 3.0), (-2.0, 2.0)),
    minima=(  # the two global minima first, then the four local ones
        (0.08984201310031806, -0.7126564030207396),
        (-0.08984201310031806, 0.7126564030207396),
        (-1.703606714969981, 0.7960835686726251),
        (1.703606714969981, -0.7960835686726251),
        (-1.6071047529201972, -0.5686514548841314),
        (1.6071047529201972, 0.5686514548841314),
    ),
    min_value=-1.0316284534898774,
    start=(-1.5, -1.0),
    description="Six local minima, two of them global, near the centre of a steep-walled basin.",
))


_ST_LOW, _ST_HIGH = -2.903534027771177, 2.746802770990837  # roots of 4t^3 - 32t + 5


def _styblinski_tang(x: Tensor, y: Tensor, p: dict[str, Any]) -> Tensor:
    return 0.5 * ((x**4 - 16 * x * x + 5 * x) + (y**4 - 16 * y * y + 5 * y))


_add(TestFunction(
    name="styblinski_tang",
    label="Styblinski-Tang",
    formula=r"\tfrac12 (x^4 - 16x^2 + 5x + y^4 - 16y^2 + 5y)",
    fn=_styblinski_tang,
    domain=((-5.0, 5.0), (-5.0, 5.0)),
    minima=((_ST_LOW, _ST_LOW), (_ST_LOW, _ST_HIGH), (_ST_HIGH, _ST_LOW), (_ST_HIGH, _ST_HIGH)),
    min_value=-78.33233140754282,
    start=(0.5, 0.5),  # downhill from here leads to the worst of the four minima
    description="Four minima of different depths; the global one is at x = y = -2.9035.",
))


# Data-set objectives (linear and logistic regression on seeded points), defined in minibatch.py.
# Imported last: minibatch.py needs TestFunction and so imports this module only inside functions.
from .minibatch import DATA_OBJECTIVES  # noqa: E402

for _name in DATA_OBJECTIVES:
    _add(DATA_OBJECTIVES.get(_name).test_function())
