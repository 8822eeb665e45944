"""Learning-rate schedules: torch.optim.lr_scheduler classes behind a registry, with optional linear warmup.

Every schedule is torch's own class, so the rates shown are the ones a training script gets. What this
module adds is validation (a ``ConfigError`` naming the field, before torch sees a value), a warmup
that can precede any schedule, and a preview that steps the real scheduler on a dummy optimizer.

Step convention (see DESIGN.md): ``optimizer.step()`` for step k uses ``param_groups[i]["lr"]``, then
``LRSchedule.step()`` sets the rate for step k + 1. A schedule's settings count steps from its own
start, which is the end of the warmup when there is one (this is how ``SequentialLR`` hands over).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.optim import lr_scheduler as lrs

from .config import OptimizerConfig, ScheduleConfig
from .registry import ConfigError, Param, Registry, resolve_params

WHERE = "schedule"  # prefix of every ConfigError.field raised here, e.g. "schedule.gamma"

BuildFn = Callable[[torch.optim.Optimizer, dict[str, Any], int], Any]


@dataclass(frozen=True)
class ScheduleSpec:
    """A registered schedule.

    ``build(optimizer, params, total_steps)`` validates the resolved ``params`` and returns the torch
    scheduler; ``total_steps`` is the schedule's own length (the run less any warmup).
    """

    name: str
    label: str
    help: str
    params: tuple[Param, ...]
    build: BuildFn
    needs_metric: bool = False
    formula: str = ""


SCHEDULES = Registry[ScheduleSpec]("schedule")

# The warmup's settings, for forms; they live on ScheduleConfig itself rather than in a spec's params.
WARMUP_PARAMS = (
    Param("warmup_steps", "Warmup steps", 0, "Steps of linear warmup before the schedule; 0 for none.",
          kind="int", minimum=0, typical="0 to 10% of the run"),
    Param("warmup_start_factor", "Warmup start factor", 0.01,
          "The first step's rate as a fraction of the schedule's starting rate.",
          minimum=0.0, min_exclusive=True, maximum=1.0, log=True, typical="0.001 to 0.1"),
)
WARMUP_FORMULA = "η_k = η₀·(f + (1 − f)·k/W) for k < W; from k = W the schedule runs, counting its steps from 0"


def _err(name: str, problem: str) -> ConfigError:
    return ConfigError(f"{WHERE}.{name}", problem)


def _gamma(default: float, help_: str) -> Param:
    # Capped at 1: these schedules are for decay; a growing rate belongs to an LR range test.
    return Param("gamma", "Gamma", default, help_, minimum=0.0, min_exclusive=True, maximum=1.0,
                 typical="0.1 to 0.999")


_ETA_MIN = Param("eta_min", "Minimum lr", 0.0, "The lowest rate the cosine reaches.", minimum=0.0,
                 typical="0 or about 1% of the lr")
_CYCLE_MOMENTUM = Param(
    "cycle_momentum", "Cycle momentum", False,
    "Move momentum (SGD, RMSprop) or beta1 (Adam family) inversely to the rate, between the two "
    "momentum settings. Needs an optimiser that has one.", kind="bool")


def _momentum_params(base: float, top: float) -> tuple[Param, Param]:
    return (
        Param("base_momentum", "Base momentum", base, "Momentum (or beta1) when the rate is highest.",
              minimum=0.0, maximum=1.0, typical="0.8 to 0.9"),
        Param("max_momentum", "Max momentum", top, "Momentum (or beta1) when the rate is lowest.",
              minimum=0.0, maximum=1.0, typical="0.9 to 0.99"),
    )


def _check_cycle_momentum(optimizer: torch.optim.Optimizer, p: dict[str, Any]) -> None:
    if not p["cycle_momentum"]:
        return
    # torch looks at the defaults only: plain SGD has a "momentum" entry (0) and so may be cycled.
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise _err("cycle_momentum", f"{type(optimizer).__name__} has no momentum or beta1 to cycle; turn it off")
    if p["base_momentum"] > p["max_momentum"]:
        raise _err("base_momentum", f"must not exceed max_momentum ({p['max_momentum']:g}), "
                                    f"got {p['base_momentum']:g}")


def parse_milestones(text: str) -> list[int]:
    """``"100, 200"`` -> ``[100, 200]``; whole, positive, strictly increasing, else ``ConfigError``."""
    parts = [s for s in re.split(r"[,;\s]+", text.strip()) if s]
    if not parts:
        raise _err("milestones", "give at least one step, e.g. \"100, 200\"")
    milestones = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise _err("milestones", f"{part!r} is not a whole number of steps") from None
        if value < 1:
            raise _err("milestones", f"steps start at 1 (a milestone at {value} would never be passed)")
        if milestones and value <= milestones[-1]:
            raise _err("milestones", f"must increase: {value} comes after {milestones[-1]}")
        milestones.append(value)
    return milestones


# ---- builders: validate what Param ranges cannot express, then construct torch's scheduler ----

def _build_constant(opt, p, n):
    return lrs.LambdaLR(opt, lambda _: 1.0)


def _build_step(opt, p, n):
    return lrs.StepLR(opt, step_size=p["step_size"], gamma=p["gamma"])


def _build_multistep(opt, p, n):
    return lrs.MultiStepLR(opt, milestones=parse_milestones(p["milestones"]), gamma=p["gamma"])


def _build_exponential(opt, p, n):
    return lrs.ExponentialLR(opt, gamma=p["gamma"])


def _build_cosine(opt, p, n):
    return lrs.CosineAnnealingLR(opt, T_max=p["T_max"] or n, eta_min=p["eta_min"])


def _build_cosine_restarts(opt, p, n):
    return lrs.CosineAnnealingWarmRestarts(opt, T_0=p["T_0"], T_mult=p["T_mult"], eta_min=p["eta_min"])


def _build_cyclic(opt, p, n):
    if p["max_lr"] < p["base_lr"]:
        raise _err("max_lr", f"must be at least base_lr ({p['base_lr']:g}), got {p['max_lr']:g}")
    _check_cycle_momentum(opt, p)
    return lrs.CyclicLR(opt, base_lr=p["base_lr"], max_lr=p["max_lr"], step_size_up=p["step_size_up"],
                        mode=p["mode"], gamma=p["gamma"], cycle_momentum=p["cycle_momentum"],
                        base_momentum=p["base_momentum"], max_momentum=p["max_momentum"])


def _build_onecycle(opt, p, n):
    # torch divides by each phase's length in steps; a phase under one step is a ZeroDivisionError or
    # a rate that runs backwards. Phase ends computed exactly as OneCycleLR does.
    pct = p["pct_start"]
    rise = float(pct * n)
    if rise < 2:
        raise _err("pct_start", f"the rising phase is {rise:g} steps ({pct:g} of {n}); it needs at least 2: "
                                f"raise pct_start or run longer")
    last_end = float(2 * pct * n) - 2 if p["three_phase"] else rise - 1
    if (n - 1) - last_end < 1:
        what = "three-phase cycles need pct_start at most about 0.5" if p["three_phase"] else "lower pct_start"
        raise _err("pct_start", f"leaves the annealing phase under one step of the {n}; {what}")
    _check_cycle_momentum(opt, p)
    return lrs.OneCycleLR(opt, max_lr=p["max_lr"], total_steps=n, pct_start=pct,
                          anneal_strategy=p["anneal_strategy"], cycle_momentum=p["cycle_momentum"],
                          base_momentum=p["base_momentum"], max_momentum=p["max_momentum"],
                          div_factor=p["div_factor"], final_div_factor=p["final_div_factor"],
                          three_phase=p["three_phase"])


def _build_plateau(opt, p, n):
    if p["factor"] >= 1:
        raise _err("factor", f"must be below 1 so the rate goes down, got {p['factor']:g}")
    return lrs.ReduceLROnPlateau(opt, mode=p["mode"], factor=p["factor"], patience=p["patience"],
                                 threshold=p["threshold"], threshold_mode=p["threshold_mode"],
                                 cooldown=p["cooldown"], min_lr=p["min_lr"])


def _build_linear(opt, p, n):
    return lrs.LinearLR(opt, start_factor=p["start_factor"], end_factor=p["end_factor"],
                        total_iters=p["total_iters"] or n)


SCHEDULES.register("constant", ScheduleSpec(
    "constant", "Constant", "The optimiser's learning rate throughout.", (), _build_constant,
    formula="η_k = η"))

SCHEDULES.register("step", ScheduleSpec(
    "step", "Step decay (StepLR)", "Multiply the rate by gamma every step_size steps.",
    (Param("step_size", "Step size", 100, "Steps between decays.", kind="int", minimum=1, typical="10 to 1000"),
     _gamma(0.1, "Factor applied at each decay.")),
    _build_step, formula="η_k = η·γ^⌊k/step_size⌋"))

SCHEDULES.register("multistep", ScheduleSpec(
    "multistep", "Milestones (MultiStepLR)", "Multiply the rate by gamma at each listed step.",
    (Param("milestones", "Milestones", "100, 200", "Steps at which to decay, e.g. \"100, 200\".", kind="text"),
     _gamma(0.1, "Factor applied at each milestone.")),
    _build_multistep, formula="η_k = η·γ^(number of milestones ≤ k)"))

SCHEDULES.register("exponential", ScheduleSpec(
    "exponential", "Exponential (ExponentialLR)", "Multiply the rate by gamma every step.",
    (_gamma(0.99, "Factor applied every step."),),
    _build_exponential, formula="η_k = η·γ^k"))

SCHEDULES.register("cosine", ScheduleSpec(
    "cosine", "Cosine annealing (CosineAnnealingLR)", "Half a cosine from the rate down to eta_min over T_max steps.",
    (Param("T_max", "Period", 0, "Steps from the full rate to eta_min; 0 = the rest of the run.",
           kind="int", minimum=0, typical="the run length"),
     _ETA_MIN),
    _build_cosine, formula="η_k = η_min + (η − η_min)·(1 + cos(π·k/T_max))/2"))

SCHEDULES.register("cosine_restarts", ScheduleSpec(
    "cosine_restarts", "Cosine with warm restarts (SGDR)",
    "Cosine annealing that jumps back to the full rate every period; each period T_mult times the last.",
    (Param("T_0", "First period", 100, "Steps until the first restart.", kind="int", minimum=1,
           typical="10 to 1000"),
     Param("T_mult", "Period multiplier", 1, "Each period is this many times the one before.", kind="int",
           minimum=1, typical="1 or 2"),
     _ETA_MIN),
    _build_cosine_restarts,
    formula="η_k = η_min + (η − η_min)·(1 + cos(π·T_cur/T_i))/2; at T_cur = T_i: T_cur ← 0, T_i ← T_i·T_mult"))

SCHEDULES.register("cyclic", ScheduleSpec(
    "cyclic", "Cyclic (CyclicLR)",
    "Triangle waves between base_lr and max_lr (absolute rates: they replace the optimiser's lr).",
    (Param("base_lr", "Base lr", 0.001, "The bottom of each cycle.", minimum=0.0, min_exclusive=True, log=True,
           typical="max_lr / 10 to max_lr / 3"),
     Param("max_lr", "Max lr", 0.01, "The top of the first cycle.", minimum=0.0, min_exclusive=True, log=True),
     Param("step_size_up", "Half period", 100, "Steps from base_lr up to max_lr (and back down).", kind="int",
           minimum=1, typical="2 to 10 epochs of steps"),
     Param("mode", "Mode", "triangular", "triangular: constant height; triangular2: height halves each "
           "cycle; exp_range: height times gamma^k.", kind="choice",
           choices=("triangular", "triangular2", "exp_range")),
     Param("gamma", "Gamma", 1.0, "exp_range only: the height's decay per step.", minimum=0.0,
           min_exclusive=True, maximum=1.0, typical="0.99 to 0.99999"),
     _CYCLE_MOMENTUM, *_momentum_params(0.8, 0.9)),
    _build_cyclic,
    formula="c = ⌊1 + k/(2s)⌋, x = |k/s − 2c + 1|; η_k = base_lr + (max_lr − base_lr)·max(0, 1 − x)·scale "
            "(scale = 1, 1/2^(c−1) or γ^k)"))

SCHEDULES.register("onecycle", ScheduleSpec(
    "onecycle", "One cycle (OneCycleLR)",
    "Rise from max_lr/div_factor to max_lr over pct_start of the run, then anneal far below the start. "
    "max_lr is absolute and replaces the optimiser's lr; the cycle spans the run after any warmup.",
    (Param("max_lr", "Max lr", 0.01, "The peak rate.", minimum=0.0, min_exclusive=True, log=True),
     Param("pct_start", "Rising fraction", 0.3, "Fraction of the run spent rising.", minimum=0.0,
           min_exclusive=True, maximum=1.0, typical="0.1 to 0.3"),
     Param("anneal_strategy", "Annealing", "cos", "Shape of both ramps.", kind="choice", choices=("cos", "linear")),
     Param("div_factor", "Start divisor", 25.0, "Starting rate = max_lr / div_factor.", minimum=0.0,
           min_exclusive=True, log=True, typical="10 to 100"),
     Param("final_div_factor", "Final divisor", 1e4, "Final rate = starting rate / final_div_factor.",
           minimum=0.0, min_exclusive=True, log=True, typical="1e2 to 1e5"),
     Param("three_phase", "Three phases", False, "Come back down to the starting rate symmetrically before "
           "the final annealing (fast.ai's variant).", kind="bool"),
     _CYCLE_MOMENTUM, *_momentum_params(0.85, 0.95)),
    _build_onecycle,
    formula="η: max_lr/div → max_lr over pct_start·N steps, then → max_lr/(div·final_div) (cos or linear)"))

SCHEDULES.register("plateau", ScheduleSpec(
    "plateau", "Reduce on plateau (ReduceLROnPlateau)",
    "Multiply the rate by factor when the metric (the loss) has not improved for more than patience steps. "
    "Previews without a metric assume a flat one, so the rate drops every patience + 1 steps.",
    (Param("mode", "Mode", "min", "min: lower metric is better (a loss); max: higher is better.",
           kind="choice", choices=("min", "max")),
     Param("factor", "Factor", 0.1, "Multiplier at each reduction; below 1.", minimum=0.0, min_exclusive=True,
           typical="0.1 to 0.5"),
     Param("patience", "Patience", 10, "Steps without improvement tolerated before reducing.", kind="int",
           minimum=0, typical="5 to 50"),
     Param("threshold", "Threshold", 1e-4, "Smallest change that counts as an improvement.", minimum=0.0,
           typical="1e-4"),
     Param("threshold_mode", "Threshold mode", "rel", "rel: relative to the best so far; abs: absolute.",
           kind="choice", choices=("rel", "abs")),
     Param("cooldown", "Cooldown", 0, "Steps after a reduction before counting again.", kind="int", minimum=0),
     Param("min_lr", "Minimum lr", 0.0, "The rate never goes below this.", minimum=0.0)),
    _build_plateau, needs_metric=True,
    formula="η ← max(η·factor, min_lr) once the metric has not beaten its best (by threshold) for more than "
            "patience steps"))

SCHEDULES.register("linear", ScheduleSpec(
    "linear", "Linear (LinearLR)", "Move the rate linearly from start_factor to end_factor times the lr.",
    (Param("start_factor", "Start factor", 1.0, "Multiplier at the first step.", minimum=0.0, min_exclusive=True,
           maximum=1.0),
     Param("end_factor", "End factor", 0.0, "Multiplier from total_iters on.", minimum=0.0, maximum=1.0),
     Param("total_iters", "Steps", 0, "Steps to go from start to end; 0 = the rest of the run.", kind="int",
           minimum=0)),
    _build_linear, formula="η_k = η·(s + (e − s)·min(k, N)/N)"))


# ---- one run's schedule ----

def _momentum_of(group: dict[str, Any]) -> float | None:
    if "betas" in group:
        return float(group["betas"][0])
    return float(group["momentum"]) if "momentum" in group else None


class LRSchedule:
    """One run's schedule. Call ``step(metric)`` once after every ``optimizer.step()``, at most
    ``total_steps`` times (OneCycleLR refuses more)."""

    def __init__(self, optimizer: torch.optim.Optimizer, spec: ScheduleSpec, params: dict[str, Any],
                 main: Any, warmup: lrs.LinearLR | None, warmup_steps: int, total_steps: int):
        self.optimizer = optimizer
        self.spec = spec
        self.params = params
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.steps_taken = 0
        self._main = main
        self._warmup = warmup
        # ReduceLROnPlateau cannot sit in a SequentialLR (its step needs the metric), so step() hands over itself.
        self._chained = (lrs.SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])
                         if warmup is not None and not spec.needs_metric else None)

    @property
    def cycles_momentum(self) -> bool:
        return bool(self.params.get("cycle_momentum", False))

    def step(self, metric: float | None = None) -> None:
        """Set the rate for the next optimizer step. ``metric`` (e.g. this step's loss) is read by
        metric-driven schedules after the warmup and ignored otherwise."""
        self.steps_taken += 1
        if self._chained is not None:
            self._chained.step()
        elif self._warmup is not None and self.steps_taken < self.warmup_steps:
            self._warmup.step()
        elif self._warmup is not None and self.steps_taken == self.warmup_steps:
            # Hand over as SequentialLR does: the next schedule starts at its step 0, i.e. the full rate,
            # not at the warmup's chained product (which can be an ulp off).
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"]
        elif self.spec.needs_metric:
            if metric is None:
                raise ValueError(f"the {self.spec.label} schedule needs a metric at every step after the warmup")
            self._main.step(float(metric))
        else:
            self._main.step()

    @property
    def last_lrs(self) -> list[float]:
        """The rates the next optimizer.step() will use, one per param group."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    @property
    def last_momenta(self) -> list[float | None]:
        """Momentum or beta1 per param group (None where the optimiser has neither)."""
        return [_momentum_of(g) for g in self.optimizer.param_groups]

    def describe_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.steps_taken, "in_warmup": self.steps_taken < self.warmup_steps}
        if not self.spec.needs_metric:
            state["last_epoch"] = (self._chained or self._main).last_epoch
            return state
        sched = self._main
        state.update(num_bad_epochs=sched.num_bad_epochs, patience=sched.patience,
                     cooldown_counter=sched.cooldown_counter, best=float(sched.best),
                     threshold=sched.threshold, must_beat=_plateau_bar(sched))
        return state


