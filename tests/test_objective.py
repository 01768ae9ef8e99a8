import pytest

from es_opt.objective import Objective


def test_objective_base_requires_call():
    with pytest.raises(NotImplementedError, match="must implement __call__"):
        Objective()(None, None)
