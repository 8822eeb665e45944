"""The runs to compare: a list of runs (each an optimiser, schedule and regularisers), their editors,
the lessons that fill the list with a ready comparison, and each run's colour and marker.

Everything the runs share (data, model, epochs, batch size, seed) is set once in the panel, so that a
comparison differs only where the user made it differ, and every run starts from the same weights and
sees the same batches.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import pyqtgraph as pg
from pyqtgraph.graphicsItems.ScatterPlotItem import Symbols
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit,
                               QListWidget, QListWidgetItem, QPushButton, QSpinBox, QStackedWidget, QVBoxLayout,
                               QWidget)

from engine.config import OptimizerConfig, ScheduleConfig
from engine.optimizers import OPTIMIZERS
from engine.registry import ConfigError
from engine.training import MAX_DROPOUT

from .param_form import ParamForm
from .schedule_editor import ScheduleEditor
from .style import PALETTE, SYMBOLS

MAX_RUNS = 8

# MNIST-sized default rates (the registry's defaults are tuned for the 2D landscapes).
MNIST_LR = {"gd": 0.5, "sgd": 0.05, "momentum": 0.05, "adagrad": 0.01, "adadelta": 1.0, "rprop": 0.001}


def default_lr(name: str) -> float:
    return MNIST_LR.get(name, 1e-3)


def run_colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def run_symbol(i: int) -> str:
    return SYMBOLS[i % len(SYMBOLS)]


def run_icon(i: int, size: int = 16) -> QIcon:
    """The run's colour and marker shape, for lists and the results table."""
    pix = QPixmap(size, size)
    pix.fill(Qt.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.Antialiasing)
    path = Symbols[run_symbol(i)]
    transform = QTransform()
    transform.translate(size / 2, size / 2)
    transform.scale(size * 0.8, size * 0.8)
    painter.setPen(pg.mkPen("#333", width=0.06))
    painter.setBrush(QColor(run_colour(i)))
    painter.drawPath(transform.map(path))
    painter.end()
    return QIcon(pix)


def parse_dropout(text: str, where: str) -> tuple[float, ...]:
    """"" -> () (the model's own), "0.3" -> (0.3,), "0.2, 0.5" -> per layer. ConfigError naming ``where``."""
    parts = [p for p in re.split(r"[,;\s]+", text.strip()) if p]
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ConfigError(where, f"{p!r} is not a number; give one probability, or one per dropout layer "
                                     "separated by commas") from None
        if not (math.isfinite(v) and 0.0 <= v <= MAX_DROPOUT):
            raise ConfigError(where, f"must be between 0 and {MAX_DROPOUT:g}, got {p}")
        values.append(v)
    return tuple(values)


@dataclass(frozen=True)
class RunSpec:
    """What one run sets on top of the shared settings."""

    optimizer: OptimizerConfig
    dropout: str = ""  # "" = the model's own; "0.3"; or one per dropout layer, "0.2, 0.5"
    label_smoothing: float = 0.0
    early_stopping: int = 0
    augment: bool = False
    label: str = ""

    def auto_label(self) -> str:
        spec = OPTIMIZERS.get(self.optimizer.name)
        p = self.optimizer.params
        text = spec.label
        if "lr" in p:
            text += f" {p['lr']:g}"
        if p.get("weight_decay"):
            text += f" wd {p['weight_decay']:g}"
        sched = self.optimizer.schedule
        if sched.name != "constant":
            text += " " + sched.name
        if sched.warmup_steps:
            text += f" +warmup {sched.warmup_steps}"
        if self.dropout:
            text += f" drop {self.dropout}"
        if self.label_smoothing:
            text += f" ls {self.label_smoothing:g}"
        if self.augment:
            text += " aug"
        if self.early_stopping:
            text += f" es {self.early_stopping}"
        return text

    @property
    def display_label(self) -> str:
        return self.label or self.auto_label()


def _opt(name: str, schedule: ScheduleConfig | None = None, **params: Any) -> OptimizerConfig:
    values = {"lr": default_lr(name), **params}
    return OptimizerConfig(name, values, schedule or ScheduleConfig())