def _plateau_bar(sched: lrs.ReduceLROnPlateau) -> float:
    """The value the next metric must beat to count as an improvement (mirrors ``_is_better``)."""
    best, th = float(sched.best), sched.threshold
    if sched.mode == "min":
        return best * (1 - th) if sched.threshold_mode == "rel" else best - th
    return best * (1 + th) if sched.threshold_mode == "rel" else best + th


def _check_run(config: ScheduleConfig, total_steps: int) -> tuple[int, float]:
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError("total_steps", f"must be a whole number of steps, at least 1, got {total_steps!r}")
    steps_param, factor_param = WARMUP_PARAMS
    warmup_steps = steps_param.validate(config.warmup_steps, WHERE)
    start_factor = factor_param.validate(config.warmup_start_factor, WHERE)
    if warmup_steps >= total_steps:
        raise _err("warmup_steps", f"must be shorter than the run ({total_steps} steps), got {warmup_steps}")
    return warmup_steps, start_factor


def is_constant(config: ScheduleConfig) -> bool:
    """True when the schedule never changes the rate: stepping torch's scheduler would only cost time."""
    return config.name == "constant" and not config.warmup_steps


def check_schedule(config: ScheduleConfig, total_steps: int) -> None:
    """Validate ``config`` for a run of ``total_steps`` as ``make_schedule`` does, attaching nothing.
    Enough for a constant rate; other schedules can fail only with their optimiser (check_optimizer_schedule)."""
    spec = SCHEDULES.get(config.name)
    resolve_params(spec.params, config.params, WHERE)
    _check_run(config, total_steps)


