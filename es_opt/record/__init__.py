"""Run records: a whole ES run as θ₀ plus a few hundred bytes per generation, replayable bit for
bit to any generation.

An ES update is a deterministic function of the centre, the seeds, the settings and the
generation's fitness (``sync="replay"`` checks it at every step). A run record keeps exactly that:
a header with θ₀'s digest and every setting the update depends on, then per generation the
checked fitness matrix, the settings that changed, the sampled layers and the digest of the new
centre, each line checksummed and chained to the previous one. From θ₀ and the record,
:func:`replay` rebuilds every later centre without evaluating anything, checking the digest at
every generation.

- :class:`RunRecord`: the callback that writes a record
  (``es.fit(callbacks=[..., RunRecord(path)])``).
- :func:`read_record`: reads and checks a record (:class:`RecordError` names the file and the
  generation of any damage).
- :func:`replay`, :func:`resume_from_record`: move an optimizer to generation ``k``.
- :func:`checkpoint_at` and ``python -m es_opt.record``: a checkpoint at generation ``k``,
  without the run's code.

Example:
    >>> import torch, es_opt, tempfile, os
    >>> from es_opt.record import RunRecord, resume_from_record
    >>> def build():
    ...     net = torch.nn.Linear(2, 1)
    ...     torch.nn.init.zeros_(net.weight)
    ...     return es_opt.ESOptimizer(net, objective_fn=lambda m, s: -float(m.net.bias.square()),
    ...                               n_samples=4, seed=1, sigma=0.5)
    >>> path = os.path.join(tempfile.mkdtemp(), "run.record")
    >>> es = build()
    >>> _ = es.fit(generations=5, callbacks=[RunRecord(path)])
    >>> again = build()
    >>> _ = resume_from_record(again, path, 5)
    >>> torch.equal(again.model.net.bias, es.model.net.bias)
    True
"""

from .format import Record, RecordError, read_record
from .rebuild import checkpoint_at
from .replay import replay, resume_from_record
from .writer import RunRecord

__all__ = [
    "Record",
    "RecordError",
    "RunRecord",
    "checkpoint_at",
    "read_record",
    "replay",
    "resume_from_record",
]
