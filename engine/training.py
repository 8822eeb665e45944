"""Training a small network on digits: a generator of per-step and per-evaluation records.

The loop is the one a user would write (zero_grad -> backward -> step -> schedule), instrumented:
the global gradient norm every step; gradient and weight norms per layer and the update-to-weight
ratio every ``layer_stats_every`` steps; train/validation metrics at each evaluation; early stopping
with the best weights restored; a non-finite loss or gradient ends the run as "diverged" with the
last finite weights kept.

Runs are independent of one another even when their generators are interleaved in one process:
each run draws its dropout masks from its own random stream (seeded by ``seed``), its batches from
its own generator, and puts the caller's global random state back between steps. Runs that share
a seed start from the same weights, see the same batches and the same dropout masks.

At each evaluation the training sample is scored twice with the same weights: in eval mode (dropout
off) and in train mode (dropout on, masks from a stream of the run's own that the training steps never
see), so the difference between the two is what dropout alone does to the loss. The mean of the
mini-batch losses since the previous evaluation is kept beside them (``batch_loss_mean``): it mixes
weights from the whole stretch and is not comparable with either.
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
from .datasets import DATASETS, DigitData, load_source, split_train_val, to_tensors
from .models import MODELS
from .optimizers import OPTIMIZERS
from .registry import MAX_SEED, ConfigError, resolve_params
from .schedules import SCHEDULES, check_optimizer_schedule, make_schedule

MAX_DROPOUT = 0.95


MIN_TRAIN_DIGITS = 10


def _float_tuple(data: Mapping[str, Any], key: str, where: str) -> tuple[float, ...]:
    value = data.get(key, ())
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}.{key}", f"expected a list of numbers, got {type(value).__name__} {value!r}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}.{key}[{i}]", f"expected a number, got {v!r}")
        out.append(float(v))
    return tuple(out)


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
    # --- added later; every one has a default so that older JSON still loads ---
    dataset_params: dict[str, Any] = field(default_factory=dict)  # e.g. {"which": "fashion"} for "download"
    # One dropout probability per dropout layer of the model, in order (empty: the model's own setting).
    dropout_per_layer: tuple[float, ...] = ()
    # Training digits scored in eval mode at each evaluation: a fixed sample, so that the train curve
    # costs a small share of the training; 0: automatic (a twelfth of the training digits, 256 to 2,000).
    train_eval_size: int = 0
    # Per-layer gradient/weight norms and update ratios every this many steps (the global gradient
    # norm, loss and rate are recorded every step); 0: about 10 times per epoch.
    layer_stats_every: int = 0  # 0: about 10 times per epoch (see layer_stats_interval)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["optimizer"] = self.optimizer.to_dict()
        d["dropout_per_layer"] = list(self.dropout_per_layer)
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
            dataset_params=_params({"params": data.get("dataset_params", {})}, f"{where}.dataset_params"),
            dropout_per_layer=_float_tuple(data, "dropout_per_layer", where),
            train_eval_size=_typed(data, "train_eval_size", int, where, 0),
            layer_stats_every=_typed(data, "layer_stats_every", int, where, 0),
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
        if self.train_size < 0 or 0 < self.train_size < MIN_TRAIN_DIGITS:
            raise ConfigError("train_size", f"must be 0 (all) or at least {MIN_TRAIN_DIGITS} (one digit a class), "
                                            f"got {self.train_size}")
        if isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError("seed", f"must be a whole number from 0 to {MAX_SEED:,}, got {self.seed}")
        if not 0.0 < self.val_fraction <= 0.9:
            raise ConfigError("val_fraction", f"must be in (0, 0.9], got {self.val_fraction}")
        if self.train_eval_size < 0:
            raise ConfigError("train_eval_size", f"must be 0 (automatic) or more, got {self.train_eval_size}")
        if not 0 <= self.layer_stats_every <= 1_000_000:
            raise ConfigError("layer_stats_every", f"must be 0 (automatic) or more, got {self.layer_stats_every}")
        spec = DATASETS.get(self.dataset)
        resolve_params(spec.params, self.dataset_params, f"dataset {self.dataset}")
        model = _quiet_build(self.model, self.model_params)  # validates the model's settings
        _check_dropouts(model, self.dropout_per_layer)
        opt_spec = OPTIMIZERS.get(self.optimizer.name)
        if _needs_closure(opt_spec.torch_class):
            raise ConfigError(f"optimizer {self.optimizer.name}",
                              f"{opt_spec.label} needs a closure and full-batch steps; the MNIST studio trains on "
                              "mini-batches — choose another optimiser")
        opt_spec.resolve(self.optimizer.params)
        SCHEDULES.get(self.optimizer.schedule.name)

    @property
    def display_label(self) -> str:
        return self.label or self.optimizer.label or OPTIMIZERS.get(self.optimizer.name).label

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def _needs_closure(torch_class: type) -> bool:
    """Whether ``torch_class.step`` must be given a closure (L-BFGS re-evaluates the loss itself)."""
    import inspect
    try:
        closure = inspect.signature(torch_class.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return closure is not None and closure.default is inspect.Parameter.empty


def _quiet_build(name: str, params: Mapping[str, Any] | None) -> nn.Module:
    """Build a model (to validate settings or count layers) without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        return MODELS.get(name).build(params)


