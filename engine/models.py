"""The model registry: small torch networks for 28x28 digits."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from torch import nn

from .registry import Param, Registry, resolve_params

_DROPOUT = Param("dropout", "dropout p", 0.2, "Probability of zeroing each hidden unit while training.",
                 minimum=0.0, maximum=0.95, typical="0 to 0.5")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str
    help: str
    params: tuple[Param, ...]
    factory: Callable[..., nn.Module]

    def build(self, given: Mapping[str, Any] | None = None) -> nn.Module:
        return self.factory(**resolve_params(self.params, given, f"model {self.name}"))


def mlp(hidden: int = 128, depth: int = 1, dropout: float = 0.2) -> nn.Module:
    """784 -> hidden (x depth, ReLU, dropout) -> 10."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def cnn(channels: int = 16, dropout: float = 0.25) -> nn.Module:
    """Two conv blocks (conv 3x3, ReLU, max-pool 2) and a fully connected head with dropout."""
    c1, c2 = channels, 2 * channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * 7 * 7, 64), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(64, 10),
    )


MODELS: Registry[ModelSpec] = Registry("model")
MODELS.register("mlp", ModelSpec(
    "mlp", "MLP", "Fully connected: 784 -> hidden -> 10, ReLU and dropout after each hidden layer.",
    (Param("hidden", "hidden units", 128, "Width of each hidden layer.", kind="int", minimum=4, maximum=4096,
           typical="64 to 512"),
     Param("depth", "hidden layers", 1, "Number of hidden layers.", kind="int", minimum=1, maximum=8,
           typical="1 to 3"),
     _DROPOUT), mlp))
MODELS.register("cnn", ModelSpec(
    "cnn", "Small CNN", "Two 3x3 conv blocks with max-pooling, then a dropout + dense head.",
    (Param("channels", "channels", 16, "Filters in the first conv block (doubled in the second).", kind="int",
           minimum=2, maximum=128, typical="8 to 32"),
     Param("dropout", "dropout p", 0.25, "Probability of zeroing a unit in the head while training.",
           minimum=0.0, maximum=0.95, typical="0 to 0.5")), cnn))

# Images reach models as (B, 1, 28, 28); the MLP flattens them itself.
INPUT_SHAPE = (1, 28, 28)
