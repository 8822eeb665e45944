"""A file's size is checked against its header without reading the items (a stat for raw files, the gzip
ISIZE trailer for .gz), so a truncated or padded file is described as damaged before anything trains."""
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.datasets import (BUNDLED_IMAGES, BUNDLED_LABELS, DEBIAN_FASHION, DownloadSource, IdxFolderSource, Mirror,
                             RemoteFile)
from engine.idx import IdxError, encode_idx, idx_checked_shape, read_idx

T10K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist-t10k"


def _images(n=20):
    return np.random.default_rng(0).integers(0, 60, (n, 28, 28), dtype=np.uint8)  # dark: guessed as MNIST


def _labels(n=20):
    return (np.arange(n) % 10).astype(np.uint8)


def _folder(tmp_path, compress, images=None, labels=None):
    images = _images() if images is None else images
    labels = _labels() if labels is None else labels
    suffix = ".gz" if compress else ""
    paths = {}
    for name, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        data = encode_idx(array)
        path = tmp_path / (name + suffix)
        path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
        paths[name] = path
    return paths


@pytest.mark.parametrize("compress", [False, True])
def test_sound_files_pass_and_give_the_header_dimensions(tmp_path, compress):
    paths = _folder(tmp_path, compress)
    assert idx_checked_shape(paths["train-images-idx3-ubyte"], "images") == (20, 28, 28)
    assert idx_checked_shape(paths["train-labels-idx1-ubyte"], "labels") == (20,)
    source = IdxFolderSource(tmp_path)
    assert source.available()
    assert source.describe().startswith("MNIST, 20 train (")


@pytest.mark.parametrize("path", [BUNDLED_IMAGES, BUNDLED_LABELS, *sorted(T10K.glob("*")),
                                  *sorted(DEBIAN_FASHION.glob("*.gz"))], ids=lambda p: p.name)
def test_the_real_files_here_pass(path):
    """The bundled subset, the official test set and Debian's recompressed Fashion-MNIST are single-member gzip
    files whose trailer agrees with their header."""
    expect = "images" if "images" in path.name else "labels"
    assert idx_checked_shape(path, expect) == read_idx(path, expect).shape


def test_a_truncated_raw_file_is_refused_with_its_size(tmp_path):
    paths = _folder(tmp_path, compress=False)
    image = paths["train-images-idx3-ubyte"]
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(IdxError, match=r"truncated: 7,848 of 15,696 bytes") as info:
        idx_checked_shape(image, "images")
    assert info.value.path == image
    source = IdxFolderSource(tmp_path)
    assert not source.available()
    text = source.describe()
    assert text.startswith("unavailable: train-images-idx3-ubyte: truncated") and str(tmp_path) in text


def test_a_padded_raw_file_is_refused(tmp_path):
    paths = _folder(tmp_path, compress=False)
    labels = paths["train-labels-idx1-ubyte"]
    labels.write_bytes(labels.read_bytes() + b"\0\0\0")
    with pytest.raises(IdxError, match="3 bytes more than the header"):
        idx_checked_shape(labels, "labels")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_gzip_file_is_caught_by_its_trailer(tmp_path, keep):
    """The QA case: the header alone still says 20 digits; the trailer of the cut file is not the size."""
    paths = _folder(tmp_path, compress=True)
    image = paths["train-images-idx3-ubyte"]
    data = image.read_bytes()
    image.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(IdxError, match="cut short or corrupt"):
        idx_checked_shape(image, "images")
    source = IdxFolderSource(tmp_path)
    assert not source.available()
    assert source.describe().startswith("unavailable: train-images-idx3-ubyte.gz: cut short or corrupt")


def test_a_gzip_file_too_short_for_a_trailer_is_refused(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(encode_idx(_labels()))[:12])
    with pytest.raises(IdxError):
        idx_checked_shape(path, "labels")


def test_labels_and_images_that_disagree_in_count_are_refused_before_loading(tmp_path):
    _folder(tmp_path, compress=True, labels=_labels(19))
    source = IdxFolderSource(tmp_path)
    assert not source.available()
    text = source.describe()
    assert "train-labels-idx1-ubyte.gz: 19 labels but 20 images" in text


def test_a_label_out_of_range_is_said_when_the_folder_is_chosen(tmp_path):
    labels = _labels()
    labels[7] = 12
    _folder(tmp_path, compress=False, labels=labels)
    source = IdxFolderSource(tmp_path)
    assert not source.available()
    assert "train-labels-idx1-ubyte: label 12 out of range 0-9 (item 7)" in source.describe()


def test_a_damaged_download_asks_for_a_fresh_download(tmp_path):
    files = []
    for src, name in ((BUNDLED_IMAGES, "train-images-idx3-ubyte.gz"), (BUNDLED_LABELS, "train-labels-idx1-ubyte.gz")):
        files.append(RemoteFile(name, "0" * 32, src.stat().st_size))
    mirror = Mirror("fake", "Fake MNIST", "mnist", ("http://mirror.invalid/",), tuple(files))
    folder = tmp_path / "fake"
    folder.mkdir()
    shutil.copy(BUNDLED_LABELS, folder / "train-labels-idx1-ubyte.gz")
    data = BUNDLED_IMAGES.read_bytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 3])
    source = DownloadSource(mirror, cache_dir=tmp_path)
    assert source.downloaded() and not source.available()
    text = source.describe()
    assert "cut short or corrupt" in text and "press Download again" in text
    shutil.copy(BUNDLED_IMAGES, folder / "train-images-idx3-ubyte.gz")
    assert source.available() and source.describe().startswith("downloaded: Fake MNIST, 5,000 train")
