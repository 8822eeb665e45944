"""Readable log axes: fewer minor labels where pyqtgraph would overprint them."""
from __future__ import annotations

import math

import pyqtgraph as pg


def thin_log_labels(axis: pg.AxisItem) -> None:
    """On a log axis spanning under two decades pyqtgraph labels every minor tick (2, 3, ..., 9) as its top
    level, so its crowding limits never apply and the labels overprint; keep those of 1, 2 and 5 when
    there are many. Only the strings change: the ticks and grid stay."""
    base = axis.logTickStrings

    def strings(values, scale, spacing):
        out = base(values, scale, spacing)
        if len(values) <= 8:
            return out
        keep = []
        for v, text in zip(values, out):
            mantissa = 10 ** (float(v) - math.floor(float(v) + 1e-9))
            keep.append(text if min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6 else "")
        return keep

    axis.logTickStrings = strings