def _dropout_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


def _check_dropouts(model: nn.Module, values: tuple[float, ...]) -> None:
    if not values:
        return
    layers = _dropout_layers(model)
    if len(values) != len(layers):
        raise ConfigError("dropout_per_layer", f"{dropout_count_problem(len(layers))}; got {len(values)}")
    for i, p in enumerate(values):
        if not (math.isfinite(p) and 0.0 <= p <= MAX_DROPOUT):
            raise ConfigError(f"dropout_per_layer[{i}]", f"must be between 0 and {MAX_DROPOUT:g}, got {p:g}")


def dropout_count_problem(have: int) -> str:
    """What to give for a model with ``have`` dropout layers, in words (for messages that refuse a list)."""
    if have == 0:
        return "the model has no dropout layer: leave dropout empty"
    if have == 1:
        return "the model has 1 dropout layer: give one value"
    return f"the model has {have} dropout layers: give one value for all, or {have} values (one per layer)"


def dropout_layer_count(model_name: str, model_params: Mapping[str, Any] | None = None) -> int:
    """How many dropout layers the model has (what ``dropout_per_layer`` must match)."""
    return len(_dropout_layers(_quiet_build(model_name, model_params)))


@dataclass(frozen=True)
class TrainStep:
    step: int
    epoch: float  # fractional epochs done after this step
    loss: float  # mini-batch loss in train mode (dropout on), before the update
    lr: float  # rate used by this step's update
    grad_norm: float  # global L2 norm of the gradient
    layer_names: tuple[str, ...]
    # Per layer (weights of dim > 1), on steps where layer statistics are taken; empty arrays otherwise.
    layer_grad_norms: np.ndarray
    layer_weight_norms: np.ndarray  # after the update
    update_ratios: np.ndarray  # ||delta w|| / ||w|| per layer for this step
    elapsed: float

    @property
    def has_layer_stats(self) -> bool:
        return len(self.layer_grad_norms) > 0


@dataclass(frozen=True)
class EvalPoint:
    step: int
    epoch: float
    train_loss: float  # eval mode (dropout off) on (a fixed sample of) the training split
    train_acc: float
    val_loss: float
    val_acc: float
    # Train mode (dropout on) on the same sample with the same weights as ``train_loss``: the like-for-like
    # train-mode loss; with no dropout (and no batch-norm) it equals ``train_loss`` exactly.
    train_loss_dropout: float
    best_step: int  # step of the lowest validation loss so far
    best_val_loss: float
    patience_count: int  # evaluations since the lowest validation loss
    lr: float
    confidences: np.ndarray  # max softmax probability per validation digit (for the confidence histogram)
    # Mean train-mode mini-batch loss over the steps since the previous evaluation (augmented batches,
    # weights changing as it goes): the usual running training loss, not comparable with ``train_loss``.
    batch_loss_mean: float = math.nan

    @property
    def gap(self) -> float:
        return self.val_loss - self.train_loss


