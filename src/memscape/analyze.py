"""``memscape analyze``: the landscape analyses of any diffusion model, into a results folder.

For a model from :func:`memscape.adapters.load` (a diffusers or memscape folder, a
``module:function`` denoiser, or the exact model of a data set), resumable stages, each
a table of the folder read back when an earlier run wrote it:

* samples from one seeded generator (``samples.npy``);
* with a training set: d₁/d₂ and the Pham et al. classes of the samples
  (:func:`memscape.memorization.classify_samples`, held-out real samples as the
  off-data reference when given), with figures;
* the basin of a few samples under the reverse process: Pham et al. 2025's critical
  noise σ* (:func:`memscape.memorization.critical_sigma`);
* the attractors reached from a few samples at each census σ
  (:func:`memscape.landscape.critical_points`), with their Morse indices;
* the asymmetry of the score's Jacobian (a conservative field has a symmetric one);
* the probability-flow log-likelihood of training and held-out (or generated) points.

Samples are drawn in batches that fill a quarter of the device's free memory
(:func:`memscape.numeric.batch_size_for`) unless ``--batch`` is given. The command-line
parsing, validation and the folder's config live in :mod:`memscape.cli`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["analyze", "fingerprint", "probe_levels", "sample_batch"]


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


def _bytes_per_sample(model: Any, shape: tuple[int, ...], device: Any) -> int:
    """Bytes one sample needs while it is drawn (an upper estimate).

    The outputs of every module of the model's networks in one denoising of one sample
    (forward hooks; a block's output counts again in the block holding it), two rows of
    logits over the stored memories of an exact model, and 16 copies of the sample (the
    sampler's states).
    """
    import math

    import torch

    nets = {id(m): m for m in (model, getattr(model, "fn", None), getattr(model, "unet", None))
            if isinstance(m, torch.nn.Module)}  # fmt: skip
    data = getattr(model, "data", None)
    tensors: list[torch.Tensor] = [t for net in nets.values() for t in net.parameters()]
    tensors += [data] if isinstance(data, torch.Tensor) else []
    ref = tensors[0] if tensors else torch.zeros(())  # the sampler's dtype (the default: float32)
    dtype, size = ref.dtype, ref.element_size()
    seen = [0]

    def hook(_module: Any, _inputs: Any, out: Any) -> None:
        parts = out.values() if isinstance(out, dict) else out if isinstance(out, tuple) else [out]
        seen[0] += sum(t.numel() * t.element_size() for t in parts if isinstance(t, torch.Tensor))

    modules = {id(m): m for net in nets.values() for m in net.modules()}  # each module once
    handles = [m.register_forward_hook(hook) for m in modules.values()]
    sigma = getattr(model, "sigma_max", None) or 1.0
    try:
        with torch.no_grad():
            model.denoise(torch.zeros(1, *shape, device=device, dtype=dtype), sigma)
    finally:
        for h in handles:
            h.remove()
    memories = len(data) if isinstance(data, torch.Tensor) else 0
    return seen[0] + (2 * memories + 16 * math.prod(shape)) * size


def sample_batch(model: Any, kw: dict[str, Any]) -> int:
    """``kw["batch"]`` when it is a number, else (``"auto"``) a batch of ``kw["samples"]`` at
    most that fills a quarter of ``kw["device"]``'s free memory
    (:func:`memscape.numeric.batch_size_for` of :func:`_bytes_per_sample`)."""
    from memscape.numeric import batch_size_for

    if kw["batch"] != "auto":
        return int(kw["batch"])
    need = _bytes_per_sample(model, tuple(model.event_shape), kw["device"])
    return batch_size_for(need, kw["device"], maximum=kw["samples"])


def _number(word: str) -> float:
    """``float(word)``, NaN for a word that is no number."""
    try:
        return float(word)
    except ValueError:
        return float("nan")


def probe_levels(model: Any, text: str | None) -> list[float]:
    """The probe noise levels of ``--probe-levels`` (comma-separated), checked against MODEL.

    Each reverse run of the probe ends at ``min(σ_min, s/2)`` (σ_min: the model's, else
    0.002), so a level ``s`` must lie in ``[2 σ_min, σ_max]`` of a model that declares its
    range. Default (``None``): the levels of :data:`memscape.memorization.PROBE_LEVELS` in
    that range, else 10 geometric levels spanning it (a factor 400, as those, where one end
    is open).
    """
    import math

    import numpy as np

    from memscape.memorization import PROBE_LEVELS

    lo = 2 * (getattr(model, "sigma_min", None) or 0.0)
    hi = getattr(model, "sigma_max", None) or math.inf
    if text is None:
        inside = [s for s in PROBE_LEVELS if lo <= s <= hi]
        if inside:
            return inside
        a, b = lo or hi / 400, hi if math.isfinite(hi) else 400 * lo  # PROBE_LEVELS' span
        return np.geomspace(a, b, 10).tolist()
    values = [_number(w) for w in text.split(",")]
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"--probe-levels must be comma-separated noise levels > 0, got {text!r}")
    for s in values:
        if not lo * (1 - 1e-9) <= s <= hi:
            raise ValueError(
                f"--probe-levels {s:g} is outside [2 sigma_min, sigma_max] = [{lo:.6g}, "
                f"{hi:.6g}] of MODEL: each reverse run goes from s down to s/2 or sigma_min"
            )
    return sorted(values)


class _Stages:
    """Resumable stages of ``memscape analyze``: a table an earlier run wrote is read back.

    Each stage run is timed twice: wall seconds, and the process's CPU seconds (all its
    threads; on a machine shared with other work the wall time grows, the CPU time not).
    """

    def __init__(self, folder: Any) -> None:
        self.folder = folder
        self.times: dict[str, tuple[float, float]] = {}  #: stage → (wall, CPU) seconds
        self.batch: int | None = None  #: the sampler's batch when this run drew the samples

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``."""
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.times[name] = (time.perf_counter() - wall, time.process_time() - cpu)

    def __call__(self, name: str, compute: Any) -> Any:
        """The table ``name``: read if it exists, else ``compute()``d (timed) and written."""
        if (self.folder.path / f"{name}.parquet").is_file():
            return self.folder.read_table(name)
        with self.timed(name):
            table = compute()
        self.folder.write_table(name, table)
        return table

    def timings(self) -> Any:
        """Write and return the ``timings`` table (``stage``, ``seconds``, ``cpu_seconds``):
        this run's stages over the earlier runs' ones."""
        import pandas as pd

        times = {}
        if (self.folder.path / "timings.parquet").is_file():
            earlier = self.folder.read_table("timings")
            cpu = earlier.get("cpu_seconds", pd.Series(float("nan"), index=earlier.index))
            times = dict(zip(earlier["stage"], zip(earlier["seconds"], cpu, strict=True),
                             strict=True))  # fmt: skip
        times |= self.times
        seconds, cpu_seconds = zip(*times.values(), strict=True) if times else ((), ())
        table = pd.DataFrame({"stage": list(times), "seconds": seconds, "cpu_seconds": cpu_seconds})
        self.folder.write_table("timings", table)
        return table


def _draw(folder: Any, model: Any, kw: dict[str, Any], stage: _Stages) -> Any:
    """``--samples`` samples in batches of ``--batch`` from one seeded generator (``samples.npy``).

    The generator's stream runs over the batches, so the samples depend on the batch: a
    ``--batch auto`` that follows free memory may split them otherwise on another machine
    (give ``--batch`` to reproduce them bit for bit); the batch used is in the report.
    """
    import numpy as np
    import torch

    import memscape as ms
    from memscape.io import atomic_write

    path = folder.path / "samples.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path)).to(kw["device"])
    n = kw["samples"]
    b = stage.batch = min(n, sample_batch(model, kw))
    g = torch.Generator().manual_seed(kw["seed"])  # one stream over the batches
    options = {"sampler": kw["sampler"], "steps": kw["steps"], "generator": g}
    with stage.timed("sampling"):
        x = torch.cat([ms.sample(model, min(b, n - i), **options, device=kw["device"])
                       for i in range(0, n, b)])  # fmt: skip
    arr = x.detach().cpu().numpy()
    atomic_write(path, lambda p: np.save(p, arr))
    return x


def _memorization(folder: Any, stage: _Stages, x: Any, train: Any, held: Any, dev: str) -> Any:
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
        plot_nearest(x.cpu(), train.cpu(), axes, classes=table["class"])
    return table


def _basin(
    folder: Any, stage: _Stages, model: Any, x: Any, ref: Any, classes: Any, kw: dict
) -> None:
    """Pham et al. 2025's critical noise σ* of a few samples (``--probe`` per class).

    One :func:`memscape.memorization.critical_sigma` call for all of them: each level's
    reverse runs are one batch of (samples × ``--probe-trials``) states.
    """
    import numpy as np
    import torch

    from memscape.memorization import critical_sigma
    from memscape.memorization.neighbors import same_point_radius

    if classes is None:
        picks = {i: "—" for i in range(kw["probe"])}
    else:
        labels = classes["class"].to_numpy()
        picks = {int(i): labels[i] for c in dict.fromkeys(labels)
                 for i in np.flatnonzero(labels == c)[: kw["probe"]]}  # fmt: skip
    if kw["probe_delta"] is None and len(ref) < 2:
        raise ValueError("--probe-delta is needed: without --data its default is δ_m of the "
                         "samples, and they are all one point")  # fmt: skip
    delta = kw["probe_delta"] or same_point_radius(ref, device=kw["device"])
    levels, trials = kw["probe_levels"], kw["probe_trials"]
    low = getattr(model, "sigma_min", None) or 0.002
    rows = sorted(picks)

    def compute() -> Any:
        g = torch.Generator().manual_seed(kw["seed"])
        r = critical_sigma(model, x[rows], delta, n_trials=trials, levels=levels,
                           sampler_steps=kw["steps"], sigma_min=low, generator=g)  # fmt: skip
        table = r.table.rename(columns={"point": "sample"})
        table["sample"] = np.asarray(rows)[table["sample"]]
        return table.assign(**{"class": [picks[i] for i in table["sample"]]},
                            critical_sigma=np.repeat(r.radius, len(levels)))  # fmt: skip

    table = stage("basin", compute)
    per = table.groupby("sample").first()
    per["censored"] = per["critical_sigma"] >= max(levels) * (1 - 1e-9)
    per["below_range"] = per["critical_sigma"].isna()
    per["kept"] = per["critical_sigma"].where(~per["censored"])
    summary = per.groupby("class", sort=False).agg(
        probed=("kept", "size"), critical_sigma=("kept", "mean"),
        censored=("censored", "sum"), below_range=("below_range", "sum"))  # fmt: skip
    folder.add_section(
        "Basins of the samples",
        f"Critical noise σ* (Pham et al. 2025) of {len(per)} samples: each sample x plus s·z "
        f"at {len(levels)} levels s ∈ [{min(levels):.3g}, {max(levels):.3g}], {trials} draws "
        f"each, denoised by Heun ({kw['steps']} steps) from s; recovered within δ = "
        f"{delta:.3g}. σ* is the largest level up to which the recovery is ≥ 1/2; mean over "
        "the uncensored samples (censored: recovered up to the top level; below range: not "
        "even at the lowest).",
        summary.reset_index(),
    )
    with folder.figure("basin", 1, 1, figsize=(5, 3.5)) as (_, ax):
        for (i, c), part in table.groupby(["sample", "class"], sort=False):
            ax.plot(part["probe_sigma"], part["recovery"], marker=".", label=f"{i} ({c})")
        ax.axhline(0.5, color="k", ls=":")
        ax.set(xscale="log", xlabel="probe noise s", ylabel="recovered fraction",
               title="basins of the samples")  # fmt: skip
        ax.legend(fontsize="x-small")


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
        kw: the command's options (``samples``, ``batch`` (an int or ``"auto"``),
            ``sampler``, ``steps``, ``sigma`` (list), ``probe``, ``probe_trials``,
            ``probe_levels`` (list), ``probe_delta`` (``None``: δ_m of the training set,
            else of the samples), ``census``, ``max_steps``, ``likelihood``,
            ``likelihood_sigma``, ``trace``, ``seed``, ``device``, ``model``).
    """
    stage = _Stages(folder)
    x = _draw(folder, model, kw, stage).double()
    net = _float64(model)
    how = f"drawn in batches of {stage.batch}" if stage.batch else "read back"
    folder.add_section("Model", f"`{kw['model']}`: `{model!r}`; {len(x)} samples ({kw['sampler']}, "
                       f"{kw['steps']} steps) in `samples.npy`, {how}.")  # fmt: skip
    classes = None
    if train is not None:
        classes = _memorization(folder, stage, x, train, held, kw["device"])
    if kw["probe"]:
        ref = train if train is not None else x.flatten(1).unique(dim=0)  # distinct samples
        _basin(folder, stage, model, x, ref, classes, kw)  # reverse runs: as sampled
    if kw["census"]:
        _attractors(folder, stage, net, x[: kw["census"]], train, kw)
    sets = (
        {"train": train, "held_out": held} if held is not None else {"train": train, "generated": x}
    )
    sets = {k: v[: kw["likelihood"]] for k, v in sets.items() if v is not None}
    if kw["likelihood"]:
        _likelihood(folder, stage, net, sets, kw)
    timings = stage.timings()
    share = [timings[c][timings["stage"] == "sampling"].sum() / timings[c].sum()
             for c in ("seconds", "cpu_seconds")]  # fmt: skip
    folder.add_section("Time", f"Wall and CPU seconds per stage (this run and earlier ones): "
                       f"sampling {share[0]:.0%} of the wall time, {share[1]:.0%} of the CPU "
                       "time.", timings)  # fmt: skip
    folder.write_report(f"memscape analyze {kw['model']}")
