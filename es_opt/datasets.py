"""Moved to :mod:`es_opt.supervised.datasets` in es_opt 0.2.
Importing ``es_opt.datasets`` still works for one release, with a ``DeprecationWarning``."""

from ._moved import forward

__getattr__, __dir__, __all__ = forward("es_opt.datasets")