def check_optimizer_schedule(optimizer: OptimizerConfig, total_steps: int, where: str = "") -> None:
    """Build ``optimizer``'s schedule on a throwaway copy of that optimiser, as a run of ``total_steps`` will,
    so that settings which only fail together (a one-cycle phase under one step, max_lr below base_lr, a
    warmup longer than the run, cycling a momentum the optimiser lacks) are refused before the run starts,
    with a ConfigError whose field is ``where`` followed by the schedule's (``schedule.<setting>``)."""
    from .optimizers import OPTIMIZERS

    opt = OPTIMIZERS.get(optimizer.name).build([torch.zeros(2, requires_grad=True)], optimizer.params)
    try:
        make_schedule(opt, optimizer.schedule, total_steps)
    except ConfigError as exc:
        if not where:
            raise
        raise ConfigError(f"{where}{exc.field}", exc.problem) from None


def make_schedule(optimizer: torch.optim.Optimizer, config: ScheduleConfig, total_steps: int) -> LRSchedule:
    """Validate ``config`` and attach its schedule (and warmup) to a fresh ``optimizer``.

    Raises ``ConfigError`` naming the field (``schedule.<setting>``, ``schedule.warmup_steps``, ...)
    before any torch object is made, so invalid settings never surface as torch tracebacks.
    """
    spec = SCHEDULES.get(config.name)
    params = resolve_params(spec.params, config.params, WHERE)
    warmup_steps, start_factor = _check_run(config, total_steps)
    main = spec.build(optimizer, params, total_steps - warmup_steps)
    warmup = None
    if warmup_steps:
        # Built after the main schedule so that it ramps up to that schedule's own starting rate:
        # CyclicLR and OneCycleLR overwrite the optimizer's lr (and "initial_lr") when constructed.
        # For the others the order makes no difference.
        warmup = lrs.LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup_steps)
    return LRSchedule(optimizer, spec, params, main, warmup, warmup_steps, total_steps)


