"""Diffusion models: the exact empirical model, noise processes, trained networks, samplers."""

from memscape.diffusion.empirical import EmpiricalDiffusion
from memscape.diffusion.processes import EDM, OU, VE, VP, NoiseProcess, get_process

__all__ = ["EDM", "OU", "VE", "VP", "EmpiricalDiffusion", "NoiseProcess", "get_process"]
