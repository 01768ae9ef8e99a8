"""Digits and MNIST loaders (es_opt/datasets.py)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from es_opt.supervised.datasets import (
    MNIST_FILES,
    load_digits,
    load_mnist,
    read_idx,
    stratified_split,
)


def test_stratified_split_keeps_class_proportions_and_follows_the_seed():
    targets = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    train, test = stratified_split(targets, 0.2, seed=0)
    assert torch.bincount(targets[test]).tolist() == [10, 6, 4]
    assert torch.bincount(targets[train]).tolist() == [40, 24, 16]
    assert torch.equal(torch.cat([train, test]).sort().values, torch.arange(100))
    again, _ = stratified_split(targets, 0.2, seed=0)
    other, _ = stratified_split(targets, 0.2, seed=1)
    assert torch.equal(train, again) and not torch.equal(train, other)
    with pytest.raises(ValueError, match="test_fraction must be in"):
        stratified_split(targets, 1.0, seed=0)


def test_load_digits_is_split_and_standardised_with_training_statistics():
    train, test = load_digits(seed=0)
    assert train.inputs.shape[1] == 64 and len(train) + len(test) == 1797
    assert abs(len(test) - 0.2 * 1797) <= 10 and train.inputs.dtype == torch.float32
    counts = torch.bincount(test.targets)
    assert counts.min() >= 34 and counts.max() <= 38  # ~20 % of each class (174-183 images)
    varying = train.inputs.std(0) > 0
    torch.testing.assert_close(train.inputs.mean(0), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.inputs.std(0)[varying], torch.ones(int(varying.sum())))
    assert test.inputs.mean(0).abs().max() > 1e-3  # test set scaled with the train statistics
    raw_train, raw_test = load_digits(seed=0, standardize=False)
    assert raw_train.inputs.max() == 16 and torch.equal(raw_test.targets, test.targets)
    assert not torch.equal(load_digits(seed=1)[1].targets, test.targets)


def write_idx(path, array: np.ndarray, code: int = 0x08, *, compress: bool = False) -> None:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def test_read_idx_round_trips_plain_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", images)
    write_idx(tmp_path / "b.gz", images, compress=True)
    floats = np.linspace(-1, 1, 6).reshape(2, 3)
    write_idx(tmp_path / "c", floats, code=0x0E)
    assert np.array_equal(read_idx(tmp_path / "a"), images)
    assert np.array_equal(read_idx(tmp_path / "b.gz"), images)
    assert np.array_equal(read_idx(tmp_path / "c"), floats)


def test_read_idx_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="IDX file not found: .*missing"):
        read_idx(tmp_path / "missing")
    (tmp_path / "bad").write_bytes(b"\x1f\x8b\x08\x00junk")
    with pytest.raises(ValueError, match=r"bad is not an IDX file: its magic number 1f8b0800"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((2, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"short is malformed: shape \(2, 2\) needs 4 bytes"):
        read_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="header is truncated"):
        read_idx(tmp_path / "header")
    (tmp_path / "notgz.gz").write_bytes(b"plain")
    with pytest.raises(ValueError, match="cannot read IDX file .*notgz.gz"):
        read_idx(tmp_path / "notgz.gz")


def fake_mnist(folder, n_train=12, n_test=5, side=4):
    gen = np.random.default_rng(0)
    parts = {
        "train_images": gen.integers(0, 256, (n_train, side, side)).astype(np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": gen.integers(0, 256, (n_test, side, side)).astype(np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for position, (key, array) in enumerate(parts.items()):
        compress = position % 2 == 1  # mixed plain and .gz files
        name = MNIST_FILES[key] + (".gz" if compress else "")
        write_idx(folder / name, array, compress=compress)
    return parts


def test_load_mnist_reads_a_folder_of_idx_files(tmp_path):
    parts = fake_mnist(tmp_path)
    train, test = load_mnist(tmp_path)
    assert train.inputs.shape == (12, 16) and test.inputs.shape == (5, 16)
    assert train.targets.tolist() == list(range(10)) + [0, 1] and test.targets.dtype == torch.int64
    assert abs(float(train.inputs.mean())) < 1e-5 and float(train.inputs.std()) == pytest.approx(1)
    raw, _ = load_mnist(tmp_path, standardize=False)
    expected = torch.as_tensor(parts["train_images"].reshape(12, 16) / 255, dtype=torch.float32)
    torch.testing.assert_close(raw.inputs, expected)


def test_load_mnist_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST data directory not found"):
        load_mnist(tmp_path / "nowhere")
    fake_mnist(tmp_path)
    (tmp_path / (MNIST_FILES["test_labels"] + ".gz")).unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte \(or .*\.gz\) not found"):
        load_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES["test_labels"], np.zeros(4, np.uint8))
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte holds \(4,\) labels but .*5 image"
    ):
        load_mnist(tmp_path)
