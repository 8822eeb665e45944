"""Digit datasets: where they come from, how they are split, and how they become tensors.

Sources, by registry name (``DATASETS``):

- ``bundled``: 5,000 real MNIST training digits shipped in resources/mnist (offline default).
- ``idx_folder``: a folder the user picks holding the four standard IDX files (gzip or raw),
  or a torchvision root with ``MNIST/raw`` or ``FashionMNIST/raw`` below it.
- ``fashion_debian``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package.
- ``download``: MNIST or Fashion-MNIST fetched on request into the user's cache directory,
  with the published md5 checksums verified.

Every source answers ``available()`` and ``describe()`` without loading the pixels, so the GUI
can list them cheaply, and ``load()`` returns a ``DigitData``. Problems with a source (missing
folder, no network, bad checksum) raise ``DataSourceError``; a malformed file raises
``engine.idx.IdxError``. Both messages are written for the user.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

from .idx import IMAGE_SHAPE, IdxError, idx_checked_shape, idx_shape, load_idx_pair, open_idx, read_idx
from .paths import RESOURCES
from .registry import ConfigError, Param, Registry, resolve_params

# Mean and standard deviation of the training pixels scaled to [0, 1]. MNIST's are the values
# every torch example uses (60,000 training images). Fashion-MNIST's are its own, measured on
# its 60,000 training images (0.28604, 0.35302): its garments are much brighter than digits,
# so MNIST's numbers would leave its inputs far from zero mean and unit variance.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
NORMALIZATION = {"mnist": (MNIST_MEAN, MNIST_STD), "fashion": (FASHION_MEAN, FASHION_STD)}

CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}

BUNDLED_DIR = RESOURCES / "mnist"
BUNDLED_IMAGES = BUNDLED_DIR / "mnist-5k-images-idx3-ubyte.gz"
BUNDLED_LABELS = BUNDLED_DIR / "mnist-5k-labels-idx1-ubyte.gz"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

# The standard names; each may also end in .gz.
STANDARD_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

Progress = Callable[[int, int], None]


class DataSourceError(RuntimeError):
    """A dataset source that cannot deliver: missing files, no network, a failed checksum."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays make == ambiguous, identity is what matters
