"""Reader (and a small writer) for IDX files, the format MNIST and Fashion-MNIST are published in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the items. MNIST uses type 0x08 (unsigned byte):
images are 0x00000803 = 2051 (N x 28 x 28), labels 0x00000801 = 2049 (N).

Files arrive from users' folders, torchvision caches, Debian packages and downloads, so every
check here ends in an ``IdxError`` that names the file and what is wrong with it, never in a
numpy reshape traceback. Gzip is recognised by its signature, not by the file name: torchvision
leaves both ``x.gz`` and an extracted ``x`` side by side, and people rename files.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

_GZIP_SIGNATURE = b"\x1f\x8b"
_UBYTE = 0x08
# The other IDX type codes, named so that a float or int file gets a useful refusal.
_OTHER_TYPES = {0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_EXPECT_MAGIC = {"images": IMAGES_MAGIC, "labels": LABELS_MAGIC}


class IdxError(ValueError):
    """A file that is not a well-formed IDX file of the kind asked for. ``path`` is the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path.name}: {problem}")


def _expected_text(expect: str | None) -> str:
    if expect == "images":
        return "expected 2051 for images"
    if expect == "labels":
        return "expected 2049 for labels"
    return "expected 2051 for images or 2049 for labels"


def _check_expect(expect: str | None) -> None:
    if expect not in (None, "images", "labels"):
        raise ValueError(f"expect must be None, 'images' or 'labels', not {expect!r}")


