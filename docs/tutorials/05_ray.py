"""Tutorial: scale a sweep out with Ray.

Runs the same sweep with the local executor and with ``executor="ray"`` on a local Ray
instance (two workers) and checks that the tables agree. Run with
``python docs/tutorials/05_ray.py`` (needs ``pip install 'memscape[ray]'``).
"""

# --8<-- [start:setup]
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from memscape.experiments import run_experiment

FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.set_num_threads(1)
work = Path(tempfile.mkdtemp(prefix="memscape-ray-"))
# --8<-- [end:setup]

# --8<-- [start:options]
options = {
    "sizes": (2, 8, 32),  # one sweep job per training-set size K
    "seeds": 1,
    "samples": 64,
    "census_starts": 32,
    "trained": False,  # only the exact empirical model: a cheap, deterministic sweep
    "quick": True,
    "progress": False,
}
# --8<-- [end:options]

# --8<-- [start:local]
start = time.perf_counter()
local = run_experiment("memorization", work / "local", **options)
print(f"local executor: {time.perf_counter() - start:.1f} s")
# --8<-- [end:local]

# --8<-- [start:ray]
start = time.perf_counter()
distributed = run_experiment("memorization", work / "ray", executor="ray", workers=2, **options)
print(f"ray executor, 2 workers (including starting Ray): {time.perf_counter() - start:.1f} s")
# --8<-- [end:ray]

# --8<-- [start:compare]
for table in ("summary", "samples", "attractors"):
    pd.testing.assert_frame_equal(local.read_table(table), distributed.read_table(table))
print("the local and the Ray run wrote the same tables")
print(distributed.read_table("summary")[["K", "model", "memorized_fraction"]].to_string())
# --8<-- [end:compare]

# --8<-- [start:figures]
shutil.copy(distributed.path / "class_fractions.png", FIGURES / "ray_class_fractions.png")
shutil.rmtree(work)
# --8<-- [end:figures]
