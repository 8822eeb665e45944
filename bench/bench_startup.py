"""Time from launch to the window's first paint, beside the time to import torch alone, in one run.

    python bench/bench_startup.py [--runs 5]

Each launch is a fresh process (`python main.py` with OPTISCOPE_STARTUP_PROBE=1, which prints when the
window first paints and quits). Offscreen unless a display is set. Prints medians and the ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def time_to_line(cmd: list[str], marker: str | None, env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if marker is None:
        proc.wait()
        return time.perf_counter() - t0
    for line in proc.stdout:
        if line.startswith(marker):
            elapsed = time.perf_counter() - t0
            break
    else:
        raise RuntimeError(f"{cmd} ended without printing {marker!r}")
    proc.wait(timeout=120)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "OPTISCOPE_STARTUP_PROBE": "1"}
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    paint, torch_import = [], []
    time_to_line([sys.executable, "-c", "import torch"], None, env)  # warm the file cache for both
    for _ in range(args.runs):  # interleaved, so drift in the machine's speed hits both alike
        paint.append(time_to_line([sys.executable, "main.py"], "first-paint", env))
        torch_import.append(time_to_line([sys.executable, "-c", "import torch"], None, env))
    p, t = statistics.median(paint), statistics.median(torch_import)
    print(f"launch to first paint: median {p:.2f} s over {args.runs} launches (min {min(paint):.2f}, max {max(paint):.2f})")
    print(f"python -c 'import torch': median {t:.2f} s (min {min(torch_import):.2f}, max {max(torch_import):.2f})")
    print(f"first paint / torch import: {p / t:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
