import numpy as np
import pytest
import torch

from es_opt.objective import Objective, as_fitness_row


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, [2.0]),
        (1.5, [1.5]),
        (np.float32(0.25), [0.25]),
        ([1.0, 2], [1.0, 2.0]),
        ((3.0,), [3.0]),
        (torch.tensor(4.0), [4.0]),
        (torch.tensor([1.0, -1.0]), [1.0, -1.0]),
        (np.array([0.5, 0.5]), [0.5, 0.5]),
    ],
)
def test_accepted_values(value, expected):
    row = as_fitness_row(value)
    assert row.dtype == torch.float64 and row.tolist() == expected


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("1.0", TypeError, "got str"),
        (True, TypeError, "got bool"),
        (None, TypeError, "got NoneType"),
        ([], ValueError, "returned no value"),
        ([1.0, "x"], TypeError, "containing str"),
        (torch.zeros(2, 1), ValueError, "2-D tensor of shape"),
        (torch.tensor([True]), TypeError, "dtype torch.bool"),
        (float("nan"), ValueError, r"non-finite value \(nan\)"),
        ([1.0, float("-inf")], ValueError, r"non-finite value \(-inf\)"),
        ({"a": 1}, TypeError, "got dict"),
    ],
)
def test_rejected_values_name_the_evaluation(value, error, match):
    with pytest.raises(error, match=match) as info:
        as_fitness_row(value, index=12)
    assert "evaluation 12" in str(info.value)


def test_objective_base_requires_call():
    with pytest.raises(NotImplementedError, match="must implement __call__"):
        Objective()(None, None)
