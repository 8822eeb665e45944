"""The MNIST view: train a small network on real digits and watch loss, accuracy, rate and gradients live."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QScrollArea, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from engine.config import OptimizerConfig
from engine.models import MODELS
from engine.optimizers import OPTIMIZERS
from engine.registry import ConfigError
from engine.training import EvalPoint, RunSummary, TrainConfig, TrainStep, run_training, smoothing_floor

from .param_form import ParamForm
from .plots import make_plot
from .schedule_editor import ScheduleEditor
from .series import Growing, decimate, finite_or_nan, positive_or_nan
from .style import colour, symbol
from .worker import GeneratorWorker


class RunTrace:
    """One training run's curves, grown record by record."""

    def __init__(self):
        self.step = Growing((), np.float64)
        self.loss = Growing()
        self.lr = Growing()
        self.grad = Growing()
        self.eval_epoch = Growing()
        self.train_loss = Growing()
        self.val_loss = Growing()
        self.train_acc = Growing()
        self.val_acc = Growing()
        self.dropout_loss = Growing()
        self.summary: RunSummary | None = None
        self.last_eval: EvalPoint | None = None

    def add(self, records: list) -> None:
        steps = [r for r in records if isinstance(r, TrainStep)]
        if steps:
            self.step.extend(np.array([r.step for r in steps], dtype=np.float64))
            self.loss.extend(np.array([r.loss for r in steps]))
            self.lr.extend(np.array([r.lr for r in steps]))
            self.grad.extend(np.array([r.grad_norm for r in steps]))
        for r in records:
            if isinstance(r, EvalPoint):
                self.eval_epoch.append(r.epoch)
                self.train_loss.append(r.train_loss)
                self.val_loss.append(r.val_loss)
                self.train_acc.append(r.train_acc)
                self.val_acc.append(r.val_acc)
                self.dropout_loss.append(r.train_loss_dropout)
                self.last_eval = r
            elif isinstance(r, RunSummary):
                self.summary = r


