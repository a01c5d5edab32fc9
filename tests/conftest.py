"""Shared test set-up: one torch thread per test process.

The suite runs under ``pytest -n 2`` on 2 cores; two processes with two OpenMP
threads each oversubscribe the cores, and OpenMP's spin-waiting then slows small
torch ops by an order of magnitude.
"""

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)