class DigitData:
    """One loaded dataset: uint8 images (N, 28, 28) and int64 labels (N,), test split optional."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    name: str  # short, for legends: "MNIST", "Fashion-MNIST", "MNIST (bundled 5k)"
    description: str  # what describe() said about the source
    source: str  # registry name of the source it came from
    kind: str = "mnist"  # "mnist" or "fashion": picks normalisation and class names

    def __post_init__(self) -> None:
        if self.kind not in NORMALIZATION:
            raise ValueError(f"kind must be one of {', '.join(NORMALIZATION)}, not {self.kind!r}")
        if (self.test_images is None) != (self.test_labels is None):
            raise ValueError("test images and test labels come together or not at all")
        for images, labels, split in ((self.train_images, self.train_labels, "train"),
                                      (self.test_images, self.test_labels, "test")):
            if images is None:
                continue
            if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
                raise ValueError(f"{split}: expected uint8 (N, 28, 28) images and N labels, "
                                 f"got {images.dtype} {images.shape} and {len(labels)} labels")
            # Shared between runs and threads: make accidental in-place edits fail loudly.
            images.flags.writeable = False
            labels.flags.writeable = False

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES[self.kind]

    @property
    def has_test(self) -> bool:
        return self.test_images is not None


class Source(ABC):
    """Where a dataset comes from. Cheap to create; nothing is read before ``load``."""

    name: str  # registry name

    @abstractmethod
    def available(self) -> bool:
        """True when ``load`` can work now without the network."""

    @abstractmethod
    def describe(self) -> str:
        """One line saying what the source holds (never raises; says why when unavailable)."""

    @abstractmethod
    def load(self, progress: Progress | None = None) -> DigitData:
        ...

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


# --- bundled -------------------------------------------------------------------------------


class BundledSource(Source):
    name = "bundled"

    def available(self) -> bool:
        return BUNDLED_IMAGES.is_file() and BUNDLED_LABELS.is_file()

    def describe(self) -> str:
        text = "bundled: 5,000 real MNIST training digits, 500 per class (no test set)"
        return text if self.available() else f"{text}; missing from {BUNDLED_DIR}"

    def load(self, progress: Progress | None = None) -> DigitData:
        if not self.available():
            raise DataSourceError(f"the bundled MNIST subset is missing from {BUNDLED_DIR}; reinstall Optiscope")
        images, labels = load_idx_pair(BUNDLED_IMAGES, BUNDLED_LABELS)
        return DigitData(images, labels, None, None, "MNIST (bundled 5k)", self.describe(), self.name, "mnist")


# --- a folder of IDX files -----------------------------------------------------------------


def _find(folder: Path, stem: str) -> Path | None:
    # Prefer the raw file when torchvision left both: it needs no decompression.
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _layout_candidates(root: Path) -> list[Path]:
    return [root, root / "raw", root / "MNIST" / "raw", root / "FashionMNIST" / "raw"]


def _guess_kind(folder: Path, images: Path) -> str:
    """Fashion-MNIST or MNIST: by the folder's name, else by brightness.

    The file formats are identical, so only content tells them apart: the mean pixel of the
    first 1,000 training images is ~33 for MNIST and ~73 for Fashion-MNIST.
    """
    if any("fashion" in part.lower() for part in folder.parts):
        return "fashion"
    try:
        dims = idx_shape(images, expect="images")
        with open_idx(images) as f:
            f.read(16)
            sample = np.frombuffer(f.read(1000 * dims[1] * dims[2]), dtype=np.uint8)
    except (OSError, EOFError, IdxError):
        return "mnist"  # load() will report the real problem
    return "fashion" if sample.size and sample.mean() > 53 else "mnist"


class IdxFolderSource(Source):
    """The four standard IDX files in a folder, or below it in torchvision's layout."""

    name = "idx_folder"

    def __init__(self, path: str | os.PathLike, kind: str | None = None, title: str | None = None):
        self.path = Path(path).expanduser()
        self._kind = kind
        self._title = title

    def _locate(self) -> tuple[Path, dict[str, Path | None]]:
        if not self.path.is_dir():
            raise DataSourceError(f"{self.path} is not a folder")
        for folder in _layout_candidates(self.path):
            files = {role: _find(folder, stem) for role, stem in STANDARD_FILES.items()}
            if files["train_images"] and files["train_labels"]:
                if (files["test_images"] is None) != (files["test_labels"] is None):
                    have, lack = ("test_images", "test_labels")
                    if files["test_labels"]:
                        have, lack = lack, have
                    raise DataSourceError(f"{folder} has {files[have].name} but no "
                                          f"{STANDARD_FILES[lack]}[.gz]; add it or remove both test files")
                return folder, files
        raise DataSourceError(
            f"no MNIST-format training files in {self.path}: expected train-images-idx3-ubyte[.gz] and "
            "train-labels-idx1-ubyte[.gz] there, or in its MNIST/raw or FashionMNIST/raw folder"
        )

    def kind(self) -> str:
        folder, files = self._locate()
        return self._kind or _guess_kind(folder, files["train_images"])

    def title(self, kind: str) -> str:
        return self._title or ("Fashion-MNIST" if kind == "fashion" else "MNIST")

    def check(self) -> tuple[Path, dict[str, Path | None], dict[str, tuple[int, ...]]]:
        """Find the files and check them against one another without reading the items: each header,
        each file's size against its header (``idx_checked_shape``), 28 x 28 images, as many labels as
        images, every label a class. What ``load`` would refuse about a file cut short, padded or mismatched
        is found here in a few small reads (the images are not read). Returns the folder, the files by role and their dimensions; raises
        ``DataSourceError`` (missing files) or ``IdxError`` (naming the file at fault)."""
        folder, files = self._locate()
        shapes: dict[str, tuple[int, ...]] = {}
        for role, path in files.items():
            if path is not None:
                shapes[role] = idx_checked_shape(path, "images" if role.endswith("images") else "labels")
        for split in ("train", "test"):
            images = shapes.get(f"{split}_images")
            if images is None:
                continue
            if tuple(images[1:]) != IMAGE_SHAPE:
                raise IdxError(files[f"{split}_images"], f"images are {' x '.join(map(str, images[1:]))}, "
                                                         "expected 28 x 28")
            labels = shapes[f"{split}_labels"]
            if labels[0] != images[0]:
                raise IdxError(files[f"{split}_labels"], f"{labels[0]:,} labels but {images[0]:,} images in "
                                                         f"{files[f'{split}_images'].name}")
            # The labels are read whole (60,000 bytes, a fraction of a millisecond): a label out of range is
            # said when the folder is chosen, not at Train.
            read_idx(files[f"{split}_labels"], expect="labels")
        return folder, files, shapes

    def available(self) -> bool:
        try:
            self.check()
        except (DataSourceError, IdxError, OSError):
            return False
        return True

    def describe(self) -> str:
        try:
            folder, files, shapes = self.check()
            kind = self._kind or _guess_kind(folder, files["train_images"])
            text = f"{self.title(kind)}, {shapes['train_images'][0]:,} train"
            if files["test_images"]:
                text += f" + {shapes['test_images'][0]:,} test"
            return f"{text} ({folder})"
        except IdxError as exc:
            return f"unavailable: {exc} ({exc.path.parent})"  # IdxError: "<file name>: <problem>"
        except (DataSourceError, OSError) as exc:
            return f"unavailable: {exc}"

    def load(self, progress: Progress | None = None) -> DigitData:
        folder, files = self._locate()
        kind = self._kind or _guess_kind(folder, files["train_images"])
        train_images, train_labels = load_idx_pair(files["train_images"], files["train_labels"])
        test_images = test_labels = None
        if files["test_images"]:
            test_images, test_labels = load_idx_pair(files["test_images"], files["test_labels"])
        return DigitData(train_images, train_labels, test_images, test_labels,
                         self.title(kind), self.describe(), self.name, kind)


