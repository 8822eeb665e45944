"""Hyperparameter sweeps: a grid of optimiser configurations run at once from one start point.

Cell ``(ix, iy)`` runs the optimiser with ``x.param = x_values[ix]`` and ``y.param = y_values[iy]``
(arrays are indexed ``[iy, ix]``, rows are y, as in ``TestFunction.grid``). All cells are rows of one
``(ny * nx, 2)`` tensor; gradients come from autograd on ``f(P).sum()``, as in the race.

Why the update rules here are hand-written: torch.optim takes each hyperparameter as one Python
number per param group, and a 64 x 64 sweep as 4,096 param groups steps them one by one in Python
(tens of ms per step). torch has no per-element hyperparameters, so the rules below are torch's
single-tensor implementations (torch/optim/sgd.py, adam.py, rmsprop.py, adagrad.py, the path torch
takes for CPU tensors) with the swept values as per-row tensors. They follow torch's operation order,
and the scalar expressions torch evaluates in Python floats (bias corrections, ``lr / bc1``, the
square root of ``bc2``) are evaluated in Python floats here too, once per distinct value.
``tests/engine/test_sweep.py`` replays sampled cells through the real torch.optim classes.

Each sweep is deterministic: SGD's gradient noise is drawn as the race draws it for a single start
(one ``(1, 2)`` normal draw per step from ``torch.Generator().manual_seed(seed)``), shared by all
cells, and mini-batches (data-set objectives) come from the same seeded sampler as the race's, so
``SweepConfig.cell_landscape_config`` replays any cell exactly as a trajectory on the map.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor

from .basins import PROGRESS_RECORDS, PROGRESS_S, Cancelled, Progress, check_whole, drive
from .config import OptimizerConfig, ScheduleConfig, _check_keys, _params, _typed
from .landscape import LandscapeConfig, explode_bound, problem_fields, resolve_function
from .minibatch import data_objective_of, step_uses_minibatch
from .optimizers import OPTIMIZERS
from .registry import ConfigError, resolve_params

__all__ = ["SWEEPABLE", "Cancelled", "Progress", "SweepAxis", "SweepConfig", "SweepResult", "iter_sweep",
           "run_sweep"]

# The hyperparameters each supported optimiser can sweep. Others keep their (validated) base value.
SWEEPABLE: dict[str, tuple[str, ...]] = {
    "gd": ("lr", "weight_decay"),
    "sgd": ("lr", "noise", "weight_decay"),
    "momentum": ("lr", "momentum", "weight_decay"),
    "adagrad": ("lr", "eps", "initial_accumulator_value", "weight_decay"),
    "rmsprop": ("lr", "alpha", "eps", "momentum", "weight_decay"),
    "adam": ("lr", "beta1", "beta2", "eps"),
    "adam_l2": ("lr", "beta1", "beta2", "eps", "weight_decay"),
    "adamw": ("lr", "beta1", "beta2", "eps", "weight_decay"),
}
MAX_AXIS = 512
MAX_CELLS = 1 << 16  # 256 x 256: about 4 s per 500 Adam steps on one core


@dataclass(frozen=True)
class SweepAxis:
    """``count`` values of one hyperparameter from ``start`` to ``stop`` (both included)."""

    param: str = "lr"
    start: float = 1e-4
    stop: float = 1.0
    count: int = 32
    log: bool | None = None  # None: the hyperparameter's own scale (log for lr and eps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "SweepAxis":
        _check_keys(data, cls, where)
        return cls(param=_typed(data, "param", str, where, "lr"), start=_typed(data, "start", float, where, 1e-4),
                   stop=_typed(data, "stop", float, where, 1.0), count=_typed(data, "count", int, where, 32),
                   log=_typed(data, "log", (bool, type(None)), where, None))

    def values(self, optimizer: str, where: str = "x") -> np.ndarray:
        """The axis as float64, validated against the optimiser's ranges; ends exactly start and stop."""
        spec = OPTIMIZERS.get(optimizer)
        allowed = SWEEPABLE.get(optimizer, ())
        if self.param not in allowed:
            raise ConfigError(f"{where}.param", f"{spec.label} sweeps {', '.join(allowed)}; not {self.param!r}")
        param = next(p for p in spec.params if p.name == self.param)
        lo, hi = (param.validate(v, f"{where}") for v in (self.start, self.stop))
        check_whole(self.count, f"{where}.count", 1, MAX_AXIS)
        log = param.log if self.log is None else self.log
        if self.count == 1:
            return np.array([lo])
        if not lo < hi:  # equal ends would make count identical columns; reversed ones a flipped axis
            raise ConfigError(f"{where}.stop", f"must be above the start ({lo:g}) for {self.count} values, got {hi:g}")
        if log:
            if lo <= 0 or hi <= 0:
                raise ConfigError(f"{where}.start", f"a log axis needs positive ends, got {lo:g} and {hi:g}")
            out = np.exp(np.linspace(math.log(lo), math.log(hi), self.count))
        else:
            out = np.linspace(lo, hi, self.count)
        out[0], out[-1] = lo, hi  # no rounding at the ends: they are the values the user typed
        return out


