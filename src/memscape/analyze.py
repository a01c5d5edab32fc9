"""``memscape analyze``: the landscape analyses of any diffusion model, into a results folder.

For a model from :func:`memscape.adapters.load` (a diffusers or memscape folder, a
``module:function`` denoiser, or the exact model of a data set), resumable stages, each
a table of the folder read back when an earlier run wrote it:

* samples from one seeded generator (``samples.npy``);
* with a training set: d₁/d₂ and the Pham et al. classes of the samples
  (:func:`memscape.memorization.classify_samples`, held-out real samples as the
  off-data reference when given), with figures;
* the attractors reached from a few samples at each census σ
  (:func:`memscape.landscape.critical_points`), with their Morse indices;
* the asymmetry of the score's Jacobian (a conservative field has a symmetric one);
* the probability-flow log-likelihood of training and held-out (or generated) points.

The command-line parsing, validation and the folder's config live in :mod:`memscape.cli`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["analyze", "fingerprint"]


def fingerprint(obj: Any) -> str:
    """sha256 (16 hex digits) of a tensor, or of a model's weights (or stored data)."""
    import hashlib

    import torch

    net = obj if isinstance(obj, torch.nn.Module) else getattr(obj, "fn", None)
    if isinstance(obj, torch.Tensor):
        tensors = [obj]
    elif isinstance(net, torch.nn.Module):
        tensors = [t for _, t in sorted(net.state_dict().items())]
    else:
        found = (getattr(obj, a, None) for a in ("data", "memories", "patterns"))
        tensors = [t for t in found if isinstance(t, torch.Tensor)]
    digest = hashlib.sha256(b"" if tensors else repr(obj).encode())
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _float64(model: Any) -> Any:
    """A float64 copy of the model's network for the analyses (Newton tolerances, Hessians)."""
    import copy

    import torch

    if isinstance(model, torch.nn.Module):
        return copy.deepcopy(model).double()
    if isinstance(getattr(model, "fn", None), torch.nn.Module):
        other = copy.copy(model)
        other.fn = copy.deepcopy(model.fn).double()
        return other
    return model


class _Stages:
    """Resumable stages of ``memscape analyze``: a table an earlier run wrote is read back."""

    def __init__(self, folder: Any) -> None:
        self.folder = folder
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, compute: Any) -> Any:
        """The table ``name``: read if it exists, else ``compute()``d (timed) and written."""
        import time

        if (self.folder.path / f"{name}.parquet").is_file():
            return self.folder.read_table(name)
        start = time.perf_counter()
        table = compute()
        self.seconds[name] = time.perf_counter() - start
        self.folder.write_table(name, table)
        return table

    def timings(self) -> Any:
        """Write and return the ``timings`` table: seconds per stage, this run's over earlier ones."""
        import pandas as pd

        seconds = {}
        if (self.folder.path / "timings.parquet").is_file():
            seconds = dict(self.folder.read_table("timings").itertuples(index=False))
        seconds |= self.seconds
        table = pd.DataFrame({"stage": list(seconds), "seconds": list(seconds.values())})
        self.folder.write_table("timings", table)
        return table


def _draw(folder: Any, model: Any, kw: dict[str, Any], stage: _Stages) -> Any:
    """``--samples`` samples in batches of ``--batch`` from one seeded generator (``samples.npy``)."""
    import time

    import numpy as np
    import torch

    import memscape as ms
    from memscape.io import atomic_write

    path = folder.path / "samples.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path)).to(kw["device"])
    n, b, start = kw["samples"], kw["batch"], time.perf_counter()
    g = torch.Generator().manual_seed(kw["seed"])  # one stream over the batches
    options = {"sampler": kw["sampler"], "steps": kw["steps"], "generator": g}
    x = torch.cat([ms.sample(model, min(b, n - i), **options, device=kw["device"])
                   for i in range(0, n, b)])  # fmt: skip
    stage.seconds["sampling"] = time.perf_counter() - start
    arr = x.detach().cpu().numpy()
    atomic_write(path, lambda p: np.save(p, arr))
    return x


def _memorization(folder: Any, stage: _Stages, x: Any, train: Any, held: Any, dev: str) -> None:
    """Pham et al. classes and the d₁/d₂ ratio of the samples; histogram and nearest grids."""
    import pandas as pd

    import memscape as ms
    from memscape.memorization import CLASSES, plot_nearest

    table = stage("classes", lambda: ms.classify_samples(x, train, held_out=held, device=dev).table)
    fractions = pd.DataFrame(
        {"class": CLASSES, "fraction": [(table["class"] == c).mean() for c in CLASSES]}
    )
    folder.add_section(
        "Memorization",
        f"Classes of Pham et al. 2025 against {len(train)} training points (off-data reference: "
        f"{'held-out samples' if held is not None else 'leave-one-out'}); d₁/d₂ < 1/3 "
        f"(Yoon et al. 2023): {table['ratio_memorized'].mean():.1%} of the samples.",
        fractions,
    )
    with folder.figure("ratio", 1, 2, figsize=(9, 3.5)) as (_, (left, right)):
        left.hist(table["ratio"], bins=30, range=(0, 1))
        left.axvline(1 / 3, color="k", ls=":")
        left.set(xlabel="d₁/d₂", ylabel="samples", title="nearest / second-nearest training")
        right.bar(fractions["class"], fractions["fraction"])
        right.set(ylabel="fraction of the samples", title="classes")
    rows = min(6, len(x))
    with folder.figure("nearest", rows, 2, figsize=(3, 1.5 * rows)) as (_, axes):
        plot_nearest(x[:rows].cpu(), train.cpu(), axes)


