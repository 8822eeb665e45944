"""The MNIST studio: train several runs side by side on real digits and compare them live.

Left: the data (source, training-set size, validation split), the model and what the runs share
(epochs, batch size, seed), the runs to compare (each an optimiser, schedule and regularisers; lessons
fill them with a ready comparison), the diagnostics' thresholds, and Train.
Right: pages of plots (curves, layers, regularisers, the learning-rate range test) over the results table.

Training runs in a worker process (``engine.training_process``), so that drawing never shares an
interpreter lock with it; this panel polls the process on a 30 Hz timer and draws what arrived since
the previous frame with one ``setData`` per item.
"""
from __future__ import annotations

import gc
import math
import time

import numpy as np
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QLabel, QPushButton, QScrollArea, QSpinBox,
                               QSplitter, QVBoxLayout, QWidget)

from engine.config import OptimizerConfig
from engine.models import MODELS
from engine.registry import ConfigError, Param
from engine.schedules import check_optimizer_schedule
from engine.training import TrainConfig, check_batch, dropout_count_problem, dropout_layer_count
from engine.training_diagnostics import (DEFAULT_EXPLODE, DEFAULT_OVERFIT_PATIENCE, DEFAULT_VANISH,
                                         GradientThresholds)
from engine.training_process import Job, JobEnded, JobFailed, JobStarted, RangeBlock, StepBlock, TrainingRunner

from .mnist_data import DatasetPicker, count_train_digits, max_train_size
from .mnist_lr_range import RangePage
from .mnist_plots import PlotTabs, RunLegend, RunTrace
from .mnist_results import ResultsTable
from .mnist_runs import LESSONS, Lesson, RunList, RunSpec, lesson, parse_dropout
from .param_form import _BAD_STYLE, ParamForm

SHARED_DEFAULTS = {"epochs": 5, "batch_size": 64, "eval_every": 0, "seed": 0, "train_size": 0, "model": "mlp",
                   "model_params": {}}
# A run that failed with one of these before it started failed on its data, not on its own settings.
DATA_ERRORS = frozenset({"DataSourceError", "IdxError", "FileNotFoundError", "PermissionError", "IsADirectoryError",
                         "NotADirectoryError", "OSError", "EOFError", "BadGzipFile"})
DIAGNOSTIC_PARAMS = (
    Param("explode", "exploding above", DEFAULT_EXPLODE, "A layer whose gradient norm exceeds this (or is not "
          "finite) is flagged as exploding.", minimum=0.0, min_exclusive=True, log=True, typical="10 to 1000"),
    Param("vanish", "vanishing below", DEFAULT_VANISH, "A layer whose gradient norm falls below this is flagged as "
          "vanishing.", minimum=0.0, min_exclusive=True, log=True, typical="1e-8 to 1e-4"),
    Param("overfit", "overfitting after", DEFAULT_OVERFIT_PATIENCE, "Mark overfitting once the validation loss has "
          "risen this many evaluations in a row while the training loss fell.", kind="int", minimum=1, maximum=100,
          typical="2 to 5"),
)


def _gc_hold() -> None:
    """Collect now, then keep every object alive at this point out of later collections until _gc_release.
    With torch and Qt loaded the process holds a few hundred thousand objects, and a full collection over
    them stalls the window for about 0.2 s (measured here: one 200 ms frame in the middle of a replayed
    run). So: one collection when the user has just pressed Train, none over those objects while the
    curves are drawn."""
    gc.collect()
    gc.freeze()


def _gc_release() -> None:
    """Back to normal collection (objects dropped during training, in cycles, are freed by the next one)."""
    gc.unfreeze()


