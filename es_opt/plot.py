"""Moved to :mod:`es_opt.training.plot` in es_opt 0.2.
Importing ``es_opt.plot`` still works for one release, with a ``DeprecationWarning``."""

from ._moved import forward

__getattr__, __dir__, __all__ = forward("es_opt.plot")

if __name__ == "__main__":  # python -m es_opt.plot, as in 0.1
    raise SystemExit(__getattr__("main")())
