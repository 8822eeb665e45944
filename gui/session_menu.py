"""File and Presets menus: sessions opened, saved, restored and exported; presets by syllabus topic.

Kept beside the main window so the window module stays about layout and run control.
"""
from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMenu, QProgressDialog

RECENT_KEY = "session/recent"


class SessionMenus:
    """Adds File > Open/Save/Save as/Recent/Export and a Presets menu to ``window`` (a MainWindow)."""

    def __init__(self, window):
        self.w = window
        self.path: Path | None = None
        self._export = None  # the metrics export running on a worker thread, if any
        self._shown = None  # the session last put on screen (engine.session.Session), if any
        file_menu = window.file_menu
        first = file_menu.actions()[0] if file_menu.actions() else None
        self.open_action = window._action("&Open session...", self.open_dialog, QKeySequence.Open,
                                          "Open a session file: functions, optimisers, schedules, seeds")
        self.save_action = window._action("&Save session", self.save, QKeySequence.Save,
                                          "Save everything needed to reproduce what is on screen")
        self.save_as_action = window._action("Save session &as...", self.save_as, QKeySequence.SaveAs,
                                             "Save the session under a new name")
        self.recent_menu = QMenu("Open &recent", window)
        export_menu = QMenu("&Export", window)
        self.export_plot_action = window._action("Current view as &PNG or SVG...", self.export_view,
                                                 tip="A figure of the current view, legends and axes included")
        self.export_metrics_action = window._action("&Metrics as CSV or JSON...", self.export_metrics,
                                                    tip="The current run's per-step metrics")
        self.record_action = window._action("&Record a clip (MP4 or GIF)...", self.record, "Ctrl+Shift+R",
                                            "Record the 2D race at a fixed frame rate and steps per frame")
        for a in (self.export_plot_action, self.export_metrics_action, self.record_action):
            export_menu.addAction(a)
        for item in (self.open_action, self.recent_menu, self.save_action, self.save_as_action, None, export_menu,
                     None):
            if item is None:
                file_menu.insertSeparator(first)
            elif isinstance(item, QMenu):
                file_menu.insertMenu(first, item)
            else:
                file_menu.insertAction(first, item)
        self.presets_menu = window.menuBar().insertMenu(window.help_menu.menuAction(), QMenu("&Presets", window))
        self._fill_presets()
        self._fill_recent()

    # ---- presets ----
    def _fill_presets(self) -> None:
        from engine.presets import presets_by_topic
        menu = self.presets_menu.menu()
        for topic, presets in presets_by_topic():
            sub = menu.addMenu(topic)
            for preset in presets:
                action = QAction(preset.title, self.w)
                action.setStatusTip(preset.caption.replace("\n", " "))
                action.setToolTip(preset.caption)
                action.triggered.connect(lambda _=False, p=preset: self.open_preset(p))
                sub.addAction(action)
            sub.setToolTipsVisible(True)

    def open_preset(self, preset) -> None:
        self.apply(preset.session)
        self.path = None
        self.w.statusBar().showMessage(f"{preset.title}: {preset.caption}".replace("\n", " "), 30_000)

    def open_for_topic(self, key: str) -> None:
        from engine.presets import presets_for
        found = presets_for(key) if key else []
        if found:
            self.open_preset(found[0])

    # ---- sessions ----
    def current(self):
        """The session on screen. What the window does not show (a session's title, caption, topic, clip
        frame rate and render theme) is the last opened session's, so that saving it again keeps them."""
        from engine.session import Display, Session
        view = {0: "landscape", 1: "mnist"}.get(self.w.tabs.currentIndex(), "landscape")
        mnist, landscape = self.w.mnist, self.w.landscape
        runs = tuple(mnist.configs(only_enabled=True))
        parked_runs = tuple(mnist.unticked_configs()) if runs else ()
        if not runs:  # nothing ticked: keep them all as runs (a session needs one)
            runs, parked_runs = tuple(mnist.configs(only_enabled=False)), ()
        race = landscape.config()
        parked_optimizers = tuple(landscape.optimizers.unticked_configs())
        if not race.optimizers and parked_optimizers:  # nothing ticked: keep them all as racing (one at least)
            race = dataclasses.replace(race, optimizers=tuple(oc for _, oc in parked_optimizers))
            parked_optimizers = ()
        shown = self._shown if self._shown is not None else Session()
        return Session(view=view, landscape=race, mnist_runs=runs,
                       display=Display(steps_per_frame=landscape.steps_per_frame(), fps=shown.display.fps,
                                       theme=shown.display.theme),
                       title=shown.title, caption=shown.caption, topic=shown.topic,
                       parked_optimizers=parked_optimizers, parked_runs=parked_runs)

    def apply(self, session) -> list[str]:
        """Put a validated session into the panels (validation happened when it was loaded). A training
        under way is stopped first: its curves would otherwise finish beside another session's settings.
        Returns what the window could not show as the file has it (to be said with the opening)."""
        notes: list[str] = []
        if self.w.mnist.running():
            self.w.mnist.stop()
        landscape = self.w.landscape
        landscape.set_config(session.landscape)
        if session.parked_optimizers:
            configs, ticks = _with_parked(session.landscape.optimizers, session.parked_optimizers)
            landscape.optimizers.set_configs(configs, total_steps=session.landscape.steps, enabled=ticks)
        landscape.set_steps_per_frame(session.display.steps_per_frame)
        if session.mnist_runs:
            runs, ticks = _with_parked(session.mnist_runs, session.parked_runs)
            # The shared settings (data, model, epochs, batch, seed) are the first ticked run's: what runs.
            self.w.mnist.set_configs(runs, enabled=ticks, shared_from=session.mnist_runs[0])
            differ = _differing_shared(session.mnist_runs)
            if differ:  # a file written by hand or headless: the window has one set of shared settings
                notes.append(f"the MNIST runs differ in {', '.join(differ)}: the window trains every run with "
                             "the first ticked run's (headless, each keeps its own)")
        self.w.tabs.setCurrentIndex(1 if session.view == "mnist" else 0)
        self._shown = session
        return notes

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.w, "Open session", str(self._folder()), "Sessions (*.json)")
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> bool:
        from engine.registry import ConfigError
        from engine.session import load_session, version_notes
        try:
            session = load_session(path)  # validated whole before anything on screen changes
        except (ConfigError, OSError) as exc:
            problem = getattr(exc, "problem", "")
            # "file: is not valid JSON ..." reads as "the file is not valid JSON ..."
            text = f"the file {problem}" if getattr(exc, "field", "") == "file" and problem.startswith("is ") else exc
            self.w.show_error(f"Could not open {Path(path).name}: {text}",
                              "The session on screen is unchanged.")
            return False
        notes = self.apply(session)
        self.path = Path(path)
        self._push_recent(self.path)
        notes = version_notes(session) + notes
        self.w.statusBar().showMessage(f"Opened {self.path.name}" + (f" ({'; '.join(notes)})" if notes else ""),
                                       30_000 if notes else 15_000)
        return True

    def save(self) -> None:
        if self.path is None:
            self.save_as()
        else:
            self.save_to(self.path)

    def save_as(self) -> None:
        path, selected = QFileDialog.getSaveFileName(self.w, "Save session", str(self._folder() / "session.json"),
                                                     "Sessions (*.json)")
        if path:
            self.save_to(path, selected)

    def save_to(self, path: str | Path, selected_filter: str | None = None) -> bool:
        """Save the session to ``path`` (checked like every export: ".json" added to a name without an
        extension; the folder must exist). Says how it went in the status bar; False when it failed."""
        from engine.registry import ConfigError
        from engine.session import save_session

        from .export import SESSION_SUFFIXES, ExportError, describe_os_error, destination
        try:
            path = destination(path, SESSION_SUFFIXES, selected_filter, "session")
            save_session(self.current(), path)
        except ExportError as exc:
            self._failed("save the session", exc, what="Save")
            return False
        except OSError as exc:
            self._failed("save the session", describe_os_error(exc, path), what="Save")
            return False
        except ConfigError as exc:
            self._failed("save the session", exc, traceback.format_exc(), what="Save")
            return False
        self.path = path
        self._push_recent(path)
        self.w.statusBar().showMessage(f"Saved {path}", 10_000)
        return True

    def save_last(self) -> None:
        """On close: the session is restored at the next start."""
        from engine.session import last_session_path, save_session

        from .param_form import last_accepted_values
        try:
            with last_accepted_values():  # a field left refused keeps its last good value; the rest is kept
                session = self.current()
            save_session(session, last_session_path())
        except Exception as exc:  # closing must never fail over this
            self.w.show_problem(f"could not keep the session for next time: {exc}")

    def restore_last(self) -> None:
        from engine.session import restore_last_session
        session, problem = restore_last_session()
        if session is not None:
            try:
                self.apply(session)
            except Exception as exc:
                self.w.show_problem(f"the last session could not be restored: {exc}")
        elif problem:
            self.w.show_problem(problem)

    def _folder(self) -> Path:
        return self.path.parent if self.path is not None else Path.home()

    def _recent(self) -> list[str]:
        s = self.w.settings
        value = s.value(RECENT_KEY, []) if s is not None else []
        return [value] if isinstance(value, str) else list(value or [])

    def _push_recent(self, path: Path) -> None:
        from engine.session import push_recent
        if self.w.settings is not None:
            self.w.settings.setValue(RECENT_KEY, push_recent(self._recent(), path))
        self._fill_recent()

    def _fill_recent(self) -> None:
        from engine.session import prune_recent
        self.recent_menu.clear()
        recent = prune_recent(self._recent())
        for p in recent:
            action = QAction(Path(p).name, self.w)
            action.setStatusTip(p)
            action.triggered.connect(lambda _=False, p=p: self.open_path(p))
            self.recent_menu.addAction(action)
        self.recent_menu.setEnabled(bool(recent))

    # ---- export ----
    # Every export says how it ended in the status bar ("Exported ...", "Export failed: ...", "Export
    # cancelled ..."), so a message from an earlier export never stands for a later one; a failure also
    # opens the error box. Names are checked by gui.export.destination before anything is written.
    def _status(self, text: str, ms: int = 10_000) -> None:
        self.w.statusBar().showMessage(text, ms)

    def _cancelled(self, what: str = "Export") -> None:
        self._status(f"{what} cancelled; nothing was written.")

    def _failed(self, action: str, exc, details: str = "", what: str = "Export") -> None:
        message = str(exc)
        self._status(f"{what} failed: {message}", 15_000)
        self.w.show_error(f"Could not {action}: {message}", details)

    def _ask_destination(self, title: str, default_name: str, filters: str, suffixes, kind: str, action: str,
                         what: str = "Export"):
        """Ask for a file in a dialog and check it (gui.export.destination): the Path, or None when the user
        cancelled or the name was refused (either said in the status bar, a refusal in the error box too)."""
        from .export import ExportError, destination
        path, selected = QFileDialog.getSaveFileName(self.w, title, str(self._folder() / default_name), filters)
        if not path:
            self._cancelled(what)
            return None
        try:
            return destination(path, suffixes, selected, kind)
        except ExportError as exc:
            self._failed(action, exc, what=what)
            return None

    def export_view(self) -> None:
        from engine.registry import ConfigError

        from .export import FIGURE_SUFFIXES, export_plot
        target = self._ask_destination("Export the current view", "view.png", "PNG image (*.png);;SVG drawing (*.svg)",
                                       FIGURE_SUFFIXES, "figure", "export the view")
        if target is None:
            return
        width = None
        if target.suffix.lower() == ".png":
            width, ok = QInputDialog.getInt(self.w, "Export", "Width in pixels (PNG):", 1920, 200, 8000)
            if not ok:
                self._cancelled()
                return
        try:
            written = export_plot(self.w.tabs.currentWidget(), target, width=width)
        except ConfigError as exc:  # ExportError included: already in words
            self._failed("export the view", exc)
            return
        except Exception as exc:
            self._failed("export the view", exc, traceback.format_exc())
            return
        self._status(f"Exported {written}")

    def export_metrics(self) -> None:
        """Runs the export on a worker thread (gui.export_worker): a long race takes seconds to write."""
        if self._export is not None and self._export.is_running():
            self.w.show_problem("export: an export is already running")
            return
        if self.w.tabs.currentWidget() is self.w.mnist:
            self._export_training_metrics()
            return
        from .export import METRIC_SUFFIXES, export_landscape_metrics
        panel = self.w.landscape
        if panel.history is None:
            self.w.show_problem("export: run the race first; there are no metrics yet")
            return
        path = self._ask_destination("Export metrics", "metrics.csv", "CSV (*.csv);;JSON (*.json)", METRIC_SUFFIXES,
                                     "metrics file", "export metrics")
        if path is None:
            return
        history = panel.history  # the export's own reference: a reset meanwhile replaces panel.history
        labels = [c.label for _, c in panel.run_configs]
        was_playing = panel.playing
        # The worker reads the history's table while the race would append to it on this thread, and
        # the table is not safe for that, so the race pauses for the export and resumes after it.
        panel.pause()
        release = history.hold()

        def cleanup() -> None:
            release()
            if was_playing and panel.history is history:
                panel.play()

        self._run_export(f"Exporting metrics to {Path(path).name}...",
                         lambda progress: export_landscape_metrics(history, labels, path, progress),
                         f"Exported {path}", cleanup)

    def _run_export(self, label: str, work, done_message, cleanup=None) -> None:
        from .export_worker import BackgroundExport

        def done(result) -> None:
            text = done_message(result) if callable(done_message) else done_message
            self.w.statusBar().showMessage(text, 10_000)

        def failed(message: str, details: str) -> None:
            self._failed("export metrics", message, details)

        def cancelled() -> None:
            self._status("Export cancelled; no file was left.")

        self._export = BackgroundExport(self.w, label, work, done, failed, cancelled, cleanup)

    def _export_training_metrics(self) -> None:
        """One file per MNIST run: name-run1.csv, name-run2.csv, ... (steps and evaluations)."""
        traces = [t for t in self.w.mnist.traces if len(t.step)]
        if not traces:
            self.w.show_problem("export: train first; there are no MNIST metrics yet")
            return
        from .export import METRIC_SUFFIXES
        path = self._ask_destination("Export MNIST metrics", "training.csv", "CSV (*.csv);;JSON (*.json)",
                                     METRIC_SUFFIXES, "metrics file", "export metrics")
        if path is None:
            return
        # Copies taken here, on the GUI thread: training goes on appending to the traces meanwhile.
        runs = [_snapshot(t) for t in traces]
        self._run_export(f"Exporting MNIST metrics beside {Path(path).name}...",
                         lambda progress: _write_runs(runs, path, progress),
                         lambda written: f"Exported {len(written)} runs beside {path}")

    def write_training_metrics(self, path: Path, progress=None) -> list[Path]:
        return _write_runs([_snapshot(t) for t in self.w.mnist.traces if len(t.step)], Path(path), progress)

    def record(self) -> None:
        from engine.registry import ConfigError

        from .export import VIDEO_SUFFIXES, describe_os_error
        from .recording import landscape_advance, record_widget
        path = self._ask_destination("Record a clip", "clip.mp4", "MP4 video (*.mp4);;GIF animation (*.gif)",
                                     VIDEO_SUFFIXES, "clip", "record", what="Recording")
        if path is None:
            return
        size, ok = QInputDialog.getItem(self.w, "Record", "Size:", ["720p", "1080p"], 0, False)
        if not ok:
            self._cancelled("Recording")
            return
        fps = self._shown.display.fps if self._shown is not None else 30  # an opened session's, as its render
        seconds, ok = QInputDialog.getInt(self.w, "Record", f"Length in seconds ({fps} frames per second):", 20, 1,
                                          600)
        if not ok:
            self._cancelled("Recording")
            return
        title, ok = QInputDialog.getText(self.w, "Record", "Title over the clip (optional):")
        if not ok:
            self._cancelled("Recording")
            return
        panel = self.w.landscape
        self.w.tabs.setCurrentWidget(panel)
        equation = f"f(x, y) = {panel.function.formula}"
        panel.reset()  # a clip starts at step 0, so it shows the same content whatever the machine's speed
        dialog = QProgressDialog("Recording...", "Cancel", 0, 100, self.w)
        dialog.setWindowModality(Qt.WindowModal)

        def progress(done: int, total: int) -> None:
            dialog.setValue(min(99, int(100 * done / max(total, 1))))
            if dialog.wasCanceled():
                raise KeyboardInterrupt

        try:
            record_widget(panel.map_plot, landscape_advance(panel), path, fps=fps,
                          steps_per_frame=panel.steps_per_frame(), size=size, progress=progress,
                          frames=fps * seconds, title=title, equation=equation)
        except KeyboardInterrupt:
            self._status("Recording cancelled; no file was left.")
        except OSError as exc:
            self._failed("record", describe_os_error(exc, path), traceback.format_exc(), what="Recording")
        except ConfigError as exc:
            self._failed("record", exc, what="Recording")
        except Exception as exc:
            self._failed("record", exc, traceback.format_exc(), what="Recording")
        else:
            self._status(f"Recorded {path}", 15_000)
        finally:
            dialog.close()