class FashionDebianSource(IdxFolderSource):
    """Debian's ``dataset-fashion-mnist``: the four upstream .gz files in /usr/share/datasets/fashion-mnist.

    Debian recompressed them: their md5s differ from the ones Zalando publishes, though the
    uncompressed data is the same, so they are checked by the IDX reader, not by checksum.
    """

    name = "fashion_debian"

    def __init__(self, path: str | os.PathLike = DEBIAN_FASHION):
        super().__init__(path, kind="fashion", title="Fashion-MNIST")

    def describe(self) -> str:
        if not self.path.is_dir():
            return f"unavailable: {self.path} not found (apt-get install dataset-fashion-mnist)"
        return "Debian dataset-fashion-mnist: " + super().describe()


# --- download on request --------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    name: str
    md5: str  # of the .gz as published
    size: int  # bytes, for the progress total before the server says


@dataclass(frozen=True)
class Mirror:
    """A downloadable dataset: base URLs tried in order, and its four files with checksums."""

    key: str  # also the cache sub-folder
    title: str
    kind: str
    urls: tuple[str, ...]
    files: tuple[RemoteFile, ...]


# Checksums and sizes as published (LeCun's site for MNIST, Zalando's README for Fashion-MNIST)
# and as used by torchvision.datasets.MNIST / FashionMNIST.
MIRRORS = {
    "mnist": Mirror("mnist", "MNIST", "mnist", (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's first mirror
        "http://yann.lecun.com/exdb/mnist/",
    ), (
        RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
        RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881),
        RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542),
    )),
    "fashion": Mirror("fashion-mnist", "Fashion-MNIST", "fashion", (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ), (
        RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26_421_880),
        RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29_515),
        RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4_422_102),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5_148),
    )),
}

Opener = Callable[[str], BinaryIO]
_CHUNK = 1 << 16


