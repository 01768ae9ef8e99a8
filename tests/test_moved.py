"""The modules of es_opt 0.1 that moved (es_opt/_moved.py): importable again, with exactly one
DeprecationWarning naming the new path, every name the very object of the new module."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import es_opt
from es_opt._moved import MOVED


def import_afresh(name: str, statement: str = ""):
    """Runs ``statement`` (default ``import name``) as a first import of ``name`` would run (the
    alias forgotten; the new module, already imported, adds no warnings of its own), recording
    every warning; returns the module, the warnings and the statement's namespace."""
    importlib.import_module(MOVED[name][0])
    sys.modules.pop(name, None)
    es_opt.__dict__.pop(name.rpartition(".")[2], None)
    namespace: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(statement or f"import {name}", __file__, "exec"), namespace)
    return sys.modules[name], caught, namespace


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_module_imports_with_one_warning_naming_the_new_path(old):
    new, names = MOVED[old]
    module, caught, _ = import_afresh(old)
    assert [w.category for w in caught] == [DeprecationWarning]
    assert str(caught[0].message).startswith(f"{old} moved to {new} in es_opt 0.2: import from")
    assert caught[0].filename == __file__  # the importing line, not es_opt's or importlib's
    target = importlib.import_module(new)
    assert names and all(getattr(module, name) is getattr(target, name) for name in names)
    assert module.__all__ == list(names)
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


def test_star_imports_and_the_old_names_of_0_1_resolve():
    _, caught, namespace = import_afresh("es_opt.vectorized", "from es_opt.vectorized import *")
    assert [w.category for w in caught] == [DeprecationWarning]
    from es_opt.evaluators.batched import is_vectorized
    from es_opt.fitness import check_population_fitness

    assert namespace["is_vectorized"] is is_vectorized
    assert namespace["check_population_fitness"] is check_population_fitness
    _, caught, namespace = import_afresh(
        "es_opt.datasets", "from es_opt.datasets import load_digits"
    )
    assert len(caught) == 1
    from es_opt.supervised import load_digits

    assert namespace["load_digits"] is load_digits


def test_the_warning_shows_by_default_in_a_script_and_python_m_es_opt_plot_runs(tmp_path):
    script = "import es_opt.checkpoint\nimport es_opt.checkpoint\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("DeprecationWarning") == 1, done.stderr
    assert "<string>:1: DeprecationWarning: es_opt.checkpoint moved to " in done.stderr
    plot = subprocess.run(
        [sys.executable, "-m", "es_opt.plot", "--help"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert plot.returncode == 0 and "es_opt.training.plot" in plot.stdout, plot.stderr
