"""Basin maps: which minimum does an optimiser reach from each point of a grid of starts?

Every start is a row of one ``(ny * nx, 2)`` tensor stepped by the real torch optimiser (the
elementwise ones only: rows stay independent, so this is exactly ny * nx separate runs), with the
same divergence rule as the race (``landscape.py``): a row whose loss, gradient or position stops
being finite, or runs ``EXPLODE_WIDTHS`` domain-widths away, is frozen at its last finite point.

``iter_basin_map`` is a generator (``Progress`` records, then the ``BasinResult``), for the GUI's
worker, which cancels by no longer asking for records; ``basin_map`` drives it with callbacks.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from .config import OptimizerConfig
from .functions import FUNCTIONS, TestFunction
from .landscape import explode_bound
from .optimizers import OPTIMIZERS
from .registry import ConfigError
from .schedules import make_schedule

NOT_CONVERGED = -1
DIVERGED = -2
MAX_RESOLUTION = 1000
PROGRESS_RECORDS = 200  # at least this many Progress records per run
PROGRESS_S = 0.1  # and one at least this often: a stop is noticed at a record, so big grids stay cancellable


class Cancelled(Exception):
    """Raised by ``basin_map`` and ``run_sweep`` when ``should_stop()`` answers True."""


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` steps taken."""

    done: int
    total: int
    elapsed: float

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


def _mean_alive(loss: torch.Tensor, alive: torch.Tensor) -> float:
    values = loss.detach()[alive]
    return float(values.mean()) if values.numel() else math.nan


def _nearest_within(points: torch.Tensor, minima: list[tuple[float, float]], tol: float) -> torch.Tensor:
    """Index of the minimum within ``tol`` of each point, or NOT_CONVERGED.

    One minimum at a time on contiguous columns: a broadcast (M, K, 2) difference reduced over its
    tiny last axis costs ten times as much in torch."""
    x, y = points[:, 0].contiguous(), points[:, 1].contiguous()
    best = closest = None
    for k, (mx, my) in enumerate(minima):
        d2 = (x - mx).square_().add_((y - my).square_())
        if best is None:
            best, closest = d2, torch.zeros_like(x, dtype=torch.int64)
        else:
            closest = torch.where(d2 < best, k, closest)
            best = torch.minimum(best, d2)
    return torch.where(best <= tol * tol, closest, NOT_CONVERGED)


def resolve_test_function(function: str | TestFunction) -> TestFunction:
    if isinstance(function, TestFunction):
        return function
    return FUNCTIONS.get(function)


