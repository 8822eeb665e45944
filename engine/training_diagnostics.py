"""Diagnostics over a training run's records: exploding/vanishing gradients and overfitting.

Pure numpy over arrays the GUI (or a script) already holds, so thresholds can be changed after a run
and the flags recomputed at once.

- **Gradient flags**: a layer's gradient norm above ``explode`` (or not finite) is *exploding*; below
  ``vanish`` it is *vanishing*. Typical per-layer norms for the bundled MLP and CNN are 0.01-5, so
  the defaults (100 and 1e-6) flag only what is clearly wrong; set them tighter to look closer.
- **Overfitting**: at evaluation i, validation loss has risen at each of the last ``patience``
  evaluations (strictly) while the training loss (eval mode) fell over the same span. The marker is
  put at the evaluation where that first became true, and again at each later one while it holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .registry import ConfigError

OK, EXPLODING, VANISHING = 0, 1, 2
FLAG_NAMES = {OK: "ok", EXPLODING: "exploding", VANISHING: "vanishing"}
DEFAULT_EXPLODE = 100.0
DEFAULT_VANISH = 1e-6
DEFAULT_OVERFIT_PATIENCE = 3
# Update-to-weight ratio rule of thumb: about 1e-3 per step is healthy (much larger: the rate is too
# high; much smaller: the layer barely learns).
HEALTHY_UPDATE_RATIO = 1e-3


@dataclass(frozen=True)
class GradientThresholds:
    explode: float = DEFAULT_EXPLODE
    vanish: float = DEFAULT_VANISH

    def validate(self) -> "GradientThresholds":
        for name in ("explode", "vanish"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"gradient threshold {name}", f"must be a positive number, got {v!r}")
        if self.vanish >= self.explode:
            raise ConfigError("gradient threshold vanish", f"must be below the exploding threshold "
                                                           f"({self.explode:g}), got {self.vanish:g}")
        return self


def gradient_flags(norms: np.ndarray, explode: float = DEFAULT_EXPLODE, vanish: float = DEFAULT_VANISH
                   ) -> np.ndarray:
    """OK / EXPLODING / VANISHING for each gradient norm (any shape). Non-finite norms are exploding."""
    GradientThresholds(explode, vanish).validate()
    norms = np.asarray(norms, dtype=np.float64)
    flags = np.zeros(norms.shape, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        flags[~np.isfinite(norms) | (norms > explode)] = EXPLODING
        flags[np.isfinite(norms) & (norms < vanish)] = VANISHING
    return flags


@dataclass(frozen=True)
class GradientReport:
    """Per layer: how many recorded steps were exploding / vanishing, and the first such step."""

    exploding: np.ndarray  # (L,) counts
    vanishing: np.ndarray  # (L,)
    first_exploding: int  # step, or -1
    first_vanishing: int

    @property
    def healthy(self) -> bool:
        return not (self.exploding.any() or self.vanishing.any())

    def describe(self, layer_names: tuple[str, ...] = ()) -> str:
        if self.healthy:
            return "ok"
        parts = []
        for label, counts, first in (("exploding", self.exploding, self.first_exploding),
                                     ("vanishing", self.vanishing, self.first_vanishing)):
            if counts.any():
                layers = [layer_names[i] if i < len(layer_names) else str(i) for i in np.flatnonzero(counts)]
                parts.append(f"{label} from step {first} (layer {', '.join(layers)})")
        return "; ".join(parts)


def gradient_report(steps: np.ndarray, layer_norms: np.ndarray, explode: float = DEFAULT_EXPLODE,
                    vanish: float = DEFAULT_VANISH) -> GradientReport:
    """Summarise ``layer_norms`` (K steps, L layers) recorded at ``steps`` (K,)."""
    layer_norms = np.asarray(layer_norms, dtype=np.float64)
    steps = np.asarray(steps)
    if layer_norms.ndim != 2 or len(layer_norms) == 0:
        width = layer_norms.shape[1] if layer_norms.ndim == 2 else 0
        return GradientReport(np.zeros(width, int), np.zeros(width, int), -1, -1)
    flags = gradient_flags(layer_norms, explode, vanish)
    exploding, vanishing = flags == EXPLODING, flags == VANISHING

    def first(mask: np.ndarray) -> int:
        rows = np.flatnonzero(mask.any(axis=1))
        return int(steps[rows[0]]) if len(rows) else -1

    return GradientReport(exploding.sum(axis=0), vanishing.sum(axis=0), first(exploding), first(vanishing))


def overfitting_flags(train_loss: np.ndarray, val_loss: np.ndarray,
                      patience: int = DEFAULT_OVERFIT_PATIENCE) -> np.ndarray:
    """True at evaluation i when validation loss rose at each of the last ``patience`` evaluations
    while the training loss fell from evaluation i - patience to i. Non-finite losses never count."""
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ConfigError("overfitting patience", f"must be a whole number of evaluations, at least 1, got {patience!r}")
    tr = np.asarray(train_loss, dtype=np.float64)
    va = np.asarray(val_loss, dtype=np.float64)
    if tr.shape != va.shape or tr.ndim != 1:
        raise ValueError(f"train and validation losses must be 1-D and the same length, got {tr.shape} and {va.shape}")
    n = len(va)
    out = np.zeros(n, dtype=bool)
    if n <= patience:
        return out
    with np.errstate(invalid="ignore"):
        rose = np.zeros(n, dtype=bool)
        rose[1:] = va[1:] > va[:-1]  # NaN compares False
        # run[i]: how many evaluations in a row, ending at i, the validation loss rose
        run = np.zeros(n, dtype=np.int64)
        for i in range(1, n):
            run[i] = run[i - 1] + 1 if rose[i] else 0
        fell = np.zeros(n, dtype=bool)
        fell[patience:] = tr[patience:] < tr[:-patience]
    out[:] = (run >= patience) & fell
    return out


def overfitting_onset(train_loss: np.ndarray, val_loss: np.ndarray,
                      patience: int = DEFAULT_OVERFIT_PATIENCE) -> int:
    """Index of the first evaluation flagged by ``overfitting_flags``, or -1."""
    hits = np.flatnonzero(overfitting_flags(train_loss, val_loss, patience))
    return int(hits[0]) if len(hits) else -1


def confidence_histogram(confidences: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges over [0, 1], fraction of digits per bin) of the max-softmax confidences.

    Fractions rather than counts, so runs with validation sets of different sizes compare.
    Non-finite confidences (a diverged network) are left out.
    """
    c = np.asarray(confidences, dtype=np.float64)
    c = c[np.isfinite(c)]
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(c, bins=edges)
    total = max(int(counts.sum()), 1)
    return edges, counts / total