def _default_opener(url: str) -> BinaryIO:
    return urllib.request.urlopen(url, timeout=30)  # noqa: S310 (URLs come from MIRRORS)


def cache_root() -> Path:
    import platformdirs  # only needed when something is downloaded or looked up in the cache

    return Path(platformdirs.user_cache_dir("optiscope"))


def md5_of(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)  # a published integrity checksum, not security
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


class _ChecksumError(Exception):
    pass


class DownloadSource(Source):
    """MNIST or Fashion-MNIST downloaded into the user's cache directory on request.

    Each file is written to ``<name>.part`` and renamed only after its md5 matches, so the cache
    never holds a partial or corrupt file; a failure or a cancel (raise from ``progress``)
    removes the ``.part``. Files already in the cache with the right md5 are not fetched again.
    """

    name = "download"

    def __init__(self, mirror: Mirror | str = "mnist", cache_dir: str | os.PathLike | None = None,
                 opener: Opener | None = None):
        self.mirror = MIRRORS[mirror] if isinstance(mirror, str) else mirror
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._opener = opener or _default_opener

    @property
    def folder(self) -> Path:
        return (self._cache_dir if self._cache_dir is not None else cache_root()) / self.mirror.key

    def downloaded(self) -> bool:
        """Every file is in the cache (whether or not it is sound)."""
        return all((self.folder / f.name).is_file() for f in self.mirror.files)

    def available(self) -> bool:
        return self.downloaded() and IdxFolderSource(self.folder, self.mirror.kind, self.mirror.title).available()

    def describe(self) -> str:
        if self.downloaded():
            text = IdxFolderSource(self.folder, self.mirror.kind, self.mirror.title).describe()
            if text.startswith("unavailable: "):
                return f"{text}; press Download again to fetch it afresh"
            return "downloaded: " + text
        megabytes = sum(f.size for f in self.mirror.files) / 1e6
        return (f"{self.mirror.title}, 60,000 train + 10,000 test: download {megabytes:.0f} MB "
                f"from {_host(self.mirror.urls[0])} to {self.folder}")

    def missing(self) -> list[RemoteFile]:
        """Files not in the cache, or there with the wrong checksum."""
        return [f for f in self.mirror.files
                if not (self.folder / f.name).is_file() or md5_of(self.folder / f.name) != f.md5]

    def fetch(self, progress: Progress | None = None) -> Path:
        """Download what is missing; return the folder. ``progress(done, total)`` gets byte counts.

        ``done`` only grows. ``total`` is the published size of the files still to fetch; it is
        corrected when a server reports another size, and grows by the bytes thrown away when a
        file has to be fetched again from the next mirror.
        """
        todo = self.missing()
        if not todo:
            return self.folder
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataSourceError(f"cannot create the cache folder {self.folder}: {exc}") from exc
        state = {"done": 0, "total": sum(f.size for f in todo)}

        def report(n_bytes: int) -> None:
            state["done"] += n_bytes
            if progress is not None:
                progress(state["done"], max(state["total"], state["done"]))

        for remote in todo:
            self._fetch_one(remote, state, report)
        return self.folder

    def _fetch_one(self, remote: RemoteFile, state: dict[str, int], report: Callable[[int], None]) -> None:
        dest = self.folder / remote.name
        problems: list[str] = []
        offline = True
        for base in self.mirror.urls:
            url = urllib.parse.urljoin(base, remote.name)
            before, total_before = state["done"], state["total"]
            try:
                self._download(url, dest, remote, state, report)
                return
            except urllib.error.HTTPError as exc:
                offline = False
                problems.append(f"{_host(url)}: HTTP {exc.code} {exc.reason}")
            except _ChecksumError as exc:
                offline = False
                problems.append(f"{_host(url)}: {exc}")
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                # Only connection errors get here: local write errors are DataSourceErrors already.
                # A connection that broke mid-file did reach the server, so it is not "offline".
                offline = offline and state["done"] == before
                reason = getattr(exc, "reason", None) or exc
                problems.append(f"{_host(url)}: {reason}")
            # Undo this attempt's size correction, count its bytes as wasted: done stays monotonic.
            state["total"] = total_before + (state["done"] - before)
        hosts = ", ".join(_host(u) for u in self.mirror.urls)
        if offline:
            raise DataSourceError(f"could not reach {hosts} (offline?) for {remote.name}: {'; '.join(problems)}")
        raise DataSourceError(f"could not download {remote.name}: {'; '.join(problems)}")

    def _download(self, url: str, dest: Path, remote: RemoteFile, state: dict[str, int],
                  report: Callable[[int], None]) -> None:
        part = dest.with_name(dest.name + ".part")
        done = False
        try:
            with self._opener(url) as response:
                length = getattr(response, "headers", {}).get("Content-Length")
                if length and length.isdigit():
                    state["total"] += int(length) - remote.size
                h = hashlib.md5(usedforsecurity=False)
                with self._open_part(part) as out:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        self._write(out, chunk, part)
                        h.update(chunk)
                        report(len(chunk))
            if h.hexdigest() != remote.md5:
                raise _ChecksumError(f"md5 {h.hexdigest()} of {remote.name}, expected {remote.md5} "
                                     "(bad file removed)")
            os.replace(part, dest)
            done = True
        finally:
            if not done:
                part.unlink(missing_ok=True)

    @staticmethod
    def _open_part(part: Path) -> BinaryIO:
        try:
            return open(part, "wb")
        except OSError as exc:
            raise DataSourceError(f"cannot write {part}: {exc}") from exc

    @staticmethod
    def _write(out: BinaryIO, chunk: bytes, part: Path) -> None:
        # A full disk is not a network problem: report it as what it is, without trying other mirrors.
        try:
            out.write(chunk)
        except OSError as exc:
            raise DataSourceError(f"cannot write {part}: {exc}") from exc

    def load(self, progress: Progress | None = None) -> DigitData:
        folder = self.fetch(progress)
        data = IdxFolderSource(folder, self.mirror.kind, self.mirror.title).load()
        return DigitData(data.train_images, data.train_labels, data.test_images, data.test_labels,
                         data.name, self.describe(), self.name, data.kind)


