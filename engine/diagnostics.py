"""Convergence diagnostics per trajectory over a stream of LandscapeFrames, and the results table.

Each (optimiser, trajectory) has a status and the step it began:

* ``diverged``: the engine marked it (``frame.diverged_at``: a non-finite loss, gradient or point, or a
  coordinate exploded past ``landscape.EXPLODE_WIDTHS`` domain widths). Final; its step is the engine's.
* ``converged``: for ``window`` consecutive steps, the gradient norm was under ``grad_tol`` or the loss
  changed by less than ``loss_tol`` per step, while within ``near_tol`` of a known minimum. When the
  minima are unknown (``minima=None``, e.g. a typed-in function) only the gradient test counts.
  Final (so "steps to converge" is a first-hitting time); its step is the first of that run of steps.
* ``oscillating``: along some axis, the update changed sign in at least ``flip_fraction`` of the last
  ``window`` steps, counting only steps where that axis carried at least ``flip_share`` of the update's
  length (so a zig-zag that has died down to nothing beside the motion along the valley is not one),
  and the updates along it are anti-correlated step to step (lag-1 correlation, weighted over about two
  windows, at most ``-coherence``): a real bounce, not the jitter of SGD's noise near a minimum.
  Its step is the first sign flip, on such an axis, still in the window that showed it.
* ``stalled``: for ``window`` consecutive steps the loss changed by less than ``loss_tol`` (or the
  gradient vanished) but not near a known minimum: a plateau, or a saddle point. With unknown minima:
  loss change tiny while the gradient is not. Its step is the first of that run.
* ``running``: none of these. Oscillating, stalled and running change back and forth as the run goes on.

Default tolerances, all parameters: ``grad_tol=1e-6`` (gradient norm), ``loss_tol=1e-9`` (absolute
loss change per step), ``near_tol=1e-3`` (distance to a minimum), ``window=20`` steps,
``flip_fraction=0.75``, ``flip_share=0.25``, ``coherence=0.7``. They are absolute because the built-in functions have
O(1) domains and minima at 0 or O(10) values; the loose end is deliberate: a status is claimed
only when it is plain, and "running" is the honest answer otherwise.

Memory is O(window * K * N) booleans for the flip history, O(K * N) for everything else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

STATUSES = ("running", "converged", "diverged", "oscillating", "stalled")
RUNNING, CONVERGED, DIVERGED, OSCILLATING, STALLED = range(len(STATUSES))


def distance_to_nearest_minimum(xy: np.ndarray, minima: Sequence[Sequence[float]] | None) -> np.ndarray:
    """Euclidean distance from each point of ``xy`` (..., 2) to the nearest of ``minima``; NaN when none are known."""
    xy = np.asarray(xy, dtype=np.float64)
    if not minima:
        return np.full(xy.shape[:-1], np.nan)
    # One minimum at a time: no (..., M, 2) temporary, which for a cloud of 100,000 starts is tens of MB a frame.
    x, y = xy[..., 0], xy[..., 1]
    best = None
    for mx, my in np.asarray(minima, dtype=np.float64).reshape(-1, 2):
        d2 = (x - mx) ** 2 + (y - my) ** 2
        best = d2 if best is None else np.fmin(best, d2)
    return np.sqrt(best)


@dataclass(frozen=True)
class StatusReport:
    """Statuses as arrays (K optimisers, N trajectories): ``code`` indexes STATUSES.

    ``step`` is the step the status began (see the module notes); ``decided`` the step of the frame
    that established it (later than ``step`` for the windowed statuses).
    """

    code: np.ndarray  # (K, N) int8
    step: np.ndarray  # (K, N) int64
    decided: np.ndarray  # (K, N) int64

    def get(self, i: int, n: int) -> tuple[str, int]:
        return STATUSES[int(self.code[i, n])], int(self.step[i, n])

    def names(self) -> np.ndarray:
        """(K, N) array of status names."""
        return np.asarray(STATUSES, dtype=object)[self.code]

    def counts(self, i: int) -> dict[str, int]:
        """How many of optimiser i's trajectories are in each status."""
        c = np.bincount(self.code[i].astype(np.int64), minlength=len(STATUSES))
        return {name: int(c[j]) for j, name in enumerate(STATUSES)}


