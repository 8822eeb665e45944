"""The main window: the 2D landscape race and the MNIST view, menus, status bar, study panel, themes.

The window paints before torch is imported (``eager=False``): a loader thread imports the engine while
the default map, drawn from a precomputed file, is on screen; the panels replace it when it is ready.
"""
from __future__ import annotations

import logging
import time
from collections import deque

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QLabel, QListWidget, QMainWindow, QMessageBox, QPushButton,
                               QSplitter, QTabWidget, QTextBrowser, QVBoxLayout, QWidget)

from .errors import log_path
from .startup import EngineLoader, StartupView
from .study_topics import TOPICS
from .theme import THEMES, apply_theme

log = logging.getLogger("optiscope")


class MainWindow(QMainWindow):
    engine_ready = Signal()

    def __init__(self, settings: QSettings | None = None, eager: bool = True, before_panels=None,
                 restore_session: bool = False):
        super().__init__()
        self.setWindowTitle("Optiscope")
        self.settings = settings
        self.before_panels = before_panels
        self.restore_session = restore_session  # the app does; tests start from the defaults
        self.sessions = None
        self.landscape = None
        self.mnist = None
        self.explore = None
        self._frame_times: deque[float] = deque(maxlen=120)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.step_label = QLabel()
        self.busy_label = QLabel()
        self.statusBar().addPermanentWidget(self.busy_label)
        self.statusBar().addPermanentWidget(self.step_label)
        self._build_menus()
        self._build_study_dock()
        self.theme = str(settings.value("view/theme", "system")) if settings is not None else "system"
        if self.theme not in THEMES:
            self.theme = "system"
        self.resize(1400, 860)
        if settings is not None and settings.value("window/geometry") is not None:
            self.restoreGeometry(settings.value("window/geometry"))
            self.restoreState(settings.value("window/state"))
        self._set_engine_actions(False)
        if eager:
            self._build_panels()
        else:
            self.tabs.addTab(StartupView(), "2D landscape")
            self.busy_label.setText("loading torch...")
            self.loader = EngineLoader()
            self.loader.ready.connect(self._build_panels)
            self.loader.failed.connect(self.show_error)
            # Started once the window has painted: an import running beside the first paint would take
            # the interpreter lock from it.
            self._loader_pending = True
        apply_theme(self, self.theme)

    # ---- construction ----
    def _build_panels(self) -> None:
        if self.before_panels is not None:
            self.before_panels()
        from .explore_panel import ExplorePanel
        from .landscape_panel import LandscapePanel
        from .mnist_panel import MnistPanel

        self.landscape = LandscapePanel()
        self.mnist = MnistPanel()
        self.explore = ExplorePanel()
        while self.tabs.count():
            old = self.tabs.widget(0)
            self.tabs.removeTab(0)
            old.deleteLater()
        self.tabs.addTab(self.landscape, "2D landscape")
        self.tabs.addTab(self.mnist, "MNIST training")
        self.tabs.addTab(self.explore, "Basins and sweeps")
        self.explore.replay.connect(self.replay_in_race)
        for panel in (self.landscape, self.mnist, self.explore):
            panel.message.connect(self.show_problem)
            panel.error.connect(self.show_error)
        self.landscape.stats.connect(self._landscape_stats)
        self.landscape.inputs_changed.connect(self._input_accepted)
        self.mnist.stats.connect(self.step_label.setText)
        self.busy_label.setText("")
        from .session_menu import SessionMenus
        self.sessions = SessionMenus(self)
        self.open_preset_for_topic = self.sessions.open_for_topic
        self._set_engine_actions(True)
        self._restore_panel_settings()
        if self.restore_session:
            self.sessions.restore_last()
        apply_theme(self, self.theme)
        self.engine_ready.emit()

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            keys = action.shortcut().toString(QKeySequence.NativeText)
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({keys})" if keys else tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.file_menu = bar.addMenu("&File")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.Quit, "Close Optiscope")
        self.file_menu.addAction(self.quit_action)

        self.run_menu = bar.addMenu("&Run")
        self.play_action = self._action("&Play / pause", self._play_pause, Qt.Key_Space, "Start or pause the run")
        self.step_action = self._action("&Single step", self._single_step, Qt.Key_Period,
                                        "Advance the 2D race by one optimiser step")
        self.reset_action = self._action("&Reset", self._reset, Qt.Key_R, "Back to the start with fresh optimisers")
        for a in (self.play_action, self.step_action, self.reset_action):
            self.run_menu.addAction(a)

        self.view_menu = bar.addMenu("&View")
        self.landscape_action = self._action("&2D landscape", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1",
                                             "Show the 2D landscape race")
        self.mnist_action = self._action("&MNIST training", lambda: self.tabs.setCurrentIndex(1), "Ctrl+2",
                                         "Show the MNIST training view")
        self.explore_action = self._action("&Basins and sweeps", lambda: self.tabs.setCurrentIndex(2), "Ctrl+3",
                                           "Show basins of attraction and hyperparameter sweep maps")
        self.view_menu.addAction(self.landscape_action)
        self.view_menu.addAction(self.mnist_action)
        self.view_menu.addAction(self.explore_action)
        self.view_menu.addSeparator()
        theme_menu = self.view_menu.addMenu("&Theme")
        self.theme_group = QActionGroup(self)
        self.theme_actions = {}
        for name in THEMES:
            a = QAction(name.capitalize() if name != "system" else "Follow the system", self, checkable=True)
            a.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            self.theme_group.addAction(a)
            theme_menu.addAction(a)
            self.theme_actions[name] = a
        self.presenter_action = QAction("&Presenter mode", self, checkable=True)
        self.presenter_action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.presenter_action.setStatusTip("Larger fonts and thicker lines for a projector or a recording")
        self.presenter_action.toggled.connect(self._presenter)
        self.addAction(self.presenter_action)
        self.view_menu.addAction(self.presenter_action)

        self.help_menu = bar.addMenu("&Help")
        self.study_action = self._action("&Study topics", self._toggle_study, "F1",
                                         "The syllabus: what each optimiser, schedule and regulariser does")
        self.help_menu.addAction(self.study_action)
        self.help_menu.addAction(self._action("Open the &log folder", self._open_log_folder,
                                              tip="Where Optiscope writes what went wrong"))
        self.help_menu.addAction(self._action("&About Optiscope", self.show_about, tip="Versions and licences"))

    def _set_engine_actions(self, enabled: bool) -> None:
        for a in (self.play_action, self.step_action, self.reset_action):
            a.setEnabled(enabled)

    def _build_study_dock(self) -> None:
        self.study = QDockWidget("Study", self)
        self.study.setObjectName("study")
        body = QWidget()
        layout = QVBoxLayout(body)
        split = QSplitter(Qt.Vertical)
        self.topic_list = QListWidget()
        for topic in TOPICS:
            self.topic_list.addItem(topic.title)
        self.topic_text = QTextBrowser()
        self.topic_text.setOpenExternalLinks(False)
        split.addWidget(self.topic_list)
        split.addWidget(self.topic_text)
        split.setSizes([220, 420])
        layout.addWidget(split)
        self.show_me = QPushButton("Show me")
        self.show_me.setToolTip("Open the view (and the preset, where there is one) that shows this topic.")
        layout.addWidget(self.show_me)
        self.study.setWidget(body)
        self.addDockWidget(Qt.RightDockWidgetArea, self.study)
        self.study.hide()
        self.topic_list.currentRowChanged.connect(self._show_topic)
        self.show_me.clicked.connect(self._open_topic)
        self.topic_list.setCurrentRow(0)

    def _toggle_study(self) -> None:
        self.study.setVisible(not self.study.isVisible())

    def _show_topic(self, row: int) -> None:
        if 0 <= row < len(TOPICS):
            t = TOPICS[row]
            self.topic_text.setHtml(f"<h3>{t.title}</h3>{t.html}")

    def _open_topic(self) -> None:
        t = TOPICS[max(self.topic_list.currentRow(), 0)]
        self.tabs.setCurrentIndex(0 if t.view == "landscape" else 1)
        opener = getattr(self, "open_preset_for_topic", None)
        if opener is not None:
            opener(t.preset_topic)

    def replay_in_race(self, cfg) -> None:
        """A sweep cell (or anything else) replayed as a trajectory in the 2D race."""
        self.tabs.setCurrentWidget(self.landscape)
        try:
            self.landscape.set_config(cfg)
        except Exception as exc:  # a config the race cannot show: say why, keep the race as it was
            self.show_problem(f"Could not replay that configuration: {exc}")
            return
        self.landscape.reset()
        self.landscape.play()

    # ---- run control ----
    def _current_panel(self):
        return self.tabs.currentWidget()

    def _play_pause(self) -> None:
        panel = self._current_panel()
        if panel is self.landscape and panel is not None:
            panel.toggle_play()
        elif panel is self.mnist and panel is not None:
            panel.toggle_run()

    def _single_step(self) -> None:
        if self.landscape is not None:
            self.tabs.setCurrentWidget(self.landscape)
            self.landscape.single_step()

    def _reset(self) -> None:
        panel = self._current_panel()
        if panel is self.landscape and panel is not None:
            panel.reset()
        elif panel is self.mnist and panel is not None:
            panel.stop()

    def _landscape_stats(self, step: int, rate: float) -> None:
        now = time.perf_counter()
        self._frame_times.append(now)
        while self._frame_times and now - self._frame_times[0] > 1.0:
            self._frame_times.popleft()
        self.step_label.setText(f"step {step:,}  |  {rate:,.0f} steps/s  |  {len(self._frame_times)} fps")

    # ---- messages ----
    def show_problem(self, text: str) -> None:
        """A refused input: the status bar says which field and why (no modal dialog for a typo)."""
        self.statusBar().showMessage(text, 15_000)
        self._refused = text
        log.info("refused input: %s", text)

    def _input_accepted(self) -> None:
        """An accepted edit takes a refusal off the status bar once nothing typed is refused any more, so the
        message does not outlive the fix it asked for; while another field is still refused, that one is said."""
        refused = getattr(self, "_refused", None)
        if not refused:
            return
        left = self.landscape.input_problem()
        if left is None:
            if self.statusBar().currentMessage() == refused:
                self.statusBar().clearMessage()
            self._refused = None
        elif left != refused:
            self.show_problem(left)

    def show_error(self, text: str, details: str = "") -> None:
        log.error("%s\n%s", text, details)
        box = QMessageBox(QMessageBox.Warning, "Optiscope", text, QMessageBox.Ok, self)
        box.setInformativeText("Your settings and results are kept. Change what the message names and run "
                               f"again. Details are in the log: {log_path()}")
        if details:
            box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModal)
        box.show()
        self.last_error_box = box

    def show_about(self) -> None:
        from engine.versions import version_text
        QMessageBox.about(self, "About Optiscope",
                          "<b>Optiscope</b>: watch optimisers learn.<br><br>" + version_text().replace("\n", "<br>")
                          + "<br><br>Bundled digits: MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0.")

    def _open_log_folder(self) -> None:
        folder = log_path().parent
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # ---- themes and settings ----
    def _presenter(self, on: bool) -> None:
        from .recording import apply_plot_theme
        from .theme import resolve
        apply_plot_theme(self, ("presenter-dark" if resolve(self.theme) else "presenter-light") if on else "default")

    def set_theme(self, theme: str) -> None:
        self.theme = theme
        self.theme_actions[theme].setChecked(True)
        apply_theme(self, theme)
        if self.settings is not None:
            self.settings.setValue("view/theme", theme)

    def showEvent(self, event) -> None:
        self.theme_actions[self.theme].setChecked(True)
        super().showEvent(event)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if getattr(self, "_loader_pending", False):
            self._loader_pending = False
            QTimer.singleShot(0, self.loader.start)

    def _restore_panel_settings(self) -> None:
        s = self.settings
        if s is None:
            return
        self.tabs.setCurrentIndex(int(s.value("window/tab", 0)))
        for key, panel in (("landscape", self.landscape), ("mnist", self.mnist)):
            state = s.value(f"splitters/{key}")
            if state is not None and hasattr(panel, "splitter"):
                panel.splitter.restoreState(state)

    def save_settings(self) -> None:
        s = self.settings
        if s is None:
            return
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("view/theme", self.theme)
        if self.landscape is not None:
            s.setValue("window/tab", self.tabs.currentIndex())
            for key, panel in (("landscape", self.landscape), ("mnist", self.mnist)):
                if hasattr(panel, "splitter"):
                    s.setValue(f"splitters/{key}", panel.splitter.saveState())
        s.sync()

    def closeEvent(self, event) -> None:
        self.save_settings()
        if self.sessions is not None and self.restore_session:
            self.sessions.save_last()
        for panel in (self.landscape, self.mnist, self.explore):
            if panel is not None:
                panel.shutdown()
        loader = getattr(self, "loader", None)
        if loader is not None:
            loader.join()
        super().closeEvent(event)
