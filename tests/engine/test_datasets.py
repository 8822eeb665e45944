"""Dataset sources, the stratified split, tensors, and downloads from a fake local mirror."""
from __future__ import annotations

import gzip
import hashlib
import io
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import datasets as ds
from engine.datasets import (DATASETS, BundledSource, DataSourceError, DigitData, DownloadSource,
                             FashionDebianSource, IdxFolderSource, Mirror, RemoteFile, available_sources,
                             load_source, open_source, split_train_val, to_tensors)
from engine.idx import IdxError, load_idx_pair, write_idx
from engine.registry import ConfigError

ROOT = Path(__file__).resolve().parents[2]
T10K = ROOT.parent / "shared" / "data" / "mnist-t10k"


@pytest.fixture(scope="module")
def bundled() -> DigitData:
    return BundledSource().load()


@pytest.fixture(scope="module")
def t10k():
    images = T10K / "t10k-images-idx3-ubyte.gz"
    labels = T10K / "t10k-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        pytest.skip(f"the real MNIST test set is not at {T10K} (../shared/data/mnist-t10k from the project root)")
    return load_idx_pair(images, labels)


# --- the bundled subset --------------------------------------------------------------------


def test_bundled_is_5000_digits_500_per_class(bundled):
    assert bundled.train_images.shape == (5000, 28, 28) and bundled.train_images.dtype == np.uint8
    assert bundled.train_labels.shape == (5000,) and bundled.train_labels.dtype == np.int64
    assert np.bincount(bundled.train_labels, minlength=10).tolist() == [500] * 10
    # Real digits use the whole grey range on a mostly black background.
    assert bundled.train_images.min() == 0 and bundled.train_images.max() == 255
    assert 30 < bundled.train_images.mean() < 37
    assert (bundled.train_images.reshape(5000, -1).max(axis=1) > 128).all()  # no blank images
    assert bundled.test_images is None and not bundled.has_test
    assert bundled.kind == "mnist" and bundled.source == "bundled"
    assert "5,000" in bundled.description and "500 per class" in bundled.description


def test_bundled_has_no_digit_of_the_official_test_set(bundled, t10k):
    test_images, _ = t10k
    bundled_hashes = {hashlib.sha1(img.tobytes()).digest() for img in bundled.train_images}
    test_hashes = {hashlib.sha1(img.tobytes()).digest() for img in test_images}
    assert len(bundled_hashes) == 5000  # no duplicates within the subset either
    assert len(test_hashes) > 9900  # the comparison really ran over the test set
    assert not bundled_hashes & test_hashes


def test_bundled_files_match_their_readme():
    readme = (ds.BUNDLED_DIR / "README.md").read_text()
    for path in (ds.BUNDLED_IMAGES, ds.BUNDLED_LABELS):
        row = next(line for line in readme.splitlines() if path.name in line and "|" in line)
        file_sha, content_sha = re.findall(r"`([0-9a-f]{64})`", row)
        assert hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() == content_sha
        assert hashlib.sha256(path.read_bytes()).hexdigest() == file_sha
    assert "CC BY-SA 3.0" in readme and (ds.BUNDLED_DIR / "LICENSE").is_file()


def test_bundled_file_is_small():
    total = ds.BUNDLED_IMAGES.stat().st_size + ds.BUNDLED_LABELS.stat().st_size
    assert total < 2_000_000


def test_loaded_arrays_are_read_only(bundled):
    with pytest.raises(ValueError):
        bundled.train_labels[0] = 3


# --- Debian's Fashion-MNIST ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion() -> DigitData:
    if not ds.DEBIAN_FASHION.is_dir():
        pytest.skip(f"{ds.DEBIAN_FASHION} is absent (Debian package dataset-fashion-mnist)")
    return FashionDebianSource().load()


def test_debian_fashion_mnist(fashion):
    assert fashion.train_images.shape == (60000, 28, 28)
    assert fashion.test_images.shape == (10000, 28, 28)
    assert fashion.train_labels.min() == 0 and fashion.train_labels.max() == 9
    assert fashion.test_labels.min() == 0 and fashion.test_labels.max() == 9
    assert np.bincount(fashion.train_labels).tolist() == [6000] * 10
    assert fashion.kind == "fashion" and fashion.class_names[9] == "Ankle boot"
    assert "Fashion-MNIST, 60,000 train + 10,000 test" in FashionDebianSource().describe()


def test_fashion_statistics_normalise_fashion(fashion):
    x, _ = to_tensors(fashion.train_images[:20000], fashion.train_labels[:20000], kind="fashion")
    assert abs(float(x.mean())) < 0.02 and abs(float(x.std()) - 1) < 0.02


