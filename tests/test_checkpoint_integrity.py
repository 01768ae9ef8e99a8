"""es_opt.training.checkpoint: every damaged or foreign file is refused with one CheckpointError
naming the file and the cause, before anything changes; old (format version 1) files still load."""

from __future__ import annotations

import copy
import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

import es_opt.training.checkpoint as checkpoint_module
from es_opt import CheckpointError, ESOptimizer
from es_opt.training.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import assert_same_params
from tests.test_checkpoint import Drifting, make_es

DATA = Path(__file__).resolve().parent / "data"
V1_FILE = DATA / "checkpoint_v1.pt"
"""Written by es_opt 0.1.0 before checkpoints carried a digest (format version 1), with::

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    es = ESOptimizer(net, objective_fn=negative_square_norm, sigma=0.05, n_samples=6, seed=3)
    es.fit(generations=2)
    save_checkpoint(path, es, config={"sigma": 0.05, "written_by": "..."})
"""


def record_data_offset(path: Path, suffix: str) -> tuple[int, int]:
    """(offset, size) of the stored bytes of the zip record whose name ends with ``suffix``."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(suffix))
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_length + extra_length, info.file_size


def largest_tensor_record(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        records = [i for i in archive.infolist() if "/data/" in i.filename]
    return max(records, key=lambda i: i.file_size).filename


def flip(path: Path, offset: int, count: int = 4) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def flip_tensor_data(path: Path) -> None:
    offset, size = record_data_offset(path, largest_tensor_record(path))
    flip(path, offset + size // 2)


def flip_record_header(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    flip(path, info.header_offset + 30 + 2, count=1)  # a byte of the record's name


def saved(tmp_path: Path) -> Path:
    es = make_es()
    es.fit(generations=1)
    path = tmp_path / "run.pt"
    save_checkpoint(path, es, config={"run": "a"})
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


def make_text(path: Path) -> None:
    path.write_text("sigma: 0.1\nlr: 0.01\n")


def make_plain_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")


def make_numpy_file(path: Path) -> None:
    import numpy as np

    torch.save({"format": "es_opt.checkpoint", "mean": np.zeros(3)}, path)


def make_foreign_torch_file(path: Path) -> None:
    torch.save({"weight": torch.zeros(2)}, path)


def make_newer(path: Path) -> None:
    original = checkpoint_module.FORMAT_VERSION
    checkpoint_module.FORMAT_VERSION = original + 1
    try:
        save_checkpoint(path, make_es())
    finally:
        checkpoint_module.FORMAT_VERSION = original


def make_unknown_digest(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data.replace(b"es_opt.checkpoint sha256=", b"es_opt.checkpoint sha512="))


CASES = {
    "empty": (lambda p: p.write_bytes(b""), "the file is empty"),
    "text": (make_text, "not a zip archive, so not a torch checkpoint: it is a text file"),
    "truncated": (truncate, "truncated: the zip archive has no end record"),
    "flipped tensor data": (flip_tensor_data, "corrupted: its bytes do not match the SHA-256"),
    "flipped record header": (flip_record_header, "corrupted: its bytes do not match the SHA-256"),
    "plain zip": (make_plain_zip, "a zip archive but not a torch checkpoint"),
    "foreign torch file": (make_foreign_torch_file, "not an es_opt checkpoint"),
    "pickled numpy": (make_numpy_file, r"not an es_opt checkpoint: it holds objects that a"),
    "newer format": (make_newer, r"written by a newer es_opt .*format version 3.* upgrade es_opt"),
    "unknown digest": (make_unknown_digest, "written by a newer es_opt: its integrity record"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_each_damaged_or_foreign_file_is_refused_naming_it_and_nothing_changes(tmp_path, kind):
    damage, cause = CASES[kind]
    path = saved(tmp_path)
    damage(path)
    es = make_es(seed=4)
    es.fit(generations=2)
    params = copy.deepcopy(es.model.net.state_dict())
    state = copy.deepcopy(es.state_dict())
    expected = f"^cannot load the checkpoint '{path}': {cause}"
    with pytest.raises(CheckpointError, match=expected) as e:
        load_checkpoint(path, es)
    assert e.value.path == str(path) and isinstance(e.value, ValueError)
    # torch's own advice to load with weights_only=False (running the file's code) never shows.
    assert "False" not in str(e.value) and e.value.__cause__ is None
    assert_same_params(params, es.model.net.state_dict())
    assert es.generation == state["generation"] == 2
    assert torch.equal(es.objective_fn.count, state["objective"]["count"])
    es.fit(generations=1)  # and the optimizer still steps


def test_flipped_tensor_bytes_load_silently_with_torch_but_not_with_es_opt(tmp_path):
    path = saved(tmp_path)
    good = torch.load(path, weights_only=True)
    name = largest_tensor_record(path)
    flip_tensor_data(path)
    bad = torch.load(path, weights_only=True)  # torch skips the zip CRC: garbage, no error
    assert any(not torch.equal(good["net"][k], bad["net"][k]) for k in good["net"]), name
    with pytest.raises(CheckpointError, match="do not match the SHA-256 digest written with it"):
        load_checkpoint(path)


def test_the_digest_is_the_sha256_of_the_bytes_before_the_zip_comment_length(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        comment = archive.comment
    assert comment.startswith(b"es_opt.checkpoint sha256=")
    end = len(data) - len(comment) - 2
    assert data[end - 20 : end - 16] == b"PK\x05\x06"
    assert comment.endswith(hashlib.sha256(data[:end]).hexdigest().encode())


def test_a_format_version_1_checkpoint_still_loads(tmp_path):
    raw = torch.load(V1_FILE, weights_only=True)
    assert raw["format_version"] == 1
    with zipfile.ZipFile(V1_FILE) as archive:
        assert archive.comment == b""  # no digest
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    es = ESOptimizer(net, objective_fn=lambda m, s: 0.0, sigma=0.05, n_samples=6, seed=3)
    checkpoint = load_checkpoint(V1_FILE, es)
    assert checkpoint["config"]["sigma"] == 0.05 and es.generation == 2
    assert_same_params(raw["net"], es.model.net.state_dict())
    es.fit(generations=1)


@pytest.mark.parametrize(
    "damage, cause",
    [
        (flip_tensor_data, "corrupted: Bad CRC-32 for file '.*/data/"),
        (flip_record_header, "corrupted: its zip structure is damaged"),
        (truncate, "truncated"),
    ],
)
def test_a_checkpoint_without_digest_is_checked_with_the_zip_crcs(tmp_path, damage, cause):
    path = tmp_path / "old.pt"
    shutil.copy(V1_FILE, path)
    damage(path)
    with pytest.raises(CheckpointError, match=f"{path}': {cause}"):
        load_checkpoint(path)


def test_a_checkpoint_rewritten_with_torch_save_loads(tmp_path):
    """Editing a checkpoint's config with torch.load/torch.save drops the digest; its records'
    CRCs are checked instead."""
    path = saved(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["config"]["run"] = "b"
    torch.save(checkpoint, path)
    assert load_checkpoint(path, make_es())["config"] == {"run": "b"}


class Stricter(Drifting):
    """Keeps its state under another key: a checkpoint of a Drifting run does not fit it."""

    def state_dict(self):
        return {"mean": self.count.clone()}

    def load_state_dict(self, state):
        self.count = state["mean"].clone()


def test_a_state_that_fails_half_way_is_rolled_back_entirely(tmp_path):
    """The inner optimizer's state loads before the objective's refuses its own: both are put
    back, so the optimizer is exactly as before."""
    path = saved(tmp_path)
    es = make_es(seed=4)
    es.objective_fn = es.evaluator.objective = Stricter()
    es.fit(generations=2)
    params = copy.deepcopy(es.model.net.state_dict())
    state = copy.deepcopy(es.state_dict())
    with pytest.raises(
        CheckpointError, match=r"its state does not fit this ESOptimizer \(KeyError"
    ):
        load_checkpoint(path, es)
    assert_same_params(params, es.model.net.state_dict())
    after = es.state_dict()
    assert after["generation"] == 2 and torch.equal(
        after["objective"]["mean"], state["objective"]["mean"]
    )
    for key, values in state["optimizer"]["state"].items():
        for name, value in values.items():
            other = after["optimizer"]["state"][key][name]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other
