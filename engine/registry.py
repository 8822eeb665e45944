"""Registries of named, frozen specs, and the hyperparameter descriptions the GUI builds forms from."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Generic, Iterator, Mapping, TypeVar

MAX_SEED = 2 ** 31 - 1  # seeds: what the window's seed boxes hold (a Qt int); numpy and torch take it too


class ConfigError(ValueError):
    """A user-facing configuration problem. ``field`` names the offending setting."""

    def __init__(self, field_name: str, problem: str):
        self.field = field_name
        self.problem = problem
        super().__init__(f"{field_name}: {problem}")


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, default, valid range and a one-line meaning."""

    name: str
    label: str
    default: Any
    help: str
    kind: str = "float"  # float | int | bool | choice | text (free text the owner parses, e.g. "100, 200")
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False
    log: bool = False  # spin boxes and sweeps step this one on a log scale
    choices: tuple[str, ...] = ()
    typical: str = ""  # usual range, for tooltips

    def validate(self, value: Any, owner: str = "") -> Any:
        where = f"{owner}.{self.name}" if owner else self.name
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            raise ConfigError(where, f"expected true or false, got {value!r}")
        if self.kind == "choice":
            if value not in self.choices:
                raise ConfigError(where, f"{value!r} is not one of {', '.join(self.choices)}")
            return value
        if self.kind == "text":
            if not isinstance(value, str):
                raise ConfigError(where, f"expected text, got {type(value).__name__} {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise ConfigError(where, f"expected a number, got {value!r}") from None
            else:
                raise ConfigError(where, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(where, f"must be a finite number, got {value!r}")
        if self.kind == "int":
            if float(value) != int(value):
                raise ConfigError(where, f"must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if self.minimum is not None:
            if self.min_exclusive and value <= self.minimum:
                raise ConfigError(where, f"must be greater than {self.minimum:g}, got {value:g}")
            if not self.min_exclusive and value < self.minimum:
                raise ConfigError(where, f"must be at least {self.minimum:g}, got {value:g}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(where, f"must be at most {self.maximum:g}, got {value:g}")
        return value

    def tooltip(self) -> str:
        tip = f"{self.label}: {self.help}"
        if self.typical:
            tip += f"\nUsual range: {self.typical}."
        return tip


def resolve_params(params: tuple[Param, ...], given: Mapping[str, Any] | None, owner: str) -> dict[str, Any]:
    """Defaults filled in, every value validated; unknown names are refused, not ignored."""
    given = dict(given or {})
    known = {p.name for p in params}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"{owner}.{unknown[0]}", f"unknown setting; known: {', '.join(sorted(known)) or 'none'}")
    return {p.name: p.validate(given.get(p.name, p.default), owner) for p in params}


T = TypeVar("T")


@dataclass
class Registry(Generic[T]):
    """Maps stable names to specs. Registering a name twice is an error."""

    kind: str
    _items: dict[str, T] = field(default_factory=dict)

    def register(self, name: str, spec: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = spec
        return spec

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(self.kind, f"unknown {self.kind} {name!r}; known: {', '.join(self._items)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __len__(self) -> int:
        return len(self._items)