def test_fashion_is_recognised_by_brightness_in_a_neutral_folder(fashion, tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", fashion.train_images[:1000])
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", fashion.train_labels[:1000].astype(np.uint8))
    assert IdxFolderSource(tmp_path).load().kind == "fashion"


# --- folders of IDX files ----------------------------------------------------------------


def make_idx_folder(folder: Path, data: DigitData, n_train: int = 300, n_test: int = 100,
                    gz: bool = True, test: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(data.train_labels))
    train, held = pick[:n_train], pick[n_train:n_train + n_test]
    write_idx(folder / f"train-images-idx3-ubyte{ext}", data.train_images[train])
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", data.train_labels[train].astype(np.uint8))
    if test:
        write_idx(folder / f"t10k-images-idx3-ubyte{ext}", data.train_images[held])
        write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", data.train_labels[held].astype(np.uint8))
    return folder


@pytest.mark.parametrize("layout, gz", [("", True), ("", False), ("MNIST/raw", True), ("raw", False)])
def test_idx_folder_layouts(bundled, tmp_path, layout, gz):
    make_idx_folder(tmp_path / layout, bundled, gz=gz)
    source = open_source("idx_folder", tmp_path)
    assert source.available()
    assert source.describe().startswith("MNIST, 300 train + 100 test")
    data = source.load()
    assert data.train_images.shape == (300, 28, 28) and data.test_images.shape == (100, 28, 28)
    assert data.kind == "mnist" and data.name == "MNIST" and data.source == "idx_folder"


def test_torchvision_fashion_layout_is_named_fashion(bundled, tmp_path):
    make_idx_folder(tmp_path / "FashionMNIST" / "raw", bundled)
    data = load_source("idx_folder", tmp_path)
    assert data.kind == "fashion" and data.name == "Fashion-MNIST"


def test_idx_folder_without_test_files(bundled, tmp_path):
    make_idx_folder(tmp_path, bundled, test=False)
    data = IdxFolderSource(tmp_path).load()
    assert data.test_images is None and data.test_labels is None and len(data.train_labels) == 300
    assert IdxFolderSource(tmp_path).describe().startswith("MNIST, 300 train (")


def test_idx_folder_with_half_a_test_set(bundled, tmp_path):
    make_idx_folder(tmp_path, bundled)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataSourceError, match="has t10k-images-idx3-ubyte.gz but no t10k-labels-idx1-ubyte"):
        IdxFolderSource(tmp_path).load()


def test_idx_folder_problems_are_explained(tmp_path):
    with pytest.raises(DataSourceError, match="is not a folder"):
        IdxFolderSource(tmp_path / "missing").load()
    with pytest.raises(DataSourceError, match="no MNIST-format training files in"):
        IdxFolderSource(tmp_path).load()
    assert not IdxFolderSource(tmp_path).available()
    assert IdxFolderSource(tmp_path).describe().startswith("unavailable: no MNIST-format")


def test_idx_folder_with_a_bad_file_raises_idx_error(bundled, tmp_path):
    make_idx_folder(tmp_path, bundled)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(IdxError, match="train-labels-idx1-ubyte.gz: corrupt gzip stream"):
        IdxFolderSource(tmp_path).load()


# --- registry ----------------------------------------------------------------------------


def test_registry_and_open_source(tmp_path):
    assert {"bundled", "idx_folder", "fashion_debian", "download"} <= set(DATASETS.names())
    assert isinstance(open_source("bundled"), BundledSource)
    assert isinstance(open_source("download", which="fashion"), DownloadSource)
    with pytest.raises(ConfigError) as caught:
        open_source("idx_folder")
    assert caught.value.field == "idx_folder.path"
    with pytest.raises(ConfigError):
        open_source("bundled", path=tmp_path)
    with pytest.raises(ConfigError):
        open_source("download", which="cifar")
    with pytest.raises(ConfigError):
        open_source("imagenet")


def test_available_sources_says_what_is_here():
    sources = available_sources()
    names = [s.name for s in sources]
    assert "bundled" in names
    assert ("fashion_debian" in names) == ds.DEBIAN_FASHION.is_dir()
    assert all(s.describe() and not s.describe().startswith("unavailable") for s in sources)