# --- registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """How the GUI offers a source: label, help, whether it needs a folder, its settings."""

    label: str
    help: str
    make: Callable[..., Source]
    needs_path: bool = False
    params: tuple[Param, ...] = ()


DATASETS: Registry[DatasetSpec] = Registry("dataset")
DATASETS.register("bundled", DatasetSpec(
    "Bundled MNIST (5,000)", "5,000 real MNIST training digits shipped with Optiscope; works offline.",
    lambda: BundledSource()))
DATASETS.register("idx_folder", DatasetSpec(
    "IDX folder", "A folder with train-/t10k- images and labels in IDX format (gzip or raw), "
    "or a torchvision root holding MNIST/raw or FashionMNIST/raw.",
    lambda path: IdxFolderSource(path), needs_path=True))
DATASETS.register("fashion_debian", DatasetSpec(
    "Fashion-MNIST (Debian)", f"Debian's dataset-fashion-mnist package, read from {DEBIAN_FASHION}.",
    lambda: FashionDebianSource()))
DATASETS.register("download", DatasetSpec(
    "Download", "Full MNIST or Fashion-MNIST (60,000 + 10,000), downloaded once into the user cache, "
    "checksums verified.",
    lambda which: DownloadSource(which),
    params=(Param("which", "Dataset", "mnist", "Which dataset to download.", kind="choice",
                  choices=tuple(MIRRORS)),)))


def open_source(name: str, path: str | os.PathLike | None = None, **params: Any) -> Source:
    """The source registered as ``name``; ``path`` for the ones that read a folder."""
    spec = DATASETS.get(name)
    values = resolve_params(spec.params, params, name)
    if spec.needs_path:
        if not path:
            raise ConfigError(f"{name}.path", "choose a folder holding the IDX files")
        return spec.make(path, **values)
    if path:
        raise ConfigError(f"{name}.path", f"the {name} source takes no folder")
    return spec.make(**values)


