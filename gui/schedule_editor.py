"""Choose a learning-rate schedule, its settings and a warmup; a preview curve is drawn at once."""
from __future__ import annotations

import functools
import json

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from engine.config import ScheduleConfig
from engine.registry import ConfigError
from engine.schedules import SCHEDULES, WARMUP_PARAMS, preview_with_momentum

from .param_form import ParamForm
from .plots import use_own_export_menu


@functools.lru_cache(maxsize=64)
def _preview(config_json: str, base_lr: float, steps: int, optimizer_name: str):
    """preview_with_momentum, cached: editors ask for the same curve many times while a form is filled in."""
    cfg = ScheduleConfig.from_dict(json.loads(config_json))
    lrs, momenta = preview_with_momentum(cfg, base_lr, steps, optimizer_name_for_momentum=optimizer_name)
    lrs.setflags(write=False)
    if momenta is not None:
        momenta.setflags(write=False)
    return lrs, momenta


class ScheduleEditor(QWidget):
    changed = Signal()
    invalid = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.base_lr = 0.01
        self.total_steps = 500
        self.optimizer_name = "sgd"
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QFormLayout()
        self.combo = QComboBox()
        for name, spec in SCHEDULES.items():
            self.combo.addItem(spec.label, name)
            self.combo.setItemData(self.combo.count() - 1, spec.help, 3)  # Qt.ToolTipRole
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(14)
        self.combo.setToolTip("How the learning rate changes over the run (torch.optim.lr_scheduler).")
        top.addRow("schedule", self.combo)
        layout.addLayout(top)
        self.form_holder = QVBoxLayout()
        layout.addLayout(self.form_holder)
        self.warmup = ParamForm(WARMUP_PARAMS, "schedule")
        layout.addWidget(self.warmup)
        self.preview_plot = pg.PlotWidget()
        use_own_export_menu(self.preview_plot)
        self.preview_plot.setFixedHeight(110)
        self.preview_plot.setLabel("left", "lr")
        for axis in ("left", "bottom"):
            self.preview_plot.getAxis(axis).enableAutoSIPrefix(False)  # show the rate itself, not x0.001
        self.preview_plot.setMouseEnabled(False, False)
        self.preview_plot.hideButtons()
        self.preview_plot.setLabel("bottom", "step")
        self.preview_plot.getPlotItem().setContentsMargins(0, 0, 0, 0)
        self.preview_curve = self.preview_plot.plot(pen=pg.mkPen("#0072B2", width=2))
        self.momentum_curve = self.preview_plot.plot(pen=pg.mkPen("#CC79A7", width=1, style=pg.QtCore.Qt.DashLine))
        self.preview_plot.setToolTip("Preview: the learning rate each step will use (solid); momentum or beta1 "
                                     "when the schedule cycles it (dashed, right scale not shown: 0-1).")
        layout.addWidget(self.preview_plot)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet("color: #888;")
        layout.addWidget(self.caption)
        self.absolute_note = QLabel()
        self.absolute_note.setWordWrap(True)
        self.absolute_note.setStyleSheet("color: #B86E00;")
        layout.addWidget(self.absolute_note)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #D55E00;")
        layout.addWidget(self.message)
        self.params_form: ParamForm | None = None
        self._last_error = ""
        self.show_absolute_note = True  # an owner that marks its own lr field says it there instead
        self.combo.currentIndexChanged.connect(self._rebuild)
        self.warmup.changed.connect(self._on_change)
        self.warmup.invalid.connect(self._on_invalid)
        self._rebuild()

    def _rebuild(self) -> None:
        if self.params_form is not None:
            self.params_form.setParent(None)
            self.params_form.deleteLater()
        spec = SCHEDULES.get(self.combo.currentData())
        self.params_form = ParamForm(spec.params, "schedule")
        self.params_form.changed.connect(self._on_change)
        self.params_form.invalid.connect(self._on_invalid)
        self.form_holder.addWidget(self.params_form)
        self._on_change()

    def _on_invalid(self, message: str) -> None:
        self.message.setText(message)
        self._last_error = message
        self.invalid.emit(message)

    def sets_absolute_lr(self) -> bool:
        """Cyclic and one-cycle: the schedule's own base_lr/max_lr replace the optimiser's lr."""
        spec = SCHEDULES.get(self.combo.currentData())
        return any(p.name == "max_lr" for p in spec.params)

    def cycles_momentum(self) -> bool | None:
        """None when the schedule cannot cycle momentum; otherwise whether it is set to."""
        if self.params_form is None or "cycle_momentum" not in self.params_form.widgets:
            return None
        return bool(self.params_form.widgets["cycle_momentum"].isChecked())

    def _on_change(self) -> None:
        self.update_preview()
        self.changed.emit()

    def set_context(self, base_lr: float, total_steps: int, optimizer_name: str) -> None:
        self.base_lr, self.total_steps, self.optimizer_name = base_lr, total_steps, optimizer_name
        self.update_preview()

    def config(self) -> ScheduleConfig:
        """The chosen schedule; raises ConfigError naming the field when a setting is not acceptable."""
        warm = self.warmup.values()
        return ScheduleConfig(self.combo.currentData(), self.params_form.values(), warm["warmup_steps"],
                              warm["warmup_start_factor"])

    def set_config(self, cfg: ScheduleConfig) -> None:
        index = self.combo.findData(cfg.name)
        if index < 0:
            raise ConfigError("schedule.name", f"unknown schedule {cfg.name!r}")
        self.combo.setCurrentIndex(index)
        self.params_form.set_values(cfg.params)
        self.warmup.set_values({"warmup_steps": cfg.warmup_steps, "warmup_start_factor": cfg.warmup_start_factor})
        self._on_change()  # preview, and tell the owner (its lr field, a session) that the schedule changed

    def update_preview(self) -> None:
        try:
            steps = max(2, min(self.total_steps, 20_000))
            config_json = json.dumps(self.config().to_dict(), sort_keys=True)
            lrs, momenta = _preview(config_json, float(self.base_lr), int(steps), str(self.optimizer_name))
        except (ConfigError, ValueError) as exc:
            # Settings that fail only together (max_lr below base_lr, ...) are refused here, by field.
            text = str(exc)
            self.message.setText(text)
            self.preview_curve.setData([], [])
            self.momentum_curve.setData([], [])
            self._describe(None)
            if text != self._last_error:
                self._last_error = text
                self.invalid.emit(text)
            return
        self._last_error = ""
        self.message.setText("")
        self._describe(momenta)
        x = np.arange(len(lrs))
        self.preview_curve.setData(x, lrs)
        top = float(np.nanmax(lrs)) if np.isfinite(lrs).any() else 1.0
        self.preview_plot.setYRange(0, top * 1.08 if top > 0 else 1.0, padding=0)
        if momenta is not None and lrs.max() > 0:
            self.momentum_curve.setData(x, momenta * lrs.max())  # drawn on the rate's scale, as a shape
        else:
            self.momentum_curve.setData([], [])

    def _describe(self, momenta) -> None:
        """The caption under the preview: what the dashed curve is, and whether momentum is cycled at all."""
        spec = SCHEDULES.get(self.combo.currentData())
        cycles = self.cycles_momentum()
        text = "Solid: the rate each step will use."
        if cycles is None:
            text = ""
        elif cycles and momenta is not None:
            text += (f" Dashed: momentum/β1, cycled against the rate from {momenta.max():.3g} down to "
                     f"{momenta.min():.3g} (drawn on the rate's scale, as a shape).")
        elif cycles:
            text += " Momentum cycling is on but this optimiser has no momentum or β1 to cycle."
        else:
            text += " Momentum/β1 is not cycled (tick Cycle momentum to cycle it against the rate)."
        self.caption.setText(text)
        self.caption.setVisible(bool(text))
        if self.sets_absolute_lr() and self.show_absolute_note:
            names = " and ".join(p.name for p in spec.params if p.name in ("base_lr", "max_lr"))
            self.absolute_note.setText(f"{spec.label} sets absolute rates ({names}): the optimiser's learning "
                                       "rate is ignored.")
            self.absolute_note.setVisible(True)
        else:
            self.absolute_note.setVisible(False)
