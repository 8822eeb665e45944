"""Optimisers racing on a 2D function: a generator of per-step frames.

All trajectories of one optimiser are rows of a single (N, 2) parameter tensor, and the loss of
every optimiser's tensor is summed into one autograd call per step: the optimisers named in
DESIGN.md are elementwise, so this is exactly N independent torch.optim runs, only cheaper.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from .config import OptimizerConfig, _check_keys, _params, _typed
from .functions import FUNCTIONS, TestFunction
from .minibatch import data_objective_of, step_uses_minibatch
from .optimizers import OPTIMIZERS
from .registry import MAX_SEED, ConfigError, resolve_params
from .schedules import SCHEDULES, check_schedule, is_constant, make_schedule

START_KINDS = ("point", "grid", "disc", "random")
# A coordinate this many domain-widths from the domain counts as exploded (diverged) even while finite.
EXPLODE_WIDTHS = 1e3


@dataclass(frozen=True)
class StartsConfig:
    """Where trajectories start: one point, or a cloud (grid, disc around the point, random in the domain)."""

    kind: str = "point"
    count: int = 1
    radius: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "starts") -> "StartsConfig":
        _check_keys(data, cls, where)
        cfg = cls(kind=_typed(data, "kind", str, where, "point"), count=_typed(data, "count", int, where, 1),
                  radius=_typed(data, "radius", float, where, 0.5))
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "starts") -> None:
        if self.kind not in START_KINDS:
            raise ConfigError(f"{where}.kind", f"{self.kind!r} is not one of {', '.join(START_KINDS)}")
        if not 1 <= self.count <= 1_000_000:
            raise ConfigError(f"{where}.count", f"must be between 1 and 1,000,000, got {self.count}")
        if not (self.radius > 0 and math.isfinite(self.radius)):
            raise ConfigError(f"{where}.radius", f"must be a positive number, got {self.radius}")


@dataclass(frozen=True)
class LandscapeConfig:
    function: str = "rosenbrock"
    function_params: dict[str, Any] = field(default_factory=dict)
    custom_expression: str = ""  # used when function == "custom"
    custom_domain: tuple[tuple[float, float], tuple[float, float]] = ((-3.0, 3.0), (-3.0, 3.0))
    start: tuple[float, float] | None = None  # None: the function's own default start
    starts: StartsConfig = field(default_factory=StartsConfig)
    steps: int = 500
    seed: int = 0
    optimizers: tuple[OptimizerConfig, ...] = (OptimizerConfig("adam"),)
    # Data-set objectives only: > 0 steps every optimiser but GD and L-BFGS on seeded mini-batches of this
    # size (the frames' loss stays the full-data loss); 0 is full batch.
    batch_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function, "function_params": dict(self.function_params),
            "custom_expression": self.custom_expression,
            "custom_domain": [list(r) for r in self.custom_domain],
            "start": list(self.start) if self.start is not None else None,
            "starts": self.starts.to_dict(), "steps": self.steps, "seed": self.seed,
            "optimizers": [o.to_dict() for o in self.optimizers], "batch_size": self.batch_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "landscape") -> "LandscapeConfig":
        _check_keys(data, cls, where)
        opts = data.get("optimizers", [{"name": "adam"}])
        if not isinstance(opts, list):
            raise ConfigError(f"{where}.optimizers", "expected a list")
        cfg = cls(
            **problem_fields(data, where),
            starts=StartsConfig.from_dict(data.get("starts", {}), f"{where}.starts"),
            optimizers=tuple(OptimizerConfig.from_dict(o, f"{where}.optimizers[{i}]") for i, o in enumerate(opts)),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Everything a run needs checked up front, so errors name a field instead of failing mid-run."""
        if not 1 <= self.steps <= 10_000_000:
            raise ConfigError("steps", f"must be between 1 and 10,000,000, got {self.steps}")
        if not self.optimizers:
            raise ConfigError("optimizers", "choose at least one optimiser")
        if isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError("seed", f"must be a whole number from 0 to {MAX_SEED:,}, got {self.seed}")
        self.starts.validate()
        fn = resolve_function(self)
        resolve_params(fn.params, self.function_params, f"function {fn.name}")
        if not 0 <= self.batch_size <= 1_000_000:
            raise ConfigError("batch_size", f"must be between 0 (full batch) and 1,000,000, got {self.batch_size}")
        data = data_objective_of(fn)
        if self.batch_size and data is None:
            raise ConfigError("batch_size", f"{fn.label} is not a mean over a data set, so it has no mini-batches; "
                              "use 0 or a data-set objective")
        if self.batch_size and self.batch_size > (n := data.resolve(self.function_params)["n_points"]):
            raise ConfigError("batch_size", f"{self.batch_size} is larger than the data set's {n} points "
                                            f"(n_points); give at most {n}, or 0 for full batch")
        if self.start is not None:
            bound = explode_bound(fn.domain)
            if max(abs(self.start[0]), abs(self.start[1])) > bound:
                raise ConfigError("start", f"({self.start[0]:g}, {self.start[1]:g}) is beyond ±{bound:g}, where a "
                                           "trajectory counts as diverged; start on or near the map")
        for i, opt in enumerate(self.optimizers):
            spec = OPTIMIZERS.get(opt.name)
            spec.resolve(opt.params)
            if not spec.elementwise and self.starts.count > 1:
                raise ConfigError(f"optimizers[{i}]", f"{spec.label} couples coordinates: it runs one trajectory "
                                  "only; use a single start point")


