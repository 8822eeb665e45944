"""Memory of the 2D race's history over a long run: flat in the number of steps, drawing cost flat too.

    python bench/bench_memory.py [--steps 1000000] [--batch 100] [--k 8]

Feeds a RaceHistory (K optimisers, one start point) synthetic LandscapeFrames in batches of ``--batch``
steps, as the panel's timer does, and after each batch asks for what ``redraw`` draws: every optimiser's
path and its loss, gradient-norm and rate curves. Prints the process's resident set (VmRSS) and the
history's own in-RAM bytes (``nbytes``) at 0, 1/4, 1/2, 3/4 and all of the steps, the milliseconds of
path + curve calls per frame near step 1,000 and near the end, and finally reads the whole run back the
way an export does, to show it was kept whole. No Qt.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.landscape import LandscapeFrame  # noqa: E402
from gui.race_history import SERIES, RaceHistory  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def frames(rng, t0: int, size: int, k: int, pos: np.ndarray) -> tuple[list[LandscapeFrame], np.ndarray]:
    """``size`` frames from step t0: a random walk from ``pos``; arrays made per batch, so cheap."""
    xy = pos + np.cumsum(rng.normal(scale=1e-3, size=(size, k, 1, 2)), axis=0)
    loss = rng.lognormal(size=(size, k, 1))
    grad = rng.normal(size=(size, k, 1, 2))
    lr = np.full(k, 1e-3)
    diverged, evals = np.full((k, 1), -1), np.zeros(k)
    return [LandscapeFrame(step=t0 + i, xy=xy[i], loss=loss[i], grad=grad[i], lr=lr, diverged_at=diverged,
                           evals=evals) for i in range(size)], xy[-1]


def draw(h: RaceHistory) -> int:
    """What LandscapePanel.redraw asks of the history for K single-start trajectories; points drawn."""
    points = 0
    for j in range(h.k):
        points += len(h.path(j)[0])
        for name in SERIES:
            points += len(h.curve(name, j)[0])
    return points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100, help="steps per drawn frame")
    ap.add_argument("--k", type=int, default=8, help="optimisers")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    h = RaceHistory(args.k, 1)
    marks = sorted({0, args.steps // 4, args.steps // 2, 3 * args.steps // 4, args.steps})
    per_step = h._table.dtype.itemsize
    print(f"K={args.k}, one start point, {args.steps:,} steps in batches of {args.batch} "
          f"(a whole-run in-RAM history would grow by {per_step} B a step: "
          f"{per_step * args.steps / 2**20:,.0f} MiB at the end)")
    print(f"{'steps':>10} {'VmRSS MiB':>10} {'nbytes MiB':>11} {'drawn points':>13}")
    early, late = [], []  # ms of drawing per frame near step 1,000 and near the end
    pos = np.zeros((args.k, 1, 2))
    t = 0
    points = 0
    started = time.perf_counter()
    while True:
        if marks and t >= marks[0]:
            print(f"{t:>10,} {rss_mib():>10.1f} {h.nbytes() / 2**20:>11.2f} {points:>13,}", flush=True)
            marks.pop(0)
        if t >= args.steps:
            break
        batch, pos = frames(rng, t, min(args.batch, args.steps - t), args.k, pos)
        h.add(batch)
        t += len(batch)
        a = time.perf_counter()
        points = draw(h)
        ms = (time.perf_counter() - a) * 1e3
        if 500 < t <= 1_000:
            early.append(ms)
        if t > args.steps - 500:
            late.append(ms)
    fed = time.perf_counter() - started
    print(f"path + curve per frame ({args.k} paths, {3 * args.k} curves): "
          f"{np.mean(early):.2f} ms at ~1k steps ({len(early)} frames), "
          f"{np.mean(late):.2f} ms at ~{args.steps / 1e6:g}M steps ({len(late)} frames)")
    a = time.perf_counter()
    rows, last = 0, None
    for c in h.chunks():
        rows += len(c["steps"])
        last = c
    ok = rows == args.steps and int(last["steps"][-1]) == args.steps - 1
    print(f"read back for export: {rows:,} steps in {time.perf_counter() - a:.1f} s, whole: {ok}; "
          f"VmRSS after {rss_mib():.1f} MiB")
    h.close()
    print(f"fed and drew in {fed:.1f} s")


if __name__ == "__main__":
    main()
