"""Presets: shipped session files, one per syllabus lesson, listed by topic.

Each file in ``resources/presets`` is an ordinary session (``engine.session``) whose ``title``,
``caption`` (two lines: what to watch) and ``topic`` are filled in. ``tests/engine/test_presets.py``
checks that every preset's lesson shows in the numbers the engine produces.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from .paths import PRESETS
from .registry import ConfigError
from .session import Session, SessionError, load_session

# Syllabus order: (key stored in the session's "topic", menu label).
TOPICS: tuple[tuple[str, str], ...] = (
    ("gradient_descent", "Gradient descent and the learning rate"),
    ("momentum", "Momentum"),
    ("adaptive", "Adaptive methods"),
    ("schedules", "Learning-rate schedules"),
    ("practice", "Tuning in practice"),
    ("regularisation", "Regularisation (MNIST)"),
)
TOPIC_LABELS = dict(TOPICS)

# Order within a topic (the syllabus order); a preset not listed here comes after these, by name.
ORDER: tuple[str, ...] = (
    "gd_vs_sgd", "lr_too_high_low",
    "momentum_ravine", "momentum_flat",
    "adagrad_vs_rmsprop", "rosenbrock_adam_rmsprop_momentum", "adam_l2_vs_adamw",
    "schedule_step", "schedule_exponential", "schedule_cosine", "schedule_cyclic", "schedule_plateau",
    "schedule_warmup", "mnist_schedules",
    "tune_lr_first", "mnist_tune_lr", "mnist_optimizers",
    "mnist_dropout", "mnist_early_stopping", "mnist_weight_decay", "mnist_label_smoothing",
)


@dataclass(frozen=True)
class Preset:
    name: str  # the file's stem: stable, used by `python main.py render NAME`
    path: Path
    session: Session

    @property
    def title(self) -> str:
        return self.session.title or self.name

    @property
    def caption(self) -> str:
        return self.session.caption

    @property
    def topic(self) -> str:
        return self.session.topic

    @property
    def topic_label(self) -> str:
        return TOPIC_LABELS.get(self.topic, self.topic or "Other")


def _sort_key(p: Preset) -> tuple[int, int, str]:
    topics = [k for k, _ in TOPICS]
    t = topics.index(p.topic) if p.topic in topics else len(topics)
    o = ORDER.index(p.name) if p.name in ORDER else len(ORDER)
    return t, o, p.name


def load_presets(folder: str | Path | None = None) -> list[Preset]:
    """Every preset in ``folder`` (default: the bundled ones), validated, in syllabus order.

    A preset that fails to load raises SessionError naming the file and the field: a shipped
    preset must never be broken (the tests load them all).
    """
    folder = Path(folder) if folder is not None else PRESETS
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(Preset(path.stem, path, load_session(path)))
        except SessionError as exc:
            raise SessionError(f"{path.name}: {exc.field}", exc.problem) from None
    return sorted(out, key=_sort_key)


@functools.lru_cache(maxsize=1)
def bundled_presets() -> tuple[Preset, ...]:
    return tuple(load_presets())


def presets_by_topic(presets: list[Preset] | tuple[Preset, ...] | None = None) -> list[tuple[str, list[Preset]]]:
    """[(topic label, [presets...]), ...] in syllabus order, for a menu with one submenu per topic."""
    presets = bundled_presets() if presets is None else presets
    groups: dict[str, list[Preset]] = {}
    for p in presets:
        groups.setdefault(p.topic_label, []).append(p)
    return list(groups.items())


# Other names a topic goes by (the window's study topics use some of these), to presets, best first.
ALIASES: dict[str, tuple[str, ...]] = {
    "gd": ("gd_vs_sgd", "lr_too_high_low"),
    "sgd": ("gd_vs_sgd",),
    "learning_rate": ("lr_too_high_low", "tune_lr_first"),
    "rosenbrock": ("rosenbrock_adam_rmsprop_momentum",),
    "adam": ("rosenbrock_adam_rmsprop_momentum", "adam_l2_vs_adamw"),
    "adagrad": ("adagrad_vs_rmsprop",),
    "rmsprop": ("adagrad_vs_rmsprop", "rosenbrock_adam_rmsprop_momentum"),
    "weight_decay": ("adam_l2_vs_adamw", "mnist_weight_decay"),
    "adamw": ("adam_l2_vs_adamw",),
    "tune_lr": ("tune_lr_first",),
    "advice": ("tune_lr_first",),
    "mnist": ("mnist_optimizers",),
    "optimizers": ("mnist_optimizers",),
}


def presets_for(key: str, view: str | None = None) -> list[Preset]:
    """Presets that show ``key``: a preset's name, a topic key, an alias above, or part of a name
    ("dropout" -> mnist_dropout), in that order of preference; only those of ``view`` when given."""
    presets = bundled_presets()
    by_name = {p.name: p for p in presets}
    found: list[Preset] = []

    def add(p: Preset | None) -> None:
        if p is not None and p not in found and (view is None or p.session.view == view):
            found.append(p)

    add(by_name.get(key))
    for p in presets:
        if p.topic == key:
            add(p)
    for name in ALIASES.get(key, ()):
        add(by_name.get(name))
    for p in presets:
        if key and key in p.name:
            add(p)
    return found


def get_preset(name: str) -> Preset:
    for p in bundled_presets():
        if p.name == name:
            return p
    known = ", ".join(p.name for p in bundled_presets())
    raise ConfigError("preset", f"unknown preset {name!r}; known: {known}")


def resolve_session(name: str | Path) -> Session:
    """A session from a file path, or from a bundled preset's name (``momentum_ravine``)."""
    p = Path(name)
    if p.suffix.lower() == ".json" or p.exists() or os.sep in str(name):
        return load_session(p)
    return get_preset(str(name)).session