def _attractors(folder: Any, stage: _Stages, net: Any, starts: Any, train: Any, kw: dict) -> None:
    """Census of critical points from the first samples at each σ; score-Jacobian asymmetry."""
    import pandas as pd
    import torch

    import memscape as ms

    g = torch.Generator().manual_seed(kw["seed"])
    options = {"starts": starts, "patterns": train, "max_seeds": len(starts), "n_newton_starts": 0,
               "max_steps": kw["max_steps"], "generator": g, "device": kw["device"]}  # fmt: skip
    table = stage("census", lambda: pd.concat(
        [ms.critical_points(net, s, **options).table.assign(sigma=s) for s in kw["sigma"]],
        ignore_index=True))  # fmt: skip
    found = table[table["converged"]].groupby(["sigma", "morse_index"]).size()
    folder.add_section(
        "Attractors near the samples",
        f"Critical points found from {len(starts)} samples at each σ (descent, Newton from pair "
        "midpoints); Morse index from the Hessian spectrum (Lanczos above d = 256).",
        found.rename("points").reset_index(),
    )
    from memscape.landscape.conservative import DEFAULT_PROBES, DENSE_JACOBIAN_MAX

    rows = [(i, s) for s in kw["sigma"] for i in range(len(starts))]
    g = torch.Generator().manual_seed(kw["seed"])
    table = stage("asymmetry", lambda: pd.DataFrame(
        [{"sample": i, "sigma": s,
          "asymmetry": float(ms.score_asymmetry(net, starts[i : i + 1], s, generator=g)[0])}
         for i, s in rows]))  # fmt: skip
    how = ("the dense Jacobian" if starts[0].numel() <= DENSE_JACOBIAN_MAX else
           f"{DEFAULT_PROBES} Gaussian probes (Jv, Jᵀv; relative error ≈ 1/√{DEFAULT_PROBES})")  # fmt: skip
    folder.add_section("Conservativeness", "Asymmetry ‖J − Jᵀ‖_F/‖J‖_F of the score Jacobian at "
                       f"the samples, from {how}: 0 for a gradient field.", table)  # fmt: skip


def _likelihood(folder: Any, stage: _Stages, net: Any, sets: dict[str, Any], kw: dict) -> None:
    """PF-ODE log-likelihood (Song et al. 2021, eq. 39) of training vs held-out points."""
    import math

    import pandas as pd

    import memscape as ms

    lo, hi = kw["likelihood_sigma"], getattr(net, "sigma_max", None) or 80.0
    d = next(iter(sets.values()))[0].numel()

    def compute() -> Any:
        parts = []
        for name, pts in sets.items():
            ll = ms.log_likelihood(
                net, pts.to(kw["device"]), lo, hi, method=kw["trace"], seed=kw["seed"]
            )
            parts.append(
                pd.DataFrame(
                    {"set": name, "index": range(len(pts)), "log_likelihood": ll.cpu().numpy()}
                )
            )
        table = pd.concat(parts, ignore_index=True)
        return table.assign(bits_per_dim=-table["log_likelihood"] / (d * math.log(2)))

    table = stage("likelihood", compute)
    mean = table.groupby("set", sort=False)[["log_likelihood", "bits_per_dim"]].mean()
    folder.add_section(f"Likelihood at σ = {lo:g}", f"log p_σ(x) by the probability-flow ODE from "
                       f"σ = {hi:g} ({kw['trace']} divergence), mean per set.", mean.reset_index())  # fmt: skip


def analyze(folder: Any, model: Any, train: Any, held: Any, kw: dict[str, Any]) -> None:
    """Every stage of ``memscape analyze`` into ``folder``, then the report.

    Args:
        folder: a :class:`memscape.runs.results.ResultsFolder` whose config is written.
        model: the model to analyze (sampled as given, analysed in float64).
        train: ``(K, *event_shape)`` training set, or ``None``.
        held: ``(H, *event_shape)`` held-out real samples, or ``None``.
        kw: the command's options (``samples``, ``batch``, ``sampler``, ``steps``,
            ``sigma`` (list), ``census``, ``max_steps``, ``likelihood``,
            ``likelihood_sigma``, ``trace``, ``seed``, ``device``, ``model``).
    """
    stage = _Stages(folder)
    x = _draw(folder, model, kw, stage).double()
    net = _float64(model)
    folder.add_section("Model", f"`{kw['model']}`: `{model!r}`; {len(x)} samples ({kw['sampler']}, "
                       f"{kw['steps']} steps) in `samples.npy`.")  # fmt: skip
    if train is not None:
        _memorization(folder, stage, x, train, held, kw["device"])
    if kw["census"]:
        _attractors(folder, stage, net, x[: kw["census"]], train, kw)
    sets = (
        {"train": train, "held_out": held} if held is not None else {"train": train, "generated": x}
    )
    sets = {k: v[: kw["likelihood"]] for k, v in sets.items() if v is not None}
    if kw["likelihood"]:
        _likelihood(folder, stage, net, sets, kw)
    timings = stage.timings()
    total = timings["seconds"].sum()
    drawn = timings["seconds"][timings["stage"] == "sampling"].sum()
    folder.add_section("Time", f"Seconds per stage (this run and earlier ones): sampling "
                       f"{drawn:.3g} s of {total:.3g} s ({drawn / total:.0%}).", timings)  # fmt: skip
    folder.write_report(f"memscape analyze {kw['model']}")
