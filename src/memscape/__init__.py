"""memscape: diffusion models as associative memories.

One protocol (:class:`EnergyModel`: energy, score = −∇E, denoiser
D = x + σ²·score), associative memories, the exact diffusion energy, and tools to
study their landscapes.

Public names load on first use (scientific-python SPEC 1, :mod:`lazy_loader`):
``import memscape`` imports no torch, so the command line answers at once. The
names and where they live are listed once, in ``__init__.pyi``.
"""

import lazy_loader as _lazy

from memscape._version import __version__ as __version__

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
