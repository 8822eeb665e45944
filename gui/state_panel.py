"""The state panel: what the selected optimiser carries, as numbers, and its update rule with them in.

Everything shown comes from the frame's copy of ``optimizer.state`` through ``engine.glyphs``
(``state_summary``, ``rule_values``, ``update_rule_lines``) and from the schedule's own
``describe_state()``; nothing here re-derives an optimiser's arithmetic. The rule is rich text
(see ``gui.mathtext``), not typeset LaTeX: matplotlib is not a dependency.
"""
from __future__ import annotations

import html
import re
from typing import Any, Mapping, Sequence

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QSpinBox, QVBoxLayout, QWidget

from engine.config import OptimizerConfig, ScheduleConfig
from engine.glyphs import StepPart, live_params, rule_values, state_summary, update_rule_lines
from engine.schedules import SCHEDULES

from .glyph_items import part_colour
from .mathtext import latex_to_html, lines_to_html

_PRETTY = (
    (r"\bbeta1\^t\b", "β<sub>1</sub><sup>t</sup>"), (r"\bbeta2\^t\b", "β<sub>2</sub><sup>t</sup>"),
    (r"\bbeta1\b", "β<sub>1</sub>"), (r"\bbeta2\b", "β<sub>2</sub>"),
    (r"first moment m_hat", "bias-corrected m/(1 − β<sub>1</sub><sup>t</sup>)"),
    (r"second moment v_hat", "bias-corrected v/(1 − β<sub>2</sub><sup>t</sup>)"),
    (r"\brho_t\b", "ρ<sub>t</sub>"), (r"\br_t\b", "r<sub>t</sub>"), (r"-lr\*b\b", "−η·b"),
    (r"\bepsilon\b", "ε"), (r"\balpha\b", "α"), (r"\brho\b", "ρ"), (r"\beta-", "η<sub>−</sub>"),
    (r"\beta\+", "η<sub>+</sub>"),
)


def pretty(text: str) -> str:
    """A state_summary label as rich text: beta1 -> β₁, m_hat -> m̂, ..."""
    out = html.escape(text)
    for pattern, repl in _PRETTY:
        out = re.sub(pattern, repl, out)
    return out