@dataclass(frozen=True)
class Lesson:
    key: str  # matches the study topics' preset_topic where there is one
    title: str
    help: str
    runs: tuple[RunSpec, ...]
    shared: dict[str, Any] = field(default_factory=dict)  # epochs, train_size, model, model_params, ...


LESSONS: tuple[Lesson, ...] = (
    Lesson("mnist", "Optimisers: SGD, momentum, RMSprop, Adam",
           "The same network from the same weights on the same batches, trained by four optimisers.",
           (RunSpec(_opt("sgd")), RunSpec(_opt("momentum")), RunSpec(_opt("rmsprop", lr=1e-3)), RunSpec(_opt("adam")))),
    Lesson("tune_lr", "Learning rate: too small to too large",
           "Adam at four rates a decade apart. Then run the LR range test and compare its suggestion.",
           tuple(RunSpec(_opt("adam", lr=lr)) for lr in (1e-4, 1e-3, 1e-2, 1e-1))),
    Lesson("schedules", "Schedules: constant, warmup + cosine, step, plateau",
           "Momentum SGD under four schedules; ReduceLROnPlateau is driven by the validation loss.",
           (RunSpec(_opt("momentum")),
            RunSpec(_opt("momentum", ScheduleConfig("cosine", {}, warmup_steps=60, warmup_start_factor=0.05))),
            RunSpec(_opt("momentum", ScheduleConfig("step", {"step_size": 150, "gamma": 0.3}))),
            RunSpec(_opt("momentum", ScheduleConfig("plateau", {"patience": 0, "factor": 0.3})))),
           {"epochs": 8}),
    Lesson("weight_decay", "Weight decay: coupled (Adam + L2) vs decoupled (AdamW)",
           "Watch the weight-norm curves: the same decay value means different things in the two forms.",
           (RunSpec(_opt("adam")), RunSpec(_opt("adam_l2", weight_decay=0.01)),
            RunSpec(_opt("adamw", weight_decay=0.01)), RunSpec(_opt("adamw", weight_decay=0.5))),
           {"epochs": 8}),
    Lesson("dropout", "Dropout: none, light, heavy, per layer",
           "A wide two-layer MLP on 2,000 digits. Compare the train-mode and eval-mode losses (Regularisers tab).",
           (RunSpec(_opt("adam"), dropout="0"), RunSpec(_opt("adam"), dropout="0.2"),
            RunSpec(_opt("adam"), dropout="0.5"), RunSpec(_opt("adam"), dropout="0.1, 0.5")),
           {"epochs": 15, "train_size": 2000, "model_params": {"hidden": 256, "depth": 2}}),
    Lesson("early_stopping", "Early stopping: patience 3, 5, 10 and off",
           "A network that overfits 1,000 digits; early stopping restores the best weights (star).",
           (RunSpec(_opt("adam", lr=3e-3), dropout="0"), RunSpec(_opt("adam", lr=3e-3), dropout="0", early_stopping=3),
            RunSpec(_opt("adam", lr=3e-3), dropout="0", early_stopping=5),
            RunSpec(_opt("adam", lr=3e-3), dropout="0", early_stopping=10)),
           {"epochs": 40, "train_size": 1000, "model_params": {"hidden": 256}}),
    Lesson("label_smoothing", "Label smoothing: 0, 0.1, 0.2, 0.3",
           "The loss cannot fall below the smoothed target's entropy (dashed floors); confidences stay lower.",
           tuple(RunSpec(_opt("adam"), label_smoothing=s) for s in (0.0, 0.1, 0.2, 0.3)), {"epochs": 8}),
    Lesson("augmentation", "Data augmentation: shifts and rotations",
           "1,000 digits with and without random shifts (2 px) and rotations (10 degrees), with and without dropout.",
           (RunSpec(_opt("adam"), dropout="0"), RunSpec(_opt("adam"), dropout="0", augment=True),
            RunSpec(_opt("adam"), dropout="0.3"), RunSpec(_opt("adam"), dropout="0.3", augment=True)),
           {"epochs": 20, "train_size": 1000}),
)


