"""How long exporting a clip takes: a 10 s, 720p, 30 fps MP4 of a 2D preset (target: at most 10 s).

    python bench/bench_export.py [--preset rosenbrock_adam_rmsprop_momentum] [--size 720p] [--gif]

Prints the wall time of the whole export (engine steps, drawing, painting, H.264 encoding, file
written), and beside it, measured in the same run, the engine alone for the same steps and the
encoder alone for the same number of frames, so the figure can be read against the machine's speed.
Run it on an otherwise idle machine: other processes sharing the cores inflate every figure.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="rosenbrock_adam_rmsprop_momentum")
    parser.add_argument("--size", default="720p")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--gif", action="store_true", help="also time a GIF of the same clip")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    import numpy as np

    from engine.landscape import run_landscape
    from engine.presets import get_preset
    from engine.render import VideoWriter, frame_steps, parse_size, probe_video
    from gui.recording import ensure_app, render_session

    session = get_preset(args.preset).session
    ensure_app()
    n_frames = int(round(args.seconds * args.fps))
    spf = session.display.steps_per_frame
    steps = int(frame_steps(session.landscape.steps, spf, n_frames)[-1])
    w, h = parse_size(args.size)
    out = Path(tempfile.mkdtemp(prefix="optiscope-bench-"))

    # Warm-up: first use of torch, Qt fonts and the encoder costs a second or two once per process.
    render_session(session, video=out / "warm.mp4", seconds=0.2, fps=args.fps, size=args.size)

    totals = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = render_session(session, video=out / "clip.mp4", seconds=args.seconds, fps=args.fps, size=args.size)
        totals.append(time.perf_counter() - t0)
    info = probe_video(result.video)

    t0 = time.perf_counter()
    for _ in run_landscape(_with_steps(session.landscape, steps), with_state=False):
        pass
    engine_s = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, size=(h, w, 4), dtype=np.uint8)
    t0 = time.perf_counter()
    with VideoWriter(out / "encode.mp4", w, h, args.fps, pixel_format="bgra") as vw:
        for _ in range(n_frames):
            vw.write(still)
    encode_s = time.perf_counter() - t0

    best = min(totals)
    print(f"preset {args.preset}: {n_frames} frames of {w}x{h} at {args.fps} fps, {spf} steps per frame "
          f"({steps} optimiser steps, {len(session.landscape.optimizers)} optimisers)")
    print(f"export (MP4, H.264): {best:.2f} s  ({best / n_frames * 1000:.1f} ms per frame)  "
          f"target <= {args.seconds:g} s: {'met' if best <= args.seconds else 'NOT met'}")
    if len(totals) > 1:
        print(f"  all runs: {', '.join(f'{t:.2f}' for t in totals)} s")
    print(f"  same run, engine alone for {steps} steps: {engine_s:.2f} s; encoder alone for {n_frames} "
          f"noise frames: {encode_s:.2f} s")
    print(f"  decoded back: {info['frames']} frames, {info['width']}x{info['height']}, codec {info['codec']}, "
          f"{(out / 'clip.mp4').stat().st_size / 1e6:.1f} MB")
    if args.gif:
        t0 = time.perf_counter()
        render_session(session, video=out / "clip.gif", seconds=args.seconds, fps=args.fps, size=args.size)
        gif_s = time.perf_counter() - t0
        print(f"export (GIF): {gif_s:.2f} s, {(out / 'clip.gif').stat().st_size / 1e6:.1f} MB")
    print(f"load average while measuring: {', '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"on {os.cpu_count()} cores")
    return 0


def _with_steps(cfg, steps):
    import dataclasses
    return dataclasses.replace(cfg, steps=steps)


if __name__ == "__main__":
    sys.exit(main())
