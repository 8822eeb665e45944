"""Training a small network on digits: a generator of per-step and per-evaluation records.

The loop is the one a user would write (zero_grad -> backward -> step -> schedule), instrumented:
gradient and weight norms per layer, the update-to-weight ratio, train/validation metrics,
early stopping with the best weights restored.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .config import OptimizerConfig, _check_keys, _params, _typed
from .datasets import DigitData, load_source, split_train_val, to_tensors
from .models import MODELS
from .optimizers import OPTIMIZERS
from .registry import ConfigError
from .schedules import SCHEDULES, make_schedule


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "bundled"
    dataset_path: str = ""
    train_size: int = 0  # 0: every training digit the source has
    val_fraction: float = 0.2
    model: str = "mlp"
    model_params: dict[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig("adam", {"lr": 1e-3}))
    epochs: int = 3
    batch_size: int = 64
    label_smoothing: float = 0.0
    early_stopping: int = 0  # patience in evaluations; 0 = off
    eval_every: int = 0  # steps between evaluations; 0 = once per epoch
    augment: bool = False
    seed: int = 0
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["optimizer"] = self.optimizer.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "training") -> "TrainConfig":
        _check_keys(data, cls, where)
        cfg = cls(
            dataset=_typed(data, "dataset", str, where, "bundled"),
            dataset_path=_typed(data, "dataset_path", str, where, ""),
            train_size=_typed(data, "train_size", int, where, 0),
            val_fraction=_typed(data, "val_fraction", float, where, 0.2),
            model=_typed(data, "model", str, where, "mlp"),
            model_params=_params({"params": data.get("model_params", {})}, f"{where}.model_params"),
            optimizer=OptimizerConfig.from_dict(data.get("optimizer", {"name": "adam", "params": {"lr": 1e-3}}),
                                                f"{where}.optimizer"),
            epochs=_typed(data, "epochs", int, where, 3),
            batch_size=_typed(data, "batch_size", int, where, 64),
            label_smoothing=_typed(data, "label_smoothing", float, where, 0.0),
            early_stopping=_typed(data, "early_stopping", int, where, 0),
            eval_every=_typed(data, "eval_every", int, where, 0),
            augment=_typed(data, "augment", bool, where, False),
            seed=_typed(data, "seed", int, where, 0),
            label=_typed(data, "label", str, where, ""),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not 1 <= self.epochs <= 1000:
            raise ConfigError("epochs", f"must be between 1 and 1000, got {self.epochs}")
        if not 1 <= self.batch_size <= 100_000:
            raise ConfigError("batch_size", f"must be between 1 and 100,000, got {self.batch_size}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError("label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")
        if self.early_stopping < 0:
            raise ConfigError("early_stopping", f"patience must be 0 (off) or more, got {self.early_stopping}")
        if self.eval_every < 0:
            raise ConfigError("eval_every", f"must be 0 (each epoch) or more, got {self.eval_every}")
        if self.train_size < 0:
            raise ConfigError("train_size", f"must be 0 (all) or more, got {self.train_size}")
        if not 0.0 < self.val_fraction <= 0.9:
            raise ConfigError("val_fraction", f"must be in (0, 0.9], got {self.val_fraction}")
        MODELS.get(self.model).build(self.model_params)  # validates the model's settings
        OPTIMIZERS.get(self.optimizer.name).resolve(self.optimizer.params)
        SCHEDULES.get(self.optimizer.schedule.name)

    @property
    def display_label(self) -> str:
        return self.label or OPTIMIZERS.get(self.optimizer.name).label


@dataclass(frozen=True)
class TrainStep:
    step: int
    epoch: float  # fractional epochs done after this step
    loss: float  # mini-batch loss in train mode (dropout on), before the update
    lr: float  # rate used by this step's update
    grad_norm: float  # global L2 norm of the gradient
    layer_names: tuple[str, ...]
    layer_grad_norms: np.ndarray
    layer_weight_norms: np.ndarray
    update_ratios: np.ndarray  # ||delta w|| / ||w|| per layer for this step
    elapsed: float


@dataclass(frozen=True)
class EvalPoint:
    step: int
    epoch: float
    train_loss: float  # eval mode (dropout off) on the training split
    train_acc: float
    val_loss: float
    val_acc: float
    train_loss_dropout: float  # mean train-mode mini-batch loss since the last evaluation
    best_step: int
    best_val_loss: float
    patience_count: int  # evaluations since the best one
    lr: float
    confidences: np.ndarray  # max softmax probability per validation digit (for the confidence histogram)

    @property
    def gap(self) -> float:
        return self.val_loss - self.train_loss


@dataclass(frozen=True)
class RunSummary:
    steps: int
    best_val_acc: float
    best_val_loss: float
    best_epoch: float
    best_step: int
    final_train_loss: float
    final_val_loss: float
    test_acc: float | None
    test_loss: float | None
    stopped_early: bool
    restored_best: bool
    wall_time: float


Record = TrainStep | EvalPoint | RunSummary


def smoothing_floor(smoothing: float, classes: int = 10) -> float:
    """Lowest cross-entropy reachable with label smoothing: the entropy of the smoothed target."""
    if smoothing <= 0:
        return 0.0
    hi = 1.0 - smoothing + smoothing / classes
    lo = smoothing / classes
    return float(-(hi * math.log(hi) + (classes - 1) * lo * math.log(lo)))


@dataclass
class PreparedData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    name: str


def prepare_data(cfg: TrainConfig, data: DigitData | None = None) -> PreparedData:
    data = data if data is not None else load_source(cfg.dataset, cfg.dataset_path)
    train_idx, val_idx = split_train_val(data.train_labels, cfg.val_fraction, cfg.seed, train_size=cfg.train_size)
    x, y = to_tensors(data.train_images, data.train_labels, kind=data.kind)
    xt = yt = None
    if data.test_images is not None:
        xt, yt = to_tensors(data.test_images, data.test_labels, kind=data.kind)
    return PreparedData(x[train_idx], y[train_idx], x[val_idx], y[val_idx], xt, yt, data.name)


def build_model(cfg: TrainConfig) -> nn.Module:
    """Seeded initial weights: runs that share a seed start from the same network."""
    torch.manual_seed(cfg.seed)
    return MODELS.get(cfg.model).build(cfg.model_params)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, batch: int = 2048
             ) -> tuple[float, float, np.ndarray]:
    """(mean loss, accuracy, max-softmax confidences) in eval mode."""
    was_training = model.training
    model.eval()
    total, correct, conf = 0.0, 0, []
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch])
        total += float(loss_fn(logits, y[i:i + batch])) * len(logits)
        correct += int((logits.argmax(1) == y[i:i + batch]).sum())
        conf.append(torch.softmax(logits, 1).amax(1).numpy())
    model.train(was_training)
    n = max(len(x), 1)
    return total / n, correct / n, np.concatenate(conf) if conf else np.zeros(0)


def _augment(xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Small random shifts (up to 2 px) and rotations (up to 10 degrees), by an affine resampling grid."""
    b = xb.shape[0]
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(10)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * (2 / 14)  # grid units: 14 px per unit
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(xb.shape), align_corners=False)
    # Pad with the normalised value of a black pixel, not 0, so shifted-in borders stay background.
    background = float(xb.amin())
    return torch.nn.functional.grid_sample(xb - background, grid, align_corners=False) + background


