"""Frozen run configurations that round-trip through JSON with validation.

Every ``from_dict`` refuses unknown keys and wrong types with a ``ConfigError`` naming the field,
so a hand-edited or corrupted session file never reaches torch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .registry import ConfigError


def _check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(where, f"expected an object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown key; known: {', '.join(sorted(known))}")


def _typed(data: Mapping[str, Any], key: str, kind: type | tuple, where: str, default: Any) -> Any:
    if key not in data:
        return default
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError(f"{where}.{key}", f"expected {kinds[0].__name__}, got {value!r}")
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kinds):
        raise ConfigError(f"{where}.{key}", f"expected {kinds[0].__name__}, got {type(value).__name__} {value!r}")
    return value


def _params(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    value = data.get("params", {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.params", f"expected an object, got {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(v, (int, float, str, bool)):
            raise ConfigError(f"{where}.params.{k}", f"expected a number, text or true/false, got {type(v).__name__}")
    return dict(value)


@dataclass(frozen=True)
class ScheduleConfig:
    """A learning-rate schedule by registry name, its settings, and an optional linear warmup before it."""

    name: str = "constant"
    params: dict[str, Any] = field(default_factory=dict)
    warmup_steps: int = 0
    warmup_start_factor: float = 0.01

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "schedule") -> "ScheduleConfig":
        _check_keys(data, cls, where)
        return cls(
            name=_typed(data, "name", str, where, "constant"),
            params=_params(data, where),
            warmup_steps=_typed(data, "warmup_steps", int, where, 0),
            warmup_start_factor=_typed(data, "warmup_start_factor", float, where, 0.01),
        )


@dataclass(frozen=True)
class OptimizerConfig:
    """One optimiser by registry name with its hyperparameters and schedule."""

    name: str = "adam"
    params: dict[str, Any] = field(default_factory=dict)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    label: str = ""  # shown in legends; defaults to the registry label

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params), "schedule": self.schedule.to_dict(), "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "optimizer") -> "OptimizerConfig":
        _check_keys(data, cls, where)
        return cls(
            name=_typed(data, "name", str, where, "adam"),
            params=_params(data, where),
            schedule=ScheduleConfig.from_dict(data.get("schedule", {}), f"{where}.schedule"),
            label=_typed(data, "label", str, where, ""),
        )
