"""Precompute the default function's colour map and contours, so the window can paint them before torch loads.

    python tools/make_startup_map.py      # rewrites resources/startup/default_map.npz

tests/gui/test_startup.py checks that the file equals what the landscape view computes, so it cannot go stale.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "resources" / "startup" / "default_map.npz"


def compute(name: str = "rosenbrock") -> dict[str, np.ndarray]:
    from engine.functions import FUNCTIONS
    from gui.landscape_panel import CONTOUR_LEVELS, GRID, contour_paths, log_levels

    fn = FUNCTIONS.get(name)
    xs, ys, z = fn.grid(GRID, GRID)
    levels = log_levels(z)
    cx, cy = contour_paths(levels, xs, ys, CONTOUR_LEVELS)
    # Pre-coloured too, so the first paint needs neither pyqtgraph nor a colour map.
    import pyqtgraph as pg
    finite = np.isfinite(levels)
    scaled = np.zeros_like(levels)
    scaled[finite] = (levels[finite] - levels[finite].min()) / np.ptp(levels[finite])
    rgb = pg.colormap.get("cividis").map(scaled, mode="byte")[..., :3]
    return {"rgb": np.ascontiguousarray(rgb[::-1]),  # image rows run top-down; the map's y runs up
            "name": np.array(name), "xs": xs, "ys": ys, "levels": levels.astype(np.float32),
            "cx": cx.astype(np.float32), "cy": cy.astype(np.float32),
            "minima": np.array(fn.minima, dtype=np.float64).reshape(-1, 2), "start": np.array(fn.start)}


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **compute())
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