def _num(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def schedule_rows(schedule: ScheduleConfig, state: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value) rows for a schedule's live state: warmup, and ReduceLROnPlateau's counters."""
    spec = SCHEDULES.get(schedule.name)
    rows = [("schedule", spec.label)]
    state = dict(state or {})
    if schedule.warmup_steps:
        taken = int(state.get("step", 0))
        rows.append(("warmup", f"step {min(taken, schedule.warmup_steps)} of {schedule.warmup_steps}"
                     if state.get("in_warmup") else f"done ({schedule.warmup_steps} steps)"))
    if "num_bad_epochs" in state:
        bad, patience = int(state["num_bad_epochs"]), int(state["patience"])
        bar = "■" * min(bad, 30) + "□" * max(0, min(patience, 30) - min(bad, 30))
        rows.append(("steps without improvement", f"{bad} of patience {patience}  {bar}"))
        rows.append(("cuts the rate", f"when the count passes {patience} (at {patience + 1})"))
        cooldown = int(state.get("cooldown_counter", 0))
        rows.append(("cooldown left", f"{cooldown} step{'s' if cooldown != 1 else ''}"
                     + (" (not counting)" if cooldown else "")))
        rows.append(("best loss so far", _num(state.get("best"))))
        mode = schedule.params.get("threshold_mode", "rel")
        rows.append(("threshold", f"{_num(state.get('threshold'))} ({mode})"))
        rows.append(("next loss must beat", _num(state.get("must_beat"))))
    elif "last_epoch" in state:
        rows.append(("scheduler step", str(state["last_epoch"])))
    if schedule.params.get("cycle_momentum"):
        rows.append(("momentum / β1", "cycled by the schedule, against the rate (dashed in its preview)"))
    if any(p.name == "max_lr" for p in spec.params):
        rows.append(("optimiser's lr", "ignored: this schedule sets absolute rates"))
    return rows


def _table(rows: Sequence[tuple[str, str]], pretty_labels: bool = True, values_html: bool = False) -> str:
    cells = []
    for label, value in rows:
        lab = pretty(label) if pretty_labels else html.escape(label)
        val = value if values_html else html.escape(value).replace("-", "−")
        cells.append(f"<tr><td style='padding-right:10px; color:#888;'>{lab}</td>"
                     f"<td style='font-family:monospace;'>{val}</td></tr>")
    return "<table cellspacing='0' cellpadding='1'>" + "".join(cells) + "</table>"


def _pair(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{float(x):.4g}" for x in np.asarray(v).ravel()) + ")"


class StatePanel(QWidget):
    """State of one optimiser (one trajectory of it) at the frame shown."""

    trajectory_changed = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[tuple[str, str]] = []
        self.schedule_rows: list[tuple[str, str]] = []
        self.rule_lines: list[str] = []
        self.part_rows: list[tuple[str, str]] = []
        self.parts_match = True  # whether the parts shown add up to the step torch took
        self.title = QLabel()
        self.title.setTextFormat(Qt.RichText)
        self.trajectory = QSpinBox()
        self.trajectory.setPrefix("trajectory ")
        self.trajectory.setToolTip("Which start point of a cloud the numbers are for.")
        self.trajectory.setVisible(False)
        self.trajectory.valueChanged.connect(self.trajectory_changed)
        self.rule = QLabel()
        self.rule.setTextFormat(Qt.RichText)
        self.rule.setWordWrap(True)
        self.rule.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.rule.setToolTip("The update rule, with the numbers of the update shown substituted "
                         "(read from optimizer.state; vectors are per axis (x, y), products elementwise).")
        self.parts = QLabel()
        self.parts.setTextFormat(Qt.RichText)
        self.parts.setWordWrap(True)
        self.table = QLabel()
        self.table.setTextFormat(Qt.RichText)
        self.table.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.schedule = QLabel()
        self.schedule.setTextFormat(Qt.RichText)
        self.schedule.setWordWrap(True)
        inner = QWidget()
        col = QVBoxLayout(inner)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.trajectory)
        col.addLayout(top)
        for heading, widget in (("Update rule", self.rule), ("Parts of the update", self.parts),
                                ("State", self.table), ("Schedule", self.schedule)):
            h = QLabel(f"<b>{heading}</b>")
            col.addWidget(h)
            col.addWidget(widget)
            if widget is self.parts:
                self.parts_heading = h
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        self.clear()

    def clear(self, text: str = "Play or step the race: the selected optimiser's state appears here.") -> None:
        self.rows, self.schedule_rows, self.rule_lines, self.part_rows = [], [], [], []
        self.title.setText(html.escape(text))
        for w in (self.rule, self.table, self.schedule, self.parts):
            w.setText("")
        self.parts.setVisible(False)
        self.parts_heading.setVisible(False)

    def set_trajectories(self, n: int) -> None:
        self.trajectory.setVisible(n > 1)
        self.trajectory.setRange(0, max(0, n - 1))

    def show_state(self, cfg: OptimizerConfig, colour: str, frame: Any, j: int, index: int = 0,
                   prev: Any | None = None, parts: Sequence[StepPart] | None = None) -> None:
        """Optimiser ``j`` of ``frame`` (trajectory ``index``); ``prev`` is the frame before it, when it is
        the one just before, so that the rule shows the update just taken with its inputs and result."""
        name, params = cfg.name, cfg.params
        state = frame.state[j] if frame.state else {}
        dead = int(frame.diverged_at[j, index])
        label = html.escape(cfg.label or name)
        status = f" · <span style='color:#D55E00'>diverged at step {dead}</span>" if dead >= 0 else ""
        self.title.setText(f"<span style='color:{colour}; font-size:16px'>■</span> <b>{label}</b>"
                           f" · frame {frame.step}{status}")
        try:
            self.rows = state_summary(name, live_params(frame, j, params), state, frame.grad[j],
                                      float(frame.lr[j]), index)
        except (ValueError, KeyError) as exc:
            self.rows = [("state", f"not readable: {exc}")]
        self.table.setText(_table(self.rows))
        sched_state = frame.schedule_state[j] if frame.schedule_state else None
        self.schedule_rows = schedule_rows(cfg.schedule, sched_state)
        self.schedule.setText(_table(self.schedule_rows))

        consecutive = prev is not None and prev.step == frame.step - 1 and prev.state
        try:
            if consecutive:
                delta = frame.xy[j] - prev.xy[j]
                values = rule_values(name, live_params(prev, j, params), prev.state[j], prev.grad[j],
                                     float(prev.lr[j]), prev.xy[j],
                                     index, step=delta)
                caption = f"update {prev.step} → {frame.step} (t = {values['t']}), as torch took it"
            else:
                values = rule_values(name, live_params(frame, j, params), state, frame.grad[j], float(frame.lr[j]),
                                     frame.xy[j], index)
                caption = f"next update (t = {values['t']}): inputs at frame {frame.step}"
            self.rule_lines = update_rule_lines(name, values)
        except (ValueError, KeyError) as exc:
            self.rule_lines = update_rule_lines(name)
            caption = f"(numbers not available: {exc})"
        self.rule.setText(f"<span style='color:#888'>{html.escape(caption)}</span>"
                          + lines_to_html(self.rule_lines))
        self._show_parts(parts, index, frame, prev, j, cfg)

    def _show_parts(self, parts: Sequence[StepPart] | None, index: int, frame: Any, prev: Any, j: int,
                    cfg: OptimizerConfig) -> None:
        if not parts:
            self.part_rows = []
            self.parts.setVisible(False)
            self.parts_heading.setVisible(False)
            return
        self.part_rows = []
        lines = []
        for n, part in enumerate(parts):
            vec = np.asarray(part.vector)[index]
            self.part_rows.append((part.label, _pair(vec)))
            coef = latex_to_html(part.latex) if part.latex else ""
            lines.append(f"<tr><td><span style='color:{part_colour(part.key)}; background:#282838'>&nbsp;{n + 1}&nbsp;"
                         f"</span></td><td>{html.escape(part.label)}</td><td>{coef}</td>"
                         f"<td style='font-family:monospace'>{_pair(vec).replace('-', '−')}</td></tr>")
        total = np.sum([np.asarray(p.vector)[index] for p in parts], axis=0)
        taken = np.asarray(frame.xy[j][index]) - np.asarray(prev.xy[j][index])
        lines.append(f"<tr><td>Σ</td><td>sum of the parts</td><td></td>"
                     f"<td style='font-family:monospace'>{_pair(total).replace('-', '−')}</td></tr>")
        lines.append(f"<tr><td></td><td>step torch took</td><td>x<sub>k+1</sub> − x<sub>k</sub></td>"
                     f"<td style='font-family:monospace'>{_pair(taken).replace('-', '−')}</td></tr>")
        self.part_rows.append(("sum of the parts", _pair(total)))
        self.part_rows.append(("step torch took", _pair(taken)))
        note = ("<span style='color:#888'>Each part already includes the optimiser's scaling "
                "(its coefficient); on the map they are drawn head to tail, in this order.</span>")
        scale = max(float(np.max(np.abs(taken))), 1e-300)
        self.parts_match = bool(np.all(np.isfinite(total)) and np.max(np.abs(total - taken)) <= 1e-4 * scale + 1e-12)
        if not self.parts_match and np.all(np.isfinite(taken)):
            why = ("its schedule cycles momentum/β1, and the split uses the configured value"
                   if cfg.schedule.params.get("cycle_momentum") else
                   "the split assumes the configured hyperparameters, and torch used others")
            note = (f"<span style='color:#D55E00'>The parts miss the step torch took by "
                    f"{_pair(total - taken).replace('-', '−')}: {why}.</span><br>") + note
        self.parts.setText("<table cellspacing='0' cellpadding='2'>" + "".join(lines) + "</table>" + note)
        self.parts.setVisible(True)
        self.parts_heading.setVisible(True)
