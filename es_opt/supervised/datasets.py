"""Small classification data sets for the supervised examples, as
:class:`~es_opt.supervised.ClassificationSamples` (flat float32 features, int64 targets).

- :func:`load_digits`: scikit-learn's bundled 8×8 digits (1,797 images, no download), split
  stratified with a seed and standardised with the training set's statistics.
- :func:`load_mnist`: MNIST from local IDX files (``train-images-idx3-ubyte[.gz]`` and the three
  others), for users who have them; :func:`read_idx` reads one such file.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import require
from ..noise import SAMPLES_STREAM, derive_seed
from .objectives import ClassificationSamples

__all__ = ["MNIST_FILES", "load_digits", "load_mnist", "read_idx", "stratified_split"]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type codes (third byte of the magic number) -> big-endian numpy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def stratified_split(
    targets: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and test row indices with each class split in the same proportion (rounded per
    class), shuffled by a generator seeded from ``seed``. Both index tensors are sorted.

    Example:
        >>> train, test = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), 0.25, seed=0)
        >>> len(train), len(test)
        (6, 2)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    gen = torch.Generator().manual_seed(derive_seed(seed, SAMPLES_STREAM, 0))
    train, test = [], []
    for label in torch.unique(targets).tolist():
        rows = (targets == label).nonzero().reshape(-1)
        rows = rows[torch.randperm(rows.numel(), generator=gen)]
        n_test = int(round(rows.numel() * test_fraction))
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def _standardize(train: torch.Tensor, test: torch.Tensor, per_feature: bool):
    dims = 0 if per_feature else None
    mean = train.mean(dim=dims) if dims is not None else train.mean()
    std = train.std(dim=dims) if dims is not None else train.std()
    # Constant features (the digits' always-blank border pixels) have std 0: leave them centred.
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std


def load_digits(
    *, seed: int = 0, test_fraction: float = 0.2, standardize: bool = True
) -> tuple[ClassificationSamples, ClassificationSamples]:
    """scikit-learn's 8×8 digits as ``(train, test)``: inputs ``[N, 64]`` float32, targets int64.

    Args:
        seed: seeds the stratified split.
        test_fraction: share of each class held out for testing.
        standardize: scale each pixel to zero mean and unit variance over the training set.

    Example:
        >>> train, test = load_digits(seed=0)  # doctest: +SKIP
        >>> len(train), len(test), train.inputs.shape[1]  # doctest: +SKIP
        (1438, 359, 64)
    """
    datasets = require("sklearn.datasets", "supervised", "the digits data set")
    x, y = datasets.load_digits(return_X_y=True)
    inputs = torch.as_tensor(x, dtype=torch.float32)
    targets = torch.as_tensor(y, dtype=torch.int64)
    train_rows, test_rows = stratified_split(targets, test_fraction, seed)
    x_train, x_test = inputs[train_rows], inputs[test_rows]
    if standardize:
        x_train, x_test = _standardize(x_train, x_test, per_feature=True)
    return (
        ClassificationSamples(x_train, targets[train_rows]),
        ClassificationSamples(x_test, targets[test_rows]),
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (plain or gzip-compressed) into an array of its stored shape.

    Raises ``FileNotFoundError`` or ``ValueError`` naming the file when it is missing, not an IDX
    file, or shorter than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: its magic number {data[:4].hex() or '(empty)'} should "
            "be 0000TTDD (TT a type code such as 08, DD the number of dimensions)"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: its header needs {header} bytes, got {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path} is malformed: shape {shape} needs {expected} bytes of data, got "
            f"{len(data) - header}"
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem, f"{stem}.gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise FileNotFoundError(
        f"MNIST file {stem} (or {stem}.gz) not found in {data_dir}; --data-dir must hold "
        f"{', '.join(MNIST_FILES.values())}"
    )


def load_mnist(
    data_dir: str | os.PathLike, *, standardize: bool = True
) -> tuple[ClassificationSamples, ClassificationSamples]:
    """MNIST from the four IDX files in ``data_dir`` as ``(train, test)``: inputs ``[N, 784]``
    float32 (pixels scaled to [0, 1], then standardised with the training set's mean and
    deviation over all pixels), targets int64.

    Example:
        >>> train, test = load_mnist("~/data/mnist")  # doctest: +SKIP
    """
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"MNIST data directory not found: {data_dir}")
    arrays = {key: read_idx(_find(data_dir, stem)) for key, stem in MNIST_FILES.items()}
    splits = []
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        image_file = _find(data_dir, MNIST_FILES[f"{part}_images"])
        label_file = _find(data_dir, MNIST_FILES[f"{part}_labels"])
        if images.ndim != 3:
            raise ValueError(f"{image_file} must hold [N, rows, cols] images, got {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"{label_file} holds {labels.shape} labels but {image_file} holds "
                f"{images.shape[0]} images"
            )
        inputs = torch.as_tensor(images.reshape(images.shape[0], -1), dtype=torch.float32) / 255
        splits.append((inputs, torch.as_tensor(labels.astype(np.int64))))
    (x_train, y_train), (x_test, y_test) = splits
    if standardize:
        x_train, x_test = _standardize(x_train, x_test, per_feature=False)
    return ClassificationSamples(x_train, y_train), ClassificationSamples(x_test, y_test)
