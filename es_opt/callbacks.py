"""Moved to :mod:`es_opt.training` in es_opt 0.2.
Importing ``es_opt.callbacks`` still works for one release, with a ``DeprecationWarning``."""

from ._moved import forward

__getattr__, __dir__, __all__ = forward("es_opt.callbacks")
