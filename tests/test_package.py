"""The top-level package (es_opt/__init__.py): what ``ESOptimizer`` accepts by class, ``es_opt``
exports; ``import es_opt`` leaves the supervised application to be imported on use."""

from __future__ import annotations

import json
import subprocess
import sys

import es_opt
from es_opt.distributions import DISTRIBUTIONS, SearchDistribution
from es_opt.evaluators.pool import PoolEvaluator
from es_opt.evaluators.ray_backend import RayEvaluator
from es_opt.shaping import TopPairs
from es_opt.supervised import Accuracy, NegativeCrossEntropy

# classes whose instances ESOptimizer's arguments take (distribution=, perturbation=, shaping=,
# backend=), besides the distributions, which DISTRIBUTIONS lists
ACCEPTED = [
    es_opt.perturbations.Dense,
    es_opt.perturbations.LowRank,
    es_opt.perturbations.Perturbation,
    SearchDistribution,
    TopPairs,
    es_opt.evaluators.Evaluator,
    es_opt.evaluators.SerialEvaluator,
    PoolEvaluator,
    RayEvaluator,
]


def test_what_esoptimizer_accepts_es_opt_exports():
    for cls in [*DISTRIBUTIONS.values(), *ACCEPTED]:
        assert getattr(es_opt, cls.__name__) is cls, cls
        assert cls.__name__ in es_opt.__all__, cls
    assert {"OpenAIES", "PGPE", "SNES"} <= set(es_opt.__all__)


def test_the_supervised_names_still_import_from_es_opt():
    from es_opt import Accuracy as lazy_accuracy

    assert lazy_accuracy is Accuracy and es_opt.NegativeCrossEntropy is NegativeCrossEntropy
    assert set(es_opt.__all__) <= set(dir(es_opt))
    namespace: dict = {}
    exec("from es_opt import *", namespace)
    assert all(namespace[name] is getattr(es_opt, name) for name in es_opt.__all__)


SCRIPT = """
import json, sys
import es_opt
before = sorted(m for m in ("es_opt.supervised", "sklearn") if m in sys.modules)
first = es_opt.Accuracy
print(json.dumps({"before": before, "after": "es_opt.supervised" in sys.modules,
                  "same": first is sys.modules["es_opt.supervised"].Accuracy,
                  "sub": es_opt.supervised.L1Norm is es_opt.L1Norm}))
"""


def test_import_es_opt_leaves_the_supervised_application_to_first_use():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"before": [], "after": True, "same": True, "sub": True}