def lesson(key: str) -> Lesson:
    for item in LESSONS:
        if item.key == key:
            return item
    raise ConfigError("lesson", f"unknown lesson {key!r}; known: {', '.join(x.key for x in LESSONS)}")


class RunEditor(QWidget):
    """One run's optimiser, schedule and regularisers."""

    changed = Signal()
    invalid = Signal(str)

    def __init__(self, spec: RunSpec, parent=None):
        super().__init__(parent)
        self.index = 0
        self.label = QLineEdit(spec.label)
        self.label.setToolTip("The run's name in legends and the results table (empty: made from its settings).")
        self.optimizer = QComboBox()
        for name, ospec in OPTIMIZERS.items():
            if ospec.elementwise:
                self.optimizer.addItem(ospec.label, name)
                self.optimizer.setItemData(self.optimizer.count() - 1, ospec.help, Qt.ToolTipRole)
        self.optimizer.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.optimizer.setMinimumContentsLength(12)
        self.optimizer.setToolTip("The torch.optim optimiser of this run. GD uses the whole training split every "
                                  "step; the others mini-batches. Adam + L2 and AdamW differ in how weight decay acts.")
        self.form_holder = QVBoxLayout()
        self.form_holder.setContentsMargins(0, 0, 0, 0)
        self.form: ParamForm | None = None
        self.schedule = ScheduleEditor()
        self.dropout = QLineEdit(spec.dropout)
        self.dropout.setPlaceholderText("model default")
        self.dropout.setToolTip("Dropout probability after each hidden layer, e.g. 0.2; or one per dropout layer, "
                                "e.g. '0.1, 0.5' for a two-layer MLP (the CNN has two: after the convolutions and "
                                "in the head). Empty: the model's default. Compare train-mode and eval-mode losses "
                                "in the Regularisers tab.")
        self.smoothing = QDoubleSpinBox()
        self.smoothing.setRange(0.0, 0.95)
        self.smoothing.setSingleStep(0.05)
        self.smoothing.setDecimals(3)
        self.smoothing.setToolTip("Label smoothing s: the target puts 1 - s + s/10 on the true class and s/10 on each "
                                  "other. The loss cannot fall below the target's entropy (the dashed floor; 0.5003 "
                                  "for s = 0.1).")
        self.patience = QSpinBox()
        self.patience.setRange(0, 1000)
        self.patience.setSpecialValueText("off")
        self.patience.setToolTip("Early stopping: stop after this many evaluations without a better validation loss, "
                                 "and restore the best weights (off: train every epoch).")
        self.augment = QCheckBox("random shifts and rotations")
        self.augment.setToolTip("Data augmentation: each training digit is shifted by up to 2 pixels and rotated by "
                                "up to 10 degrees, differently every time it is seen.")
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addRow("name", self.label)
        layout.addRow("optimiser", self.optimizer)
        layout.addRow(self.form_holder)
        layout.addRow(self.schedule)
        layout.addRow("dropout", self.dropout)
        layout.addRow("label smoothing", self.smoothing)
        layout.addRow("early stopping", self.patience)
        layout.addRow("augmentation", self.augment)
        for w in (self.label, self.optimizer, self.dropout, self.smoothing, self.patience, self.augment):
            lab = layout.labelForField(w)
            if lab is not None:
                lab.setToolTip(w.toolTip())
        self.total_steps = 315
        self._apply(spec)
        self.optimizer.currentIndexChanged.connect(self._optimizer_changed)
        self.schedule.changed.connect(self.changed)
        self.schedule.invalid.connect(self.invalid)
        self.label.editingFinished.connect(self.changed)
        self.dropout.editingFinished.connect(self._dropout_edited)
        self.smoothing.valueChanged.connect(lambda _=None: self.changed.emit())
        self.patience.valueChanged.connect(lambda _=None: self.changed.emit())
        self.augment.toggled.connect(lambda _=None: self.changed.emit())

    def _apply(self, spec: RunSpec) -> None:
        self.optimizer.blockSignals(True)
        self.optimizer.setCurrentIndex(max(0, self.optimizer.findData(spec.optimizer.name)))
        self.optimizer.blockSignals(False)
        self._build_form(spec.optimizer.params)
        self.schedule.set_config(spec.optimizer.schedule)
        self.label.setText(spec.label)
        self.dropout.setText(spec.dropout)
        self.smoothing.setValue(spec.label_smoothing)
        self.patience.setValue(spec.early_stopping)
        self.augment.setChecked(spec.augment)
        self._update_context()

    def _build_form(self, values: dict[str, Any] | None = None) -> None:
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
        name = self.optimizer.currentData()
        spec = OPTIMIZERS.get(name)
        params = tuple(p for p in spec.params if p.name != "noise")
        self.form = ParamForm(params, f"optimizer {spec.label}", {"lr": default_lr(name), **(values or {})})
        self.form.changed.connect(self._form_changed)
        self.form.invalid.connect(self.invalid)
        self.form_holder.addWidget(self.form)

    def _optimizer_changed(self) -> None:
        self._build_form()
        self._form_changed()

    def _form_changed(self) -> None:
        self._update_context()
        self.changed.emit()

    def _dropout_edited(self) -> None:
        try:
            parse_dropout(self.dropout.text(), self.where("dropout"))
            self.dropout.setStyleSheet("")
            self.changed.emit()
        except ConfigError as exc:
            self.dropout.setStyleSheet("QLineEdit { border: 1px solid #D55E00; }")
            self.invalid.emit(str(exc))

    def where(self, what: str) -> str:
        return f"run {self.index + 1} {what}"

    def set_total_steps(self, total: int) -> None:
        self.total_steps = max(2, total)
        self._update_context()

    def _update_context(self) -> None:
        try:
            lr = self.form.values().get("lr", 0.01)
        except ConfigError:
            return
        self.schedule.set_context(lr, self.total_steps, self.optimizer.currentData())

    def spec(self) -> RunSpec:
        """The run's settings; ConfigError naming the run and the field when one is not acceptable."""
        try:
            params = self.form.values()
            schedule = self.schedule.config()
        except ConfigError as exc:
            raise ConfigError(f"run {self.index + 1} {exc.field}", exc.problem) from None
        dropout = self.dropout.text().strip()
        parse_dropout(dropout, self.where("dropout"))
        return RunSpec(OptimizerConfig(self.optimizer.currentData(), params, schedule), dropout,
                       round(self.smoothing.value(), 4), self.patience.value(), self.augment.isChecked(),
                       self.label.text().strip())

    def set_spec(self, spec: RunSpec) -> None:
        self._apply(spec)
        self.changed.emit()

    def set_lr(self, lr: float) -> None:
        if "lr" in self.form.widgets:
            self.form.set_values({"lr": lr})
            self._form_changed()