_TRACE_SERIES = ("step", "loss", "lr", "grad", "eval_step", "eval_epoch", "train_loss", "val_loss", "train_acc",
                 "val_acc")


def _snapshot(trace):
    """What export_training_metrics reads of a live MNIST trace, copied (its buffers keep growing)."""
    from types import SimpleNamespace

    import numpy as np

    from .export import _series
    return SimpleNamespace(index=trace.index, label=trace.label,
                           **{name: np.array(_series(trace, name), copy=True) for name in _TRACE_SERIES})


def _write_runs(runs, path: Path, progress=None) -> list[Path]:
    from .export import export_training_metrics
    out: list[Path] = []
    try:
        for i, t in enumerate(runs):
            target = path.with_name(f"{path.stem}-run{t.index + 1}{path.suffix}")
            part = None if progress is None else (lambda f, i=i: progress((i + f) / len(runs)))
            out.append(export_training_metrics(t, target, t.label, progress=part))
    except BaseException:
        # Cancelled or failed part way: no partial set of runs is left either.
        for p in out:
            p.unlink(missing_ok=True)
        raise
    return out


def _with_parked(ticked, parked) -> tuple[list, list[bool]]:
    """The whole list: the unticked entries back at their places among the ticked ones, and the ticks."""
    total = len(ticked) + len(parked)
    slots: list = [None] * total
    for at, config in sorted(parked, key=lambda p: p[0]):
        at = min(at, total - 1)
        while slots[at] is not None:  # two claims on one place: the next free one
            at = (at + 1) % total
        slots[at] = (config, False)
    rest = iter(ticked)
    out = [slot if slot is not None else (next(rest), True) for slot in slots]
    return [c for c, _ in out], [t for _, t in out]


SHARED_FIELDS = ("dataset", "dataset_path", "dataset_params", "train_size", "val_fraction", "model", "epochs",
                 "batch_size", "eval_every", "seed")  # what the MNIST tab sets once for every run


def _differing_shared(runs) -> list[str]:
    """The shared settings in which the runs disagree (the window can show only one value of each)."""
    return [name.replace("_", " ") for name in SHARED_FIELDS
            if len({repr(getattr(r, name)) for r in runs}) > 1]
