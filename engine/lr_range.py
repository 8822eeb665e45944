"""The learning-rate range test (Smith 2017; fast.ai's ``lr_find``).

Train a fresh copy of the run's network (same seed, same batches) while the rate grows exponentially
from ``start_lr`` to ``end_lr`` over ``steps`` mini-batches, by torch's own ``ExponentialLR``. Loss is
recorded against the rate; the test stops early once the smoothed loss has blown up (``diverge_factor``
times its lowest value) or is not finite.

Suggested rate: where the smoothed loss falls fastest against log(lr) (the steepest descent of the
curve), searched before the loss minimum. The rate at the minimum divided by 10 is also given; it is
the other common rule and a fallback when the curve is too short to have a slope.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .config import _check_keys, _typed
from .optimizers import OPTIMIZERS
from .registry import ConfigError, Param
from .training import PreparedData, TrainConfig, take_batch, _OwnRandom, _dropout_layers, build_model, prepare_data, \
    steps_per_epoch

PARAMS = (
    Param("start_lr", "Start rate", 1e-6, "The rate of the first step.", minimum=0.0, min_exclusive=True,
          maximum=10.0, log=True, typical="1e-7 to 1e-5"),
    Param("end_lr", "End rate", 1.0, "The rate of the last step, if the loss has not blown up before.",
          minimum=0.0, min_exclusive=True, maximum=100.0, log=True, typical="1 to 10"),
    Param("steps", "Steps", 200, "Mini-batches over which the rate grows from start to end.", kind="int",
          minimum=10, maximum=100_000, typical="100 to 500"),
    Param("smoothing", "Smoothing", 0.05, "Weight of each new loss in the exponential moving average "
          "(bias-corrected) the stop rule and the suggestion use.", minimum=0.0, min_exclusive=True,
          maximum=1.0, typical="0.02 to 0.1"),
    Param("diverge_factor", "Stop factor", 4.0, "Stop once the smoothed loss exceeds this many times its "
          "lowest value.", minimum=1.0, min_exclusive=True, maximum=1000.0, typical="3 to 5"),
)


@dataclass(frozen=True)
class LRRangeConfig:
    start_lr: float = 1e-6
    end_lr: float = 1.0
    steps: int = 200
    smoothing: float = 0.05
    diverge_factor: float = 4.0

    def validate(self) -> "LRRangeConfig":
        for p in PARAMS:
            p.validate(getattr(self, p.name), "lr range")
        if self.end_lr <= self.start_lr:
            raise ConfigError("lr range.end_lr", f"must be above the start rate ({self.start_lr:g}), "
                                                 f"got {self.end_lr:g}")
        return self

    @property
    def gamma(self) -> float:
        return (self.end_lr / self.start_lr) ** (1.0 / max(self.steps - 1, 1))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "lr_range") -> "LRRangeConfig":
        _check_keys(data, cls, where)
        return cls(start_lr=_typed(data, "start_lr", float, where, 1e-6),
                   end_lr=_typed(data, "end_lr", float, where, 1.0),
                   steps=_typed(data, "steps", int, where, 200),
                   smoothing=_typed(data, "smoothing", float, where, 0.05),
                   diverge_factor=_typed(data, "diverge_factor", float, where, 4.0)).validate()


@dataclass(frozen=True)
class RangePoint:
    step: int
    lr: float  # rate used by this step
    loss: float  # mini-batch loss before the step
    smoothed: float  # bias-corrected exponential moving average of the losses so far


@dataclass(frozen=True)
class RangeResult:
    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested_lr: float  # steepest descent (NaN when the curve never fell)
    suggested_index: int
    min_lr: float  # rate at the smoothed loss's minimum
    min_over_10: float
    stopped_early: bool  # the loss blew up before end_lr
    reason: str
    wall_time: float


def smooth(losses: np.ndarray, weight: float) -> np.ndarray:
    """Bias-corrected exponential moving average (as in fast.ai's lr_find). NaN/inf propagate."""
    beta = 1.0 - weight
    out = np.empty(len(losses))
    avg = 0.0
    for i, v in enumerate(np.asarray(losses, dtype=np.float64)):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray, skip_start: int = 0) -> tuple[float, int, str]:
    """(rate, index, reason): the rate where ``smoothed`` falls fastest against log(lr), before its minimum.

    The slope is taken over a window of about a tenth of a decade on each side, so single-batch noise
    does not pick the point. NaN with index -1 when the loss never fell.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    sm = np.asarray(smoothed, dtype=np.float64)
    finite = np.isfinite(sm) & np.isfinite(lrs) & (lrs > 0)
    n = int(np.flatnonzero(finite)[-1]) + 1 if finite.any() else 0
    if n < 3:
        return math.nan, -1, "too few points for a slope"
    lrs, sm = lrs[:n], sm[:n]
    lo = min(max(skip_start, 0), n - 1)
    i_min = lo + int(np.nanargmin(sm[lo:]))
    if i_min - lo < 2:
        return math.nan, -1, "the loss never fell: start the test at a lower rate"
    x = np.log10(lrs)
    decades = (x[-1] - x[0]) / max(n - 1, 1)  # decades per step
    half = max(1, int(round(0.1 / decades))) if decades > 0 else 1
    best, best_i = 0.0, -1
    for i in range(lo, i_min + 1):
        a, b = max(lo, i - half), min(i_min, i + half)
        if b - a < 1 or x[b] == x[a]:
            continue
        slope = (sm[b] - sm[a]) / (x[b] - x[a])
        if slope < best:
            best, best_i = slope, i
    if best_i < 0:
        return math.nan, -1, "the loss never fell: start the test at a lower rate"
    return float(lrs[best_i]), best_i, f"steepest fall of the smoothed loss ({best:.3g} per decade)"


def run_lr_range(cfg: TrainConfig, rcfg: LRRangeConfig | None = None, data: PreparedData | None = None
                 ) -> Iterator[RangePoint | RangeResult]:
    """RangePoint per step, then a RangeResult with the suggestion.

    The run's optimiser (with its settings other than the rate), model, seed, batch size, dropout, label
    smoothing and augmentation are used; its schedule, evaluations and early stopping are not.
    """
    rcfg = (rcfg or LRRangeConfig()).validate()
    cfg.validate()
    data = data if data is not None else prepare_data(cfg)
    model = build_model(cfg)
    params = dict(cfg.optimizer.params)
    params["lr"] = rcfg.start_lr
    optimizer = OPTIMIZERS.get(cfg.optimizer.name).build(model.parameters(), params)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=rcfg.gamma)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    n_train = len(data.x_train)
    batch, per_epoch = steps_per_epoch(cfg, n_train)
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    rng = _OwnRandom(cfg.seed, any(m.p > 0 for m in _dropout_layers(model)))
    beta = 1.0 - rcfg.smoothing
    avg, best = 0.0, math.inf
    lrs, losses, smoothed = [], [], []
    stopped, reason = False, f"reached the end rate {rcfg.end_lr:g}"
    t0 = time.perf_counter()
    model.train()
    order = torch.randperm(n_train, generator=gen)
    for step in range(rcfg.steps):
        b = step % per_epoch
        if step and b == 0:
            order = torch.randperm(n_train, generator=gen)
        xb, yb = take_batch(data, order, b, batch, aug_gen if cfg.augment else None)
        optimizer.zero_grad()
        with rng:
            loss = loss_fn(model(xb), yb)
        value = float(loss.detach())
        lr = float(optimizer.param_groups[0]["lr"])
        avg = beta * avg + (1 - beta) * value
        sm = avg / (1 - beta ** (step + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(sm)
        yield RangePoint(step + 1, lr, value, sm)
        if not math.isfinite(sm):
            stopped, reason = True, f"the loss was not finite at rate {lr:.3g}"
            break
        best = min(best, sm)
        if step > 0 and sm > rcfg.diverge_factor * best:
            stopped, reason = True, f"the loss blew up ({rcfg.diverge_factor:g}x its lowest) at rate {lr:.3g}"
            break
        loss.backward()
        optimizer.step()
        schedule.step()
    lr_arr, loss_arr, sm_arr = np.array(lrs), np.array(losses), np.array(smoothed)
    suggestion, index, why = suggest_lr(lr_arr, sm_arr)
    finite = np.isfinite(sm_arr)
    i_min = int(np.nanargmin(np.where(finite, sm_arr, np.inf))) if finite.any() else -1
    min_lr = float(lr_arr[i_min]) if i_min >= 0 else math.nan
    yield RangeResult(lr_arr, loss_arr, sm_arr, suggestion, index, min_lr, min_lr / 10, stopped,
                      f"{reason}; {why}", time.perf_counter() - t0)