# ---- previews ----

_BETA1_OPTIMIZERS = {"adam", "adamw", "nadam", "radam", "adamax"}
_NO_MOMENTUM_OPTIMIZERS = {"adagrad", "adadelta", "lbfgs"}


def _dummy_optimizer(name: str, lr: float) -> torch.optim.Optimizer:
    # Only what cycle_momentum looks at matters: whether the optimiser has "betas", "momentum" or neither.
    param = torch.nn.Parameter(torch.zeros(1))
    if name in _BETA1_OPTIMIZERS:
        return torch.optim.Adam([param], lr=lr)
    if name in _NO_MOMENTUM_OPTIMIZERS:
        return torch.optim.Adagrad([param], lr=lr)
    return torch.optim.SGD([param], lr=lr, momentum=0.9)


def preview_with_momentum(config: ScheduleConfig, base_lr: float, total_steps: int,
                          metric: Callable[[int], float] | None = None,
                          optimizer_name_for_momentum: str = "sgd") -> tuple[np.ndarray, np.ndarray | None]:
    """The rate (and, when the schedule cycles it, the momentum or beta1) used by steps 0..total_steps-1.

    Steps torch's real scheduler on a one-element dummy optimizer whose gradient is never set, so
    ``optimizer.step()`` changes nothing but keeps torch's call-order check satisfied.
    ``metric(k)`` is the metric seen after step k; metric-driven schedules without one get a flat
    metric, which never improves, so ReduceLROnPlateau cuts the rate every patience + 1 steps.
    ``optimizer_name_for_momentum`` is an optimiser registry name: Adam-family names get beta1,
    adagrad/adadelta/lbfgs get neither (so cycle_momentum is refused as in a real run), others momentum.
    Momenta are None when the schedule does not cycle momentum.
    """
    lr_param = Param("lr", "Learning rate", 0.01, "", minimum=0.0, min_exclusive=True)
    base_lr = lr_param.validate(base_lr)
    optimizer = _dummy_optimizer(optimizer_name_for_momentum, base_lr)
    schedule = make_schedule(optimizer, config, total_steps)
    group = optimizer.param_groups[0]
    lrs_out = np.empty(total_steps)
    momenta = np.empty(total_steps)
    for k in range(total_steps):
        lrs_out[k] = group["lr"]
        momenta[k] = _momentum_of(group) or 0.0
        optimizer.step()
        schedule.step(metric(k) if metric is not None else 1.0)
    return lrs_out, (momenta if schedule.cycles_momentum else None)


def preview(config: ScheduleConfig, base_lr: float, total_steps: int,
            metric: Callable[[int], float] | None = None, optimizer_name_for_momentum: str = "sgd") -> np.ndarray:
    """The rate used by each step 0..total_steps-1; see ``preview_with_momentum``."""
    return preview_with_momentum(config, base_lr, total_steps, metric, optimizer_name_for_momentum)[0]