def test_engine_data_modules_do_not_import_qt():
    code = ("import sys, engine.datasets, engine.idx; "
            "sys.exit(any(m.split('.')[0] in ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


# --- the split -----------------------------------------------------------------------------

# Unbalanced on purpose: proportional rounding only shows with awkward class sizes.
UNEVEN = np.repeat(np.arange(10), [3, 50, 101, 7, 999, 12, 1, 64, 250, 33])


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2, 1 / 3, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_split_is_stratified_disjoint_and_covering(fraction, seed):
    train, val = split_train_val(UNEVEN, fraction, seed)
    counts = np.bincount(UNEVEN, minlength=10)
    val_counts = np.bincount(UNEVEN[val], minlength=10)
    assert np.all(np.abs(val_counts - fraction * counts) <= 1)
    assert len(val) == round(fraction * len(UNEVEN))
    assert not set(train.tolist()) & set(val.tolist())
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(UNEVEN)))
    assert train.dtype == np.int64 and val.dtype == np.int64


def test_split_is_deterministic_per_seed(bundled):
    a = split_train_val(bundled.train_labels, 0.2, seed=7)
    b = split_train_val(bundled.train_labels, 0.2, seed=7)
    c = split_train_val(bundled.train_labels, 0.2, seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))


def test_split_is_shuffled_because_the_bundled_file_is_sorted(bundled):
    train, val = split_train_val(bundled.train_labels, 0.2, seed=0)
    assert np.bincount(bundled.train_labels[val]).tolist() == [100] * 10
    first_batch = bundled.train_labels[train[:64]]
    assert len(set(first_batch.tolist())) >= 8


@pytest.mark.parametrize("train_size", [1, 10, 333, 1000, 1216])
def test_train_size_takes_a_stratified_subset(train_size):
    train_all, val_all = split_train_val(UNEVEN, 0.2, seed=3)
    train, val = split_train_val(UNEVEN, 0.2, seed=3, train_size=train_size)
    assert len(train) == train_size
    assert np.array_equal(val, val_all)  # the validation set does not depend on train_size
    assert set(train.tolist()) <= set(train_all.tolist())
    pool = np.bincount(UNEVEN[train_all], minlength=10)
    got = np.bincount(UNEVEN[train], minlength=10)
    assert np.all(np.abs(got - train_size * pool / pool.sum()) <= 1)


def test_train_size_zero_means_all():
    assert np.array_equal(split_train_val(UNEVEN, 0.2, 0, train_size=0)[0], split_train_val(UNEVEN, 0.2, 0)[0])


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 0.95, 1.0, float("nan")])
def test_val_fraction_outside_range_is_refused(fraction):
    with pytest.raises(ConfigError) as caught:
        split_train_val(UNEVEN, fraction, 0)
    assert caught.value.field == "val_fraction"


def test_train_size_larger_than_the_pool_is_refused():
    with pytest.raises(ConfigError, match="must be at most 1,216") as caught:
        split_train_val(UNEVEN, 0.2, 0, train_size=5000)
    assert caught.value.field == "train_size"


# --- tensors ----------------------------------------------------------------------------


def test_to_tensors_scales_and_normalises():
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[1] = 255
    x, y = to_tensors(images, np.array([3, 4]))
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.allclose(x[0], torch.tensor(-ds.MNIST_MEAN / ds.MNIST_STD))
    assert torch.allclose(x[1], torch.tensor((1 - ds.MNIST_MEAN) / ds.MNIST_STD))
    raw, _ = to_tensors(images, np.array([3, 4]), normalize=False)
    assert float(raw.min()) == 0.0 and float(raw.max()) == 1.0
    fx, _ = to_tensors(images, np.array([3, 4]), kind="fashion")
    assert torch.allclose(fx[0], torch.tensor(-ds.FASHION_MEAN / ds.FASHION_STD))
    assert y.tolist() == [3, 4]


def test_mnist_statistics_normalise_real_digits(t10k):
    images, labels = t10k
    x, _ = to_tensors(images, labels)
    assert abs(float(x.mean())) < 0.02 and abs(float(x.std()) - 1) < 0.02


def test_to_tensors_does_not_share_memory_with_read_only_arrays(bundled):
    x, y = to_tensors(bundled.train_images[:5], bundled.train_labels[:5])
    x.add_(1)
    y.add_(1)  # would fail or corrupt the dataset if the tensors were views of it
    assert bundled.train_labels[:5].tolist() == [0] * 5


# --- downloads from a fake local mirror -------------------------------------------------------


@pytest.fixture
def mirror(bundled, tmp_path) -> Mirror:
    served = make_idx_folder(tmp_path / "served", bundled, n_train=600, n_test=100)
    files = tuple(RemoteFile(p.name, hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_size)
                  for p in sorted(served.iterdir()))
    return Mirror("fake", "Fake-MNIST", "mnist", (served.as_uri() + "/",), files)