def check_whole(value: Any, field_name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(field_name, f"must be a whole number from {low:,} to {high:,}, got {value!r}")
    return value


def drive(records: Iterator[Any], result_type: type, progress: Callable[[float], None] | None,
          should_stop: Callable[[], bool] | None) -> Any:
    """Run a Progress-then-result generator with callbacks; ``Cancelled`` when asked to stop."""
    for record in records:
        if isinstance(record, result_type):
            return record
        if progress is not None:
            progress(record.fraction)
        if should_stop is not None and should_stop():
            records.close()
            raise Cancelled()
    raise RuntimeError("the generator ended without a result")  # pragma: no cover - a bug, not a state


@dataclass(frozen=True)
class BasinResult:
    """Arrays are row-major over the start grid: ``labels[j, i]`` is the start ``(xs[i], ys[j])``,
    as in ``TestFunction.grid``, so an image of them lines up with the function's map.

    ``labels``: index into ``minima`` of the minimum the run ends within ``tol`` of; ``NOT_CONVERGED``
    (-1) when it ends elsewhere; ``DIVERGED`` (-2). ``steps_to_converge``: the step from which the
    run stays within ``tol`` of that minimum to the end (-1 where the label is negative).
    """

    function: str
    optimizer: OptimizerConfig
    xs: np.ndarray  # (nx,)
    ys: np.ndarray  # (ny,)
    minima: np.ndarray  # (K, 2)
    labels: np.ndarray  # (ny, nx) int64
    final_xy: np.ndarray  # (ny, nx, 2): the last finite point for diverged runs
    final_loss: np.ndarray  # (ny, nx): NaN where diverged
    steps_to_converge: np.ndarray  # (ny, nx) int64
    diverged_at: np.ndarray  # (ny, nx) int64, -1 where the run stayed finite
    steps: int
    tol: float
    elapsed: float

    def basin_sizes(self) -> np.ndarray:
        """How many starts end at each minimum, in the order of ``minima``."""
        return np.bincount(self.labels[self.labels >= 0].ravel(), minlength=len(self.minima))


def iter_basin_map(function: str | TestFunction, optimizer: OptimizerConfig, resolution: int = 200,
                   steps: int = 1000, tol: float | None = None, params: Mapping[str, Any] | None = None,
                   seed: int = 0) -> Iterator[Progress | BasinResult]:
    """Progress records, then the BasinResult. ``tol`` is a distance in the function's coordinates;
    None means 1/1000 of the domain's larger side. ``seed`` seeds SGD's gradient noise as in the race.
    """
    fn = resolve_test_function(function)
    fparams = fn.resolve(params)
    spec = OPTIMIZERS.get(optimizer.name)
    if not spec.elementwise:
        raise ConfigError("optimizer", f"{spec.label} couples coordinates, so a grid of starts would not be "
                                       "independent runs; choose an elementwise optimiser")
    values = spec.resolve(optimizer.params)
    check_whole(resolution, "resolution", 2, MAX_RESOLUTION)
    check_whole(steps, "steps", 1, 1_000_000)
    check_whole(seed, "seed", 0, 2**63 - 1)
    (xmin, xmax), (ymin, ymax) = fn.domain
    if tol is None:
        tol = 1e-3 * max(xmax - xmin, ymax - ymin)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (tol > 0 and math.isfinite(tol)):
        raise ConfigError("tol", f"must be a positive distance, got {tol!r}")

    xs, ys = np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution)
    gx, gy = np.meshgrid(xs, ys)  # rows are y: start j * nx + i is (xs[i], ys[j])
    starts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1))
    minima = [(float(mx), float(my)) for mx, my in fn.minima_for(fparams)]
    bound = explode_bound(fn.domain)
    noise = float(values.get("noise", 0.0)) if optimizer.name == "sgd" else 0.0
    gen = torch.Generator().manual_seed(seed)

    leaf = starts.clone().requires_grad_(True)
    opt = spec.build([leaf], optimizer.params)
    sched = make_schedule(opt, optimizer.schedule, steps)
    m = starts.shape[0]
    diverged_at = torch.full((m,), -1, dtype=torch.int64)
    last_good = starts.clone()
    last_loss = torch.full((m,), math.nan, dtype=torch.float64)
    near = torch.full((m,), NOT_CONVERGED, dtype=torch.int64)  # minimum within tol now, or -1
    since = torch.zeros(m, dtype=torch.int64)  # step at which the current value of `near` began
    every = max(1, steps // PROGRESS_RECORDS)
    t0 = last_report = time.perf_counter()

    for step in range(steps + 1):
        opt.zero_grad(set_to_none=False)
        loss = fn(leaf, fparams)
        loss.sum().backward()
        with torch.no_grad():
            grad = leaf.grad
            if noise > 0:
                grad.add_(torch.randn(leaf.shape, generator=gen, dtype=leaf.dtype) * noise)
            # `abs() <= bound` is False for NaN too, so it also checks that the position is finite.
            finite = torch.isfinite(loss) & torch.isfinite(grad).all(-1) & (leaf.abs() <= bound).all(-1)
            diverged_at = torch.where(finite | (diverged_at >= 0), diverged_at, step)
            alive = diverged_at < 0
            any_dead = not bool(alive.all())
            last_good = torch.where(alive.unsqueeze(-1), leaf, last_good) if any_dead else leaf.detach().clone()
            last_loss = torch.where(alive, loss, last_loss) if any_dead else loss.detach()
            if minima:
                now = _nearest_within(last_good, minima, tol)
                if any_dead:
                    now = torch.where(alive, now, DIVERGED)
                since = torch.where(now != near, step, since)
                near = now
        now = time.perf_counter()
        if step % every == 0 or step == steps or now - last_report >= PROGRESS_S:
            last_report = now
            yield Progress(step, steps, now - t0)
        if step == steps:
            break
        if any_dead:  # frozen as in the race: no gradient, and put back after the step
            grad.masked_fill_(~alive.unsqueeze(-1), 0.0)
        opt.step()
        if any_dead:
            with torch.no_grad():
                leaf.copy_(torch.where(alive.unsqueeze(-1), leaf, last_good))
        sched.step(_mean_alive(loss, alive) if sched.spec.needs_metric else None)

    labels = torch.where(diverged_at >= 0, DIVERGED, near)
    shape = (resolution, resolution)
    yield BasinResult(
        function=fn.name, optimizer=optimizer, xs=xs, ys=ys, minima=np.array(minima, dtype=np.float64).reshape(-1, 2),
        labels=labels.reshape(shape).numpy().copy(),
        final_xy=last_good.reshape(*shape, 2).numpy().copy(),
        final_loss=torch.where(diverged_at >= 0, math.nan, last_loss).reshape(shape).numpy().copy(),
        steps_to_converge=torch.where(labels >= 0, since, -1).reshape(shape).numpy().copy(),
        diverged_at=diverged_at.reshape(shape).numpy().copy(),
        steps=steps, tol=float(tol), elapsed=time.perf_counter() - t0,
    )


def basin_map(function: str | TestFunction, optimizer: OptimizerConfig, resolution: int = 200,
              steps: int = 1000, tol: float | None = None, params: Mapping[str, Any] | None = None,
              seed: int = 0, progress: Callable[[float], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> BasinResult:
    """Run a basin map to the end. ``progress(fraction)`` is called about 200 times;
    ``should_stop()`` is asked as often and ``Cancelled`` is raised when it answers True."""
    records = iter_basin_map(function, optimizer, resolution, steps, tol, params, seed)
    return drive(records, BasinResult, progress, should_stop)
