"""Forms built from the engine's Param specs: one widget per hyperparameter, validated as typed."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLineEdit, QSpinBox, QWidget

from engine.registry import ConfigError, Param

_BAD_STYLE = "QLineEdit { border: 1px solid #D55E00; }"
_ACCEPTED_ONLY = [False]


@contextmanager
def last_accepted_values() -> Iterator[None]:
    """Within it, a number field whose text is refused reports the last value it accepted instead of raising:
    for keeping the session when the window closes, where a typo must not cost everything else on screen."""
    _ACCEPTED_ONLY[0] = True
    try:
        yield
    finally:
        _ACCEPTED_ONLY[0] = False


def format_number(value: float) -> str:
    """Short where six digits say the number exactly, else every digit: a field that is read back
    (a sweep cell replayed, a session opened) must give the very value it was set to."""
    short = f"{value:.6g}"
    return short if float(short) == value or value != value else repr(float(value))


class NumberEdit(QLineEdit):
    """A text field for a float Param: accepts 1e-3 or 0.001, refuses out-of-range input with the reason."""

    def __init__(self, param: Param, owner: str, parent=None):
        super().__init__(parent)
        self.param = param
        self.owner = owner
        self._value = param.default
        self.setText(format_number(param.default))
        self.setToolTip(param.tooltip())
        self.error: str = ""

    def value(self) -> Any:
        """The validated value; raises ConfigError naming the field when the text is not acceptable."""
        text = self.text().strip()
        try:
            try:
                number = float(text)
            except ValueError:
                raise ConfigError(f"{self.owner}.{self.param.name}", f"expected a number, got {text!r}") from None
            return self.param.validate(number, self.owner)
        except ConfigError:
            if _ACCEPTED_ONLY[0]:
                return self._value  # validated when it was accepted (the default before any edit)
            raise

    def check(self) -> bool:
        try:
            self._value = self.value()
            self.error = ""
            self.setStyleSheet("")
            self.setToolTip(self.param.tooltip())
            return True
        except ConfigError as exc:
            self.error = str(exc)
            self.setStyleSheet(_BAD_STYLE)
            self.setToolTip(f"{exc}\n\n{self.param.tooltip()}")
            return False

    def set_value(self, value: Any) -> None:
        self.setText(format_number(float(value)))
        self.check()


class ParamForm(QWidget):
    """Widgets for a tuple of Params. ``changed`` fires on every accepted edit; ``invalid`` with the reason."""

    changed = Signal()
    invalid = Signal(str)

    def __init__(self, params: tuple[Param, ...], owner: str, values: Mapping[str, Any] | None = None,
                 parent=None):
        super().__init__(parent)
        self.params = params
        self.owner = owner
        self.widgets: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for p in params:
            w = self._make(p)
            self.widgets[p.name] = w
            label = p.label
            layout.addRow(label, w)
            layout.labelForField(w).setToolTip(p.tooltip())
        if values:
            self.set_values(values)

    def _make(self, p: Param) -> QWidget:
        if p.kind == "bool":
            w = QCheckBox()
            w.setChecked(bool(p.default))
            w.toggled.connect(lambda _=None: self.changed.emit())
        elif p.kind == "choice":
            w = QComboBox()
            w.addItems(list(p.choices))
            w.setCurrentText(str(p.default))
            w.currentTextChanged.connect(lambda _=None: self.changed.emit())
        elif p.kind == "text":
            w = QLineEdit(str(p.default))
            w.editingFinished.connect(lambda w=w, p=p: self._text_edited(w, p))
        elif p.kind == "int":
            w = QSpinBox()
            w.setRange(int(p.minimum if p.minimum is not None else -10**9),
                       int(min(p.maximum if p.maximum is not None else 10**9, 2**31 - 1)))
            w.setValue(int(p.default))
            w.valueChanged.connect(lambda _=None: self.changed.emit())
        else:
            w = NumberEdit(p, self.owner)
            w.editingFinished.connect(lambda w=w: self._number_edited(w))
        w.setToolTip(p.tooltip())
        return w

    def _text_edited(self, w: QLineEdit, p: Param) -> None:
        try:
            p.validate(w.text(), self.owner)
            self.changed.emit()
        except ConfigError as exc:
            self.invalid.emit(str(exc))

    def _number_edited(self, w: NumberEdit) -> None:
        if w.check():
            self.changed.emit()
        else:
            self.invalid.emit(w.error)

    def values(self, skip: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """Validated values (but those named in ``skip``); raises ConfigError naming the first bad field."""
        out: dict[str, Any] = {}
        for p in self.params:
            if p.name in skip:
                continue
            w = self.widgets[p.name]
            if isinstance(w, QCheckBox):
                out[p.name] = w.isChecked()
            elif isinstance(w, QComboBox):
                out[p.name] = w.currentText()
            elif isinstance(w, QSpinBox):
                out[p.name] = p.validate(w.value(), self.owner)
            elif isinstance(w, NumberEdit):
                out[p.name] = w.value()
            else:
                out[p.name] = p.validate(w.text(), self.owner)
        return out

    def set_values(self, values: Mapping[str, Any]) -> None:
        for name, value in values.items():
            w = self.widgets.get(name)
            if w is None:
                continue
            w.blockSignals(True)
            if isinstance(w, QCheckBox):
                w.setChecked(bool(value))
            elif isinstance(w, QComboBox):
                w.setCurrentText(str(value))
            elif isinstance(w, QSpinBox):
                w.setValue(int(value))
            elif isinstance(w, NumberEdit):
                w.set_value(value)
            else:
                w.setText(str(value))
            w.blockSignals(False)


def batch_size_spin(tooltip: str) -> QSpinBox:
    """The batch-size control of the data-set objectives: 0 reads "full batch"."""
    spin = QSpinBox()
    spin.setRange(0, 1_000_000)
    spin.setSpecialValueText("full batch")
    spin.setToolTip(tooltip)
    return spin