def run_training(cfg: TrainConfig, data: PreparedData | None = None, model: nn.Module | None = None
                 ) -> Iterator[Record]:
    """TrainStep per update, EvalPoint per evaluation, one RunSummary at the end.

    Runs with the same seed start from the same weights and see the same batches, whatever else differs.
    Pass ``model`` (from ``build_model``) to keep a handle on the trained weights.
    """
    cfg.validate()
    data = data if data is not None else prepare_data(cfg)
    model = model if model is not None else build_model(cfg)
    spec = OPTIMIZERS.get(cfg.optimizer.name)
    optimizer = spec.build(model.parameters(), cfg.optimizer.params)
    n_train = len(data.x_train)
    batch = n_train if cfg.optimizer.name == "gd" else min(cfg.batch_size, n_train)
    steps_per_epoch = math.ceil(n_train / batch)
    total_steps = cfg.epochs * steps_per_epoch
    schedule = make_schedule(optimizer, cfg.optimizer.schedule, total_steps)
    on_metric = SCHEDULES.get(cfg.optimizer.schedule.name).needs_metric
    eval_every = cfg.eval_every or steps_per_epoch
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    eval_loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    named = [(name, p) for name, p in model.named_parameters() if p.dim() > 1]
    names = tuple(name.rsplit(".", 1)[0] for name, _ in named)
    weights = [p for _, p in named]

    best = (math.inf, -1, 0.0, 0.0)  # val loss, step, epoch, val acc
    best_state: dict[str, torch.Tensor] | None = None
    since_best, running, running_n = 0, 0.0, 0
    stopped_early = False
    t0 = time.perf_counter()
    step = 0
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n_train, generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            xb, yb = data.x_train[idx], data.y_train[idx]
            if cfg.augment:
                xb = _augment(xb, aug_gen)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            with torch.no_grad():
                gnorms = torch.stack([p.grad.norm() for p in weights]) if weights else torch.zeros(0)
                total_g = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()
                                        if p.grad is not None))
                before = [w.detach().clone() for w in weights]
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            if not on_metric or schedule.steps_taken < schedule.warmup_steps:
                schedule.step()
            with torch.no_grad():
                wnorms = torch.stack([w.norm() for w in weights]) if weights else torch.zeros(0)
                ratios = torch.stack([(w - b0).norm() / (b0.norm() + 1e-12) for w, b0 in zip(weights, before)]
                                     ) if weights else torch.zeros(0)
            step += 1
            loss_value = float(loss.detach())
            running += loss_value
            running_n += 1
            yield TrainStep(step, epoch + (b + 1) / steps_per_epoch, loss_value, lr, total_g, names,
                            gnorms.numpy(), wnorms.numpy(), ratios.numpy(), time.perf_counter() - t0)

            if step % eval_every == 0 or step == total_steps:
                tr_loss, tr_acc, _ = evaluate(model, data.x_train, data.y_train, eval_loss_fn)
                va_loss, va_acc, conf = evaluate(model, data.x_val, data.y_val, eval_loss_fn)
                if va_loss < best[0]:
                    best = (va_loss, step, epoch + (b + 1) / steps_per_epoch, va_acc)
                    since_best = 0
                    if cfg.early_stopping:
                        best_state = copy.deepcopy(model.state_dict())
                else:
                    since_best += 1
                if on_metric and schedule.steps_taken >= schedule.warmup_steps:
                    schedule.step(va_loss)
                yield EvalPoint(step, epoch + (b + 1) / steps_per_epoch, tr_loss, tr_acc, va_loss, va_acc,
                                running / max(running_n, 1), best[1], best[0], since_best,
                                optimizer.param_groups[0]["lr"], conf)
                running, running_n = 0.0, 0
                if cfg.early_stopping and since_best >= cfg.early_stopping:
                    stopped_early = True
                    break
        if stopped_early:
            break

    restored = False
    if best_state is not None and cfg.early_stopping:
        model.load_state_dict(best_state)
        restored = True
    final_tr, _, _ = evaluate(model, data.x_train, data.y_train, eval_loss_fn)
    final_va, _, _ = evaluate(model, data.x_val, data.y_val, eval_loss_fn)
    test_loss = test_acc = None
    if data.x_test is not None:
        test_loss, test_acc, _ = evaluate(model, data.x_test, data.y_test, eval_loss_fn)
    yield RunSummary(step, best[3], best[0], best[2], best[1], final_tr, final_va, test_acc, test_loss,
                     stopped_early, restored, time.perf_counter() - t0)