@dataclass(frozen=True)
class RunSummary:
    """The end of a run. "Best" accuracy and loss are taken at their own evaluations: ``best_val_acc`` and
    ``best_epoch`` at the highest validation accuracy, ``best_val_loss``, ``best_step``, ``best_loss_epoch`` and
    ``best_eval`` at the lowest validation loss (the weights early stopping restores)."""

    steps: int
    best_val_acc: float  # highest validation accuracy of any evaluation
    best_val_loss: float  # lowest validation loss of any evaluation
    best_epoch: float  # epoch of the highest validation accuracy (the first, on a tie)
    best_step: int  # step of the lowest validation loss
    final_train_loss: float
    final_val_loss: float
    test_acc: float | None
    test_loss: float | None
    stopped_early: bool
    restored_best: bool
    wall_time: float
    diverged_at: int = -1  # step whose loss or gradient was not finite; -1: never
    final_train_acc: float = math.nan
    final_val_acc: float = math.nan
    best_eval: int = -1  # index of the lowest-validation-loss evaluation among the run's EvalPoints
    best_loss_epoch: float = math.nan  # epoch of the lowest validation loss
    best_acc_step: int = -1  # step of the highest validation accuracy
    best_acc_eval: int = -1  # index of the highest-validation-accuracy evaluation

    @property
    def diverged(self) -> bool:
        return self.diverged_at >= 0


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


def load_data(cfg: TrainConfig) -> DigitData:
    """The digits ``cfg`` names (no split yet)."""
    return load_source(cfg.dataset, cfg.dataset_path or None, **cfg.dataset_params)


def prepare_data(cfg: TrainConfig, data: DigitData | None = None) -> PreparedData:
    data = data if data is not None else load_data(cfg)
    train_idx, val_idx = split_train_val(data.train_labels, cfg.val_fraction, cfg.seed, train_size=cfg.train_size)
    x, y = to_tensors(data.train_images, data.train_labels, kind=data.kind)
    xt = yt = None
    if data.test_images is not None:
        xt, yt = to_tensors(data.test_images, data.test_labels, kind=data.kind)
    return PreparedData(x[train_idx], y[train_idx], x[val_idx], y[val_idx], xt, yt, data.name)


def data_key(cfg: TrainConfig) -> tuple:
    """Configs with equal keys get equal prepared data (so it can be loaded once and shared)."""
    return (cfg.dataset, cfg.dataset_path, tuple(sorted(cfg.dataset_params.items())), cfg.train_size,
            cfg.val_fraction, cfg.seed)


def build_model(cfg: TrainConfig) -> nn.Module:
    """Seeded initial weights: runs that share a seed start from the same network."""
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(cfg.seed)
        model = MODELS.get(cfg.model).build(cfg.model_params)
    if cfg.dropout_per_layer:
        _check_dropouts(model, cfg.dropout_per_layer)
        for layer, p in zip(_dropout_layers(model), cfg.dropout_per_layer):
            layer.p = p
    return model


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, batch: int = 2048,
             confidences: bool = True, train_mode: bool = False) -> tuple[float, float, np.ndarray]:
    """(mean loss, accuracy, max-softmax confidences) in eval mode (confidences empty when not asked for).

    ``train_mode``: the same in train mode (dropout on, masks from torch's global generator), leaving the
    model's buffers (batch-norm running statistics) as they were.
    """
    was_training = model.training
    model.train(train_mode)
    saved = [(b, b.clone()) for b in model.buffers()] if train_mode else []
    total, correct, conf = 0.0, 0, []
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch])
        total += float(loss_fn(logits, y[i:i + batch])) * len(logits)
        correct += int((logits.argmax(1) == y[i:i + batch]).sum())
        if confidences:
            conf.append(torch.softmax(logits, 1).amax(1).numpy())
    for b, copy_ in saved:
        b.copy_(copy_)
    model.train(was_training)
    n = max(len(x), 1)
    return total / n, correct / n, np.concatenate(conf) if conf else np.zeros(0)


