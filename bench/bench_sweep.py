"""Sweep speed and the race's stepping throughput against a bare torch.optim loop.

    python bench/bench_sweep.py [--threads N] [--repeats R]

1. A 64 x 64 sweep of 500 steps of Adam on Rosenbrock (target: at most 5 s on a 2-core machine).
2. Particle-steps per second of ``run_landscape`` against a bare ``zero_grad / f(P).sum().backward() /
   step`` loop of the same torch optimiser on the same (N, 2) float64 tensor and function, measured
   side by side (interleaved repeats, best of each), as engine / bare (target: at least 0.9). Both run
   on this thread with one torch thread, so each is timed by the thread's CPU clock
   (``time.thread_time``): on a shared machine, wall time would also count the moments another process
   held the core, which land on either side by chance.

Threads default to the GUI's setting (all cores but one), since that is what the app runs with.
"""
from __future__ import annotations

import argparse
import os
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


def engine_seconds(cfg: LandscapeConfig, with_state: bool) -> float:
    t = time.thread_time()
    for _ in run_landscape(cfg, with_state=with_state):
        pass
    return time.thread_time() - t


def bare_seconds(cfg: LandscapeConfig) -> float:
    """The loop a user would write: one torch optimiser, f(P).sum() and backward, nothing else."""
    fn = resolve_function(cfg)
    params = fn.resolve(cfg.function_params)
    f = fn.fn  # the plain torch formula, as the engine calls it
    oc = cfg.optimizers[0]
    t = time.thread_time()
    leaf = torch.from_numpy(start_points(cfg, fn)).requires_grad_(True)
    opt = OPTIMIZERS.get(oc.name).build([leaf], oc.params)
    for _ in range(cfg.steps):
        opt.zero_grad()
        f(leaf[:, 0], leaf[:, 1], params).sum().backward()
        opt.step()
    return time.thread_time() - t


def bench_throughput(repeats: int) -> None:
    print("throughput: run_landscape vs a bare torch.optim loop, Adam on Rosenbrock, float64 (N, 2) tensors")
    print(f"{'N':>8} {'steps':>6} {'bare Mps/s':>11} {'engine Mps/s':>13} {'ratio':>6} {'+state ratio':>13}")
    for n, steps in ((1, 2000), (100, 2000), (1_000, 1000), (10_000, 300), (100_000, 60)):
        cfg = LandscapeConfig(function="rosenbrock", starts=StartsConfig("random" if n > 1 else "point", n),
                              steps=steps, optimizers=(OptimizerConfig("adam", {"lr": 0.01}),))
        bare = engine = engine_state = float("inf")
        for _ in range(repeats):  # interleaved, so that a busy moment on the machine hits both
            bare = min(bare, bare_seconds(cfg))
            engine = min(engine, engine_seconds(cfg, with_state=False))
            engine_state = min(engine_state, engine_seconds(cfg, with_state=True))
        rate = n * steps / 1e6
        print(f"{n:>8} {steps:>6} {rate / bare:>11.3f} {rate / engine:>13.3f} {bare / engine:>6.2f} "
              f"{bare / engine_state:>13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s)")
    get_function("rosenbrock")  # warm: the first optimizer step of a process pays one-off setup
    run_sweep(SweepConfig(x=SweepAxis("lr", 1e-3, 1e-2, 2), y=SweepAxis("beta1", 0.5, 0.9, 2), steps=5))
    engine_seconds(LandscapeConfig(steps=5), with_state=True)
    bench_sweep(args.repeats)
    bench_throughput(args.repeats)


if __name__ == "__main__":
    main()