@dataclass(frozen=True)
class SweepConfig:
    """A grid of configurations of one optimiser (constant learning rate) from one start point."""

    function: str = "rosenbrock"
    function_params: dict[str, Any] = field(default_factory=dict)
    custom_expression: str = ""  # used when function == "custom"
    custom_domain: tuple[tuple[float, float], tuple[float, float]] = ((-3.0, 3.0), (-3.0, 3.0))
    start: tuple[float, float] | None = None  # None: the function's own default start
    optimizer: str = "adam"
    base_params: dict[str, Any] = field(default_factory=dict)
    x: SweepAxis = field(default_factory=lambda: SweepAxis("lr", 1e-4, 1.0, 32))
    y: SweepAxis = field(default_factory=lambda: SweepAxis("beta1", 0.0, 0.99, 32))
    steps: int = 500
    tol: float = 1e-6  # steps_to_tol counts steps until loss <= f* + tol (f*: the best listed minimum, else 0)
    seed: int = 0  # SGD's gradient noise and the mini-batch sampler, as in the race
    batch_size: int = 0  # data-set objectives: mini-batches for every optimiser but GD, as in the race

    @classmethod
    def for_optimizer(cls, optimizer: OptimizerConfig, x: SweepAxis, y: SweepAxis, **rest: Any) -> "SweepConfig":
        """From the race's optimiser settings; sweeps run a constant rate, so a schedule is refused."""
        if optimizer.schedule.name != "constant" or optimizer.schedule.warmup_steps:
            raise ConfigError("schedule", "sweeps run a constant learning rate; set the schedule to constant "
                                          "without warmup")
        return cls(optimizer=optimizer.name, base_params=dict(optimizer.params), x=x, y=y, **rest)

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function, "function_params": dict(self.function_params),
            "custom_expression": self.custom_expression, "custom_domain": [list(r) for r in self.custom_domain],
            "start": list(self.start) if self.start is not None else None, "optimizer": self.optimizer,
            "base_params": dict(self.base_params), "x": self.x.to_dict(), "y": self.y.to_dict(),
            "steps": self.steps, "tol": self.tol, "seed": self.seed, "batch_size": self.batch_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "sweep") -> "SweepConfig":
        _check_keys(data, cls, where)
        cfg = cls(
            **problem_fields(data, where),
            optimizer=_typed(data, "optimizer", str, where, "adam"),
            base_params=_params({"params": data.get("base_params", {})}, f"{where}.base_params"),
            x=SweepAxis.from_dict(data.get("x", {}), f"{where}.x"),
            y=SweepAxis.from_dict(data.get("y", {}), f"{where}.y"),
            tol=_typed(data, "tol", float, where, 1e-6),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        self.landscape_config().validate()  # function, start, steps, seed and batch size, as in the race
        spec = OPTIMIZERS.get(self.optimizer)
        if self.optimizer not in SWEEPABLE:
            raise ConfigError("optimizer", f"sweeps run {', '.join(SWEEPABLE)} (their update rules are vectorised "
                                           f"per cell); {spec.label} is not one of them")
        if self.x.param == self.y.param:
            raise ConfigError("y.param", f"must differ from the x axis's ({self.x.param})")
        xs, ys = self.x.values(self.optimizer, "x"), self.y.values(self.optimizer, "y")
        if len(xs) * len(ys) > MAX_CELLS:
            raise ConfigError("y.count", f"at most {MAX_CELLS:,} cells in all, got {len(xs) * len(ys):,}")
        # The axes' ends against the other settings (e.g. Nesterov needs momentum > 0 in every cell).
        for ix, iy in ((0, 0), (-1, -1), (0, -1), (-1, 0)):
            spec.resolve(self._cell_params(xs[ix], ys[iy]))
        if not (self.tol >= 0 and math.isfinite(self.tol)):
            raise ConfigError("tol", f"must be a finite number, at least 0, got {self.tol!r}")

    def _cell_params(self, xv: float, yv: float) -> dict[str, Any]:
        return {**self.base_params, self.x.param: float(xv), self.y.param: float(yv)}

    def x_values(self) -> np.ndarray:
        return self.x.values(self.optimizer, "x")

    def y_values(self) -> np.ndarray:
        return self.y.values(self.optimizer, "y")

    def cell_config(self, ix: int, iy: int) -> OptimizerConfig:
        """The optimiser of cell ``[iy, ix]``, to replay as a normal trajectory."""
        xs, ys = self.x_values(), self.y_values()
        return OptimizerConfig(self.optimizer, self._cell_params(xs[ix], ys[iy]), ScheduleConfig(),
                               label=f"{self.x.param}={xs[ix]:.4g}, {self.y.param}={ys[iy]:.4g}")

    def landscape_config(self, optimizers: tuple[OptimizerConfig, ...] = (OptimizerConfig("adam"),)
                         ) -> LandscapeConfig:
        return LandscapeConfig(function=self.function, function_params=dict(self.function_params),
                               custom_expression=self.custom_expression, custom_domain=self.custom_domain,
                               start=self.start, steps=self.steps, seed=self.seed, optimizers=optimizers,
                               batch_size=self.batch_size)

    def cell_landscape_config(self, ix: int, iy: int) -> LandscapeConfig:
        """A race of the one configuration in cell ``[iy, ix]``: its frames retrace the cell's run."""
        return self.landscape_config((self.cell_config(ix, iy),))


@dataclass(frozen=True)
class SweepResult:
    """Arrays are (ny, nx), indexed ``[iy, ix]``."""

    config: SweepConfig
    x_values: np.ndarray  # (nx,)
    y_values: np.ndarray  # (ny,)
    final_loss: np.ndarray  # loss after the last step; NaN where the run diverged
    final_xy: np.ndarray  # (ny, nx, 2); the last finite point where the run diverged
    steps_to_tol: np.ndarray  # int64: first step k with loss(x_k) <= target; -1 never
    diverged_at: np.ndarray  # int64: step at which the run stopped being finite; -1 never
    target: float  # the loss level steps_to_tol counts to
    elapsed: float
    f_star: float | None = None  # the lowest known minimum's loss (None: the function lists none)

    def cell_config(self, ix: int, iy: int) -> OptimizerConfig:
        return self.config.cell_config(ix, iy)

    def cell_landscape_config(self, ix: int, iy: int) -> LandscapeConfig:
        return self.config.cell_landscape_config(ix, iy)


# ---- per-row hyperparameters ----

class _Hyper:
    """One hyperparameter across the rows: a Python float when not swept, else an axis of values."""

    def __init__(self, value: float | None = None, axis: np.ndarray | None = None, index: Tensor | None = None):
        self.value, self.axis, self.index = value, axis, index
        self._rows: float | Tensor | None = None

    @property
    def swept(self) -> bool:
        return self.axis is not None

    def map(self, f: Callable[[float], float]) -> float | Tensor:
        """``f`` applied in Python floats, as torch.optim does per group: per distinct value when swept
        (giving an (M, 1) tensor), else a float."""
        if self.axis is None:
            return f(self.value)
        return torch.tensor([f(float(v)) for v in self.axis], dtype=torch.float64)[self.index].unsqueeze(-1)

    def get(self) -> float | Tensor:
        if self._rows is None:
            self._rows = self.map(lambda v: v)
        return self._rows

    def nonzero(self) -> bool:
        return self.swept or self.value != 0


# torch's CPU kernels fuse some of these into one multiply-add (``add`` with ``alpha``, ``addcmul``),
# so the per-row forms below use the kernel with the same fused arithmetic, not ``out + alpha * other``:
# a one-ulp difference per step grows without bound in the chaotic cells near divergence.

def _add_scaled(out: Tensor, other: Tensor, alpha: float | Tensor) -> Tensor:
    """``out.add(other, alpha=alpha)``, which torch evaluates as fma(other, alpha, out)."""
    return out.add(other, alpha=alpha) if isinstance(alpha, float) else torch.addcmul(out, other, alpha)


def _add_scaled_(out: Tensor, other: Tensor, alpha: float | Tensor) -> None:
    if isinstance(alpha, float):
        out.add_(other, alpha=alpha)
    else:
        out.addcmul_(other, alpha)


def _addcdiv_(out: Tensor, t1: Tensor, t2: Tensor, value: float | Tensor) -> None:
    if isinstance(value, float):
        out.addcdiv_(t1, t2, value=value)
    else:  # torch's kernel computes self + value * t1 / t2 in this order
        out.add_(value * t1 / t2)


def _addcmul_(out: Tensor, t1: Tensor, t2: Tensor, value: float | Tensor) -> None:
    if isinstance(value, float):
        out.addcmul_(t1, t2, value=value)
    else:  # self + value * t1 * t2, with value * t1 formed first as torch's kernel does
        out.addcmul_(value * t1, t2)


class _Rule:
    """A vectorised torch.optim update: ``step(param, grad)`` updates ``param`` in place."""

    def __init__(self, name: str, hp: dict[str, _Hyper], like: Tensor):
        self.name, self.hp, self.k = name, hp, 0
        zeros = torch.zeros_like(like)
        if name in ("gd", "sgd", "momentum"):
            self.buf: Tensor | None = None
        elif name == "adagrad":
            init = hp["initial_accumulator_value"].get()
            self.sum = torch.zeros_like(like) + init  # torch: full_like(param, initial_accumulator_value)
        elif name == "rmsprop":
            self.square_avg, self.grad_avg, self.buf = zeros.clone(), zeros.clone(), zeros.clone()
        else:
            self.exp_avg, self.exp_avg_sq = zeros.clone(), zeros.clone()

    def step(self, param: Tensor, grad: Tensor) -> None:
        self.k += 1
        hp = self.hp
        wd = hp.get("weight_decay")
        decoupled = self.name == "adamw"
        if wd is not None and wd.nonzero() and not decoupled:
            grad = _add_scaled(grad, param, wd.get())
        lr = hp["lr"].get()
        if self.name in ("gd", "sgd", "momentum"):
            self._sgd(param, grad, lr)
        elif self.name == "adagrad":
            self._adagrad(param, grad, lr)
        elif self.name == "rmsprop":
            self._rmsprop(param, grad, lr)
        else:
            if decoupled and wd.nonzero():
                param.mul_(1 - lr * wd.get())
            self._adam(param, grad, lr)

    def _sgd(self, param: Tensor, grad: Tensor, lr: float | Tensor) -> None:
        mom = self.hp.get("momentum")
        if mom is not None and mom.nonzero():
            m = mom.get()
            if self.buf is None:
                self.buf = grad.detach().clone()
            else:
                self.buf.mul_(m).add_(grad)  # torch: add_(grad, alpha=1 - dampening), dampening 0
            grad = _add_scaled(grad, self.buf, m) if self.hp["nesterov"].value else self.buf
        _add_scaled_(param, grad, -lr)

    def _adagrad(self, param: Tensor, grad: Tensor, lr: float | Tensor) -> None:
        # torch: clr = lr / (1 + (step - 1) * lr_decay) with lr_decay 0, which is lr exactly.
        self.sum.addcmul_(grad, grad, value=1)
        std = self.sum.sqrt().add_(self.hp["eps"].get())
        _addcdiv_(param, grad, std, -lr)

    def _rmsprop(self, param: Tensor, grad: Tensor, lr: float | Tensor) -> None:
        alpha, hp = self.hp["alpha"], self.hp
        self.square_avg.mul_(alpha.get())
        _addcmul_(self.square_avg, grad, grad, alpha.map(lambda a: 1 - a))
        if hp["centered"].value:
            self.grad_avg.lerp_(grad, alpha.map(lambda a: 1 - a))
            avg = self.square_avg.addcmul(self.grad_avg, self.grad_avg, value=-1).sqrt_()
        else:
            avg = self.square_avg.sqrt()
        avg = avg.add_(hp["eps"].get())
        mom = hp["momentum"]
        if not mom.nonzero():
            _addcdiv_(param, grad, avg, -lr)
            return
        self.buf.mul_(mom.get()).addcdiv_(grad, avg)
        if not mom.swept:
            _add_scaled_(param, self.buf, -lr)
            return
        # torch skips the buffer where momentum is 0: those cells keep that arithmetic.
        direct = param.clone()
        _addcdiv_(direct, grad, avg, -lr)
        param.copy_(torch.where(mom.get() > 0, _add_scaled(param, self.buf, -lr), direct))

    def _adam(self, param: Tensor, grad: Tensor, lr: float | Tensor) -> None:
        beta1, beta2, step = self.hp["beta1"], self.hp["beta2"], float(self.k)
        self.exp_avg.lerp_(grad, beta1.map(lambda b: 1 - b))
        self.exp_avg_sq.mul_(beta2.get())
        _addcmul_(self.exp_avg_sq, grad, grad, beta2.map(lambda b: 1 - b))
        bias_correction1 = beta1.map(lambda b: 1 - b**step)
        bias_correction2_sqrt = beta2.map(lambda b: (1 - b**step) ** 0.5)
        step_size = lr / bias_correction1
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.hp["eps"].get())
        _addcdiv_(param, self.exp_avg, denom, -step_size)


