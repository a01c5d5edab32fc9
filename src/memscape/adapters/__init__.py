"""Bring your own diffusion model: diffusers, k-diffusion, EDM or any denoiser as a memscape model.

Every adapter is a noise-conditioned, score-only :class:`memscape.EnergyModel` in VE
σ-space (Karras et al. 2022, EDM): ``denoise(x, sigma)``, ``score = (D − x)/σ²`` and an
autograd Hessian, so every sampler and analysis takes it.

* :func:`from_denoiser` — a callable ``D(x, σ)`` (k-diffusion models and wrappers, EDM's
  ``EDMPrecond``);
* :func:`from_score` — a score function ``s(x, σ)``;
* :func:`from_diffusers` / :func:`load_diffusers` — a diffusers network and its scheduler
  (VP schedulers with ``alphas_cumprod`` and EDM schedulers; every ``prediction_type``);
* :func:`load` — any model folder (memscape or diffusers) or ``"module:function"``.

Optional libraries (``pip install "memscape[diffusers]"``) are imported only when a
loader needs them, never at ``import memscape``.
"""

from memscape.adapters.base import (
    AdaptedModel,
    DenoiserModel,
    ScoreFunctionModel,
    from_denoiser,
    from_score,
)
from memscape.adapters.diffusers import (
    PREDICTION_TYPES,
    DiffusersModel,
    from_diffusers,
    load_diffusers,
)
from memscape.adapters.loading import load

__all__ = [
    "PREDICTION_TYPES",
    "AdaptedModel",
    "DenoiserModel",
    "DiffusersModel",
    "ScoreFunctionModel",
    "from_denoiser",
    "from_diffusers",
    "from_score",
    "load",
    "load_diffusers",
]
