"""The landscape atlas of a 2-D exact model against the census and a flooded grid.

Truth: :func:`memscape.critical_points` (its minima and index-1 saddles) and, for the
barriers, the sublevel sets of the energy on a fine grid (scipy.ndimage.label): a
minimum's barrier is the lowest level at which its connected sublevel set holds a
deeper minimum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

import memscape as ms
from memscape.landscape import landscape_atlas

F64 = torch.float64


def flooded_barriers(model, sigma, minima, energies, n=500, pad=1.0):
    lo, hi = minima.min(0).values - pad, minima.max(0).values + pad
    xs = [torch.linspace(float(lo[k]), float(hi[k]), n, dtype=F64) for k in range(2)]
    gx, gy = torch.meshgrid(*xs, indexing="ij")
    grid = model.energy(torch.stack([gx.ravel(), gy.ravel()], 1), sigma).reshape(n, n).numpy()
    cells = [
        tuple(int(torch.argmin((x - c).abs())) for x, c in zip(xs, p, strict=True)) for p in minima
    ]
    out = np.full(len(minima), np.inf)
    for i, ci in enumerate(cells):
        deeper = [cells[j] for j in range(len(minima)) if energies[j] < energies[i]]
        if not deeper:
            continue
        a, b = energies[i], grid.max()
        for _ in range(50):  # bisection on the level
            mid = 0.5 * (a + b)
            lab, _ = ndimage.label(grid <= mid)
            joined = lab[ci] > 0 and any(lab[c] == lab[ci] for c in deeper)
            a, b = (a, mid) if joined else (mid, b)
        out[i] = b - energies[i]
    return out


def test_atlas_of_a_2d_exact_model_matches_census_and_flooding():
    g = torch.Generator().manual_seed(3)
    y = torch.randn(4, 2, generator=g, dtype=F64)
    model, sigma = ms.EmpiricalDiffusion(y), 0.3
    starts = torch.cat([y, torch.randn(20, 2, generator=g, dtype=F64)])
    seen = []
    atlas = landscape_atlas(model, sigma, starts, neighbors=3, progress=lambda *a: seen.append(a))
    assert seen == [(6, 6)] and len(atlas.pairs) == 6 and bool(atlas.pairs.certified.all())
    cps = ms.critical_points(model, sigma, n_starts=200, generator=torch.Generator().manual_seed(0))
    dist = torch.cdist(atlas.minima, cps.minima)
    assert dist.shape == (4, 4) and float(dist.amin(1).max()) < 1e-5
    census_saddles = model.energy(cps.saddles, sigma).numpy()
    for e in atlas.pairs.energy:  # every join is at a census saddle
        assert np.abs(census_saddles - e).min() < 1e-8
    # each start went to its own minimum's basin: its descent end is that minimum
    ends = ms.descend(model, starts, sigma).x
    near = torch.cdist(ends, atlas.minima).argmin(1)
    assert torch.equal(near, atlas.start_minimum)
    energies = model.energy(atlas.minima, sigma).numpy()
    ref = flooded_barriers(model, sigma, atlas.minima, energies)
    got = atlas.barriers.barrier.to_numpy()
    assert np.isinf(got).sum() == 1 and np.isinf(ref[np.isinf(got)]).all()
    finite = np.isfinite(got)
    assert np.allclose(got[finite], ref[finite], atol=5e-3, rtol=0)
    assert set(atlas.barriers.label) == {"memory"}
    assert (atlas.barriers.morse_index == 0).all()


def test_atlas_rejects_score_only_models_and_bad_options():
    class ScoreOnly:
        event_shape = (2,)
        has_energy = False

        def score(self, x, sigma=None):
            return -x

    starts = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(TypeError, match="energy model"):
        landscape_atlas(ScoreOnly(), None, starts)
    model = ms.EmpiricalDiffusion(torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="neighbors"):
        landscape_atlas(model, 0.3, starts, neighbors=0)
    with pytest.raises(ValueError, match="method"):
        landscape_atlas(model, 0.3, starts, method="dimer")
    with pytest.raises(ValueError, match="one noise level"):
        landscape_atlas(model, torch.tensor([0.3, 0.3, 0.3]), starts)


def test_a_path_through_a_middle_minimum_is_joined_by_a_verified_chain_of_saddles():
    """Three points on a line: the path 0 → 2 crosses minimum 1; its two saddles each join
    a neighbouring pair, so the pair (0, 2) joins at the higher of the two cols — found
    here by bounded Brent on the energy along the line (the saddles lie on it by symmetry
    of the energy about the line)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    y = np.array([[0.0, 0.0], [1.0, 0.0], [2.3, 0.0]])
    sigma = 0.3
    model = ms.EmpiricalDiffusion(torch.tensor(y))
    atlas = landscape_atlas(model, sigma, torch.tensor(y), neighbors=2, images=15)
    assert len(atlas.minima) == 3 and atlas.pairs.verified.all()
    order = np.argsort(atlas.minima[:, 0].numpy())  # minima from left to right

    def energy(t):  # the exact energy up to a constant, along the line y = 0
        return -logsumexp(-((y - [t, 0.0]) ** 2).sum(1) / (2 * sigma**2))

    cols = [-minimize_scalar(lambda t: -energy(t), bounds=b, method="bounded",
                             options={"xatol": 1e-12}).fun for b in ((0.2, 0.8), (1.2, 2.0))]  # fmt: skip
    offset = (
        float(model.energy(atlas.minima[[order[1]]], sigma))
        - minimize_scalar(energy, bounds=(0.8, 1.2), method="bounded", options={"xatol": 1e-12}).fun
    )  # memscape's energy minus this one: a constant
    ends = atlas.pairs.set_index(["i", "j"])["energy"]
    outer = tuple(sorted((int(order[0]), int(order[2]))))
    assert ends[outer] == pytest.approx(max(cols) + offset, abs=1e-7)
    assert atlas.graph.join_energy(*outer) == pytest.approx(max(cols) + offset, abs=1e-7)
    verified = atlas.edges[atlas.edges.verified]
    assert sorted(verified.energy.round(6)) == sorted(np.round(np.array(cols) + offset, 6))


