"""Sweep speed and the race's stepping throughput against a bare torch.optim loop.

    python bench/bench_sweep.py [--threads N] [--repeats R]

1. A 64 x 64 sweep of 500 steps of Adam on Rosenbrock (target: at most 5 s on a 2-core machine).
2. Particle-steps per second of ``run_landscape`` against a bare ``zero_grad / f(P).sum().backward() /
   step`` loop of the same torch optimiser on the same (N, 2) float64 tensor and function, measured
   side by side (stepped alternately, one step each; median of the rounds), as engine / bare (target:
   at least 0.9), without and with the optimiser-state copies the state panel reads. Both run
   on this thread with one torch thread, so each is timed by the thread's CPU clock
   (``time.thread_time``): on a shared machine, wall time would also count the moments another process
   held the core, which land on either side by chance.

Threads default to the GUI's setting (all cores but one), since that is what the app runs with.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.config import OptimizerConfig  # noqa: E402
from engine.functions import get_function  # noqa: E402
from engine.landscape import LandscapeConfig, StartsConfig, resolve_function, run_landscape, start_points  # noqa: E402
from engine.optimizers import OPTIMIZERS  # noqa: E402
from engine.sweep import SweepAxis, SweepConfig, run_sweep  # noqa: E402


def bench_sweep(repeats: int) -> float:
    cfg = SweepConfig(function="rosenbrock", optimizer="adam", x=SweepAxis("lr", 1e-4, 1.0, 64),
                      y=SweepAxis("beta1", 0.0, 0.99, 64), steps=500)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        result = run_sweep(cfg)
        best = min(best, time.perf_counter() - t)
    cells = result.final_loss.size
    print(f"sweep: 64 x 64 cells x 500 steps of Adam on Rosenbrock: {best:.3f} s (best of {repeats}; target <= 5 s); "
          f"{cells * 500 / best / 1e6:.2f} M cell-steps/s")
    return best


def bare_steps(cfg: LandscapeConfig, zero_grad: bool = True):
    """The loop a user would write: one torch optimiser, zero_grad, f(P).sum().backward(), step; nothing else.
    A generator, so that the bench can step it in turn with the engine (one step each, alternately).
    ``zero_grad=False`` clears the gradient as the engine does (``leaf.grad = None``, what zero_grad does
    without its profiler and compiler wrappers), to show what the engine's recording itself costs."""
    fn = resolve_function(cfg)
    params = fn.resolve(cfg.function_params)
    f = fn.fn  # the plain torch formula, as the engine calls it
    oc = cfg.optimizers[0]
    leaf = torch.from_numpy(start_points(cfg, fn)).requires_grad_(True)
    opt = OPTIMIZERS.get(oc.name).build([leaf], oc.params)
    for _ in range(cfg.steps + 1):  # as many gradients as the engine takes (it also scores its last point)
        if zero_grad:
            opt.zero_grad()
        else:
            leaf.grad = None
        f(leaf[:, 0], leaf[:, 1], params).sum().backward()
        opt.step()
        yield


def side_by_side(cfg: LandscapeConfig, with_state: bool) -> tuple[float, float, float]:
    """CPU seconds of the bare loop, of the bare loop clearing gradients as the engine does, and of
    ``run_landscape``, stepped in turn one step each, so that whatever else the machine is doing at a
    given moment lands on all three."""
    clock = time.thread_time
    loops = (bare_steps(cfg), bare_steps(cfg, zero_grad=False), run_landscape(cfg, with_state=with_state))
    seconds = [0.0, 0.0, 0.0]
    for _ in range(cfg.steps + 1):
        for i, loop in enumerate(loops):
            t0 = clock()
            next(loop)
            seconds[i] += clock() - t0
    return seconds[0], seconds[1], seconds[2]


def bench_throughput(repeats: int) -> None:
    print("throughput: run_landscape vs a bare torch.optim loop, Adam on Rosenbrock, float64 (N, 2) tensors,")
    print(f"stepped alternately one step each; median of {repeats} rounds")
    print("ratio: engine / bare; 'vs grad=None': against the bare loop clearing gradients as the engine does")
    print(f"{'N':>8} {'steps':>6} {'bare Mps/s':>11} {'engine Mps/s':>13} {'ratio':>6} {'+state ratio':>13} "
          f"{'vs grad=None':>13}")
    for n, steps in ((1, 2000), (100, 2000), (1_000, 1000), (10_000, 300), (100_000, 60)):
        cfg = LandscapeConfig(function="rosenbrock", starts=StartsConfig("random" if n > 1 else "point", n),
                              steps=steps, optimizers=(OptimizerConfig("adam", {"lr": 0.01}),))
        plain = [side_by_side(cfg, with_state=False) for _ in range(repeats)]
        state = [side_by_side(cfg, with_state=True) for _ in range(repeats)]
        bare = statistics.median(b for b, _, _ in plain)
        engine = statistics.median(e for _, _, e in plain)
        rate = n * (steps + 1) / 1e6
        print(f"{n:>8} {steps:>6} {rate / bare:>11.3f} {rate / engine:>13.3f} "
              f"{statistics.median(b / e for b, _, e in plain):>6.2f} "
              f"{statistics.median(b / e for b, _, e in state):>13.2f} "
              f"{statistics.median(c / e for _, c, e in plain):>13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s)")
    get_function("rosenbrock")  # warm: the first optimizer step of a process pays one-off setup
    run_sweep(SweepConfig(x=SweepAxis("lr", 1e-3, 1e-2, 2), y=SweepAxis("beta1", 0.5, 0.9, 2), steps=5))
    side_by_side(LandscapeConfig(steps=5), with_state=True)
    bench_sweep(args.repeats)
    bench_throughput(args.repeats)


if __name__ == "__main__":
    main()
