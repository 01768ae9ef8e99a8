"""es_opt's CMA-ES (``--distribution cma``) on CartPole and Pendulum, against ``evotorch-cma``.

Each task runs the sample script's preset with ``--distribution cma`` and CMA-ES's own mean
update, ``--optimizer sgd --momentum 0 --lr 1`` (the step's gradient is ``c_m σ ⟨y⟩_w``, so SGD
with lr 1 *is* CMA-ES); σ₀ and the population λ are the preset's ``--sigma`` and
``--n-samples`` (CartPole: linear policy from zero, σ₀ 0.1, λ 16; Pendulum: 3-32-1 tanh, σ₀ 0.5,
λ 40); everything else is the library's default: Hansen's tutorial's constants with active
(negative) weights, independent members. See ``es_opt_side`` for how the scripts are loaded and
driven.

Trials on the loaded 2-core machine (seeds 0-4 on CartPole, 0-2 on Pendulum): with the preset's
RangerLite (lr 0.1) instead of SGD lr 1, CartPole took 8-17 s instead of 0.8-3 s; σ₀ 0.5 or
λ 10 (the tutorial's default at d = 10) changed the CartPole times by less than the spread over
seeds. On Pendulum σ₀ 0.5 / 1.0 and λ 40 / 80 each reached -160 to -180 on some seeds and stayed
at -750 to -860 on others (the OpenAI-ES preset: -161 to -194 on all three); the preset's values
were kept.

Digits is not run: full CMA-ES fits under the dimension guard at d = 2,410 (the 64-32-10 net;
``C`` and ``B`` take 93 MB) but a generation of 100 members costs ~1 s of CPU here, twenty times
the separable variant's (O(λ d²) sampling and covariance update, an O(d³) eigendecomposition
every 5 generations): 40 generations (σ₀ 0.3, λ 100, seed 0) took 39 s and reached a test
accuracy of 0.875, while the task needs 100-250 generations. Separable CMA-ES
(``es_opt-sep_cma``) is the CMA-ES of that task; ``run.py`` reports an es_opt-cma digits run as
failed (``KeyError: 'digits'``).
"""

from __future__ import annotations

from benchmarks.peers import es_opt_side, tasks
from benchmarks.peers.es_opt_variants import make_runners

SIDE = "es_opt-cma"
DISTRIBUTION = "cma"
CMA_MEAN_UPDATE = ("--optimizer", "sgd", "--momentum", "0", "--lr", "1.0")
FLAGS: dict[str, tuple[str, ...]] = {
    tasks.CARTPOLE: CMA_MEAN_UPDATE,
    tasks.PENDULUM: CMA_MEAN_UPDATE,
}
RUNNERS, SETTINGS = make_runners(DISTRIBUTION, FLAGS)
del RUNNERS[tasks.DIGITS], SETTINGS[tasks.DIGITS]  # see the module docstring
version = es_opt_side.version
