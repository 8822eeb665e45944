"""The list of optimisers racing on the map: add, remove, enable, and edit each one's settings."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QComboBox, QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
                               QStackedWidget, QVBoxLayout, QWidget)

from engine.config import OptimizerConfig
from engine.optimizers import OPTIMIZERS
from engine.schedules import SCHEDULES

from .param_form import ParamForm
from .schedule_editor import ScheduleEditor
from .style import colour

MAX_OPTIMIZERS = 8


class OptimizerEditor(QWidget):
    """Hyperparameters and schedule of one optimiser."""

    changed = Signal()
    invalid = Signal(str)

    def __init__(self, name: str, parent=None):
        super().__init__(parent)
        self.name = name
        spec = OPTIMIZERS.get(name)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.form = ParamForm(spec.params, f"optimizer {spec.label}")
        self.lr_note = QLabel()
        self.lr_note.setWordWrap(True)
        self.lr_note.setStyleSheet("color: #B86E00;")
        self.lr_note.setVisible(False)
        self.schedule = ScheduleEditor()
        self.schedule.show_absolute_note = False  # said next to the lr field instead (lr_note)
        layout.addWidget(self.form)
        layout.addWidget(self.lr_note)
        layout.addWidget(self.schedule)
        for w in (self.form, self.schedule):
            w.changed.connect(self._changed)
            w.invalid.connect(self.invalid)
        self._changed()

    def _changed(self) -> None:
        lr = self.form.widgets["lr"]
        self._show_lr_ignored()
        try:
            self.schedule.set_context(lr.value(), self.schedule.total_steps, self.name)
        except Exception:  # an invalid lr is reported by the form itself
            pass
        self.changed.emit()

    def _show_lr_ignored(self) -> None:
        """Cyclic and one-cycle schedules set absolute rates: the lr field then does nothing, and says so."""
        absolute = self.schedule.sets_absolute_lr()
        lr = self.form.widgets["lr"]
        label = self.form.layout().labelForField(lr)
        for w in (lr, label):
            if w is not None:
                w.setEnabled(not absolute)
        if absolute:
            spec = SCHEDULES.get(self.schedule.combo.currentData())
            names = " and ".join(p.name for p in spec.params if p.name in ("base_lr", "max_lr"))
            self.lr_note.setText(f"The learning rate above is ignored: {spec.label} sets absolute rates "
                                 f"({names}, below).")
            lr.setToolTip(f"Ignored while the schedule is {spec.label}: it sets the rate itself.")
        else:
            lr.setToolTip(lr.param.tooltip() if hasattr(lr, "param") else "")
        self.lr_note.setVisible(absolute)

    def set_on_minibatch(self, on: bool) -> None:
        """SGD on a mini-batch: the batch itself is the gradient noise, so the synthetic noise field does
        nothing then (the engine turns it off) and says so."""
        noise = self.form.widgets.get("noise")
        if noise is None:
            return
        label = self.form.layout().labelForField(noise)
        for w in (noise, label):
            if w is not None:
                w.setEnabled(not on)
        noise.setToolTip("Ignored while SGD steps on mini-batches: the batch is the noise." if on
                         else noise.param.tooltip())

    def lr_ignored(self) -> bool:
        return self.schedule.sets_absolute_lr()

    def config(self, label: str = "") -> OptimizerConfig:
        return OptimizerConfig(self.name, self.form.values(), self.schedule.config(), label)


class OptimizerList(QGroupBox):
    changed = Signal()
    invalid = Signal(str)

    def __init__(self, parent=None):
        super().__init__("Optimisers", parent)
        layout = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setMaximumHeight(150)
        self.list.setToolTip("Tick to race an optimiser; select it to edit its settings below.")
        layout.addWidget(self.list)
        row = QHBoxLayout()
        self.add_combo = QComboBox()
        for name, spec in OPTIMIZERS.items():
            self.add_combo.addItem(spec.label, name)
            self.add_combo.setItemData(self.add_combo.count() - 1, spec.help, Qt.ToolTipRole)
        self.add_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.add_combo.setMinimumContentsLength(10)
        # A picker that names no optimiser until used: a combo showing "GD" beside the form of the selected
        # Adam read as if it described that Adam.
        self.add_combo.setPlaceholderText("Add optimiser\u2026")
        self.add_combo.setCurrentIndex(-1)
        self.add_combo.setToolTip("Choose an optimiser to add it to the race (up to 8).")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected optimiser.")
        row.addWidget(self.add_combo, 1)
        row.addWidget(self.remove_button)
        layout.addLayout(row)
        self.stack = QStackedWidget()
        layout.addWidget(self.stack)
        self.editors: list[OptimizerEditor] = []
        self.add_combo.activated.connect(self._add_chosen)
        self.remove_button.clicked.connect(self.remove_selected)
        self.list.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.list.itemChanged.connect(lambda _: self.changed.emit())

    def _add_chosen(self, index: int) -> None:
        name = self.add_combo.itemData(index)
        self.add_combo.setCurrentIndex(-1)  # back to the placeholder: the combo is a menu, not a setting
        if name:
            self.add(name)

    def add(self, name: str, params: dict | None = None, enabled: bool = True) -> OptimizerEditor | None:
        if len(self.editors) >= MAX_OPTIMIZERS:
            self.invalid.emit(f"optimisers: at most {MAX_OPTIMIZERS} race at once; remove one first")
            return None
        editor = OptimizerEditor(name)
        if params:
            editor.form.set_values(params)
            editor._changed()
        editor.set_on_minibatch(getattr(self, "_on_minibatch", False))
        if getattr(self, "_total_steps", None):
            editor.schedule.total_steps = self._total_steps
            editor.schedule.update_preview()
        editor.changed.connect(self.changed)
        editor.invalid.connect(self.invalid)
        self.editors.append(editor)
        self.stack.addWidget(editor)
        item = QListWidgetItem(self._label_for(len(self.editors) - 1, name))
        item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
        item.setCheckState(Qt.Checked if enabled else Qt.Unchecked)
        item.setToolTip(OPTIMIZERS.get(name).help)
        self.list.addItem(item)
        self.list.setCurrentRow(self.list.count() - 1)
        self._recolour()
        self.changed.emit()
        return editor

    def _label_for(self, index: int, name: str) -> str:
        label = OPTIMIZERS.get(name).label
        same = sum(1 for e in self.editors[:index] if e.name == name)
        return label if same == 0 else f"{label} #{same + 1}"

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        self.list.takeItem(row)
        editor = self.editors.pop(row)
        self.stack.removeWidget(editor)
        editor.deleteLater()
        self._recolour()
        self.changed.emit()

    def clear(self) -> None:
        while self.editors:
            self.list.setCurrentRow(0)
            self.remove_selected()

    def _recolour(self) -> None:
        self.list.blockSignals(True)
        for i in range(self.list.count()):
            pix = QPixmap(12, 12)
            pix.fill(QColor(colour(i)))
            self.list.item(i).setIcon(QIcon(pix))
        self.list.blockSignals(False)

    def set_on_minibatch(self, on: bool) -> None:
        self._on_minibatch = on
        for e in self.editors:
            e.set_on_minibatch(on)

    def set_total_steps(self, steps: int) -> None:
        self._total_steps = steps  # for editors added later: their previews span the same run
        for e in self.editors:
            e.schedule.total_steps = steps
            e.schedule.update_preview()

    def set_configs(self, configs, total_steps: int | None = None, enabled: list[bool] | None = None) -> None:
        """Replace the list with these optimiser configurations (all ticked, or as ``enabled`` says), labels
        and schedules included; ``total_steps`` is the run length their schedule previews span."""
        self.blockSignals(True)
        try:
            self.clear()
            for k, cfg in enumerate(configs):
                editor = self.add(cfg.name, dict(cfg.params), enabled=True if enabled is None else enabled[k])
                if editor is None:
                    break
                if total_steps is not None:
                    editor.schedule.total_steps = total_steps
                editor.schedule.set_config(cfg.schedule)
                if cfg.label:
                    self.list.item(self.list.count() - 1).setText(cfg.label)
        finally:
            self.blockSignals(False)
        if self.list.count():
            self.list.setCurrentRow(0)
        self.changed.emit()

    def unticked_configs(self) -> list[tuple[int, OptimizerConfig]]:
        """(list index, config) of the optimisers that are not ticked (kept in a session, not raced)."""
        return [(i, editor.config(self.list.item(i).text())) for i, editor in enumerate(self.editors)
                if self.list.item(i).checkState() != Qt.Checked]

    def enabled_configs(self) -> list[tuple[int, OptimizerConfig]]:
        """(list index, config) of the ticked optimisers; raises ConfigError naming the first bad field."""
        out = []
        for i, editor in enumerate(self.editors):
            item = self.list.item(i)
            if item.checkState() == Qt.Checked:
                out.append((i, editor.config(item.text())))
        return out