def _hypers(cfg: SweepConfig, xs: np.ndarray, ys: np.ndarray) -> dict[str, _Hyper]:
    spec = OPTIMIZERS.get(cfg.optimizer)
    base = spec.resolve(cfg.base_params)
    kwargs = spec.torch_kwargs(base)  # the values torch would get, with the spec's pinned ones
    values = {**base, **{k: v for k, v in kwargs.items() if k in ("momentum", "weight_decay")}}
    rows = torch.arange(len(xs) * len(ys))
    out = {name: _Hyper(value=v) for name, v in values.items()}
    out.setdefault("nesterov", _Hyper(value=False))
    out[cfg.x.param] = _Hyper(axis=xs, index=rows % len(xs))
    out[cfg.y.param] = _Hyper(axis=ys, index=rows // len(xs))
    return out


def _target(cfg: SweepConfig, fn, fparams: dict[str, Any]) -> tuple[float, float | None]:
    """(the loss level that counts as reached, f* where the function's minima are known)."""
    minima = fn.minima_for(fparams)
    if not minima:
        return cfg.tol, None
    with torch.no_grad():
        best = float(fn(torch.tensor(minima, dtype=torch.float64), fparams).min())
    return best + cfg.tol, best


def iter_sweep(cfg: SweepConfig) -> Iterator[Progress | SweepResult]:
    """Progress records, then the SweepResult. Stop iterating to cancel."""
    cfg.validate()
    fn = resolve_function(cfg)
    fparams = resolve_params(fn.params, cfg.function_params, f"function {fn.name}")
    xs, ys = cfg.x_values(), cfg.y_values()
    nx, ny = len(xs), len(ys)
    m = nx * ny
    hp = _hypers(cfg, xs, ys)
    start = torch.tensor(cfg.start if cfg.start is not None else fn.start, dtype=torch.float64)
    leaf = start.repeat(m, 1).requires_grad_(True)
    rule = _Rule(cfg.optimizer, hp, leaf.detach())
    bound = explode_bound(fn.domain)
    target, f_star = _target(cfg, fn, fparams)

    data = data_objective_of(fn)
    problem = data.problem(fparams) if data is not None and cfg.batch_size else None
    batches = (problem.batches(cfg.batch_size, cfg.seed)
               if problem is not None and step_uses_minibatch(cfg.optimizer, cfg.batch_size) else None)
    noise = hp["noise"] if cfg.optimizer == "sgd" and hp["noise"].nonzero() and batches is None else None
    gen = torch.Generator().manual_seed(cfg.seed)

    diverged_at = torch.full((m,), -1, dtype=torch.int64)
    steps_to_tol = torch.full((m,), -1, dtype=torch.int64)
    last_good = leaf.detach().clone()
    last_loss = torch.full((m,), math.nan, dtype=torch.float64)
    every = max(1, cfg.steps // PROGRESS_RECORDS)
    t0 = last_report = time.perf_counter()
    for step in range(cfg.steps + 1):
        loss = fn(leaf, fparams)
        # The frames' loss is the full-data loss; the gradient is the batch's where there is one.
        train = loss if batches is None else problem.batch_loss(leaf, next(batches))
        (grad,) = torch.autograd.grad(train.sum(), leaf)
        with torch.no_grad():
            loss = loss.detach()
            if noise is not None:  # as the race draws it for a single start: one (1, 2) draw per step
                grad = grad + torch.randn((1, 2), generator=gen, dtype=grad.dtype) * noise.get()
            finite = torch.isfinite(loss) & torch.isfinite(grad).all(-1) & (leaf.abs() <= bound).all(-1)
            diverged_at = torch.where(finite | (diverged_at >= 0), diverged_at, step)
            alive = diverged_at < 0
            any_dead = not bool(alive.all())
            last_good = torch.where(alive.unsqueeze(-1), leaf, last_good) if any_dead else leaf.detach().clone()
            last_loss = torch.where(alive, loss, last_loss) if any_dead else loss
            steps_to_tol = torch.where((steps_to_tol < 0) & alive & (loss <= target), step, steps_to_tol)
        now = time.perf_counter()
        if step % every == 0 or step == cfg.steps or now - last_report >= PROGRESS_S:
            last_report = now
            yield Progress(step, cfg.steps, now - t0)
        if step == cfg.steps:
            break
        with torch.no_grad():
            if any_dead:  # frozen as in the race: no gradient, and put back after the step
                grad = grad.masked_fill(~alive.unsqueeze(-1), 0.0)
            rule.step(leaf, grad)
            if any_dead:
                leaf.copy_(torch.where(alive.unsqueeze(-1), leaf, last_good))

    shape = (ny, nx)
    yield SweepResult(
        config=cfg, x_values=xs, y_values=ys,
        final_loss=torch.where(diverged_at >= 0, math.nan, last_loss).reshape(shape).numpy().copy(),
        final_xy=last_good.reshape(*shape, 2).numpy().copy(),
        steps_to_tol=steps_to_tol.reshape(shape).numpy().copy(),
        diverged_at=diverged_at.reshape(shape).numpy().copy(),
        target=target, elapsed=time.perf_counter() - t0, f_star=f_star,
    )


def run_sweep(cfg: SweepConfig, progress: Callable[[float], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> SweepResult:
    """Run a sweep to the end. ``progress(fraction)`` is called about 200 times; ``should_stop()`` is
    asked as often and ``Cancelled`` is raised when it answers True."""
    return drive(iter_sweep(cfg), SweepResult, progress, should_stop)
