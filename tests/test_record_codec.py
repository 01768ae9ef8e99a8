"""es_opt.record.codec: plain values to JSON and back, bit for bit, and nothing else."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from es_opt.record.codec import canonical, decode, encode, value_digest


def round_trip(value):
    return decode(json.loads(json.dumps(encode(value))))


@pytest.mark.parametrize(
    "dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.bool]
)
def test_tensors_come_back_bit_for_bit(dtype):
    values = torch.tensor([0.1, -0.0, 3.5e-5, 1e30, float("nan"), float("-inf"), 0.0, 1.0])
    tensor = values.to(dtype) if dtype.is_floating_point else (values.nan_to_num() > 0).to(dtype)
    back = round_trip(tensor.reshape(2, 4))
    assert back.dtype == dtype and back.shape == (2, 4)
    assert torch.equal(back.view(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8))


def test_containers_keep_their_kinds_and_keys():
    value = {
        "betas": (0.9, 0.999),
        "state": {0: {"step": torch.tensor(3.0)}, 1: {}},
        "$odd": [1, None, True, "x"],
        "floats": [float("nan"), float("inf"), -0.0, 0.1 + 0.2],
        "array": np.arange(3, dtype=np.float32),
        "np": np.float64(2.5),
        "dtype": torch.bfloat16,
    }
    back = round_trip(value)
    assert back["betas"] == (0.9, 0.999) and isinstance(back["betas"], tuple)
    assert list(back["state"]) == [0, 1] and back["state"][0]["step"].item() == 3.0
    assert back["$odd"] == [1, None, True, "x"]
    assert math.isnan(back["floats"][0]) and back["floats"][1] == math.inf
    assert math.copysign(1, back["floats"][2]) == -1 and back["floats"][3] == 0.1 + 0.2
    assert back["array"].dtype == np.float32 and back["array"].tolist() == [0, 1, 2]
    assert back["np"] == 2.5 and back["dtype"] is torch.bfloat16


def test_the_digest_sees_every_bit():
    assert value_digest({"a": 0.0}) != value_digest({"a": -0.0})
    assert value_digest(torch.zeros(2)) != value_digest(torch.zeros(2, dtype=torch.float64))
    assert value_digest({"a": 1, "b": 2}) == value_digest({"b": 2, "a": 1})  # key order: none
    assert canonical({"b": 1, "a": [1.5]}) == b'{"a":[1.5],"b":1}'


def test_what_has_no_plain_form_is_refused_naming_where():
    with pytest.raises(TypeError, match=r"state\['fn'\] is a builtins.function"):
        encode({"fn": lambda: 0}, "state")
    with pytest.raises(ValueError, match="unknown tagged value"):
        decode({"$code": "import os"})
    with pytest.raises(ValueError, match="needs 16 bytes, holds 4"):
        decode({"$tensor": ["float64", [2], "AAAAAA=="]})
    with pytest.raises(ValueError, match="unknown dtype 'object'"):
        decode({"$tensor": ["object", [1], ""]})
