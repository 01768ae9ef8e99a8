"""es_opt's PGPE (``--distribution pgpe``) on every task, against the ``evotorch-pgpe`` side.

Each task runs the sample script's preset with ``--distribution pgpe`` and the flags in
``FLAGS`` (the per-parameter σ starts at the preset's ``--sigma``); see ``es_opt_side`` for how
the scripts are loaded and driven. PGPE's own hyperparameters are the library's defaults
(``stdev_lr`` 0.1, ``stdev_max_change`` 0.2, pgpelib's and EvoTorch's).
"""

from __future__ import annotations

from benchmarks.peers import es_opt_side, tasks
from benchmarks.peers.es_opt_variants import make_runners

SIDE = "es_opt-pgpe"
DISTRIBUTION = "pgpe"
FLAGS: dict[str, tuple[str, ...]] = {
    tasks.CARTPOLE: (),
    tasks.PENDULUM: (),
    tasks.DIGITS: (),
}
RUNNERS, SETTINGS = make_runners(DISTRIBUTION, FLAGS)
version = es_opt_side.version
