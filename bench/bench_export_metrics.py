"""How long File > Export metrics takes for a long 2D race: 100,000 steps x 8 optimisers, read back from
the race's on-disk history (RaceHistory), as CSV and as JSON (targets: CSV <= 2 s, JSON <= 3 s).

    python bench/bench_export_metrics.py [--steps 100000] [--optimizers 8] [--repeat 3]

Prints the seconds of each export (best and all runs) and the file sizes. The numbers are random, with
full 17-digit floats, so the figures are those of real runs (short decimal numbers format faster).
Run it on an otherwise idle machine: other processes sharing the cores inflate every figure.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_history(k: int, steps: int):
    import numpy as np

    from engine.landscape import LandscapeFrame
    from gui.race_history import RaceHistory
    h = RaceHistory(k, 1)
    rng = np.random.default_rng(0)
    frames = [LandscapeFrame(step=t, xy=rng.normal(size=(k, 1, 2)), loss=rng.random((k, 1)),
                             grad=rng.normal(size=(k, 1, 2)), lr=np.full(k, 0.01), diverged_at=np.full((k, 1), -1),
                             evals=np.full(k, t)) for t in range(1000)]
    for b in range(0, steps, 1000):
        h.add([LandscapeFrame(step=b + i, xy=f.xy, loss=f.loss, grad=f.grad, lr=f.lr, diverged_at=f.diverged_at,
                              evals=f.evals) for i, f in enumerate(frames[:steps - b])])
    return h


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--optimizers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from gui.export import export_landscape_metrics
    h = build_history(args.optimizers, args.steps)
    labels = [f"o{i}" for i in range(args.optimizers)]
    with tempfile.TemporaryDirectory(prefix="optiscope-bench-") as folder:
        for suffix in ("csv", "json"):
            path = Path(folder) / f"metrics.{suffix}"
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                export_landscape_metrics(h, labels, path)
                times.append(time.perf_counter() - t)
            print(f"{suffix}: {min(times):.2f} s best of {args.repeat} ({', '.join(f'{x:.2f}' for x in times)}); "
                  f"{args.steps:,} steps x {args.optimizers}, {path.stat().st_size / 1e6:.0f} MB")
    h.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