def explode_bound(domain: tuple[tuple[float, float], tuple[float, float]]) -> float:
    """The coordinate size beyond which a trajectory counts as diverged."""
    (xmin, xmax), (ymin, ymax) = domain
    return EXPLODE_WIDTHS * max(xmax - xmin, ymax - ymin) + max(abs(xmin), abs(xmax), abs(ymin), abs(ymax))


def problem_fields(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The fields a race and a sweep share (function, its parameters or custom formula, start, steps, seed,
    batch size), parsed from a dict with each error naming its field."""
    start = data.get("start")
    dom = data.get("custom_domain", [[-3, 3], [-3, 3]])
    if not isinstance(dom, (list, tuple)) or len(dom) != 2:
        raise ConfigError(f"{where}.custom_domain", "expected [[xmin, xmax], [ymin, ymax]]")
    return dict(
        function=_typed(data, "function", str, where, "rosenbrock"),
        function_params=_params({"params": data.get("function_params", {})}, f"{where}.function_params"),
        custom_expression=_typed(data, "custom_expression", str, where, ""),
        custom_domain=(_pair(dom[0], f"{where}.custom_domain[0]"), _pair(dom[1], f"{where}.custom_domain[1]")),
        start=_pair(start, f"{where}.start") if start is not None else None,
        steps=_typed(data, "steps", int, where, 500),
        seed=_typed(data, "seed", int, where, 0),
        batch_size=_typed(data, "batch_size", int, where, 0),
    )


def _pair(value: Any, where: str) -> tuple[float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ConfigError(where, f"expected two numbers, got {value!r}")
    if not all(math.isfinite(v) for v in value):
        raise ConfigError(where, f"must be finite, got {value!r}")
    return (float(value[0]), float(value[1]))


def resolve_function(cfg: LandscapeConfig) -> TestFunction:
    if cfg.function == "custom":
        from .expression import make_custom_function
        return make_custom_function(cfg.custom_expression, domain=cfg.custom_domain)
    return FUNCTIONS.get(cfg.function)


def start_points(cfg: LandscapeConfig, fn: TestFunction) -> np.ndarray:
    """(N, 2) float64 start points; random clouds come from the run's seed."""
    x0, y0 = cfg.start if cfg.start is not None else fn.start
    s = cfg.starts
    if s.kind == "point" or s.count == 1:
        return np.array([[x0, y0]] * s.count, dtype=np.float64)
    (xmin, xmax), (ymin, ymax) = fn.domain
    if s.kind == "grid":
        side = int(math.ceil(math.sqrt(s.count)))
        gx, gy = np.meshgrid(np.linspace(xmin, xmax, side + 2)[1:-1], np.linspace(ymin, ymax, side + 2)[1:-1])
        return np.stack([gx.ravel(), gy.ravel()], axis=1)[: s.count].copy()
    rng = np.random.default_rng(cfg.seed)
    if s.kind == "disc":
        r = s.radius * np.sqrt(rng.random(s.count))
        t = 2 * math.pi * rng.random(s.count)
        return np.stack([x0 + r * np.cos(t), y0 + r * np.sin(t)], axis=1)
    return np.stack([rng.uniform(xmin, xmax, s.count), rng.uniform(ymin, ymax, s.count)], axis=1)


@dataclass(slots=True)  # not frozen: a frozen dataclass takes 1.7 us to build, a plain one 0.6 (one a step)
class LandscapeFrame:
    """State at step k, before update k. Arrays are (K optimisers, N starts, ...) copies, never tensors;
    a frame is never changed once yielded (consumers read it; the engine makes a new one each step).

    ``lr[i]`` is the rate optimiser i uses for update k; ``diverged_at[i, n]`` is the step at which
    trajectory n stopped being finite (-1 while it is fine); diverged rows keep their last finite point.
    """

    step: int
    xy: np.ndarray  # (K, N, 2)
    loss: np.ndarray  # (K, N)
    grad: np.ndarray  # (K, N, 2), the gradient the optimiser receives (noise included for SGD)
    lr: np.ndarray  # (K,)
    diverged_at: np.ndarray  # (K, N) int64
    evals: np.ndarray  # (K,) cumulative gradient evaluations
    state: tuple[dict[str, np.ndarray], ...] = ()  # per optimiser: optimizer.state buffers, (N, 2) each
    schedule_state: tuple[dict[str, Any], ...] = ()
    elapsed: float = 0.0  # seconds of engine time so far
    # Per optimiser: momentum / beta1 / beta2 as torch holds them for update k, where a schedule cycles
    # them (CyclicLR, OneCycleLR with cycle_momentum); empty otherwise. See engine.glyphs.live_params.
    hyper: tuple[dict[str, float], ...] = ()

    @property
    def grad_norm(self) -> np.ndarray:
        return np.linalg.norm(self.grad, axis=-1)

    @property
    def nbytes(self) -> int:
        """Bytes held by the frame's arrays (what a buffer of frames costs in memory)."""
        arrays = [self.xy, self.loss, self.grad, self.lr, self.diverged_at, self.evals]
        arrays += [v for buffers in self.state for v in buffers.values()]
        return sum(int(getattr(a, "nbytes", 0)) for a in arrays)


_EVALS_BLOCK = 1024


def _evals_block(k: int, first_step: int) -> np.ndarray:
    """Gradient evaluations after steps first_step .. first_step + _EVALS_BLOCK - 1, one row a step:
    step + 1 for each of k optimisers (one evaluation a step). Read-only: frames share its rows."""
    block = np.repeat(np.arange(first_step + 1, first_step + 1 + _EVALS_BLOCK, dtype=np.int64)[:, None], k, axis=1)
    block.flags.writeable = False
    return block


def _state_copy(opt: torch.optim.Optimizer, leaf: torch.Tensor) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in opt.state.get(leaf, {}).items():
        if isinstance(value, torch.Tensor):
            array = value.detach().cpu().numpy().copy()
            # per-trajectory buffers as (N, 2), whatever the parameter's layout (a single optimiser's is (1, N, 2))
            out[key] = array.reshape(-1, 2) if array.shape == tuple(leaf.shape) else array
        elif isinstance(value, (int, float)):
            out[key] = np.asarray(value)
    return out


def _live_hyper(opt: torch.optim.Optimizer) -> dict[str, float]:
    group = opt.param_groups[0]
    if "betas" in group:
        return {"beta1": float(group["betas"][0]), "beta2": float(group["betas"][1])}
    return {"momentum": float(group["momentum"])} if "momentum" in group else {}


def run_landscape(cfg: LandscapeConfig, with_state: bool = True) -> Iterator[LandscapeFrame]:
    """Frames for steps 0..cfg.steps. Deterministic for a given config (seed included).

    The loop is kept lean on purpose (bench/bench_sweep.py measures it against a bare torch.optim loop;
    on a handful of numbers every numpy or torch call costs microseconds, as much as a step's arithmetic):
    per step it adds to what the optimiser does one copy of the positions (torch.optim updates parameters
    in place, and a frame must not change once yielded) and two whole-array reductions that say whether
    anything went non-finite or far away; the per-trajectory masks are built only once something has.
    Gradients are not copied: they are set to None before each backward, which makes a fresh tensor that
    no optimiser here writes to (tests/engine/test_landscape.py checks every registered one), and this
    loop replaces, never edits, a gradient it changes. Gradient evaluations are counted in a read-only
    block shared by the frames, unless L-BFGS's line search makes the counts irregular.
    """
    cfg.validate()
    fn = resolve_function(cfg)
    fparams = resolve_params(fn.params, cfg.function_params, f"function {fn.name}")
    starts = torch.from_numpy(start_points(cfg, fn))
    n = starts.shape[0]
    gen = torch.Generator().manual_seed(cfg.seed)
    bound = explode_bound(fn.domain)

    data = data_objective_of(fn)
    problem = data.problem(fparams) if data is not None and cfg.batch_size else None
    # Its own generator, so that adding mini-batches leaves the gradient-noise stream as it was.
    batches = problem.batches(cfg.batch_size, cfg.seed) if problem is not None else None
    on_batch = [problem is not None and step_uses_minibatch(oc.name, cfg.batch_size) for oc in cfg.optimizers]

    leaves, opts, scheds, noise, metric_driven = [], [], [], [], []
    single = len(cfg.optimizers) == 1
    for i, oc in enumerate(cfg.optimizers):
        spec = OPTIMIZERS.get(oc.name)
        values = spec.resolve(oc.params)
        # A single optimiser's parameter is (1, N, 2): its gradient and loss come out in the frames' (K, N, ...)
        # layout with no reshaping per step (elementwise optimisers, and L-BFGS, take any shape).
        leaf = (starts[None] if single else starts).clone().requires_grad_(True)
        opt = spec.build([leaf], values)
        leaves.append(leaf)
        opts.append(opt)
        # A constant rate with no warmup gets no torch scheduler: it would change nothing, but its wrapper
        # around optimizer.step() costs microseconds a step, as much as a small cloud's arithmetic.
        if is_constant(oc.schedule):
            check_schedule(oc.schedule, cfg.steps)
            scheds.append(None)
        else:
            scheds.append(make_schedule(opt, oc.schedule, cfg.steps))
        metric_driven.append(SCHEDULES.get(oc.schedule.name).needs_metric)
        # On a mini-batch the batch itself is the noise, so the synthetic noise is off.
        noise.append(float(values.get("noise", 0.0)) if oc.name == "sgd" and not on_batch[i] else 0.0)
    k_opts = len(leaves)
    lbfgs = [isinstance(opt, torch.optim.LBFGS) for opt in opts]
    noisy = any(v > 0 for v in noise)
    scheduled = any(s is not None for s in scheds)
    cycles = [bool(oc.schedule.params.get("cycle_momentum")) for oc in cfg.optimizers]
    diverged_at = np.full((k_opts, n), -1, dtype=np.int64)  # replaced, never mutated: frames share it
    any_dead = False
    last_good = np.repeat(starts.numpy()[None], k_opts, axis=0)  # (K, N, 2) numpy, replaced not mutated
    evals = np.zeros(k_opts, dtype=np.int64)  # counted step by step only with L-BFGS (closure calls)
    counted = any(lbfgs)
    evals_block, block_at = _evals_block(k_opts, 0), 0
    lr = np.array([opt.param_groups[0]["lr"] for opt in opts], dtype=np.float64)
    lr.flags.writeable = False  # shared by every frame while no schedule changes it
    bound_sq = bound * bound
    leaf_np = leaves[0].detach().numpy()  # single: a (1, N, 2) view; torch.optim updates the parameter in place
    f = fn.fn  # parameters are resolved once above, not again on every call
    t0 = time.perf_counter()

    for step in range(cfg.steps + 1):
        for leaf in leaves:
            # What optimizer.zero_grad() does for these parameters, without its profiler and compiler wrappers,
            # which cost a small cloud's step more than its arithmetic (~15 us of ~170 us for Adam on one point).
            leaf.grad = None
        stacked = leaves[0] if single else torch.stack(leaves)
        loss = f(stacked[..., 0], stacked[..., 1], fparams)
        # Non-finite rows do not poison the others through the sum: each row's gradient is its own.
        if batches is None:
            total = loss.sum()
            total.backward()
        else:  # every optimiser on a batch sees the same one, as runs sharing a seeded DataLoader would
            idx = next(batches)
            total = loss.detach().sum()
            sum(problem.batch_loss(leaf, idx).sum() if on_batch[i] else (loss if single else loss[i]).sum()
                for i, leaf in enumerate(leaves)).backward()
        if counted:
            evals += 1
            evals_now = evals.copy()
        else:
            if step - block_at >= _EVALS_BLOCK:
                block_at = step
                evals_block = _evals_block(k_opts, step)
            evals_now = evals_block[step - block_at]
        if noisy:
            with torch.no_grad():
                for i, leaf in enumerate(leaves):
                    if noise[i] > 0:  # the fresh gradient of this step, before any frame holds it
                        leaf.grad.add_(torch.randn(leaf.shape, generator=gen, dtype=leaf.dtype) * noise[i])
        if single:  # numpy: cheaper than torch for the few numbers of one trajectory
            xy, grad_np = leaf_np.copy(), leaves[0].grad.numpy()
            loss_np = loss.detach().numpy()
        else:  # torch.stack copies already
            xy, grad_np = stacked.detach().numpy(), torch.stack([leaf.grad for leaf in leaves]).numpy()
            loss_np = loss.detach().numpy()
        # xy . xy bounds every coordinate (and is NaN or inf if one is not finite); given finite positions,
        # grad . xy is finite unless a gradient is not (inf * 0 is NaN too). Either may also overflow while
        # every value is finite: then the exact check below runs and finds nothing.
        # (numpy's vdot is BLAS: quicker than torch.dot on one thread, at every size measured)
        healthy = math.isfinite(total.item() + float(np.vdot(grad_np, xy))) and float(np.vdot(xy, xy)) <= bound_sq
        if any_dead or not healthy:
            finite = (np.isfinite(loss_np) & np.isfinite(grad_np).all(-1) & np.isfinite(xy).all(-1)
                      & (np.abs(xy) <= bound).all(-1))
            fresh = ~finite & (diverged_at < 0)
            if fresh.any():
                diverged_at = diverged_at.copy()
                diverged_at[fresh] = step
                any_dead = True
            if any_dead:
                alive_np = diverged_at < 0
                last_good = np.where(alive_np[..., None], xy, last_good)
                xy = last_good.copy()
                loss_np = np.where(alive_np, loss_np, np.nan)
                grad_np = np.where(alive_np[..., None], grad_np, np.nan)
            else:  # a false alarm: a sum overflowed although every value is finite and in bounds
                last_good = xy
        else:
            last_good = xy  # shares the frame's copy; never written in place
        if scheduled:
            lr = np.array([opt.param_groups[0]["lr"] for opt in opts], dtype=np.float64)

        yield LandscapeFrame(
            step=step, xy=xy, loss=loss_np, grad=grad_np, lr=lr, diverged_at=diverged_at, evals=evals_now,
            state=tuple(_state_copy(o, l) for o, l in zip(opts, leaves)) if with_state else (),
            schedule_state=(tuple(s.describe_state() if s is not None else {"step": step} for s in scheds)
                            if with_state else ()),
            elapsed=time.perf_counter() - t0,
            hyper=tuple(_live_hyper(o) if c else {} for o, c in zip(opts, cycles)) if with_state else (),
        )
        if step == cfg.steps:
            return
        alive = torch.from_numpy(diverged_at < 0) if any_dead else None

        for i, leaf in enumerate(leaves):
            opt = opts[i]
            dead = None if alive is None else ~alive[i]
            if dead is not None and dead.any():
                # replaced, not edited in place: the frame just yielded holds this gradient
                leaf.grad = leaf.grad.masked_fill(dead.view(leaf.shape[:-1])[..., None], 0.0)
            else:
                dead = None
            if lbfgs[i]:
                def closure(leaf=leaf, opt=opt, i=i):
                    opt.zero_grad()
                    value = f(leaf[..., 0], leaf[..., 1], fparams).sum()
                    value.backward()
                    evals[i] += 1
                    return value
                evals[i] -= 1  # the closure's first call re-evaluates the point already counted
                opt.step(closure)
            else:
                opt.step()
            if dead is not None:
                with torch.no_grad():
                    leaf.view(-1, 2)[dead] = torch.from_numpy(last_good[i])[dead]
            if scheds[i] is None:
                continue
            if metric_driven[i]:
                alive_loss = loss_np[i] if alive is None else loss_np[i][alive[i].numpy()]
                scheds[i].step(float(alive_loss.mean()) if alive_loss.size else float("nan"))
            else:
                scheds[i].step()