def test_download_verifies_and_reports_progress(mirror, tmp_path):
    calls: list[tuple[int, int]] = []
    source = DownloadSource(mirror, cache_dir=tmp_path / "cache")
    assert not source.available()
    data = source.load(progress=lambda done, total: calls.append((done, total)))
    total = sum(f.size for f in mirror.files)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and len(set(dones)) == len(dones)  # strictly increasing
    assert calls[-1] == (total, total)
    assert all(d <= t for d, t in calls)
    assert source.available() and data.train_images.shape == (600, 28, 28) and data.source == "download"
    assert sorted(p.name for p in source.folder.iterdir()) == sorted(f.name for f in mirror.files)  # no .part
    assert source.describe().startswith("downloaded: Fake-MNIST, 600 train + 100 test")


def test_cached_files_are_not_fetched_again(mirror, tmp_path):
    DownloadSource(mirror, cache_dir=tmp_path / "cache").fetch()

    def no_network(url):
        raise AssertionError(f"fetched {url} although it was cached")

    data = DownloadSource(mirror, cache_dir=tmp_path / "cache", opener=no_network).load()
    assert len(data.train_labels) == 600


def test_wrong_checksum_removes_the_file(mirror, tmp_path):
    bad = tuple(RemoteFile(f.name, "0" * 32, f.size) if f.name.startswith("train-images") else f
                for f in mirror.files)
    source = DownloadSource(Mirror(mirror.key, mirror.title, mirror.kind, mirror.urls, bad), cache_dir=tmp_path / "c")
    with pytest.raises(DataSourceError) as caught:
        source.fetch()
    message = str(caught.value)
    assert "could not download train-images-idx3-ubyte.gz" in message
    assert "expected 00000000000000000000000000000000 (bad file removed)" in message
    assert not list(source.folder.glob("train-images*"))  # neither the file nor its .part


def test_corrupt_cached_file_is_fetched_again(mirror, tmp_path):
    source = DownloadSource(mirror, cache_dir=tmp_path / "cache")
    source.fetch()
    (source.folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    assert [f.name for f in source.missing()] == ["t10k-labels-idx1-ubyte.gz"]
    source.fetch()
    assert source.missing() == []


def test_offline_is_a_clear_error(mirror, tmp_path):
    def offline(url):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    source = DownloadSource(mirror, cache_dir=tmp_path / "cache", opener=offline)
    with pytest.raises(DataSourceError, match=r"could not reach .* \(offline\?\).*Network is unreachable"):
        source.load()
    assert not list(source.folder.iterdir())


def test_next_mirror_is_tried(mirror, tmp_path):
    urls = ("https://unreachable.invalid/mnist/",) + mirror.urls
    seen = []

    def opener(url):
        seen.append(url)
        if url.startswith("https://"):
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return ds._default_opener(url)

    source = DownloadSource(Mirror("m2", "Two", "mnist", urls, mirror.files), tmp_path / "cache", opener)
    assert len(source.load().train_labels) == 600
    assert sum(u.startswith("https://") for u in seen) == 4 and sum(u.startswith("file:") for u in seen) == 4


def test_http_error_everywhere_is_reported(mirror, tmp_path):
    def not_found(url):
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)

    with pytest.raises(DataSourceError, match="could not download .*HTTP 404 Not Found"):
        DownloadSource(mirror, tmp_path / "cache", not_found).fetch()


class BrokenResponse(io.BytesIO):
    """Serves some bytes, then the connection drops."""

    headers: dict = {}

    def read(self, n=-1):
        if self.tell() >= 1000:
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().read(min(n, 1000 - self.tell()))


def test_dropped_connection_leaves_no_partial_file(mirror, tmp_path):
    source = DownloadSource(mirror, tmp_path / "cache", lambda url: BrokenResponse(b"x" * 5000))
    with pytest.raises(DataSourceError) as caught:
        source.fetch()
    assert "Connection reset by peer" in str(caught.value) and "offline" not in str(caught.value)
    assert not list(source.folder.iterdir())


def test_cancel_from_progress_leaves_no_partial_file(mirror, tmp_path):
    class Cancelled(Exception):
        pass

    def cancel(done, total):
        if done > 10_000:
            raise Cancelled

    source = DownloadSource(mirror, tmp_path / "cache")
    with pytest.raises(Cancelled):
        source.fetch(cancel)
    assert not list(source.folder.glob("*.part"))
    assert not source.available()


def test_published_mirror_tables_are_complete():
    for mirror in ds.MIRRORS.values():
        assert sorted(f.name for f in mirror.files) == sorted(s + ".gz" for s in ds.STANDARD_FILES.values())
        assert all(re.fullmatch(r"[0-9a-f]{32}", f.md5) and f.size > 1000 for f in mirror.files)
        assert all(u.endswith("/") for u in mirror.urls)