def _decompress(data: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        # EOFError: stream cut short; BadGzipFile (an OSError): bad header or CRC; zlib.error: bad deflate data.
        raise IdxError(path, f"corrupt gzip stream ({exc})") from None


def _parse_header(data: bytes, path: Path, expect: str | None) -> tuple[int, tuple[int, ...]]:
    """Validate the magic number and dimensions; return (magic, dims)."""
    if len(data) == 0:
        raise IdxError(path, "empty file (0 bytes)")
    if data[:2] == _GZIP_SIGNATURE:
        # Only reachable for bytes that were already gunzipped once, or handed to parse_idx raw.
        raise IdxError(path, "gzip data, not IDX (compressed twice, or not decompressed)")
    if len(data) < 4:
        raise IdxError(path, f"truncated: {len(data):,} of at least 4 header bytes")
    (magic,) = struct.unpack(">I", data[:4])
    type_code, ndim = data[2], data[3]
    wanted = _EXPECT_MAGIC.get(expect) if expect else None
    if data[:2] != b"\0\0" or type_code != _UBYTE or ndim == 0 or (wanted is not None and magic != wanted):
        hint = ""
        if wanted is not None and magic in (IMAGES_MAGIC, LABELS_MAGIC):
            hint = "; this is a labels file" if magic == LABELS_MAGIC else "; this is an images file"
        elif data[:2] == b"\0\0" and type_code in _OTHER_TYPES and 1 <= ndim <= 4:
            hint = f"; this is IDX {_OTHER_TYPES[type_code]} data, only unsigned bytes (0x08) are read"
        raise IdxError(path, f"wrong magic 0x{magic:08X} ({_expected_text(expect)}){hint}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxError(path, f"truncated: {len(data):,} of {header_len:,} header bytes")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    return magic, dims


def parse_idx(data: bytes, path: str | os.PathLike = "<bytes>", expect: str | None = None) -> np.ndarray:
    """Parse uncompressed IDX bytes into a read-only uint8 array. ``path`` only names the data in errors.

    ``expect`` is ``"images"`` (magic 2051, N x rows x cols), ``"labels"`` (magic 2049, N) or None
    (any unsigned-byte IDX). Files with the labels magic must hold labels 0-9.
    """
    _check_expect(expect)
    path = Path(path)
    magic, dims = _parse_header(data, path, expect)
    header_len = 4 + 4 * len(dims)
    n_bytes = header_len + int(np.prod(dims, dtype=object))
    if len(data) < n_bytes:
        raise IdxError(path, f"truncated: {len(data):,} of {n_bytes:,} bytes (header says {_dims_text(dims)})")
    if len(data) > n_bytes:
        # Extra bytes mean the header and the data disagree (wrong file glued on, or a bad count):
        # refusing is safer than silently reading the wrong digits.
        raise IdxError(path, f"{len(data) - n_bytes:,} bytes more than the header's "
                             f"{_dims_text(dims)} ({n_bytes:,} bytes)")
    array = np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)
    if magic == LABELS_MAGIC and array.size:
        top = int(array.max())
        if top >= NUM_CLASSES:
            at = int(np.argmax(array >= NUM_CLASSES))
            raise IdxError(path, f"label {int(array[at])} out of range 0-{NUM_CLASSES - 1} (item {at:,})")
    return array


def _dims_text(dims: tuple[int, ...]) -> str:
    return " x ".join(f"{d:,}" for d in dims)


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == _GZIP_SIGNATURE:
        return _decompress(data, path)
    return data


def read_idx(path: str | os.PathLike, expect: str | None = None) -> np.ndarray:
    """Read one IDX file, gzip-compressed or raw (told apart by content), as a read-only uint8 array.

    Raises ``IdxError`` for a malformed file and ``FileNotFoundError`` for a missing one.
    """
    _check_expect(expect)
    path = Path(path)
    return parse_idx(_read_bytes(path), path, expect)


def open_idx(path: str | os.PathLike) -> BinaryIO:
    """Open an IDX file for streaming reads, decompressing when its content is gzip."""
    path = Path(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_SIGNATURE
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # type: ignore[return-value]


def idx_shape(path: str | os.PathLike, expect: str | None = None) -> tuple[int, ...]:
    """The dimensions the header declares, read without loading the items (for quick descriptions)."""
    _check_expect(expect)
    path = Path(path)
    try:
        with open_idx(path) as f:
            head = f.read(4 + 4 * 255)
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxError(path, f"corrupt gzip stream ({exc})") from None
    return _parse_header(head, path, expect)[1]


def idx_checked_shape(path: str | os.PathLike, expect: str | None = None) -> tuple[int, ...]:
    """The dimensions the header declares, after checking that the file's size agrees with them, without
    reading the items: a stat for a raw file; for gzip, the trailer's ISIZE field (its last 4 bytes: the
    uncompressed size mod 2**32, RFC 1952). A file cut short, or with bytes glued on, is refused here in a
    few small reads instead of after a full decompression. (A gzip file of several members records only
    its last member's size; the standard files are single members.)"""
    dims = idx_shape(path, expect)
    path = Path(path)
    needed = 4 + 4 * len(dims) + int(np.prod(dims, dtype=object))
    with open(path, "rb") as f:
        compressed = f.read(2) == _GZIP_SIGNATURE
        size = os.fstat(f.fileno()).st_size
        if compressed:
            if size < 18:  # a 10-byte header and an 8-byte trailer at the least
                raise IdxError(path, f"truncated gzip file ({size:,} bytes)")
            f.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", f.read(4))[0]
            if isize != needed % 2**32:
                # Not quoting the number read: in a file cut short those 4 bytes are compressed data, not a size.
                raise IdxError(path, f"cut short or corrupt: the header says {_dims_text(dims)} ({needed:,} bytes "
                                     "uncompressed), but the file does not end with that size, as a whole gzip "
                                     "file does")
            return dims
    if size < needed:
        raise IdxError(path, f"truncated: {size:,} of {needed:,} bytes (header says {_dims_text(dims)})")
    if size > needed:
        raise IdxError(path, f"{size - needed:,} bytes more than the header's {_dims_text(dims)} ({needed:,} bytes)")
    return dims


def load_idx_pair(images_path: str | os.PathLike, labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read matching MNIST-format image and label files.

    Returns images uint8 (N, 28, 28) and labels int64 (N,) (int64 because that is what
    ``torch.nn.CrossEntropyLoss`` takes as targets).
    """
    images = read_idx(images_path, expect="images")
    if images.shape[1:] != IMAGE_SHAPE:
        raise IdxError(images_path, f"images are {_dims_text(images.shape[1:])}, expected 28 x 28")
    labels = read_idx(labels_path, expect="labels")
    if len(labels) != len(images):
        raise IdxError(
            labels_path, f"{len(labels):,} labels but {len(images):,} images in {Path(images_path).name}"
        )
    return images, labels.astype(np.int64)


def encode_idx(array: np.ndarray) -> bytes:
    """IDX bytes (uncompressed) for a uint8 array of 1 to 4 dimensions."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"only uint8 arrays are written, got {array.dtype}")
    if not 1 <= array.ndim <= 4:
        raise ValueError(f"IDX arrays have 1 to 4 dimensions here, got {array.ndim}")
    header = bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as IDX; gzip when ``compress`` is true (default: when the name ends in .gz).

    The gzip header carries no file name or time stamp, so the same array gives the same bytes
    (with the same zlib), which keeps published checksums reproducible.
    """
    path = Path(path)
    data = encode_idx(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    path.write_bytes(data)
    return path
