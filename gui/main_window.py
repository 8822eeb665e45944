"""The main window: the 2D landscape race and the MNIST training view, with menus and a status bar."""
from __future__ import annotations

import logging

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QTabWidget

from .landscape_panel import LandscapePanel
from .mnist_panel import MnistPanel

log = logging.getLogger("optiscope")


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.setWindowTitle("Optiscope")
        self.settings = settings
        self.landscape = LandscapePanel()
        self.mnist = MnistPanel()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.landscape, "2D landscape")
        self.tabs.addTab(self.mnist, "MNIST training")
        self.setCentralWidget(self.tabs)
        self.step_label = QLabel()
        self.statusBar().addPermanentWidget(self.step_label)
        for panel in (self.landscape, self.mnist):
            panel.message.connect(self.show_problem)
            panel.error.connect(self.show_error)
        self.landscape.stats.connect(lambda step, rate: self.step_label.setText(
            f"step {step}  |  {rate:,.0f} steps/s"))
        self.mnist.stats.connect(lambda text: self.step_label.setText(text))
        self._build_menus()
        self.resize(1400, 860)
        if settings is not None:
            geometry = settings.value("window/geometry")
            if geometry is not None:
                self.restoreGeometry(geometry)
            self.tabs.setCurrentIndex(int(settings.value("window/tab", 0)))

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})" if shortcut else tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.Quit, "Close Optiscope")
        file_menu.addAction(self.quit_action)
        run_menu = bar.addMenu("&Run")
        self.play_action = self._action("&Play / pause", self._play_pause, Qt.Key_Space, "Start or pause the run")
        self.step_action = self._action("&Single step", self._single_step, Qt.Key_Period, "Advance one step")
        self.reset_action = self._action("&Reset", self._reset, Qt.Key_R, "Back to the start")
        for a in (self.play_action, self.step_action, self.reset_action):
            run_menu.addAction(a)
        view_menu = bar.addMenu("&View")
        self.landscape_action = self._action("&2D landscape", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1",
                                             "Show the 2D landscape race")
        self.mnist_action = self._action("&MNIST training", lambda: self.tabs.setCurrentIndex(1), "Ctrl+2",
                                         "Show the MNIST training view")
        view_menu.addAction(self.landscape_action)
        view_menu.addAction(self.mnist_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&About Optiscope", self.show_about, tip="Versions and licences"))

    def _play_pause(self) -> None:
        if self.tabs.currentWidget() is self.landscape:
            self.landscape.toggle_play()
        else:
            self.mnist.toggle_run()

    def _single_step(self) -> None:
        if self.tabs.currentWidget() is self.landscape:
            self.landscape.single_step()

    def _reset(self) -> None:
        if self.tabs.currentWidget() is self.landscape:
            self.landscape.reset()
        else:
            self.mnist.stop()

    def show_problem(self, text: str) -> None:
        """A refused input: shown in the status bar (no modal dialog for a typo)."""
        self.statusBar().showMessage(text, 10_000)
        log.info("refused input: %s", text)

    def show_error(self, text: str, details: str) -> None:
        log.error("%s\n%s", text, details)
        box = QMessageBox(QMessageBox.Warning, "Optiscope", text, QMessageBox.Ok, self)
        box.setInformativeText("Your settings are kept. Change what the message names and run again.")
        box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModal)
        box.show()
        self._last_error_box = box

    def show_about(self) -> None:
        from engine.versions import version_text
        QMessageBox.about(self, "About Optiscope", version_text().replace("\n", "<br>"))

    def closeEvent(self, event) -> None:
        self.landscape.shutdown()
        self.mnist.shutdown()
        if self.settings is not None:
            self.settings.setValue("window/geometry", self.saveGeometry())
            self.settings.setValue("window/tab", self.tabs.currentIndex())
        super().closeEvent(event)