class MnistPanel(QWidget):
    message = Signal(str)
    error = Signal(str, str)
    stats = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.worker: GeneratorWorker | None = None
        self.trace: RunTrace | None = None
        self._build_controls()
        self._build_plots()
        self._build_layout()
        self.timer = QTimer(self)
        self.timer.setInterval(33)  # 30 Hz is plenty for training curves
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _build_controls(self) -> None:
        self.optimizer_combo = QComboBox()
        for name, spec in OPTIMIZERS.items():
            if spec.elementwise:
                self.optimizer_combo.addItem(spec.label, name)
                self.optimizer_combo.setItemData(self.optimizer_combo.count() - 1, spec.help, Qt.ToolTipRole)
        self.optimizer_combo.setCurrentIndex(self.optimizer_combo.findData("adam"))
        self.optimizer_combo.setToolTip("The torch.optim optimiser that trains the network. GD uses the whole "
                                        "training split every step; the others use mini-batches.")
        self.optimizer_form_holder = QVBoxLayout()
        self.optimizer_form: ParamForm | None = None
        self.schedule = ScheduleEditor()
        self.model_combo = QComboBox()
        for name, spec in MODELS.items():
            self.model_combo.addItem(spec.label, name)
        self.model_combo.setToolTip("The network: an MLP (784 -> hidden -> 10) or a small CNN.")
        self.model_form_holder = QVBoxLayout()
        self.model_form: ParamForm | None = None
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(5)
        self.epochs.setToolTip("Passes over the training split.")
        self.batch = QSpinBox()
        self.batch.setRange(1, 100_000)
        self.batch.setValue(64)
        self.batch.setToolTip("Digits per mini-batch (ignored by GD, which uses them all). Usual: 32 to 256.")
        self.smoothing = QDoubleSpinBox()
        self.smoothing.setRange(0.0, 0.99)
        self.smoothing.setSingleStep(0.05)
        self.smoothing.setToolTip("Label smoothing: the target puts 1 - s + s/10 on the true class, s/10 on "
                                  "each other. The loss cannot fall below the target's entropy (dashed line).")
        self.patience = QSpinBox()
        self.patience.setRange(0, 1000)
        self.patience.setToolTip("Early stopping: stop after this many evaluations without a better validation "
                                 "loss and restore the best weights (0 = off).")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Seed for the initial weights, the split and the batch order.")
        self.run_button = QPushButton("Train")
        self.run_button.setToolTip("Start training (Space); press again to stop.")
        self.status = QLabel("Bundled data: 5,000 real MNIST training digits (500 per class).")
        self.status.setWordWrap(True)
        self.optimizer_combo.currentIndexChanged.connect(self._optimizer_changed)
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.run_button.clicked.connect(self.toggle_run)
        self.epochs.valueChanged.connect(self._update_schedule_context)
        self.batch.valueChanged.connect(self._update_schedule_context)
        self._optimizer_changed()
        self._model_changed()

    def _build_plots(self) -> None:
        def plot(title: str, left: str, bottom: str, log: bool = False) -> pg.PlotWidget:
            return make_plot(title, left, bottom, log, legend=True)

        self.step_loss_plot = plot("Training loss per step (train mode)", "loss", "step")
        self.epoch_loss_plot = plot("Loss per evaluation (eval mode)", "loss", "epoch")
        self.acc_plot = plot("Accuracy per evaluation", "accuracy", "epoch")
        self.lr_plot = plot("Learning rate", "lr", "step", log=True)
        self.grad_plot = plot("Gradient norm", "||g||", "step", log=True)
        c = colour(0)
        self.step_loss = self.step_loss_plot.plot(pen=pg.mkPen(c, width=1), name="mini-batch loss")
        self.train_loss = self.epoch_loss_plot.plot(pen=pg.mkPen(c, width=2), symbol="o", symbolBrush=c,
                                                    name="train")
        self.val_loss = self.epoch_loss_plot.plot(pen=pg.mkPen(colour(1), width=2, style=Qt.DashLine),
                                                  symbol="s", symbolBrush=colour(1), name="validation")
        self.dropout_loss = self.epoch_loss_plot.plot(pen=pg.mkPen(colour(2), width=1, style=Qt.DotLine),
                                                      symbol="t", symbolBrush=colour(2),
                                                      name="train, dropout on")
        self.train_acc = self.acc_plot.plot(pen=pg.mkPen(c, width=2), symbol="o", symbolBrush=c, name="train")
        self.val_acc = self.acc_plot.plot(pen=pg.mkPen(colour(1), width=2, style=Qt.DashLine), symbol="s",
                                          symbolBrush=colour(1), name="validation")
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen(colour(4), width=2))
        self.grad_curve = self.grad_plot.plot(pen=pg.mkPen(colour(3), width=1))
        self.floor_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#888", style=Qt.DashLine),
                                          label="label-smoothing floor {value:.4f}",
                                          labelOpts={"position": 0.85, "color": "#888"})
        self.best_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#009E73", style=Qt.DotLine), label="best",
                                         labelOpts={"position": 0.9, "color": "#009E73"})

    def _build_layout(self) -> None:
        controls = QWidget()
        col = QVBoxLayout(controls)
        obox = QGroupBox("Optimiser")
        ol = QVBoxLayout(obox)
        ol.addWidget(self.optimizer_combo)
        ol.addLayout(self.optimizer_form_holder)
        ol.addWidget(self.schedule)
        mbox = QGroupBox("Model and training")
        ml = QFormLayout(mbox)
        ml.addRow("model", self.model_combo)
        ml.addRow(self.model_form_holder)
        ml.addRow("epochs", self.epochs)
        ml.addRow("batch size", self.batch)
        ml.addRow("label smoothing", self.smoothing)
        ml.addRow("early stopping patience", self.patience)
        ml.addRow("seed", self.seed)
        col.addWidget(mbox)
        col.addWidget(obox)
        col.addWidget(self.run_button)
        col.addWidget(self.status)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(340)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        grid = QSplitter(Qt.Vertical)
        top = QSplitter(Qt.Horizontal)
        bottom = QSplitter(Qt.Horizontal)
        top.addWidget(self.step_loss_plot)
        top.addWidget(self.epoch_loss_plot)
        top.addWidget(self.acc_plot)
        bottom.addWidget(self.lr_plot)
        bottom.addWidget(self.grad_plot)
        grid.addWidget(top)
        grid.addWidget(bottom)
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(grid)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([340, 1060])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)

    def _replace_form(self, holder: QVBoxLayout, old: ParamForm | None, params, owner: str, defaults=None
                      ) -> ParamForm:
        if old is not None:
            old.setParent(None)
            old.deleteLater()
        form = ParamForm(params, owner, defaults)
        form.invalid.connect(self.message)
        form.changed.connect(self._update_schedule_context)
        holder.addWidget(form)
        return form

    def _optimizer_changed(self) -> None:
        name = self.optimizer_combo.currentData()
        spec = OPTIMIZERS.get(name)
        # MNIST-sized defaults: the 2D defaults are tuned for the landscapes.
        defaults = {"lr": {"gd": 0.5, "sgd": 0.05, "momentum": 0.05, "adagrad": 0.01, "adadelta": 1.0,
                           "rprop": 0.001}.get(name, 1e-3)}
        params = tuple(p for p in spec.params if p.name != "noise")
        self.optimizer_form = self._replace_form(self.optimizer_form_holder, self.optimizer_form, params,
                                                 f"optimizer {spec.label}", defaults)
        self._update_schedule_context()

    def _model_changed(self) -> None:
        spec = MODELS.get(self.model_combo.currentData())
        self.model_form = self._replace_form(self.model_form_holder, self.model_form, spec.params,
                                             f"model {spec.label}")

    def _update_schedule_context(self) -> None:
        try:
            lr = self.optimizer_form.values()["lr"]
        except ConfigError:
            return
        steps_per_epoch = -(-4000 // self.batch.value())  # bundled split; exact count comes with the run
        self.schedule.set_context(lr, self.epochs.value() * steps_per_epoch, self.optimizer_combo.currentData())

    def config(self) -> TrainConfig:
        name = self.optimizer_combo.currentData()
        cfg = TrainConfig(
            model=self.model_combo.currentData(), model_params=self.model_form.values(),
            optimizer=OptimizerConfig(name, self.optimizer_form.values(), self.schedule.config()),
            epochs=self.epochs.value(), batch_size=self.batch.value(),
            label_smoothing=round(self.smoothing.value(), 4), early_stopping=self.patience.value(),
            seed=self.seed.value())
        cfg.validate()
        return cfg

    # ---- running ----
    def toggle_run(self) -> None:
        self.stop() if self.worker is not None else self.start()

    def start(self) -> None:
        try:
            cfg = self.config()
        except ConfigError as exc:
            self.message.emit(str(exc))
            return
        self.trace = RunTrace()
        self._clear_plots(cfg)
        self.worker = GeneratorWorker(lambda: run_training(cfg), capacity=None)
        self.worker.failed.connect(self._failed)
        self.worker.start()
        self.run_button.setText("Stop")
        self.status.setText(f"Training {cfg.display_label} on the bundled digits...")

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self._drain()
            self.worker = None
        self.run_button.setText("Train")

    def _failed(self, message: str, details: str) -> None:
        self.error.emit(f"Training stopped: {message}", details)

    def _clear_plots(self, cfg: TrainConfig) -> None:
        for item in (self.step_loss, self.train_loss, self.val_loss, self.dropout_loss, self.train_acc,
                     self.val_acc, self.lr_curve, self.grad_curve):
            item.setData([], [])
        floor = smoothing_floor(cfg.label_smoothing)
        for plot, line in ((self.epoch_loss_plot, self.floor_line), (self.acc_plot, self.best_line)):
            if line.scene() is not None:
                plot.removeItem(line)
        if floor > 0:
            self.floor_line.setValue(floor)
            self.epoch_loss_plot.addItem(self.floor_line)

    def _tick(self) -> None:
        if self.worker is None:
            return
        self._drain()
        if self.worker is not None and self.worker.finished_and_drained():
            self.worker = None
            self.run_button.setText("Train")

    def _drain(self) -> None:
        records = self.worker.take() if self.worker is not None else []
        if not records or self.trace is None:
            return
        t = self.trace
        t.add(records)
        self.step_loss.setData(*decimate(t.step.view, finite_or_nan(t.loss.view)))
        self.lr_curve.setData(*decimate(t.step.view, positive_or_nan(t.lr.view)))
        self.grad_curve.setData(*decimate(t.step.view, positive_or_nan(t.grad.view)))
        e = t.eval_epoch.view
        self.train_loss.setData(e, finite_or_nan(t.train_loss.view))
        self.val_loss.setData(e, finite_or_nan(t.val_loss.view))
        self.dropout_loss.setData(e, finite_or_nan(t.dropout_loss.view))
        self.train_acc.setData(e, t.train_acc.view)
        self.val_acc.setData(e, t.val_acc.view)
        text = ""
        if t.last_eval is not None:
            ev = t.last_eval
            text = (f"epoch {ev.epoch:.2f}: train loss {ev.train_loss:.4f}, val loss {ev.val_loss:.4f}, "
                    f"val acc {ev.val_acc:.1%}, gap {ev.gap:+.4f}")
            if self.patience.value():
                text += f", patience {ev.patience_count}/{self.patience.value()}"
        if t.summary is not None:
            s = t.summary
            text = (f"Done in {s.wall_time:.1f} s: best val acc {s.best_val_acc:.1%} at epoch {s.best_epoch:.2f}"
                    + (", stopped early, best weights restored" if s.stopped_early else "")
                    + (f", test acc {s.test_acc:.1%}" if s.test_acc is not None else ""))
            if self.best_line.scene() is None:
                self.acc_plot.addItem(self.best_line)
            self.best_line.setValue(s.best_epoch)
        if text:
            self.status.setText(text)
        if len(t.step):
            self.stats.emit(f"step {int(t.step.view[-1])}")

    def shutdown(self) -> None:
        self.timer.stop()
        self.stop()
