"""Colours and symbols: a colour-blind-safe palette (Okabe and Ito), and a marker shape per series."""
from __future__ import annotations

# Okabe-Ito, reordered so neighbours differ most; black last (it vanishes on a dark theme's map).
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442", "#000000")
# Trajectories are told apart by marker shape as well as colour.
SYMBOLS = ("o", "s", "t", "d", "star", "p", "h", "t1")
DIVERGED_SYMBOL = "x"


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def symbol(i: int) -> str:
    return SYMBOLS[i % len(SYMBOLS)]
