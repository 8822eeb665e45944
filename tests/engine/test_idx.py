"""The IDX reader: real MNIST test files, and one crafted bad file per kind of damage."""
from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from engine.idx import (IdxError, encode_idx, idx_shape, load_idx_pair, parse_idx, read_idx,
                        write_idx)

T10K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist-t10k"
T10K_IMAGES = T10K / "t10k-images-idx3-ubyte.gz"
T10K_LABELS = T10K / "t10k-labels-idx1-ubyte.gz"

# From ../shared/data/README.md: facts about the official MNIST test set.
T10K_IMAGES_SHA256 = "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
T10K_LABELS_SHA256 = "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"


@pytest.fixture(scope="module")
def t10k():
    if not (T10K_IMAGES.is_file() and T10K_LABELS.is_file()):
        pytest.skip(f"the real MNIST test set is not at {T10K} (../shared/data/mnist-t10k from the project root)")
    return load_idx_pair(T10K_IMAGES, T10K_LABELS)


# --- the real files ------------------------------------------------------------------------


def test_t10k_shape_and_labels(t10k):
    images, labels = t10k
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels, minlength=10).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert round(float(images.mean()), 2) == 33.79


def test_t10k_content_is_the_published_bytes(t10k):
    # Re-encoding what the reader returned must give back the original file byte for byte:
    # nothing skipped, reordered or reinterpreted.
    images, labels = t10k
    assert hashlib.sha256(encode_idx(images)).hexdigest() == T10K_IMAGES_SHA256
    assert hashlib.sha256(encode_idx(labels.astype(np.uint8))).hexdigest() == T10K_LABELS_SHA256
    assert len(encode_idx(images)) == 7_840_016


def test_t10k_header_only(t10k):
    assert idx_shape(T10K_IMAGES, "images") == (10000, 28, 28)
    assert idx_shape(T10K_LABELS, "labels") == (10000,)


def test_gzip_is_told_by_content_not_name(t10k, tmp_path):
    images, _ = t10k
    raw_named_gz = tmp_path / "raw-but-named.gz"
    raw_named_gz.write_bytes(gzip.decompress(T10K_IMAGES.read_bytes()))
    gz_named_raw = tmp_path / "t10k-images-idx3-ubyte"
    gz_named_raw.write_bytes(T10K_IMAGES.read_bytes())
    assert np.array_equal(read_idx(raw_named_gz, "images"), images)
    assert np.array_equal(read_idx(gz_named_raw, "images"), images)


def test_arrays_are_read_only(t10k):
    images, _ = t10k
    with pytest.raises(ValueError):
        images[0, 0, 0] = 1


# --- writing ------------------------------------------------------------------------------


def test_write_round_trip_and_reproducible_gzip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    a = write_idx(tmp_path / "a-images.gz", images)
    b = write_idx(tmp_path / "b-images.gz", images)
    write_idx(tmp_path / "labels", labels)
    assert a.read_bytes()[:2] == b"\x1f\x8b" and (tmp_path / "labels").read_bytes()[:4] == b"\0\0\x08\x01"
    assert a.read_bytes() == b.read_bytes()  # no name or time stamp in the gzip header
    got_images, got_labels = load_idx_pair(a, tmp_path / "labels")
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)


def test_write_refuses_other_dtypes(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_idx(tmp_path / "x", np.zeros((2, 2), dtype=np.float32))


# --- crafted bad files -------------------------------------------------------------------


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


GOOD_IMAGES = idx_bytes(2051, (10, 28, 28), bytes(10 * 784))


def corrupt_gzip() -> bytes:
    data = bytearray(gzip.compress(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes()))
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside the deflate stream
    return bytes(data)


# (test id, file name, file bytes, expect, message fragment)
BAD_FILES = [
    ("gzip-inside-gzip", "t10k-images-idx3-ubyte.gz", gzip.compress(gzip.compress(GOOD_IMAGES)), None,
     "gzip data, not IDX"),
    ("empty", "train-images-idx3-ubyte", b"", None, "empty file (0 bytes)"),
    ("truncated-data", "train-images-idx3-ubyte", GOOD_IMAGES[:4000], None,
     "truncated: 4,000 of 7,856 bytes"),
    ("truncated-header", "train-images-idx3-ubyte", GOOD_IMAGES[:10], None, "truncated: 10 of 16 header bytes"),
    ("truncated-gzip", "train-images-idx3-ubyte.gz", gzip.compress(GOOD_IMAGES)[:-20], None,
     "corrupt gzip stream"),
    ("corrupt-gzip", "train-images-idx3-ubyte.gz", corrupt_gzip(), None, "corrupt gzip stream"),
    ("wrong-magic", "train-images-idx3-ubyte", idx_bytes(0x999, (10,), bytes(10)), None,
     "wrong magic 0x00000999 (expected 2051 for images or 2049 for labels)"),
    ("not-idx-at-all", "train-images-idx3-ubyte", b"<html>404 Not Found</html>", None, "wrong magic"),
    ("labels-as-images", "train-labels-idx1-ubyte", idx_bytes(2049, (3,), bytes(3)), "images",
     "wrong magic 0x00000801 (expected 2051 for images); this is a labels file"),
    ("float-idx", "features-idx2-float", idx_bytes(0x0D02, (2, 2), bytes(16)), None,
     "IDX float32 data, only unsigned bytes"),
    ("extra-bytes", "train-images-idx3-ubyte", GOOD_IMAGES + b"\0" * 5, None,
     "5 bytes more than the header's 10 x 28 x 28"),
    ("label-out-of-range", "train-labels-idx1-ubyte", idx_bytes(2049, (4,), bytes([1, 2, 12, 3])), None,
     "label 12 out of range 0-9 (item 2)"),
]


@pytest.mark.parametrize("name, data, expect, fragment", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_file_is_named_and_explained(tmp_path, name, data, expect, fragment):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(IdxError) as caught:
        read_idx(path, expect)
    message = str(caught.value)
    assert fragment in message
    assert message.startswith(f"{name}: ")
    assert caught.value.path == path
    assert isinstance(caught.value, ValueError)


def test_gzip_bytes_parsed_as_raw_are_named():
    with pytest.raises(IdxError, match=r"^t10k-images-idx3-ubyte: gzip data, not IDX"):
        parse_idx(gzip.compress(GOOD_IMAGES), "t10k-images-idx3-ubyte")


def test_pair_with_disagreeing_counts(tmp_path):
    images = tmp_path / "train-images-idx3-ubyte"
    labels = tmp_path / "train-labels-idx1-ubyte"
    images.write_bytes(idx_bytes(2051, (16, 28, 28), bytes(16 * 784)))
    labels.write_bytes(idx_bytes(2049, (15,), bytes(15)))
    with pytest.raises(IdxError) as caught:
        load_idx_pair(images, labels)
    assert str(caught.value) == "train-labels-idx1-ubyte: 15 labels but 16 images in train-images-idx3-ubyte"


def test_pair_refuses_images_that_are_not_28x28(tmp_path):
    images = tmp_path / "images"
    labels = tmp_path / "labels"
    images.write_bytes(idx_bytes(2051, (2, 32, 32), bytes(2 * 1024)))
    labels.write_bytes(idx_bytes(2049, (2,), bytes(2)))
    with pytest.raises(IdxError, match=r"^images: images are 32 x 32, expected 28 x 28"):
        load_idx_pair(images, labels)


def test_header_only_read_reports_bad_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(IdxError, match="x.gz: corrupt gzip stream"):
        idx_shape(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


def test_unknown_expectation_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="expect must be"):
        read_idx(tmp_path / "nope", expect="pictures")
