"""es_opt.training.wandb_logger: an RL sample run logged to Weights & Biases in offline mode; the
run file read back (W&B's own protobuf records) holds the CSV log's numbers, the settings and
the run record as an artifact; without wandb the logger says which extra to install."""

from __future__ import annotations

import base64
import hashlib
import json
import sys

import pytest

from es_opt import MissingExtraError

from .test_mlflow_logger import logged_like_the_csv, run_rl_sample

_BLOCK = 32 * 1024  # the run file is a LevelDB-style log: 32 KiB blocks of framed records
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_run_file(path):
    """The protobuf records of a ``run-*.wandb`` file, decoded with wandb's own message types."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pending, position = [], b"", 7  # magic, version and its 1-byte flag
    while position + 7 <= len(data):
        left = _BLOCK - position % _BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            position += left
            continue
        length, kind = (
            int.from_bytes(data[position + 4 : position + 6], "little"),
            data[position + 6],
        )
        if kind == 0 and length == 0:
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


@pytest.mark.slow
def test_the_rl_sample_logs_the_csv_numbers_settings_and_record(tmp_path, monkeypatch):
    pytest.importorskip("gymnasium")
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    rows = run_rl_sample(tmp_path, "--wandb", "es-opt-test")
    (run_file,) = (tmp_path / "CartPole-v1" / "wandb").glob("offline-run-*/run-*.wandb")
    records = read_run_file(run_file)
    kinds = [r.WhichOneof("record_type") for r in records]
    logged: dict[str, dict[int, float]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                     for i in record.history.item}  # fmt: skip
            for key, value in items.items():
                if not key.startswith("_"):
                    logged.setdefault(key, {})[items["_step"]] = value
    assert {"fitness_mean_0", "grad_norm", "eval_return", "target"} <= logged.keys()
    logged_like_the_csv(rows, logged)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["config/env"] == "CartPole-v1" and config["es/n_samples"] == 6
    (artifact,) = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert artifact.type == "run-record"
    (entry,) = artifact.manifest.contents
    md5 = hashlib.md5((tmp_path / "run.record").read_bytes()).digest()
    assert entry.path == "run.record" and entry.digest == base64.b64encode(md5).decode()
    assert kinds[-1] == "exit" and records[-1].exit.exit_code == 0


def test_without_wandb_the_logger_names_the_extra(monkeypatch):
    from es_opt.training.wandb_logger import WandbLogger

    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingExtraError, match=r'wandb is needed for WandbLogger: pip install '
                       r'"es_opt\[wandb\]"'):  # fmt: skip
        WandbLogger("project")


def test_a_bad_mode_is_refused():
    pytest.importorskip("wandb")
    from es_opt.training.wandb_logger import WandbLogger

    with pytest.raises(ValueError, match="mode must be one of online, offline, disabled or None, "
                       "got 'offlin'"):  # fmt: skip
        WandbLogger("project", mode="offlin")