class ConvergenceTracker:
    """Feed it every frame of a run, in order; ask ``status()`` at any time.

    ``minima``: the known minima, a possibly empty sequence (the saddle: known to have none, so every
    stop there is a stall), or None when unknown. See the module notes for the rules and defaults.
    """

    def __init__(self, k: int, n: int, grad_tol: float = 1e-6, loss_tol: float = 1e-9, window: int = 20,
                 minima: Sequence[Sequence[float]] | None = None, near_tol: float = 1e-3,
                 flip_fraction: float = 0.75, flip_share: float = 0.25, coherence: float = 0.7):
        if k < 1 or n < 1:
            raise ValueError(f"need at least one optimiser and one trajectory, got k={k}, n={n}")
        if window < 1:
            raise ValueError(f"window must be at least 1 step, got {window}")
        for label, value in (("grad_tol", grad_tol), ("loss_tol", loss_tol), ("near_tol", near_tol)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{label} must be a finite number >= 0, got {value}")
        if not 0 < flip_fraction <= 1:
            raise ValueError(f"flip_fraction must be in (0, 1], got {flip_fraction}")
        if not 0 <= flip_share <= 1:
            raise ValueError(f"flip_share must be in [0, 1], got {flip_share}")
        if not 0 <= coherence <= 1:
            raise ValueError(f"coherence must be in [0, 1], got {coherence}")
        self.k, self.n = k, n
        self.grad_tol, self.loss_tol, self.near_tol = float(grad_tol), float(loss_tol), float(near_tol)
        self.window = int(window)
        self.minima = None if minima is None else tuple(tuple(map(float, m)) for m in minima)
        self.flip_fraction, self.flip_share, self.coherence = float(flip_fraction), float(flip_share), float(coherence)
        self._flips_needed = max(1, math.ceil(self.flip_fraction * self.window))

        shape = (k, n)
        self.code = np.full(shape, RUNNING, dtype=np.int8)
        self.since = np.zeros(shape, dtype=np.int64)
        self.decided = np.zeros(shape, dtype=np.int64)
        self.steps_to_tolerance = np.full(shape, -1, dtype=np.int64)  # first step within tolerance
        self.last_loss = np.full(shape, np.nan)  # last finite loss, for trajectories that later diverged
        self.last_step: int | None = None
        self._conv_streak = np.zeros(shape, dtype=np.int64)
        self._stall_streak = np.zeros(shape, dtype=np.int64)
        self._prev_xy: np.ndarray | None = None
        self._prev_loss: np.ndarray | None = None
        self._prev_delta: np.ndarray | None = None
        self._flips = np.zeros((self.window, k, n, 2), dtype=bool)  # ring buffer of per-axis sign flips
        self._flip_count = np.zeros((k, n, 2), dtype=np.int64)
        self._flip_steps = np.full(self.window, np.iinfo(np.int64).max, dtype=np.int64)  # step of each slot
        self._ring = 0
        # Sums of d_k * d_{k-1} and d_k^2 per axis, exponentially weighted over ~2 windows (steadier against
        # noise): their ratio is the lag-1 correlation of the updates, near -1 for a bounce, above -0.5 for noise.
        self._cross = np.zeros((k, n, 2))
        self._square = np.zeros((k, n, 2))

    @classmethod
    def for_run(cls, cfg: Any, **tolerances: Any) -> "ConvergenceTracker":
        """A tracker sized for a LandscapeConfig, with its function's minima (unknown for custom functions)."""
        from .landscape import resolve_function, start_points

        fn = resolve_function(cfg)
        minima = None if cfg.function == "custom" else fn.minima_for(cfg.function_params)
        n = len(start_points(cfg, fn))
        return cls(len(cfg.optimizers), n, minima=minima, **tolerances)

    def update(self, frame: Any) -> None:
        """Take the next frame (``step`` one more than the last one's)."""
        step = int(frame.step)
        if self.last_step is not None and step != self.last_step + 1:
            raise ValueError(f"frames must come in order, one step at a time: got step {step} "
                             f"after step {self.last_step}")
        xy = np.asarray(frame.xy, dtype=np.float64)
        loss = np.asarray(frame.loss, dtype=np.float64)
        if xy.shape[:2] != (self.k, self.n):
            raise ValueError(f"frame has shape {xy.shape[:2]}, tracker expects {(self.k, self.n)}")
        dead = np.asarray(frame.diverged_at) >= 0
        grad = np.asarray(frame.grad, dtype=np.float64)
        gnorm = np.sqrt(grad[..., 0] ** 2 + grad[..., 1] ** 2)  # as np.linalg.norm, without its temporaries

        with np.errstate(invalid="ignore"):
            small_grad = gnorm < self.grad_tol  # NaN (diverged) compares False
            if self.minima:
                near = distance_to_nearest_minimum(xy, self.minima) <= self.near_tol
            else:
                near = np.zeros_like(small_grad)
            if self._prev_loss is None:
                flat = np.zeros_like(small_grad)
            else:
                flat = np.abs(loss - self._prev_loss) < self.loss_tol
        finite = np.isfinite(loss)
        self.last_loss = np.where(finite, loss, self.last_loss)

        reached = (small_grad | near) & ~dead & (self.steps_to_tolerance < 0)
        self.steps_to_tolerance[reached] = step

        still = small_grad | flat
        if self.minima is None:  # unknown minima: only a vanishing gradient says "converged"
            conv_now, stall_now = small_grad, flat & ~small_grad
        else:
            conv_now, stall_now = near & still, ~near & still
        self._conv_streak = np.where(conv_now & ~dead, self._conv_streak + 1, 0)
        self._stall_streak = np.where(stall_now & ~dead, self._stall_streak + 1, 0)

        if self._prev_xy is not None:
            delta = xy - self._prev_xy
            if self._prev_delta is not None:
                self._record_flips(delta, step)
            self._prev_delta = delta
        with np.errstate(invalid="ignore", divide="ignore"):
            bouncing = self._cross <= -self.coherence * self._square
        flipping = (self._flip_count >= self._flips_needed) & bouncing  # (K, N, 2): per axis
        first_flip = self._first_flips(flipping)

        self._classify(step, dead, np.asarray(frame.diverged_at), flipping.any(axis=-1), first_flip)
        self._prev_xy, self._prev_loss, self.last_step = xy, loss, step

    def _first_flips(self, flipping: np.ndarray) -> np.ndarray:
        """(K, N): when each oscillation began, the first flip still in the window on an axis that qualifies
        (the int64 maximum where none does). Only the qualifying axes are looked at: usually a few, and the
        whole window of a big cloud would be a (window, K, N, 2) temporary every frame."""
        never = np.iinfo(np.int64).max
        first = np.full(flipping.shape[:2], never, dtype=np.int64)
        ks, ns, axes = np.nonzero(flipping)
        if ks.size:
            slots = self._flips[:, ks, ns, axes]  # (window, P)
            steps = np.where(slots, self._flip_steps[:, None], never).min(axis=0)
            np.minimum.at(first, (ks, ns), steps)
        return first

    def _record_flips(self, delta: np.ndarray, step: int) -> None:
        length = np.sqrt(delta[..., 0] ** 2 + delta[..., 1] ** 2)[..., None]  # np.linalg.norm, fewer temporaries
        significant = (np.abs(delta) >= self.flip_share * length) & (length > 0)
        flip = (np.sign(delta) * np.sign(self._prev_delta) < 0) & significant
        self._flip_count -= self._flips[self._ring]
        self._flips[self._ring] = flip
        self._flip_count += flip
        self._flip_steps[self._ring] = step
        self._ring = (self._ring + 1) % self.window
        decay = 1.0 - 1.0 / (2 * self.window)
        # In place, in the same order of operations as decay * s + (1 - decay) * d * p: a big cloud's
        # (K, N, 2) arrays are tens of MB, and this runs every step.
        for total, other in ((self._cross, self._prev_delta), (self._square, delta)):
            term = (1 - decay) * delta
            term *= other
            total *= decay
            total += term

    def _classify(self, step: int, dead: np.ndarray, diverged_at: np.ndarray, oscillating: np.ndarray,
                  first_flip: np.ndarray) -> None:
        w = self.window
        new = np.full_like(self.code, RUNNING)
        start = np.full_like(self.since, step)
        stalled = self._stall_streak >= w
        new[stalled] = STALLED
        start[stalled] = step - self._stall_streak[stalled] + 1
        # Oscillation outranks a stall: a bounce that keeps the loss level is not a plateau.
        new[oscillating] = OSCILLATING
        start[oscillating] = first_flip[oscillating]
        converged = self._conv_streak >= w
        new[converged] = CONVERGED
        start[converged] = step - self._conv_streak[converged] + 1
        new[dead] = DIVERGED
        start[dead] = diverged_at[dead]

        final = ((self.code == CONVERGED) & ~dead) | (self.code == DIVERGED)
        new = np.where(final, self.code, new)
        changed = new != self.code
        self.since = np.where(changed, start, self.since)
        self.decided = np.where(changed, step, self.decided)
        self.code = new

    def status(self) -> StatusReport:
        return StatusReport(self.code.copy(), self.since.copy(), self.decided.copy())


def _per_optimizer(value: float | Sequence[float] | None, k: int, default: float) -> list[float]:
    if value is None:
        return [float(default)] * k
    if isinstance(value, (int, float)):
        return [float(value)] * k
    values = [float(v) for v in value]
    if len(values) != k:
        raise ValueError(f"expected {k} wall times, one per optimiser, got {len(values)}")
    return values


def results_table(tracker: ConvergenceTracker, last_frame: Any, labels: Sequence[str],
                  elapsed: float | Sequence[float] | None = None) -> list[dict[str, Any]]:
    """One row per (optimiser, trajectory): status, the step it began, steps to tolerance, final loss,
    distance to the nearest known minimum, gradient evaluations and wall time.

    ``elapsed``: seconds, one for all or one per optimiser; default ``last_frame.elapsed`` (the
    engine steps every optimiser in one loop, so the run's time is shared). ``final_loss`` is the last
    finite loss (a diverged trajectory's from before it diverged); ``steps_to_tolerance`` and
    ``distance_to_minimum`` are None where not reached or not known.
    """
    if len(labels) != tracker.k:
        raise ValueError(f"expected {tracker.k} labels, got {len(labels)}")
    report = tracker.status()
    wall = _per_optimizer(elapsed, tracker.k, getattr(last_frame, "elapsed", 0.0))
    dist = distance_to_nearest_minimum(np.asarray(last_frame.xy), tracker.minima)
    rows = []
    for i, label in enumerate(labels):
        for n in range(tracker.n):
            name, since = report.get(i, n)
            reached = int(tracker.steps_to_tolerance[i, n])
            d = float(dist[i, n])
            rows.append({
                "optimizer": label, "index": i, "trajectory": n,
                "status": name, "status_step": since,
                "steps_to_tolerance": reached if reached >= 0 else None,
                "final_loss": float(tracker.last_loss[i, n]),
                "distance_to_minimum": d if math.isfinite(d) else None,
                "grad_evals": int(np.asarray(last_frame.evals)[i]),
                "wall_time": wall[i],
            })
    return rows


def summary_table(tracker: ConvergenceTracker, last_frame: Any, labels: Sequence[str],
                  elapsed: float | Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Per optimiser, for clouds of starts: status counts, median steps to tolerance (of those that
    reached it), median and best final loss, gradient evaluations and wall time.

    Computed on the tracker's arrays, not from ``results_table``'s rows: a cloud of 100,000 starts per
    optimiser makes hundreds of thousands of rows, and the window refreshes its table ten times a second.
    """
    if len(labels) != tracker.k:
        raise ValueError(f"expected {tracker.k} labels, got {len(labels)}")
    wall = _per_optimizer(elapsed, tracker.k, getattr(last_frame, "elapsed", 0.0))
    evals = np.asarray(last_frame.evals)
    out = []
    for i, label in enumerate(labels):
        counts = np.bincount(tracker.code[i].astype(np.int64), minlength=len(STATUSES))
        steps = tracker.steps_to_tolerance[i]
        steps = steps[steps >= 0]
        losses = tracker.last_loss[i]
        losses = losses[np.isfinite(losses)]
        out.append({"optimizer": label, "index": i, "trajectories": tracker.n,
                    **{name: int(counts[j]) for j, name in enumerate(STATUSES)},
                    "grad_evals": int(evals[i]), "wall_time": wall[i],
                    "median_steps_to_tolerance": float(np.median(steps)) if steps.size else None,
                    "median_final_loss": float(np.median(losses)) if losses.size else None,
                    "best_final_loss": float(np.min(losses)) if losses.size else None})
    return out
