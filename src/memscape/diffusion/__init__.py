"""Diffusion models: the exact empirical model, noise processes, trained networks, samplers."""

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
from memscape.diffusion.samplers import (
    TrajectoryRecorder,
    get_sigmas,
    karras_sigmas,
    sample,
    sample_ddim,
    sample_euler,
    sample_euler_maruyama,
    sample_heun,
    sample_ode,
)
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
    "TrajectoryRecorder",
    "VEPrecond",
    "VPPrecond",
    "get_preconditioning",
    "get_process",
    "get_sigmas",
    "karras_sigmas",
    "log_likelihood",
    "sample",
    "sample_ddim",
    "sample_euler",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_ode",
    "train",
]
