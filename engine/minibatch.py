"""2D objectives that are means over a seeded data set, so that "GD uses all the data, SGD a mini-batch"
is literally true.

Both models are linear in their two parameters ``P = (p1, p2)``: sample i has a feature row
``a_i`` and the model's output is ``z_i = p1 a_i1 + p2 a_i2``.

- ``linear_regression``: ``a_i = (x_i, 1)``, so ``z_i = w x_i + b``; loss ``(z_i - y_i)^2`` (MSE).
- ``logistic_regression``: ``a_i = (x_i1, x_i2)``, no bias; loss is torch's numerically stable
  ``binary_cross_entropy_with_logits(z_i, y_i)``.

The objective is the mean over the data set, ``L(P) = mean_i loss_i(P)``; a mini-batch loss is the
mean over the batch's rows. Features are ``offset + scale * N(0, 1)``: an offset (uncentred
features) couples the two parameters and makes the long diagonal ravine that mean-centring removes.

Mini-batch indices come from torch's own ``DataLoader(shuffle=True)`` with a seeded generator, so
they are exactly the batches a training script with that seed draws (every epoch a fresh
permutation, the last batch of an epoch possibly short, as with ``drop_last=False``).

Each objective is also registered as a ``TestFunction`` (``engine.functions`` does it at import), so
the map, the race, basins and sweeps take them like any other function; ``TestFunction.data`` leads
back here for the mini-batch API.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from .registry import ConfigError, Param, Registry, resolve_params

if TYPE_CHECKING:  # functions.py imports this module at its end, so this one must not import it at load
    from .functions import TestFunction

Point = tuple[float, float]

MODELS = ("linear", "logistic")
# Elements of one (points x samples) block: a 220 x 220 map over 4,096 samples is evaluated in pieces
# of this size instead of one 1.6 GB tensor.
CHUNK_ELEMENTS = 1 << 22


def _n_points() -> Param:
    return Param("n_points", "Data points", 256, "How many samples the data set holds.", kind="int",
                 minimum=16, maximum=4096, log=True, typical="100 to 1000")


def _seed() -> Param:
    return Param("data_seed", "Data seed", 0, "Seed of the generated data set (features, noise, labels).",
                 kind="int", minimum=0, maximum=1_000_000)


def _offset(default: float) -> Param:
    return Param("feature_offset", "Feature offset", default,
                 "Mean of the features. Uncentred features (offset far from 0) couple the two parameters "
                 "into a long diagonal ravine; 0 is mean-centred data.", minimum=-5.0, maximum=5.0,
                 typical="0 (centred) to 3")


@dataclass(frozen=True, eq=False)
class DataProblem:
    """One generated data set and its losses. Parameters are points ``P`` of shape ``(..., 2)``.

    ``features`` is ``(n, 2)`` (row i multiplies the parameters), ``targets`` is ``(n,)``, both float64;
    inputs of another dtype get the data cast to theirs. Problems are cached and shared by the map,
    the race and the sampler: treat the tensors as read-only.
    """

    objective: str
    model: str
    features: Tensor
    targets: Tensor
    minimum: Point | None  # None where the loss has no finite minimiser (separable logistic data)
    minimum_value: float | None

    @property
    def n_points(self) -> int:
        return int(self.targets.shape[0])

    def per_sample_loss(self, P: Tensor) -> Tensor:
        """``(..., n)``: every sample's loss at every point (the summands of ``full_loss``)."""
        _check_points(P, self.objective)
        a, t = self.features.to(P.dtype), self.targets.to(P.dtype)
        z = P[..., 0, None] * a[:, 0] + P[..., 1, None] * a[:, 1]
        return _sample_loss(self.model, z, t)

    def full_loss(self, P: Tensor) -> Tensor:
        """``(...)``: the mean loss over the whole data set; differentiable, works on a whole map grid."""
        _check_points(P, self.objective)
        return self.loss_xy(P[..., 0], P[..., 1])

    def batch_loss(self, P: Tensor, idx: Tensor) -> Tensor:
        """``(...)``: the mean loss over the samples ``idx`` (a 1D index tensor), at every point."""
        _check_points(P, self.objective)
        if idx.dim() != 1 or idx.numel() == 0:
            raise ValueError(f"{self.objective}: expected a non-empty 1D tensor of sample indices, "
                             f"got shape {tuple(idx.shape)}")
        return self.loss_xy(P[..., 0], P[..., 1], idx)

    def loss_xy(self, p1: Tensor, p2: Tensor, idx: Tensor | None = None) -> Tensor:
        """Mean loss with the two parameters as separate (broadcastable) tensors: the map's form."""
        p1, p2 = torch.broadcast_tensors(p1, p2)
        a, t = self.features.to(p1.dtype), self.targets.to(p1.dtype)
        if idx is not None:
            a, t = a[idx], t[idx]
        shape = p1.shape
        u, v = p1.reshape(-1, 1), p2.reshape(-1, 1)
        rows = max(1, CHUNK_ELEMENTS // t.shape[0])
        parts = [_sample_loss(self.model, u[i:i + rows] * a[:, 0] + v[i:i + rows] * a[:, 1], t).mean(-1)
                 for i in range(0, u.shape[0], rows)]
        return (parts[0] if len(parts) == 1 else torch.cat(parts)).reshape(shape)

    def batches(self, batch_size: int, seed: int) -> Iterator[Tensor]:
        """Endless seeded mini-batch indices over this data set: see ``minibatches``."""
        return minibatches(self.n_points, batch_size, seed)


def _check_points(P: Tensor, name: str) -> None:
    if P.shape[-1:] != (2,):
        raise ValueError(f"{name}: expected points of shape (..., 2), got {tuple(P.shape)}")


def _sample_loss(model: str, z: Tensor, t: Tensor) -> Tensor:
    t = t.expand_as(z)
    if model == "linear":
        return F.mse_loss(z, t, reduction="none")
    return F.binary_cross_entropy_with_logits(z, t, reduction="none")


def minibatches(n_points: int, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Endless mini-batches of sample indices (int64 tensors), epoch after epoch.

    Exactly the indices ``DataLoader(dataset, batch_size, shuffle=True,
    generator=torch.Generator().manual_seed(seed))`` yields for a data set of ``n_points`` samples:
    without replacement within an epoch, a fresh permutation each epoch, a short last batch when
    ``batch_size`` does not divide ``n_points``, a full (shuffled) batch when it exceeds it.
    """
    for field_name, value, low in (("n_points", n_points, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(field_name, f"must be a whole number of at least {low}, got {value!r}")
    loader = DataLoader(range(n_points), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    while True:
        yield from loader


# ---- minima ----

def _least_squares(a: Tensor, t: Tensor) -> Point:
    # QR-based least squares: normal equations would square the ravine's condition number.
    solution = torch.linalg.lstsq(a, t.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)
    return float(solution[0]), float(solution[1])


def _logistic_minimum(a: Tensor, t: Tensor, max_iter: int = 100) -> Point | None:
    """Newton's method with backtracking on the mean BCE (convex); None when it runs off to infinity,
    which it does exactly when the labels are linearly separable."""
    w = torch.zeros(2, dtype=torch.float64)
    n = t.shape[0]

    def loss(w: Tensor) -> float:
        return float(F.binary_cross_entropy_with_logits(a @ w, t))

    current = loss(w)
    for _ in range(max_iter):
        s = torch.sigmoid(a @ w)
        g = a.T @ (s - t) / n
        if float(g.abs().max()) < 1e-15 * (1.0 + float(a.abs().max())):
            break
        h = (a * (s * (1 - s)).unsqueeze(-1)).T @ a / n
        try:
            direction = torch.linalg.solve(h, g)
        except RuntimeError:  # singular curvature: every sample saturated, the separable case
            return None
        step = 1.0
        while step > 1e-12:
            trial = w - step * direction
            value = loss(trial)
            if value <= current:
                break
            step *= 0.5
        else:
            break  # no decrease at the resolution of float64: converged
        if float(trial.abs().max()) > 1e6:
            return None
        w, current = trial, value
    s = torch.sigmoid(a @ w)
    g = a.T @ (s - t) / n
    # On separable data the gradient underflows long before w reaches infinity, so "stationary" is
    # not enough: a true minimum has curvature left (misclassified points), a separable run has none.
    curvature = torch.linalg.eigvalsh((a * (s * (1 - s)).unsqueeze(-1)).T @ a / n)[0]
    scale = torch.linalg.eigvalsh(a.T @ a / n)[-1]
    if float(g.abs().max()) < 1e-9 and float(curvature) > 1e-8 * float(scale):
        return float(w[0]), float(w[1])
    return None


# ---- objectives ----

@dataclass(frozen=True)
class DataObjective:
    """A registered data-set objective: how its data are generated and how the map shows it."""

    name: str
    label: str
    model: str  # "linear" | "logistic"
    formula: str
    description: str
    truth: Point  # the parameters the data are generated from
    domain: tuple[Point, Point]
    start: Point
    axis_labels: tuple[str, str]
    params: tuple[Param, ...]

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"data objective {self.name}: model must be one of {', '.join(MODELS)}, "
                             f"got {self.model!r}")

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return resolve_params(self.params, params, f"function {self.name}")

    def problem(self, params: Mapping[str, Any] | None = None) -> DataProblem:
        """The data set for these settings (cached: the map, the race and the sampler share it)."""
        values = self.resolve(params)
        return _problem(self, tuple(sorted(values.items())))

    def minima(self, params: Mapping[str, Any] | None = None) -> tuple[Point, ...]:
        point = self.problem(params).minimum
        return () if point is None else (point,)

    def test_function(self) -> "TestFunction":
        """This objective as a 2D TestFunction (its full-data loss), with ``data`` pointing back here."""
        from .functions import TestFunction  # late: functions.py imports this module at its end
        return TestFunction(
            name=self.name, label=self.label, formula=self.formula,
            fn=lambda x, y, p: self.problem(p).loss_xy(x, y),
            domain=self.domain, minima=self.minima(), min_value=None,  # the minimum moves with the data
            start=self.start, params=self.params, description=self.description,
            minima_fn=self.minima, data=self)


@functools.lru_cache(maxsize=32)
def _problem(objective: DataObjective, key: tuple[tuple[str, Any], ...]) -> DataProblem:
    p = dict(key)
    n = p["n_points"]
    g = torch.Generator().manual_seed(p["data_seed"])
    # Every random number is drawn whatever the settings, in a fixed order, so that moving the noise
    # or the scaling slider transforms the same draws instead of making a new data set.
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    e = torch.randn(n, generator=g, dtype=torch.float64)
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    t1, t2 = objective.truth
    if objective.model == "linear":
        x = p["feature_offset"] + p["feature_scale"] * z[:, 0]
        a = torch.stack([x, torch.ones_like(x)], dim=1)
        t = t1 * x + t2 + p["noise"] * e
        minimum: Point | None = _least_squares(a, t)
    else:
        a = torch.stack([p["feature_offset"] + z[:, 0], p["feature_offset"] + p["feature_scale"] * z[:, 1]], dim=1)
        t = (u[:, 0] < torch.sigmoid(a @ torch.tensor(objective.truth, dtype=torch.float64))).to(torch.float64)
        t = torch.where(u[:, 1] < p["noise"], 1.0 - t, t)  # label noise: flip with this probability
        minimum = _logistic_minimum(a, t)
    problem = DataProblem(objective.name, objective.model, a, t, minimum, None)
    if minimum is not None:
        value = float(problem.full_loss(torch.tensor(minimum, dtype=torch.float64)))
        problem = DataProblem(objective.name, objective.model, a, t, minimum, value)
    return problem


DATA_OBJECTIVES: Registry[DataObjective] = Registry("data objective")


def get_data_objective(name: str) -> DataObjective:
    return DATA_OBJECTIVES.get(name)


DATA_OBJECTIVES.register("linear_regression", DataObjective(
    name="linear_regression",
    label="Linear regression (data)",
    model="linear",
    formula=r"\tfrac1n \sum_i (w x_i + b - y_i)^2,\quad y_i = 2 x_i - 1 + \sigma \varepsilon_i",
    description="Mean squared error of a line y = w x + b over a seeded data set: GD uses every point, "
                "SGD a mini-batch. Uncentred x (offset) makes a long diagonal ravine.",
    truth=(2.0, -1.0),
    domain=((-1.0, 5.0), (-4.0, 2.0)),
    start=(-0.5, 1.0),
    axis_labels=("w (slope)", "b (intercept)"),
    params=(
        _n_points(),
        Param("noise", "Noise", 0.5, "Standard deviation of the Gaussian noise added to every target.",
              minimum=0.0, maximum=5.0, typical="0.1 to 2"),
        Param("feature_scale", "Feature scale", 1.0, "Standard deviation of x.", minimum=0.1, maximum=10.0,
              log=True, typical="0.3 to 3"),
        _offset(2.0),
        _seed(),
    ),
))

DATA_OBJECTIVES.register("logistic_regression", DataObjective(
    name="logistic_regression",
    label="Logistic regression (data)",
    model="logistic",
    formula=r"\tfrac1n \sum_i \mathrm{BCE}(w_1 x_{i1} + w_2 x_{i2},\ y_i),\quad "
            r"P(y_i = 1) = \sigma(1.5 x_{i1} - 1.5 x_{i2})",
    description="Binary cross-entropy of a two-weight logistic model (no bias) over a seeded data set "
                "of labelled points. Uncentred features (offset) make the ravine; the second feature's "
                "scale stretches the bowl along w2.",
    truth=(1.5, -1.5),
    domain=((-1.5, 4.5), (-4.5, 1.5)),
    start=(0.0, 1.0),
    axis_labels=("w1", "w2"),
    params=(
        _n_points(),
        Param("noise", "Label noise", 0.05, "Probability that a label is flipped after it is drawn.",
              minimum=0.0, maximum=0.45, typical="0 to 0.2"),
        Param("feature_scale", "Feature 2 scale", 1.0, "Standard deviation of the second feature "
              "(the first has 1).", minimum=0.1, maximum=5.0, log=True, typical="0.3 to 3"),
        _offset(2.0),
        _seed(),
    ),
))


def data_objective_of(function: Any) -> DataObjective | None:
    """The DataObjective behind a TestFunction (or None for an analytic function)."""
    data = getattr(function, "data", None)
    return data if isinstance(data, DataObjective) else None


def known_minimum_value(function: Any, params: Mapping[str, Any] | None = None) -> float | None:
    """f* where it is known exactly: the function's own, or a data-set objective's least-squares or
    logistic minimum for these data settings. None where only a sampled map could say (custom functions)."""
    if function.min_value is not None:
        return float(function.min_value)
    data = data_objective_of(function)
    if data is None:
        return None
    value = data.problem(params).minimum_value
    return None if value is None else float(value)


# GD is full-batch by definition; L-BFGS re-evaluates the loss in its closure, which is the full loss.
FULL_BATCH_OPTIMIZERS = frozenset({"gd", "lbfgs"})


def step_uses_minibatch(optimizer_name: str, batch_size: int) -> bool:
    """Whether this optimiser steps on mini-batches when the run's batch size is ``batch_size``."""
    return batch_size > 0 and optimizer_name not in FULL_BATCH_OPTIMIZERS

