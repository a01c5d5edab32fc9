"""Diffusion models: the exact empirical model, noise processes, trained networks, samplers."""

from memscape.diffusion import samplers
from memscape.diffusion.empirical import EmpiricalDiffusion
from memscape.diffusion.likelihood import log_likelihood
from memscape.diffusion.mixture import GaussianMixtureDiffusion
from memscape.diffusion.model import ScoreModel
from memscape.diffusion.potential import ProcessLandscape
from memscape.diffusion.preconditioning import (
    EDMPrecond,
    Preconditioning,
    VEPrecond,
    VPPrecond,
    get_preconditioning,
)
from memscape.diffusion.processes import (
    EDM,
    OU,
    VE,
    VP,
    NoiseProcess,
    SDECoefficients,
    get_process,
)
from memscape.diffusion.samplers import *  # noqa: F403 (the names of samplers.__all__)
from memscape.diffusion.stacked import train_stacked
from memscape.diffusion.training import TrainRun, train

__all__ = [
    "EDM",
    "OU",
    "VE",
    "VP",
    "EDMPrecond",
    "EmpiricalDiffusion",
    "GaussianMixtureDiffusion",
    "NoiseProcess",
    "Preconditioning",
    "ProcessLandscape",
    "SDECoefficients",
    "ScoreModel",
    "TrainRun",
    "VEPrecond",
    "VPPrecond",
    "get_preconditioning",
    "get_process",
    "log_likelihood",
    "train",
    "train_stacked",
]
__all__ += samplers.__all__
