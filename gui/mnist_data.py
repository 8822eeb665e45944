"""The dataset picker of the MNIST view: where the digits come from, how many to train on, the split.

Sources: the bundled subset (default, offline); a folder the user picks (the four standard IDX files,
gzip or raw, or a torchvision root with MNIST/raw or FashionMNIST/raw); Debian's Fashion-MNIST when
installed; MNIST or Fashion-MNIST downloaded on request into the user's cache folder. The download runs
in a thread (network reads release the interpreter lock), reports progress to a bar polled by a timer,
can be cancelled, and leaves no partial file behind (``engine.datasets.DownloadSource``). Offline, the
message says so and nothing else is affected.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QThread, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QSpinBox, QToolButton, QWidget)

from engine.datasets import (BundledSource, DataSourceError, DownloadSource, FashionDebianSource, IdxFolderSource,
                             Source)
from engine.idx import IdxError, idx_shape
from engine.registry import ConfigError

# (key shown in the combo, registry name, its params, label, tooltip)
CHOICES = (
    ("bundled", "bundled", {}, "Bundled MNIST (5,000 digits)",
     "5,000 real MNIST training digits shipped with Optiscope (500 per class). Works offline. No test set."),
    ("idx_folder", "idx_folder", {}, "IDX folder...",
     "A folder holding train-images-idx3-ubyte, train-labels-idx1-ubyte (and the t10k test files), gzip or "
     "raw; or a torchvision root with MNIST/raw or FashionMNIST/raw below it."),
    ("fashion_debian", "fashion_debian", {}, "Fashion-MNIST (Debian)",
     "Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)."),
    ("download:mnist", "download", {"which": "mnist"}, "MNIST download (70,000)",
     "The full MNIST training and test sets, downloaded once into your cache folder with their published "
     "checksums verified."),
    ("download:fashion", "download", {"which": "fashion"}, "Fashion-MNIST download",
     "Zalando's Fashion-MNIST, downloaded once into your cache folder with its published checksums verified."),
)


class DownloadCancelled(Exception):
    pass


class DownloadThread(QThread):
    """Runs ``source.fetch(progress)``; the GUI polls ``progress`` and ``outcome`` (no signal per chunk)."""

    def __init__(self, source: DownloadSource, parent=None):
        super().__init__(parent)
        self.source = source
        self._lock = threading.Lock()
        self._cancel = False
        self.progress = (0, 1)
        self.outcome: tuple[str, str] | None = None  # ("ok" | "cancelled" | "failed", message)

    def cancel(self) -> None:
        with self._lock:
            self._cancel = True

    def _report(self, done: int, total: int) -> None:
        with self._lock:
            self.progress = (done, total)
            if self._cancel:
                raise DownloadCancelled()

    def run(self) -> None:  # noqa: D401 - QThread entry point
        try:
            folder = self.source.fetch(self._report)
            self.outcome = ("ok", f"{self.source.mirror.title} is ready in {folder}")
        except DownloadCancelled:
            self.outcome = ("cancelled", "Download cancelled; no partial file was kept.")
        except DataSourceError as exc:
            self.outcome = ("failed", str(exc))
        except Exception as exc:  # never a dead app: the message goes to the user
            self.outcome = ("failed", f"download failed: {exc}")


def count_train_digits(source: Source) -> int | None:
    """Training digits a source holds, read from file headers only (None when unknown)."""
    try:
        if isinstance(source, BundledSource):
            return 5000
        if isinstance(source, DownloadSource):
            return 60_000
        if isinstance(source, IdxFolderSource):
            folder, files = source._locate()
            return int(idx_shape(files["train_images"], "images")[0])
    except (DataSourceError, IdxError, OSError):
        return None
    return None


def max_train_size(n_digits: int, val_fraction: float) -> int:
    """Digits left for training after the validation split (as engine.datasets.split_train_val rounds)."""
    return n_digits - round(val_fraction * n_digits)


NOTE_COLOUR = "#B86E00"  # a source not ready yet (no folder chosen, not downloaded)
ERROR_COLOUR = "#D55E00"  # a source whose files are damaged


def is_damaged(source: Source) -> bool:
    """The source's files are there but would be refused (cut short, padded, mismatched): an error to show
    as one, not a step still to take (choosing a folder, downloading)."""
    if isinstance(source, DownloadSource):
        if not source.downloaded():
            return False
        source = IdxFolderSource(source.folder, source.mirror.kind)
    if not isinstance(source, IdxFolderSource):
        return False
    try:
        source.check()
    except IdxError:
        return True
    except (DataSourceError, OSError):
        return False
    return False


class DatasetPicker(QGroupBox):
    """Source, folder, download, training-set size and validation split. ``values()`` gives TrainConfig fields."""

    changed = Signal()  # anything that changes what a run trains on (source, size, split)
    source_changed = Signal()  # the source or its folder, or what it holds (a download finished)
    message = Signal(str)

    def __init__(self, parent=None):
        super().__init__("Data", parent)
        # Replaceable in tests: how a download source is made for a mirror key.
        self.download_factory: Callable[[str], DownloadSource] = lambda which: DownloadSource(which)
        self.download: DownloadThread | None = None
        self.combo = QComboBox()
        for key, _, _, label, tip in CHOICES:
            self.combo.addItem(label, key)
            self.combo.setItemData(self.combo.count() - 1, tip, 3)  # Qt.ToolTipRole
        self.combo.setToolTip("Where the digits come from. Hover over an entry for what it holds.")
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(16)
        self.path = QLineEdit()
        self.path.setPlaceholderText("folder with the IDX files")
        self.path.setToolTip("A folder with train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] "
                             "(t10k-* test files optional), or a torchvision root holding MNIST/raw.")
        self.browse = QToolButton()
        self.browse.setText("...")
        self.browse.setToolTip("Choose the folder")
        self.describe = QLabel()
        self.describe.setWordWrap(True)
        self.describe.setToolTip("What the chosen source holds, read from the files' headers; each file's size is "
                                 "checked against its header.")
        self.fetch_button = QPushButton("Download")
        self.fetch_button.setToolTip("Download the chosen dataset now (in the background), checksums verified.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download; the partial file is removed.")
        self.bar = QProgressBar()
        self.bar.setToolTip("Bytes downloaded")
        self.bar.setTextVisible(True)
        self.train_size = QSpinBox()
        self.train_size.setRange(0, 1_000_000)
        self.train_size.setSpecialValueText("all")
        self.train_size.setSingleStep(500)
        self.train_size.setToolTip("Digits to train on, a stratified sample of the training split ('all': every "
                                   "digit left after the validation split). Small is fast; large generalises.")
        self.val_fraction = QDoubleSpinBox()
        self.val_fraction.setRange(0.05, 0.9)
        self.val_fraction.setSingleStep(0.05)
        self.val_fraction.setDecimals(2)
        self.val_fraction.setValue(0.2)
        self.val_fraction.setToolTip("Share of the source's training digits held out for validation (stratified "
                                     "and seeded). The real test set, when the source has one, is scored at the end.")
        form = QFormLayout(self)
        form.addRow("source", self.combo)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        self.path_row = QWidget()
        self.path_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("folder", self.path_row)
        self.path_label = form.labelForField(self.path_row)
        fetch_row = QHBoxLayout()
        fetch_row.setContentsMargins(0, 0, 0, 0)
        fetch_row.addWidget(self.fetch_button)
        fetch_row.addWidget(self.bar, 1)
        fetch_row.addWidget(self.cancel_button)
        self.fetch_row = QWidget()
        self.fetch_row.setLayout(fetch_row)
        form.addRow(self.fetch_row)
        form.addRow(self.describe)
        form.addRow("training digits", self.train_size)
        form.addRow("validation share", self.val_fraction)
        for label_for, w in (("source", self.combo), ("training digits", self.train_size),
                             ("validation share", self.val_fraction)):
            lab = form.labelForField(w)
            if lab is not None:
                lab.setToolTip(w.toolTip())
        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self._poll_download)
        self.combo.currentIndexChanged.connect(self._source_changed)
        self.path.editingFinished.connect(self._source_changed)
        self.browse.clicked.connect(self._browse)
        self.fetch_button.clicked.connect(self.start_download)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.train_size.valueChanged.connect(lambda _=None: self.changed.emit())
        self.val_fraction.valueChanged.connect(lambda _=None: self.changed.emit())
        self._source_changed()

    # ---- what is chosen ----
    def key(self) -> str:
        return self.combo.currentData()

    def _choice(self) -> tuple[str, str, dict[str, Any]]:
        for key, name, params, _, _ in CHOICES:
            if key == self.key():
                return key, name, dict(params)
        raise AssertionError(self.key())

    def source(self) -> Source:
        key, name, params = self._choice()
        if name == "bundled":
            return BundledSource()
        if name == "idx_folder":
            return IdxFolderSource(self.path.text().strip() or ".")
        if name == "fashion_debian":
            return FashionDebianSource()
        return self.download_factory(params["which"])

    def values(self) -> dict[str, Any]:
        """TrainConfig fields; raises ConfigError naming the field when the choice cannot be used."""
        key, name, params = self._choice()
        path = self.path.text().strip() if name == "idx_folder" else ""
        if name == "idx_folder" and not path:
            raise ConfigError("dataset folder", "choose a folder holding the IDX files (the ... button)")
        return {"dataset": name, "dataset_path": path, "dataset_params": params,
                "train_size": self.train_size.value(), "val_fraction": round(self.val_fraction.value(), 4)}

    def check_ready(self) -> None:
        """Raise ConfigError (naming the field) unless training can start on this source now, offline."""
        values = self.values()
        source = self.source()
        if not source.available():
            if isinstance(source, DownloadSource) and not source.downloaded():
                raise ConfigError("dataset", f"{source.mirror.title} is not downloaded yet: press Download "
                                             f"(about {sum(f.size for f in source.mirror.files) / 1e6:.0f} MB)")
            field = "dataset folder" if values["dataset"] == "idx_folder" else "dataset"
            text = source.describe()
            self._describe(text, ok=False, error=is_damaged(source))  # the files may have changed since chosen
            raise ConfigError(field, text.removeprefix("unavailable: "))
        n = count_train_digits(source)
        if n is not None and values["train_size"]:
            most = max_train_size(n, values["val_fraction"])
            if values["train_size"] > most:
                raise ConfigError("training digits", f"must be at most {most:,} (the digits left after the "
                                                     f"validation split), got {values['train_size']:,}")

    def set_values(self, dataset: str, dataset_path: str = "", dataset_params: dict | None = None,
                   train_size: int = 0, val_fraction: float = 0.2) -> None:
        key = dataset
        if dataset == "download":
            key = f"download:{(dataset_params or {}).get('which', 'mnist')}"
        index = self.combo.findData(key)
        if index < 0:
            raise ConfigError("dataset", f"unknown source {dataset!r}")
        self.path.setText(dataset_path)
        self.combo.setCurrentIndex(index)
        self.train_size.setValue(train_size)
        self.val_fraction.setValue(val_fraction)
        self._source_changed()

    # ---- reacting ----
    def _source_changed(self) -> None:
        key, name, params = self._choice()
        self.path_row.setVisible(name == "idx_folder")
        if self.path_label is not None:
            self.path_label.setVisible(name == "idx_folder")
        downloading = self.download is not None and self.download.isRunning()
        is_download = name == "download"
        self.fetch_row.setVisible(is_download or downloading)
        self.bar.setVisible(downloading)
        self.cancel_button.setVisible(downloading)
        self.fetch_button.setEnabled(not downloading)
        if name == "idx_folder" and not self.path.text().strip():
            self._describe("Choose a folder with the four MNIST-format files (the ... button).", ok=False)
        else:
            source = self.source()
            text = source.describe()
            ok = source.available()
            if is_download:
                have = source.downloaded()
                self.fetch_button.setText("Download again" if have else "Download")
                self.fetch_button.setToolTip("Check the cached files and fetch any missing or corrupt one." if have
                                             else "Download the chosen dataset now (in the background), checksums "
                                                  "verified.")
            n = count_train_digits(source) if ok else None
            if n is not None:
                self.train_size.setMaximum(max(n, 1))
            self._describe(text, ok, error=not ok and is_damaged(source))
        self.source_changed.emit()
        self.changed.emit()

    def _describe(self, text: str, ok: bool, error: bool = False) -> None:
        """The source's description: plain when usable, amber when not ready yet, red when its files are damaged."""
        self.describe.setText(text)
        self.describe.setStyleSheet("" if ok else f"color: {ERROR_COLOUR if error else NOTE_COLOUR};")
        self.describe.setProperty("problem", "error" if error else "" if ok else "note")

    def _browse(self) -> None:
        start = self.path.text().strip() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Folder with MNIST-format IDX files", start)
        if folder:
            self.path.setText(folder)
            self._source_changed()

    # ---- download ----
    def start_download(self) -> None:
        key, name, params = self._choice()
        if name != "download" or (self.download is not None and self.download.isRunning()):
            return
        self.download = DownloadThread(self.download_factory(params["which"]))
        self.download.start()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.timer.start()
        self._describe(f"Downloading {self.download.source.mirror.title}...", ok=True)
        self._source_changed_visibility()

    def _source_changed_visibility(self) -> None:
        running = self.download is not None and self.download.isRunning()
        self.fetch_row.setVisible(True)
        self.bar.setVisible(running)
        self.cancel_button.setVisible(running)
        self.fetch_button.setEnabled(not running)

    def cancel_download(self) -> None:
        if self.download is not None:
            self.download.cancel()

    def downloading(self) -> bool:
        return self.download is not None and self.download.isRunning()

    def _poll_download(self) -> None:
        d = self.download
        if d is None:
            self.timer.stop()
            return
        done, total = d.progress
        self.bar.setValue(int(1000 * done / max(total, 1)))
        self.bar.setFormat(f"{done / 1e6:.1f} / {total / 1e6:.1f} MB")
        if d.isRunning() or d.outcome is None:
            return
        self.timer.stop()
        d.wait()
        status, text = d.outcome
        self.download = None
        self._source_changed()
        if status == "ok":
            self._describe(f"{text}. {self.source().describe()}", ok=True)
        else:
            self._describe(text, ok=False)
        self.message.emit(text if status != "failed" else f"dataset download: {text}")

    def shutdown(self) -> None:
        self.timer.stop()
        if self.download is not None:
            self.download.cancel()
            self.download.wait(10_000)
            self.download = None


__all__ = ["DatasetPicker", "DownloadThread", "CHOICES", "count_train_digits", "is_damaged", "max_train_size"]