def make_config(shared: dict[str, Any], spec: RunSpec, row: int) -> TrainConfig:
    """The full TrainConfig of run ``row`` (0-based): shared settings plus the run's own."""
    model_params = dict(shared["model_params"])
    where = f"run {row + 1}"
    values = parse_dropout(spec.dropout, f"{where} dropout")
    per_layer: tuple[float, ...] = ()
    if len(values) == 1:
        model_params["dropout"] = values[0]
    elif len(values) > 1:
        have = dropout_layer_count(shared["model"], model_params)
        if len(values) != have:
            raise ConfigError(f"{where} dropout", f"{dropout_count_problem(have)}; got {len(values)}")
        per_layer = values
    label = spec.display_label
    cfg = TrainConfig(dataset=shared["dataset"], dataset_path=shared["dataset_path"],
                      dataset_params=dict(shared["dataset_params"]), train_size=shared["train_size"],
                      val_fraction=shared["val_fraction"], model=shared["model"], model_params=model_params,
                      optimizer=OptimizerConfig(spec.optimizer.name, dict(spec.optimizer.params),
                                                spec.optimizer.schedule, label),
                      epochs=shared["epochs"], batch_size=shared["batch_size"],
                      label_smoothing=spec.label_smoothing, early_stopping=spec.early_stopping,
                      eval_every=shared["eval_every"], augment=spec.augment, seed=shared["seed"], label=label,
                      dropout_per_layer=per_layer)
    try:
        cfg.validate()
    except ConfigError as exc:
        raise _named_for_the_window(exc, where) from None
    return cfg


# Settings every run shares are one control each in the window: a problem with one is named by that control.
SHARED_CONTROLS = {"train_size": "training digits", "val_fraction": "validation share", "epochs": "epochs",
                   "batch_size": "batch size", "eval_every": "evaluate", "seed": "seed"}


def _named_for_the_window(exc: ConfigError, where: str) -> ConfigError:
    """The error with its field as the window names it: a shared control by its label, else ``run N field``."""
    if exc.field in SHARED_CONTROLS:
        return ConfigError(SHARED_CONTROLS[exc.field], exc.problem)
    return ConfigError(f"{where} {exc.field}", exc.problem)


def spec_of(cfg: TrainConfig) -> RunSpec:
    """The run part of a TrainConfig (inverse of make_config)."""
    if cfg.dropout_per_layer:
        dropout = ", ".join(f"{v:g}" for v in cfg.dropout_per_layer)
    elif "dropout" in cfg.model_params:
        dropout = f"{cfg.model_params['dropout']:g}"
    else:
        dropout = ""
    opt = cfg.optimizer
    auto = RunSpec(OptimizerConfig(opt.name, opt.params, opt.schedule), dropout, cfg.label_smoothing,
                   cfg.early_stopping, cfg.augment).auto_label()
    label = cfg.label if cfg.label and cfg.label != auto else ""
    return RunSpec(OptimizerConfig(opt.name, dict(opt.params), opt.schedule), dropout, cfg.label_smoothing,
                   cfg.early_stopping, cfg.augment, label)