def load_source(name: str = "bundled", path: str | os.PathLike | None = None,
                progress: Progress | None = None, **params: Any) -> DigitData:
    """Load a dataset by source name (``path`` for ``idx_folder``; ``which`` for ``download``)."""
    return open_source(name, path, **params).load(progress)


def available_sources() -> list[Source]:
    """Sources that can load here and now without the network (folders the user picks excluded)."""
    candidates: list[Source] = [BundledSource(), FashionDebianSource()]
    candidates += [DownloadSource(key) for key in MIRRORS]
    return [s for s in candidates if s.available()]


# --- splitting and tensors -------------------------------------------------------------------

SPLIT_PARAMS = (
    Param("val_fraction", "Validation fraction", 0.2, "Share of the training digits held out for validation.",
          minimum=0.0, min_exclusive=True, maximum=0.9, typical="0.1-0.2"),
    Param("train_size", "Training digits", 0, "Digits to train on after the split (0: all of them).",
          kind="int", minimum=0),
)


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` over classes in proportion to ``counts``: each within 1 of exact, summing to n.

    Largest remainder: floor every share, then give the leftover units to the largest fractions.
    """
    exact = counts * (n / counts.sum())
    take = np.floor(exact).astype(np.int64)
    leftover = n - int(take.sum())
    order = np.argsort(-(exact - take), kind="stable")
    take[order[:leftover]] += 1
    return np.minimum(take, counts)


def split_train_val(labels: np.ndarray, val_fraction: float, seed: int,
                    train_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of ``labels`` into (train indices, validation indices).

    Every class is split in the same proportion (within one digit), so a small validation set
    still has all ten classes in their true shares. ``train_size`` (0 or None: all) then keeps a
    stratified subset of the training part. Indices come in a seeded random order: the bundled
    file is sorted by class, and a loop that forgot to shuffle would otherwise see one class at a time.
    """
    val_fraction = SPLIT_PARAMS[0].validate(val_fraction)
    train_size = SPLIT_PARAMS[1].validate(train_size or 0)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) < 2:
        raise ConfigError("labels", f"need at least 2 labels in a 1-D array, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    by_class = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]

    n_val = _allocate(counts, round(val_fraction * len(labels)))
    # Shuffled before train_size is applied, so the validation set does not depend on it.
    val_idx = rng.permutation(np.concatenate([members[:k] for members, k in zip(by_class, n_val)]))
    train = [members[k:] for members, k in zip(by_class, n_val)]
    n_train_all = len(labels) - int(n_val.sum())
    if n_train_all == 0:
        raise ConfigError("val_fraction", f"{val_fraction:g} leaves no digits to train on")
    if train_size:
        if train_size > n_train_all:
            raise ConfigError("train_size", f"must be at most {n_train_all:,} (the digits left after "
                                            f"validation), got {train_size:,}")
        keep = _allocate(np.array([len(t) for t in train]), train_size)
        train = [t[:k] for t, k in zip(train, keep)]
    train_idx = rng.permutation(np.concatenate(train))
    return train_idx.astype(np.int64), val_idx.astype(np.int64)


def to_tensors(images: np.ndarray, labels: np.ndarray, kind: str = "mnist",
               normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) -> float32 (N, 1, 28, 28); labels -> int64 (N,).

    Pixels are scaled to [0, 1] and, with ``normalize``, standardised with the dataset's
    training mean and std (``NORMALIZATION[kind]``): (x / 255 - mean) / std, as in torch's MNIST
    examples. Pass ``kind=data.kind`` so that Fashion-MNIST gets its own statistics.
    """
    if kind not in NORMALIZATION:
        raise ConfigError("kind", f"{kind!r} is not one of {', '.join(NORMALIZATION)}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0).unsqueeze(1)
    if normalize:
        mean, std = NORMALIZATION[kind]
        x.sub_(mean).div_(std)
    y = torch.from_numpy(np.asarray(labels).astype(np.int64))
    return x, y