class RunList(QGroupBox):
    """The runs to compare (up to eight), a lesson picker that fills them, and the selected run's editor."""

    changed = Signal()
    invalid = Signal(str)
    lesson_chosen = Signal(object)  # Lesson

    def __init__(self, parent=None):
        super().__init__("Runs to compare", parent)
        self.lessons = QComboBox()
        self.lessons.addItem("Choose a lesson...", "")
        for item in LESSONS:
            self.lessons.addItem(item.title, item.key)
            self.lessons.setItemData(self.lessons.count() - 1, item.help, Qt.ToolTipRole)
        self.lessons.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.lessons.setMinimumContentsLength(16)
        self.lessons.setToolTip("Fill the list with a ready comparison (it replaces the runs and sets the shared "
                                "settings it needs). Hover over an entry for what it shows.")
        self.list = QListWidget()
        self.list.setMaximumHeight(130)
        self.list.setToolTip("The runs trained side by side, each with its colour and marker. Untick to leave a "
                             "run out; select one to edit it below.")
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip(f"Add a run (a copy of the selected one); up to {MAX_RUNS}.")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected run.")
        self.stack = QStackedWidget()
        self.editors: list[RunEditor] = []
        layout = QVBoxLayout(self)
        layout.addWidget(self.lessons)
        layout.addWidget(self.list)
        row = QHBoxLayout()
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        layout.addLayout(row)
        layout.addWidget(self.stack)
        self.lessons.activated.connect(self._lesson_activated)
        self.add_button.clicked.connect(self.duplicate_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.list.currentRowChanged.connect(self._row_changed)
        self.list.itemChanged.connect(lambda _=None: self.changed.emit())

    # ---- content ----
    def count(self) -> int:
        return len(self.editors)

    def add(self, spec: RunSpec, enabled: bool = True) -> RunEditor | None:
        if len(self.editors) >= MAX_RUNS:
            self.invalid.emit(f"runs: at most {MAX_RUNS} are compared at once; remove one first")
            return None
        editor = RunEditor(spec)
        editor.index = len(self.editors)
        editor.changed.connect(self._editor_changed)
        editor.invalid.connect(self.invalid)
        self.editors.append(editor)
        self.stack.addWidget(editor)
        item = QListWidgetItem()
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Checked if enabled else Qt.Unchecked)
        self.list.blockSignals(True)
        self.list.addItem(item)
        self.list.blockSignals(False)
        self._relabel()
        self.list.setCurrentRow(self.list.count() - 1)
        self.changed.emit()
        return editor

    def clear(self) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        self.list.blockSignals(False)
        for editor in self.editors:
            self.stack.removeWidget(editor)
            editor.deleteLater()
        self.editors = []

    def set_specs(self, specs: list[RunSpec], enabled: list[bool] | None = None) -> None:
        self.clear()
        for i, spec in enumerate(specs[:MAX_RUNS]):
            self.add(spec, True if enabled is None else enabled[i])
        self.list.setCurrentRow(0)
        self.changed.emit()

    def duplicate_selected(self) -> None:
        row = self.list.currentRow()
        try:
            spec = self.editors[row].spec() if 0 <= row < len(self.editors) else RunSpec(_opt("adam"))
        except ConfigError as exc:
            self.invalid.emit(str(exc))
            return
        self.add(replace(spec, label=""))

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        if not 0 <= row < len(self.editors):
            return
        if len(self.editors) == 1:
            self.invalid.emit("runs: keep at least one run")
            return
        editor = self.editors.pop(row)
        self.stack.removeWidget(editor)
        editor.deleteLater()
        self.list.blockSignals(True)
        self.list.takeItem(row)
        self.list.blockSignals(False)
        for i, e in enumerate(self.editors):
            e.index = i
        self._relabel()
        self.list.setCurrentRow(min(row, len(self.editors) - 1))
        self.changed.emit()

    def enabled(self) -> list[bool]:
        return [self.list.item(i).checkState() == Qt.Checked for i in range(self.list.count())]

    def specs(self, only_enabled: bool = True) -> list[tuple[int, RunSpec]]:
        """(row, spec) of each (ticked) run; ConfigError naming the run and field for a bad one."""
        on = self.enabled()
        return [(i, e.spec()) for i, e in enumerate(self.editors) if on[i] or not only_enabled]

    def current(self) -> int:
        return max(0, self.list.currentRow())

    def select(self, row: int) -> None:
        if 0 <= row < len(self.editors):
            self.list.setCurrentRow(row)

    def set_total_steps(self, total: int) -> None:
        for e in self.editors:
            e.set_total_steps(total)

    # ---- reacting ----
    def _row_changed(self, row: int) -> None:
        if 0 <= row < len(self.editors):
            self.stack.setCurrentIndex(row)

    def _editor_changed(self) -> None:
        self._relabel()
        self.changed.emit()

    def _relabel(self) -> None:
        self.list.blockSignals(True)
        for i, editor in enumerate(self.editors):
            item = self.list.item(i)
            if item is None:
                continue
            try:
                text = editor.spec().display_label
            except ConfigError:
                text = editor.label.text() or "(settings to fix)"
            item.setText(f"{i + 1}. {text}")
            item.setIcon(run_icon(i))
            item.setToolTip(f"Run {i + 1}: {text}. Colour and marker as in the plots.")
        self.list.blockSignals(False)

    def _lesson_activated(self, index: int) -> None:
        key = self.lessons.itemData(index)
        if key:
            self.lesson_chosen.emit(lesson(key))
        self.lessons.setCurrentIndex(0)