class MnistPanel(QWidget):
    message = Signal(str)
    error = Signal(str, str)
    stats = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.runner: TrainingRunner | None = None
        self.traces: list[RunTrace] = []
        self.mode = ""  # "train" | "range" while something runs
        self._active = False
        self._range_row = -1
        self._started_at = 0.0
        self._last_text = 0.0
        self._reported: set[str] = set()
        self._previous: list[RunTrace] = []  # the results on screen before Train, until the new runs start
        self._build_controls()
        self._build_right()
        self._build_layout()
        self.apply_lesson(LESSONS[0])
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(27)  # about 35 frames a second (Qt timers run a little late under load)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    # ---- construction ----
    def _build_controls(self) -> None:
        self.picker = DatasetPicker()
        self.picker.message.connect(self.message)
        self.picker.changed.connect(self._update_context)
        self.model_combo = QComboBox()
        for name, spec in MODELS.items():
            self.model_combo.addItem(spec.label, name)
            self.model_combo.setItemData(self.model_combo.count() - 1, spec.help, Qt.ToolTipRole)
        self.model_combo.setToolTip("The network every run trains: an MLP (784 -> hidden -> 10, depth and width "
                                    "below) or a small CNN (two conv blocks, a dense head with dropout).")
        self.model_form_holder = QVBoxLayout()
        self.model_form_holder.setContentsMargins(0, 0, 0, 0)
        self.model_form: ParamForm | None = None
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(5)
        self.epochs.setToolTip("Passes over the training digits (early stopping may end a run sooner).")
        self.batch = QSpinBox()
        self.batch.setRange(1, 100_000)
        self.batch.setValue(64)
        self.batch.setToolTip("Digits per mini-batch (GD ignores it and uses them all). Usual: 32 to 256.")
        self.eval_every = QSpinBox()
        self.eval_every.setRange(0, 1_000_000)
        self.eval_every.setSpecialValueText("each epoch")
        self.eval_every.setToolTip("Steps between evaluations of train and validation loss and accuracy ('each "
                                   "epoch': once per pass). Early stopping and ReduceLROnPlateau count evaluations.")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Seed of the initial weights, the split, the batch order and the dropout masks. All runs "
                             "share it: they start from the same weights and see the same batches.")
        self.runs = RunList()
        self.runs.invalid.connect(self.message)
        self.runs.changed.connect(self._runs_changed)
        self.runs.lesson_chosen.connect(self.apply_lesson)
        self.diagnostics = ParamForm(DIAGNOSTIC_PARAMS, "diagnostics")
        self._accepted_thresholds = (DEFAULT_EXPLODE, DEFAULT_VANISH, DEFAULT_OVERFIT_PATIENCE)
        self.diagnostics.invalid.connect(self.message)
        self.diagnostics.changed.connect(self._thresholds_changed)
        self.run_button = QPushButton("Train")
        self.run_button.setToolTip("Train every ticked run side by side (Space); press again to stop.")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self._source_status()
        self.picker.source_changed.connect(self._source_status)
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.run_button.clicked.connect(self.toggle_run)
        for w in (self.epochs, self.batch):
            w.valueChanged.connect(self._update_context)
        self._model_changed()

    def _build_right(self) -> None:
        self.plots = PlotTabs()
        self.legend = RunLegend()
        self.legend.stop_requested.connect(self.stop_run)
        self.plots.currentChanged.connect(lambda _=None: self._redraw())
        self.plots.curves.options_changed.connect(lambda: self._redraw(force=True))
        self.plots.layers.run_combo.currentIndexChanged.connect(lambda _=None: self._redraw())
        self.range_page = RangePage()
        self.plots.addTab(self.range_page, "LR range test")
        self.plots.setTabToolTip(3, "Grow the rate exponentially over a few hundred steps, plot loss against it, and "
                                    "read off a good starting rate.")
        self.range_page.run_requested.connect(self.start_range_test)
        self.range_page.use_requested.connect(self._use_rate)
        self.results = ResultsTable()
        self.results.run_selected.connect(self.runs.select)

    def _build_layout(self) -> None:
        controls = QWidget()
        col = QVBoxLayout(controls)
        col.setContentsMargins(2, 2, 2, 2)
        col.addWidget(self.picker)
        mbox = QGroupBox("Model and shared settings")
        ml = QFormLayout(mbox)
        ml.addRow("model", self.model_combo)
        ml.addRow(self.model_form_holder)
        ml.addRow("epochs", self.epochs)
        ml.addRow("batch size", self.batch)
        ml.addRow("evaluate", self.eval_every)
        ml.addRow("seed", self.seed)
        for w in (self.model_combo, self.epochs, self.batch, self.eval_every, self.seed):
            lab = ml.labelForField(w)
            if lab is not None:
                lab.setToolTip(w.toolTip())
        col.addWidget(mbox)
        col.addWidget(self.runs)
        dbox = QGroupBox("Diagnostics")
        dl = QVBoxLayout(dbox)
        dl.addWidget(self.diagnostics)
        col.addWidget(dbox)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(360)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(scroll, 1)
        ll.addWidget(self.run_button)
        ll.addWidget(self.status)
        right = QSplitter(Qt.Vertical)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.setSpacing(2)
        tl.addWidget(self.legend)
        tl.addWidget(self.plots, 1)
        right.addWidget(top)
        right.addWidget(self.results)
        right.setStretchFactor(0, 4)
        right.setStretchFactor(1, 1)
        right.setSizes([640, 190])
        self.right_splitter = right
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([380, 1020])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)

    def _model_changed(self) -> None:
        spec = MODELS.get(self.model_combo.currentData())
        if self.model_form is not None:
            self.model_form.setParent(None)
            self.model_form.deleteLater()
        # Dropout is set per run (it is one of the regularisers compared).
        params = tuple(p for p in spec.params if p.name != "dropout")
        self.model_form = ParamForm(params, f"model {spec.label}")
        self.model_form.invalid.connect(self.message)
        self.model_form_holder.addWidget(self.model_form)
        self._dropout_placeholders()

    def _dropout_placeholders(self) -> None:
        spec = MODELS.get(self.model_combo.currentData())
        default = next((p.default for p in spec.params if p.name == "dropout"), None)
        for e in self.runs.editors:
            e.dropout.setPlaceholderText(f"model default ({default:g})" if default is not None else "none")

    # ---- settings ----
    def shared(self) -> dict[str, Any]:
        """What every run shares; ConfigError naming the field when something is not acceptable."""
        data = self.picker.values()
        return {**data, "model": self.model_combo.currentData(), "model_params": self.model_form.values(),
                "epochs": self.epochs.value(), "batch_size": self.batch.value(), "eval_every": self.eval_every.value(),
                "seed": self.seed.value()}

    def _train_digits(self) -> int:
        n = count_train_digits(self.picker.source()) if self.picker.source().available() else None
        val = self.picker.val_fraction.value()
        most = max_train_size(n, val) if n else 4000
        size = self.picker.train_size.value()
        return min(size, most) if size else most

    def total_steps(self, cfg: TrainConfig, n_train: int | None = None) -> int:
        n = n_train or self._train_digits()
        batch = n if cfg.optimizer.name == "gd" else min(cfg.batch_size, n)
        return cfg.epochs * max(1, math.ceil(n / batch))

    def configs(self, only_enabled: bool = True) -> list[TrainConfig]:
        """Every (ticked) run's TrainConfig, validated; ConfigError naming the run and field otherwise."""
        shared = self.shared()
        out = []
        n = self._train_digits()
        for row, spec in self.runs.specs(only_enabled):
            cfg = make_config(shared, spec, row)
            try:
                check_batch(cfg, n)
            except ConfigError as exc:
                raise _named_for_the_window(exc, f"run {row + 1}") from None
            check_optimizer_schedule(cfg.optimizer, self.total_steps(cfg, n), f"run {row + 1} ")
            out.append(cfg)
        return out

    def config(self) -> TrainConfig:
        """The selected run's full settings (shared ones included)."""
        row = self.runs.current()
        specs = dict(self.runs.specs(only_enabled=False))
        return make_config(self.shared(), specs[row], row)

    def set_config(self, cfg: TrainConfig) -> None:
        """Apply a TrainConfig: its shared settings to all runs, its own to the selected run."""
        cfg.validate()
        self._set_shared(cfg)
        row = self.runs.current()
        if 0 <= row < len(self.runs.editors):
            self.runs.editors[row].set_spec(spec_of(cfg))

    def set_configs(self, cfgs: list[TrainConfig], enabled: list[bool] | None = None,
                    shared_from: TrainConfig | None = None) -> None:
        """Replace the runs by these (shared settings from ``shared_from``, else the first), all ticked or as
        ``enabled`` says."""
        if not cfgs:
            raise ConfigError("runs", "give at least one run")
        for cfg in cfgs:
            cfg.validate()
        self._set_shared(shared_from or cfgs[0])
        self.runs.set_specs([spec_of(c) for c in cfgs], enabled)
        self._dropout_placeholders()

    def unticked_configs(self) -> list[tuple[int, TrainConfig]]:
        """(row, TrainConfig) of the runs that are not ticked (kept in a session, not trained)."""
        shared = self.shared()
        on = self.runs.enabled()
        return [(row, make_config(shared, spec, row)) for row, spec in self.runs.specs(only_enabled=False)
                if not on[row]]

    def _set_shared(self, cfg: TrainConfig) -> None:
        self.picker.set_values(cfg.dataset, cfg.dataset_path, cfg.dataset_params, cfg.train_size, cfg.val_fraction)
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(cfg.model)))
        self.model_form.set_values({k: v for k, v in cfg.model_params.items() if k != "dropout"})
        self.epochs.setValue(cfg.epochs)
        self.batch.setValue(cfg.batch_size)
        self.eval_every.setValue(cfg.eval_every)
        self.seed.setValue(cfg.seed)

    def apply_lesson(self, item: Lesson | str) -> None:
        item = lesson(item) if isinstance(item, str) else item
        shared = {**SHARED_DEFAULTS, **item.shared}
        index = max(0, self.model_combo.findData(shared["model"]))
        if index != self.model_combo.currentIndex():
            self.model_combo.setCurrentIndex(index)  # rebuilds the model form
        self.model_form.set_values({p.name: p.default for p in self.model_form.params})
        self.model_form.set_values(shared["model_params"])
        self.epochs.setValue(shared["epochs"])
        self.batch.setValue(shared["batch_size"])
        self.eval_every.setValue(shared["eval_every"])
        self.seed.setValue(shared["seed"])
        self.picker.train_size.setValue(shared["train_size"])
        self.runs.set_specs(list(item.runs))
        self._dropout_placeholders()
        self._update_context()
        if self.isVisible():
            self.message.emit(f"Lesson: {item.title}. {item.help}")

    show_lesson = apply_lesson  # for the study panel's "Show me"

    def _runs_changed(self) -> None:
        self._update_context()
        labels = []
        for e in self.runs.editors:
            try:
                labels.append(e.spec().display_label)
            except ConfigError:
                labels.append(e.label.text() or "(settings to fix)")
        self.range_page.set_runs(labels)

    def _update_context(self) -> None:
        try:
            n = self._train_digits()
        except Exception:  # the picker shows its own problem
            return
        per_epoch = max(1, math.ceil(n / max(1, min(self.batch.value(), n))))
        self.runs.set_total_steps(self.epochs.value() * per_epoch)

    def _source_status(self) -> None:
        """Between runs the status line says what the next run trains on (the source chosen, as the picker
        describes it); it replaces an earlier refusal, which was about the source before."""
        if self._active:
            return
        text = self.picker.describe.text().strip()
        text = (text[:1].upper() + text[1:]).rstrip(".") + "."
        shown = next((t.started.dataset for t in self.traces if t.started is not None), None)
        if shown:
            text += f" On screen: the previous results ({shown})."
        self.status.setText(text)

    def _checked_thresholds(self) -> tuple[float, float, int]:
        """The diagnostics' thresholds, validated together; ConfigError naming the field otherwise, with the
        vanishing field marked when it is not below the exploding one (each field alone marks itself)."""
        v = self.diagnostics.values()
        vanish_field = self.diagnostics.widgets["vanish"]
        try:
            GradientThresholds(v["explode"], v["vanish"]).validate()
        except ConfigError as exc:
            vanish_field.setStyleSheet(_BAD_STYLE)
            vanish_field.setToolTip(f"{exc}\n\n{vanish_field.param.tooltip()}")
            raise
        vanish_field.check()  # clears a mark left by an earlier pair
        return v["explode"], v["vanish"], v["overfit"]

    def _thresholds(self) -> tuple[float, float, int]:
        """What the plots flag against: the thresholds last accepted (the fields may hold a refused pair)."""
        return self._accepted_thresholds

    def _thresholds_changed(self) -> None:
        try:
            self._accepted_thresholds = self._checked_thresholds()
        except ConfigError as exc:
            self.message.emit(f"{exc}; the plots keep the last accepted thresholds")
            return
        self._redraw(force=True)

    # ---- running ----
    def _runner(self) -> TrainingRunner:
        if self.runner is None:
            self.runner = TrainingRunner()
        return self.runner

    def showEvent(self, event) -> None:
        super().showEvent(event)
        # Importing torch in the worker takes seconds: start it as soon as the view is seen.
        if self.runner is None:
            self._runner().warm_up(max(1, self.runs.count()))
        if self.traces:
            self._redraw(force=True)  # what arrived while another view was showing

    @property
    def trace(self) -> RunTrace | None:
        """The first run's records (the single-run view's name, kept for scripts)."""
        return self.traces[0] if self.traces else None

    def running(self) -> bool:
        return self._active

    def toggle_run(self) -> None:
        self.stop() if self._active else self.start()

    def start(self) -> None:
        try:
            self.picker.check_ready()
            configs = self.configs()
            self._checked_thresholds()
        except ConfigError as exc:
            self.message.emit(str(exc))
            self.status.setText(f"Not started: {exc}")
            return
        if not configs:
            self.message.emit("runs: tick at least one run to train")
            return
        rows = [row for row, _ in self.runs.specs()]
        # Kept until the new runs have their data: a source that fails to load then gives them back.
        self._previous = self.traces if self.traces and all(t.finished for t in self.traces) else []
        self.traces = [RunTrace(row, cfg, cfg.label) for row, cfg in zip(rows, configs)]
        n = self._train_digits()
        self.plots.reset(self.traces, max(self.total_steps(cfg, n) for cfg in configs))
        self.legend.set_runs(self.traces)
        self.results.reset(self.traces)
        self._reported.clear()
        self._runner().start([Job(cfg) for cfg in configs])
        _gc_hold()
        self.mode = "train"
        self._active = True
        self._started_at = time.perf_counter()
        self.legend.update_runs(self.traces, True)
        self.run_button.setText("Stop")
        alive = self.runner.alive()
        self.status.setText(f"Starting {len(configs)} run{'s' if len(configs) != 1 else ''}"
                            + ("" if alive else " (the training process is starting: a few seconds)") + "...")

    def start_range_test(self, row: int, rcfg: Any) -> None:
        if row < 0:
            self.message.emit(str(rcfg))
            return
        if self._active:
            self.message.emit("lr range test: stop the training first (one thing at a time keeps both fast)")
            return
        try:
            self.picker.check_ready()
            shared = self.shared()
            specs = dict(self.runs.specs(only_enabled=False))
            cfg = make_config(shared, specs[row], row)
        except (ConfigError, KeyError) as exc:
            self.message.emit(str(exc))
            return
        self._range_row = row
        self.range_page.begin(row, cfg.label, rcfg)
        self._runner().start([Job(cfg, "lr_range", rcfg)])
        self.mode = "range"
        self._active = True
        self.run_button.setText("Stop")

    def _use_rate(self, row: int, lr: float) -> None:
        if 0 <= row < len(self.runs.editors):
            self.runs.editors[row].set_lr(float(f"{lr:.3g}"))
            self.runs.select(row)
            self.message.emit(f"Run {row + 1}: learning rate set to {lr:.3g} (the range test's suggestion)")

    def stop(self) -> None:
        _gc_release()
        if self.runner is not None and self._active:
            self.runner.stop()
            for t in self.traces:
                if not t.finished:
                    t.stop_requested = True
        self._active = False
        self.run_button.setText("Train")
        self._redraw()

    def stop_run(self, job: int) -> None:
        """Stop one run of the comparison (its position in ``traces``); the others go on."""
        if not (self._active and self.mode == "train") or not 0 <= job < len(self.traces):
            return
        t = self.traces[job]
        if t.finished or t.stop_requested:
            return
        t.stop_requested = True
        self.runner.stop(job)
        self.message.emit(f"Run {t.index + 1} ({t.label}): stopping; the other runs go on.")
        self._redraw(text_now=True)

    def _finish(self) -> None:
        _gc_release()
        self._active = False
        self.run_button.setText("Train")

    # ---- drawing ----
    def _tick(self) -> None:
        if self.runner is None:
            return
        items = self.runner.poll()
        behind = any(t.dirty_evals for t in self.traces)  # evaluation curves spread over frames
        if not items and not self._active and not behind:
            return
        for job, item in items:
            if self.mode == "range":
                self._range_item(item)
            elif 0 <= job < len(self.traces):
                self.traces[job].add(item)
                if isinstance(item, JobFailed):
                    self._report_failure(self.traces[job], item)
        done = self._active and not self.runner.running
        if done:
            self._finish()
        if self._previous and any(t.started is not None for t in self.traces):
            self._previous = []  # the new runs have their data: the old results are gone for good
        if self.mode == "train" and (items or self._active or behind or done):
            # Evaluations, summaries and ends are rare: the table and status show them at once.
            news = any(not isinstance(item, (StepBlock, RangeBlock)) for _, item in items)
            # The last frame draws everything still pending (some plots take turns), and so does every frame
            # after Stop: the records still on their way are the last ones.
            self._redraw(force=done or not self._active, text_now=news)
        if done and self.mode == "train" and self.traces and all(self._data_failure(t) for t in self.traces):
            self._data_failed()

    @staticmethod
    def _data_failure(trace: RunTrace) -> bool:
        """The run failed while its data was loaded (before it started): the data's fault, not the run's."""
        f = trace.failed
        return f is not None and trace.started is None and f.kind in DATA_ERRORS

    def _data_where(self, trace: RunTrace) -> str:
        cfg = trace.cfg
        return f"dataset ({cfg.dataset_path})" if cfg.dataset_path else f"dataset ({cfg.dataset})"

    def _data_failed(self) -> None:
        """Every run failed on loading the data: put the previous results back (they were only hidden), and
        say what is wrong with the data, naming the file."""
        failure = self.traces[0].failed.message
        where = self._data_where(self.traces[0])
        previous, self._previous = self._previous, []
        self.traces = previous
        self.plots.reset(previous)
        self.legend.set_runs(previous)
        self.results.reset(previous)
        self._redraw(force=True)
        kept = " The results shown are the previous ones." if previous else ""
        self.status.setText(f"Not started: {where}: {failure}.{kept}")

    def _range_item(self, item: Any) -> None:
        if isinstance(item, JobFailed):
            self.range_page.end(item.message)
            if item.field:
                self.message.emit(f"lr range test: {item.message}")
            else:
                self.error.emit(f"The range test failed: {item.message}", item.details)
        elif isinstance(item, JobEnded):
            self.range_page.end()
        elif not isinstance(item, JobStarted):
            self.range_page.add(item)

    def _report_failure(self, trace: RunTrace, item: JobFailed) -> None:
        if item.message in self._reported:
            return  # the same problem in every run: say it once
        self._reported.add(item.message)
        if self._data_failure(trace):
            self.message.emit(f"{self._data_where(trace)}: {item.message}")
            return
        where = f"Run {trace.index + 1} ({trace.label})"
        if item.field or item.kind in ("ConfigError", "DataSourceError", "IdxError"):
            self.message.emit(f"{where}: {item.message}")
        else:
            self.error.emit(f"{where} stopped: {item.message}", item.details)

    def _redraw(self, force: bool = False, text_now: bool = False) -> None:
        if not self.traces or not self.isVisible():
            return  # records keep arriving while another view shows; drawn at once when this one is shown
        explode, vanish, overfit = self._thresholds()
        self.plots.refresh(self.traces, explode, vanish, overfit, force=force)
        now = time.perf_counter()
        # Between evaluations the table and the status line change slowly: five times a second is plenty.
        if force or text_now or not self._active or now - self._last_text >= 0.2:
            self._last_text = now
            self.results.update_rows(self.traces, explode, vanish)
            self.legend.update_runs(self.traces, self._active and self.mode == "train")
            self._status_text()

    def _status_text(self) -> None:
        t0 = self.traces[0]
        steps = sum(len(t.step) for t in self.traces)
        parts = []
        if t0.started is not None:
            s = t0.started
            test = f", {s.n_test:,} test digits scored at the end" if s.n_test else ", no test set"
            parts.append(f"{s.dataset}: {s.n_train:,} training / {s.n_val:,} validation digits{test}.")
        running = [t for t in self.traces if not t.finished]
        done = [t for t in self.traces if t.summary is not None]
        scored = [t for t in self.traces if len(t.val_acc)]
        if scored:
            best = max(scored, key=lambda t: float(t.val_acc.view.max()))
            k = int(np.argmax(best.val_acc.view))
            lead = "Done" if not running else f"{len(done)} of {len(self.traces)} done" if done else "So far"
            parts.append(f"{lead}: best val acc {best.val_acc.view[k]:.1%} ({best.label}, epoch "
                         f"{best.eval_epoch.view[k]:.2f}).")
        notes = []
        for label, pick in (("stopped early", lambda t: t.summary.stopped_early),
                            ("diverged", lambda t: t.summary.diverged)):
            hit = [t.label for t in done if pick(t)]
            if hit:
                notes.append(f"{label}: {', '.join(hit)}")
        by_user = [t.label for t in self.traces if t.stopped_by_user]
        if by_user:
            notes.append(f"stopped by you: {', '.join(by_user)}")
        tested = [t for t in done if t.summary.test_acc is not None]
        if tested:
            top = max(tested, key=lambda t: t.summary.test_acc)
            notes.append(f"best test acc {top.summary.test_acc:.1%} ({top.label})")
        if notes:
            text = "; ".join(notes)
            parts.append(text[:1].upper() + text[1:] + ".")  # not capitalize(): it lowercases the run names
        # Steps per second on the training process's own clock (the runs share it, so the longest run's).
        clock = max((float(t.elapsed.view[-1]) for t in self.traces if len(t.elapsed)), default=0.0)
        rate = steps / clock if clock > 0 else 0.0
        if running and self._active:
            parts.append(f"Training {len(running)} run{'s' if len(running) != 1 else ''}: epoch "
                         f"{max(t.current_epoch() for t in running):.2f}, {rate:,.0f} steps/s in all.")
            self.stats.emit(f"MNIST: {steps:,} steps  |  {rate:,.0f} steps/s  |  {len(running)} running")
        else:
            self.stats.emit(f"MNIST: {steps:,} steps in {clock:.1f} s  |  {rate:,.0f} steps/s  |  finished")
        failed = [t for t in self.traces if t.failed is not None and not self._data_failure(t)]
        data = next((t for t in self.traces if self._data_failure(t)), None)
        if data is not None:
            parts.append(f"Could not load the data: {self._data_where(data)}: {data.failed.message}")
        if failed:
            parts.append(f"{len(failed)} run{'s' if len(failed) != 1 else ''} failed: {failed[0].failed.message}")
        self.status.setText("  ".join(parts) if parts else "Starting...")

    def shutdown(self) -> None:
        """Stop everything and wait for it: the timer, a download, the training process."""
        self.timer.stop()
        self.picker.shutdown()
        _gc_release()
        self._active = False
        if self.runner is not None:
            self.runner.shutdown()
            self.runner = None
