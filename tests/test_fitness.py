"""The one fitness validator (es_opt/fitness.py): one member, a batch, a whole generation."""

import numpy as np
import pytest
import torch

from es_opt.fitness import (
    as_fitness_row,
    check_fitness_matrix,
    check_population_fitness,
    stack_rows,
)


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


def test_check_population_fitness_names_the_evaluation():
    rows = check_population_fitness(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), [10, 11])
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    assert rows[0].dtype == torch.float64
    with pytest.raises(ValueError, match=r"non-finite value \(nan\) for evaluation 11: fitness"):
        check_population_fitness(torch.tensor([1.0, float("nan")]), [10, 11])
    with pytest.raises(ValueError, match=r"returned shape \(3, 1\) for 2 members .*10\.\.11"):
        check_population_fitness(torch.zeros(3, 1), [10, 11])
    with pytest.raises(TypeError, match="dtype torch.bool"):
        check_population_fitness(torch.tensor([True, False]), [0, 1])
    with pytest.raises(TypeError, match="got NoneType"):
        check_population_fitness(None, [0, 1])
    assert check_population_fitness([0.5, 1.5], [0, 1])[1].tolist() == [1.5]


@pytest.mark.parametrize(
    ("fitness", "error", "match"),
    [
        ([1.0, 2.0, 3.0], ValueError, r"fitness must have shape \[4, n_objectives\]"),
        ([[1.0, 2.0]] * 4, ValueError, r"obj_weights has 1 weight\(s\) \[1.0\] but .* 2 value"),
        ([0.0, 1.0, float("inf"), 2.0], ValueError, r"non-finite value \(inf\) for evaluation 2"),
        ([0.0, float("nan"), float("nan"), 2.0], ValueError, r"\(nan\) for evaluation 1:"),
        ("1234", TypeError, "fitness must be a \\[4, n_objectives\\] tensor, got str"),
        (torch.ones(4, dtype=torch.bool), TypeError, "dtype torch.bool"),
    ],
)
def test_fitness_matrix_errors_name_the_first_bad_evaluation(fitness, error, match):
    with pytest.raises(error, match=match):
        check_fitness_matrix(fitness, 4, (1.0,))


def test_fitness_matrix_accepts_one_column_per_weight_as_float64():
    values = np.arange(8, dtype=np.float32).reshape(4, 2)
    out = check_fitness_matrix(values, 4, (1.0, -1.0))
    assert out.dtype == torch.float64 and out.tolist() == values.tolist()
    assert check_fitness_matrix([3, 1, 2, 0], 4, (1.0,)).tolist() == [[3.0], [1.0], [2.0], [0.0]]


def test_stack_rows_names_the_first_row_of_another_width():
    with pytest.raises(ValueError, match="returned 2 values at evaluation 2 but 1 at evaluation 0"):
        stack_rows([torch.ones(1), torch.ones(1), torch.ones(2)])