# ------------------------------------------------------------------ the atlas as sweep jobs
def _atlas_case():
    g = torch.Generator().manual_seed(5)
    y = torch.randn(7, 2, generator=g, dtype=F64)
    starts = torch.cat([y, torch.randn(6, 2, generator=g, dtype=F64)])
    return ms.EmpiricalDiffusion(y), 0.3, starts


def _assert_same_atlas(a, b):
    assert torch.equal(a.minima, b.minima) and torch.equal(a.start_minimum, b.start_minimum)
    for name in ("pairs", "edges", "barriers"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    torch.testing.assert_close(a.saddle_points, b.saddle_points, rtol=0, atol=0, equal_nan=True)
    assert a.graph.roots == b.graph.roots


def test_atlas_as_sweep_jobs_gives_the_in_process_tables(tmp_path):
    model, sigma, starts = _atlas_case()
    opts = {"neighbors": 3, "chunk": 2}
    here = landscape_atlas(model, sigma, starts, **opts)
    assert len(here.pairs) > 4  # several chunks
    seen = []
    jobs = landscape_atlas(model, sigma, starts, jobs_dir=tmp_path, workers=1,
                           progress=lambda *a: seen.append(a), **opts)  # fmt: skip
    _assert_same_atlas(jobs, here)
    n = len(here.pairs)
    assert seen[-1] == (n, n) and len(seen) == -(-n // 2)
    folders = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(folders) == -(-n // 2)  # one finished job per chunk of two pairs
    assert sorted(p.name for p in tmp_path.glob("atlas-*.safetensors")) == [
        folders[0].name.split("_")[0] + ".safetensors"
    ]


def test_an_interrupted_atlas_resumes_to_the_same_tables(tmp_path, monkeypatch):
    import memscape.landscape.atlas as atlas_module
    from memscape.runs.sweep import Interrupted
    from tests.test_resume import _interrupt_at

    model, sigma, starts = _atlas_case()
    opts = {"neighbors": 3, "chunk": 2}
    clean = landscape_atlas(model, sigma, starts, **opts)
    total = -(-len(clean.pairs) // 2)
    _interrupt_at(monkeypatch, 7)  # each job reports start, paths, saddles: mid third job
    with pytest.raises(Interrupted, match=rf"atlas pairs: 2 of {total} jobs finished"):
        landscape_atlas(model, sigma, starts, jobs_dir=tmp_path, workers=1, progress=True, **opts)
    monkeypatch.undo()
    calls = []
    original = atlas_module._pair_chunk
    monkeypatch.setattr(atlas_module, "_pair_chunk", lambda *a, **k: calls.append(a[4]) or
                        original(*a, **k))  # fmt: skip
    resumed = landscape_atlas(model, sigma, starts, jobs_dir=tmp_path, workers=1, **opts)
    assert len(calls) == total - 2  # the two finished chunks were read back, not re-run
    _assert_same_atlas(resumed, clean)


def test_atlas_jobs_reject_an_unpicklable_model_before_any_work(tmp_path):
    class Unpicklable(ms.EmpiricalDiffusion):
        pass  # a local class: pickle cannot find it by name

    model = Unpicklable(torch.eye(2, dtype=F64))
    with pytest.raises(TypeError, match="picklable"):
        landscape_atlas(model, 0.3, torch.eye(2, dtype=F64), jobs_dir=tmp_path / "j")
    assert not (tmp_path / "j").exists()
    with pytest.raises(ValueError, match="executor"):
        landscape_atlas(model, 0.3, torch.eye(2, dtype=F64), jobs_dir=tmp_path, executor="dask")


def test_atlas_jobs_on_two_workers_equal_one_worker(tmp_path):
    model, sigma, starts = _atlas_case()
    opts = {"neighbors": 3, "chunk": 3}
    one = landscape_atlas(model, sigma, starts, jobs_dir=tmp_path / "one", workers=1, **opts)
    two = landscape_atlas(model, sigma, starts, jobs_dir=tmp_path / "two", workers=2, **opts)
    _assert_same_atlas(two, one)


@pytest.mark.slow
def test_atlas_jobs_on_ray_equal_one_worker(tmp_path):
    pytest.importorskip("ray")
    model, sigma, starts = _atlas_case()
    opts = {"neighbors": 3, "chunk": 3}
    one = landscape_atlas(model, sigma, starts, jobs_dir=tmp_path / "one", workers=1, **opts)
    ray = landscape_atlas(model, sigma, starts, jobs_dir=tmp_path / "ray", workers=2,
                          executor="ray", **opts)  # fmt: skip
    _assert_same_atlas(ray, one)


def test_neb_converges_at_d_3072_to_the_index_1_saddle_of_two_colour_patches():
    """Climbing-image NEB between two memories of 32×32 colour patches (d = 3072): the
    climbing image reaches a point of zero score, the same saddle as the string method, and
    its Hessian ``(I − Cov_w(y)/σ²)/σ²`` has exactly one negative eigenvalue — counted here
    from the K×K weighted Gram matrix of the patches (Cov_w has rank < K), not by Lanczos."""
    x = ms.datasets.load("patches", size=32, color=True, num_patches=24, data_seed=0).x.double()
    model, flat = ms.EmpiricalDiffusion(x), x.reshape(len(x), -1)
    gaps = torch.cdist(flat, flat).fill_diagonal_(float("inf"))
    i = int(gaps.min(1).values.argmin())
    j, sigma = int(gaps[i].argmin()), 0.4 * float(gaps.min())  # σ < D/2: two minima
    a, b = (ms.descend(model, x[[k]], sigma).x for k in (i, j))
    assert float((a - b).norm()) > 0.5 * float(gaps.min())
    neb = ms.minimum_energy_path(model, a, b, sigma, images=12, method="neb")
    string = ms.minimum_energy_path(model, a, b, sigma, images=12, method="string")
    assert bool(neb.converged.all()) and neb.saddle_index.tolist() == [1]
    saddle = neb.saddles.reshape(1, -1)
    assert float(model.score(neb.saddles, sigma).norm()) < 1e-6 * float(saddle.norm()) / sigma**2
    assert float(neb.barrier[0]) == pytest.approx(float(string.barrier[0]), rel=1e-8)
    assert float((neb.saddles - string.saddles).norm()) < 1e-6
    w = torch.softmax(-((flat - saddle) ** 2).sum(1) / (2 * sigma**2), 0)
    centred = (flat - w @ flat) * w.sqrt()[:, None]
    cov_eigs = torch.linalg.eigvalsh(centred @ centred.T)  # the nonzero eigenvalues of Cov_w
    assert int((cov_eigs > sigma**2).sum()) == 1  # one direction where 1 − λ/σ² < 0
