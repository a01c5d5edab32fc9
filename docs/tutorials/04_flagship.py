"""Tutorial: the flagship experiment (memorization → generalization) on your own data.

Writes a 2-D spiral to an ``.npz`` file, runs ``memscape run memorization`` on it in
its quick configuration (from Python, then the same run from the command line), and
reads the report and tables back. Run with ``python docs/tutorials/04_flagship.py``.
"""

# --8<-- [start:setup]
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from memscape.experiments import ResultsFolder, run_experiment

FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.set_num_threads(1)
work = Path(tempfile.mkdtemp(prefix="memscape-flagship-"))
# --8<-- [end:setup]

# --8<-- [start:data]
rng = np.random.default_rng(0)
t = rng.uniform(0.0, 3 * np.pi, size=2000)
spiral = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)  # (2000, 2) in [−1, 1]
np.savez(work / "spiral.npz", x=spiral.astype(np.float32))
# --8<-- [end:data]

# --8<-- [start:run]
options = {
    "data": str(work / "spiral.npz"),
    "sizes": (2, 16, 64),  # training-set sizes K: memorizing, in between, generalizing
    "seeds": 1,
    "steps": 800,  # training steps per model (default: 1500)
    "width": 128,
    "pairs": False,  # skip the twin-model (Kadkhodaie et al.) test to save time
}
results = run_experiment("memorization", work / "run", quick=True, progress=False, **options)
print(sorted(p.name for p in results.path.iterdir()))
# --8<-- [end:run]

# --8<-- [start:read]
summary = results.read_table("summary")
print(
    summary[
        [
            "K",
            "model",
            "ratio_memorized_fraction",
            "memorized_fraction",
            "spurious_fraction",
            "generalized_fraction",
            "off_data_fraction",
            "attractors_memorized",
            "attractors_spurious",
        ]
    ].to_string()
)
print(results.read_table("transition")[["model", "K_A", "K_S", "K_B", "ordered"]].to_string())
checks = results.read_table("checks")
print(checks[["name", "measured", "theory", "passed"]].to_string())
print((results.path / "report.md").read_text().splitlines()[0])
# --8<-- [end:read]

# --8<-- [start:cli]
memscape = Path(sys.executable).with_name("memscape")  # the console script of this environment
flags = "--quick --sizes 4,64 --seeds 1 --no-trained".split()  # only the exact baseline
data = str(work / "spiral.npz")
command = [str(memscape), "run", "memorization", "--out", str(work / "cli"), "--data", data, *flags]
subprocess.run(command, check=True, capture_output=True, text=True)
exact_only = ResultsFolder(work / "cli").read_table("summary")
print(exact_only[["K", "model", "memorized_fraction"]].to_string())
# --8<-- [end:cli]

# --8<-- [start:figures]
for name in ("class_fractions", "d1_histogram", "landscapes"):
    shutil.copy(results.path / f"{name}.png", FIGURES / f"flagship_{name}.png")
shutil.rmtree(work)
# --8<-- [end:figures]