def take_batch(data: "PreparedData", order: torch.Tensor, b: int, batch: int,
               aug_gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mini-batch b of an epoch's shuffled order; augmented when a generator for it is given."""
    idx = order[b * batch:(b + 1) * batch]
    xb, yb = data.x_train[idx], data.y_train[idx]
    return (_augment(xb, aug_gen) if aug_gen is not None else xb), yb


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


_EMPTY = np.zeros(0)


class _OwnRandom:
    """A run's own global-RNG stream (dropout masks), swapped in around its steps.

    Interleaved runs in one process would otherwise share torch's global generator, and a run's
    dropout masks would depend on what ran beside it. The caller's state is put back afterwards.
    """

    def __init__(self, seed: int, needed: bool, stream: int = 17):
        self.needed = needed
        self.state = torch.Generator().manual_seed(seed * 7919 + stream).get_state() if needed else None
        self.outer: torch.Tensor | None = None

    def __enter__(self) -> None:
        if self.needed:
            self.outer = torch.get_rng_state()
            torch.set_rng_state(self.state)

    def __exit__(self, *exc: Any) -> None:
        if self.needed:
            self.state = torch.get_rng_state()
            torch.set_rng_state(self.outer)


def steps_per_epoch(cfg: TrainConfig, n_train: int) -> tuple[int, int]:
    """(batch size used, steps per epoch) for ``n_train`` training digits (GD takes them all at once)."""
    batch = n_train if cfg.optimizer.name == "gd" else min(cfg.batch_size, n_train)
    return batch, math.ceil(n_train / batch)


def check_batch(cfg: TrainConfig, n_train: int) -> None:
    """Refuse a mini-batch larger than the training split (GD takes the whole split whatever the setting)."""
    if cfg.optimizer.name != "gd" and cfg.batch_size > n_train > 0:
        raise ConfigError("batch_size", f"{cfg.batch_size:,} is more than the {n_train:,} training digits; "
                                        f"use at most {n_train:,} (or GD, which steps on all of them)")


def check_schedule(cfg: TrainConfig, n_train: int) -> None:
    """Build the run's schedule on a throwaway optimiser, as the run will with ``n_train`` training digits, so
    that settings which only fail together (a warmup longer than the run) are refused before it starts; and
    the batch size against those digits. Raises ``ConfigError`` naming ``schedule.<setting>`` or ``batch_size``."""
    check_batch(cfg, n_train)
    _, per_epoch = steps_per_epoch(cfg, max(n_train, 1))
    check_optimizer_schedule(cfg.optimizer, cfg.epochs * per_epoch)


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
    if n_train == 0 or len(data.x_val) == 0:
        raise ConfigError("train_size", f"needs digits to train on and to validate with, got {n_train} and "
                                        f"{len(data.x_val)}")
    check_batch(cfg, n_train)
    batch, per_epoch = steps_per_epoch(cfg, n_train)
    total_steps = cfg.epochs * per_epoch
    sched_cfg = cfg.optimizer.schedule
    schedule = make_schedule(optimizer, sched_cfg, total_steps)
    on_metric = SCHEDULES.get(sched_cfg.name).needs_metric
    # A constant rate without warmup: torch's LambdaLR(1.0) would change nothing, so it is not stepped.
    fixed_rate = sched_cfg.name == "constant" and schedule.warmup_steps == 0
    eval_every = cfg.eval_every or per_epoch
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    has_dropout = any(m.p > 0 for m in _dropout_layers(model))
    rng = _OwnRandom(cfg.seed, has_dropout)
    # Only dropout and batch statistics make train mode differ from eval mode (the dropout-gap lesson).
    mode_matters = has_dropout or any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    eval_rng = _OwnRandom(cfg.seed, has_dropout, stream=29)  # train-mode evaluations: never the steps' masks
    params = [p for p in model.parameters() if p.requires_grad]
    named = [(name, p) for name, p in model.named_parameters() if p.dim() > 1]
    names = tuple(name.rsplit(".", 1)[0] for name, _ in named)
    weights = [p for _, p in named]
    weight_pos = [next(k for k, q in enumerate(params) if q is w) for w in weights if w.requires_grad]
    n_layers = len(weight_pos)
    n_eval_train = train_eval_count(cfg, n_train)
    x_eval_train, y_eval_train = data.x_train[:n_eval_train], data.y_train[:n_eval_train]
    stats_every = layer_stats_interval(cfg, per_epoch)

    best = (math.inf, -1, math.nan, -1)  # lowest val loss, its step, epoch, evaluation index
    best_acc = (-math.inf, -1, math.nan, -1)  # highest val acc, its step, epoch, evaluation index
    best_state: dict[str, torch.Tensor] | None = None
    best_eval: EvalPoint | None = None
    last_eval: EvalPoint | None = None
    since_best, running, running_n, n_evals = 0, 0.0, 0, 0
    stopped_early = False
    diverged_at = -1
    t0 = time.perf_counter()
    step = 0
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n_train, generator=gen)
        for b in range(per_epoch):
            xb, yb = take_batch(data, order, b, batch, aug_gen if cfg.augment else None)
            for p in params:  # optimizer.zero_grad() without its profiler and compiler wrappers (~9 us a step)
                p.grad = None
            with rng:
                loss = loss_fn(model(xb), yb)
            loss.backward()
            stats = n_layers > 0 and step % stats_every == 0
            with torch.no_grad():
                grads = [p.grad if p.grad is not None else torch.zeros(1) for p in params]
                # One fused call for every parameter's norm (what clip_grad_norm_ does), then the global norm.
                norms = torch._foreach_norm(grads) if grads else []
                total_g = float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
                if stats:
                    gnorms = [norms[k] for k in weight_pos]
                    before = torch._foreach_mul(weights, 1.0)  # a copy of every weight matrix
            lr = optimizer.param_groups[0]["lr"]
            loss_value = float(loss.detach())
            step += 1
            epoch_done = epoch + (b + 1) / per_epoch
            if not (math.isfinite(loss_value) and math.isfinite(total_g)):
                # Divergence is data: record the step, keep the last finite weights, stop this run.
                diverged_at = step
                g = torch.stack(gnorms).numpy() if stats else _EMPTY
                nan = np.full(len(g), np.nan)
                yield TrainStep(step, epoch_done, loss_value, lr, total_g, names, g, nan, nan,
                                time.perf_counter() - t0)
                break
            optimizer.step()
            if not fixed_rate and (not on_metric or schedule.steps_taken < schedule.warmup_steps):
                schedule.step()
            if stats:
                with torch.no_grad():
                    before_n = torch._foreach_norm(before)
                    torch._foreach_sub_(before, weights)  # now -(update)
                    packed = torch.stack([*gnorms, *torch._foreach_norm(weights), *torch._foreach_norm(before),
                                          *before_n]).numpy()
                g_arr = packed[:n_layers]
                w_arr = packed[n_layers:2 * n_layers]
                r_arr = packed[2 * n_layers:3 * n_layers] / (packed[3 * n_layers:] + 1e-12)
            else:
                g_arr = w_arr = r_arr = _EMPTY
            running += loss_value
            running_n += 1
            yield TrainStep(step, epoch_done, loss_value, lr, total_g, names, g_arr, w_arr, r_arr,
                            time.perf_counter() - t0)

            if step % eval_every == 0 or step == total_steps:
                tr_loss, tr_acc, _ = evaluate(model, x_eval_train, y_eval_train, loss_fn, confidences=False)
                if mode_matters:
                    with eval_rng:
                        tr_loss_on, _, _ = evaluate(model, x_eval_train, y_eval_train, loss_fn, confidences=False,
                                                    train_mode=True)
                else:  # train mode would compute exactly what eval mode just did
                    tr_loss_on = tr_loss
                va_loss, va_acc, conf = evaluate(model, data.x_val, data.y_val, loss_fn)
                if va_acc > best_acc[0]:
                    best_acc = (va_acc, step, epoch_done, n_evals)
                improved = va_loss < best[0]
                if improved:
                    best = (va_loss, step, epoch_done, n_evals)
                    since_best = 0
                    if cfg.early_stopping:
                        best_state = copy.deepcopy(model.state_dict())
                else:
                    since_best += 1
                if on_metric and schedule.steps_taken >= schedule.warmup_steps:
                    schedule.step(va_loss)
                n_evals += 1
                last_eval = EvalPoint(step, epoch_done, tr_loss, tr_acc, va_loss, va_acc, tr_loss_on, best[1],
                                      best[0], since_best, optimizer.param_groups[0]["lr"], conf,
                                      running / max(running_n, 1))
                if improved:
                    best_eval = last_eval
                yield last_eval
                running, running_n = 0.0, 0
                if cfg.early_stopping and since_best >= cfg.early_stopping:
                    stopped_early = True
                    break
        if stopped_early or diverged_at >= 0:
            break

    restored = False
    if best_state is not None and cfg.early_stopping:
        model.load_state_dict(best_state)
        restored = True
    # The final model's metrics on the same samples as the curves. They were measured already when the
    # final weights are those of an evaluation (the last one, or the best one restored).
    final = best_eval if restored else (last_eval if last_eval is not None and last_eval.step == step else None)
    if final is not None:
        final_tr, final_tr_acc, final_va, final_va_acc = final.train_loss, final.train_acc, final.val_loss, final.val_acc
    else:
        final_tr, final_tr_acc, _ = evaluate(model, x_eval_train, y_eval_train, loss_fn, confidences=False)
        final_va, final_va_acc, _ = evaluate(model, data.x_val, data.y_val, loss_fn, confidences=False)
    test_loss = test_acc = None
    if data.x_test is not None:
        test_loss, test_acc, _ = evaluate(model, data.x_test, data.y_test, loss_fn, confidences=False)
    yield RunSummary(step, best_acc[0] if best_acc[3] >= 0 else math.nan, best[0], best_acc[2], best[1], final_tr,
                     final_va, test_acc, test_loss, stopped_early, restored, time.perf_counter() - t0, diverged_at,
                     final_tr_acc, final_va_acc, best[3], best_loss_epoch=best[2], best_acc_step=best_acc[1],
                     best_acc_eval=best_acc[3])


def layer_stats_interval(cfg: TrainConfig, per_epoch: int) -> int:
    """Steps between per-layer statistics: ``layer_stats_every``, or with 0 about 10 per epoch."""
    if cfg.layer_stats_every:
        return cfg.layer_stats_every
    return max(1, round(per_epoch / 10))


def train_eval_count(cfg: TrainConfig, n_train: int) -> int:
    """Training digits scored at each evaluation: ``train_eval_size``, or with 0 a twelfth of them (256 to
    2,000): evaluating a digit costs about a third of training on it, so this stays near 3% of an epoch."""
    want = cfg.train_eval_size or min(2000, max(256, n_train // 12))
    return min(n_train, want)
