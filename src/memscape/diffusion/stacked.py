"""Training M models of one architecture at once: stacked weights under ``torch.func.vmap``.

:func:`train_stacked` runs :func:`memscape.train` for M independent :class:`ScoreModel` s
in one loop. Their weights are stacked along a leading model axis
(``torch.func.stack_module_state``) and the network runs once per step on all of them,
``vmap(functional_call(F, θ_m, (c_in x_m, c_noise_m)))`` over m, so a GPU sees one
batched matrix product per layer instead of M small ones (the model-ensembling recipe of
the ``torch.func`` documentation). Everything else is :func:`memscape.train`'s step for
each model m, elementwise over the stack:

* the draws: model m has its own generator seeded with ``seed[m]`` and draws, in
  :func:`memscape.train`'s order, a batch from its own training set (sets of different
  sizes K_m are allowed), its noise levels σ ~ p_train and its noise;
* the loss: EDM eq. 8 with model m's σ_data (Karras et al. 2022, eq. 7–8, Table 1);
  the optimized scalar is Σ_m L_m, whose gradient in θ_m is ∇L_m;
* gradient-norm clipping per model (the norm of model m's gradient alone);
* Adam (Kingma & Ba 2015, Algorithm 1) and the EMA are elementwise, so one foreach Adam
  and one EMA over the stacked tensors are M independent ones (all share the step count
  and the learning-rate schedule);
* ``precision="bfloat16"``: the stacked network under ``torch.autocast``, as in
  :func:`memscape.train`. Under ``vmap`` every matrix product runs in bfloat16 but the
  bias add promotes back to float32, so the elementwise work between layers stays float32
  (PyTorch issue #192617; :func:`memscape.train` runs it in bfloat16): the same products,
  rounded a little less.

With the same seeds each model ends where :func:`memscape.train` alone would take it, up
to floating-point rounding (batched matrix products sum in another order). Run folders
(``out``) and checkpoints have :func:`memscape.train`'s format, one folder per model: a run
interrupted here resumes here bit-identically on the CPU, or under :func:`memscape.train`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from memscape._validation import check_int
from memscape.diffusion.checkpoints import read_checkpoint, write_checkpoint
from memscape.diffusion.fast_step import check_precision, network_autocast
from memscape.diffusion.model import ScoreModel
from memscape.diffusion.networks import MLP
from memscape.diffusion.preconditioning import measured_sigma_data
from memscape.diffusion.training import (
    TrainRun,
    _check_hyper,
    _check_out,
    _check_resumable,
    _check_run_args,
    _data_tensor,
    _find_checkpoint,
    _fingerprint,
    _run_config,
    _save_run,
    _Trainer,
)
from memscape.io import read_json, write_json

__all__ = ["train_stacked"]


def train_stacked(
    models: Sequence[ScoreModel],
    data: Any,
    *,
    steps: int,
    batch: int = 256,
    seed: int | Sequence[int] = 0,
    out: Sequence[str | Path] | None = None,
    lr: float = 1e-3,
    warmup: int = 200,
    ema: float = 0.999,
    grad_clip: float | None = 1.0,
    checkpoint_every: int | None = None,
    log_every: int = 50,
    device: str | torch.device = "cpu",
    progress: bool = True,
    resume: bool = True,
    threads: int | None = None,
    precision: str = "float32",
) -> list[TrainRun]:
    """Train M models of one architecture at once, each as :func:`memscape.train` would.

    Args:
        models: M ≥ 1 distinct :class:`ScoreModel` s with the same network class, parameter
            names and shapes, dtype, preconditioning, energy form and event shape (e.g.
            ``ScoreModel.mlp(d, seed=s)`` for several s); each one's σ_data is measured
            from its own data if unset.
        data: one training set per model (a list or tuple of M datasets or float tensors
            ``(K_m, *event_shape)``; K_m may differ), or one dataset for all.
        steps: optimizer steps of every model (a resumed run continues up to ``steps``).
        batch: samples per step and model, drawn with replacement from its own data.
        seed: one seed per model (a sequence of M ints), or one int for all; model m's
            draws are those of ``train(models[m], data[m], seed=seed[m])``.
        out: one run folder per model (:func:`memscape.train`'s layout), or ``None``.
        lr: Adam learning rate after warm-up (as in :func:`memscape.train`, for all models).
        warmup: steps of linear warm-up.
        ema: EMA decay β in [0, 1).
        grad_clip: max L2 norm of each model's gradient (``None``: off).
        checkpoint_every: steps between checkpoints in each ``out`` folder.
        log_every: steps per loss-table row and progress-bar update.
        device: where to train (``"cpu"``, ``"cuda"``, …).
        progress: show a progress bar (step, mean loss over the models, steps/s).
        resume: continue from the checkpoints in ``out`` when present (all at one step).
        threads: torch intra-op CPU threads during training (restored afterwards).
        precision: ``"float32"`` or ``"bfloat16"`` mixed precision, as in :func:`memscape.train`
            (the stacked network's matrix products in bfloat16; see above; MLP networks
            only, not energy models); recorded in each ``config.json``, and a run resumes
            only at its own precision.

    Returns:
        One :class:`TrainRun` per model, in order; its ``steps_per_second`` is the rate of
        the stacked loop (each model advances that many steps per second). Every model is
        left on ``device`` holding its EMA weights, in eval mode.

    Raises:
        ValueError, TypeError: before any work or file write, naming the argument.
    """
    models = _check_models(models)
    n = len(models)
    xs, names = _check_data(data, models)
    seeds = _per_model(seed, n, "seed")
    for i, s in enumerate(seeds):
        check_int(s, f"seed[{i}]" if _is_list(seed) else "seed", minimum=0)
    hyper = _check_hyper(
        steps=steps, batch=batch, seed=seeds[0], lr=lr, warmup=warmup, ema=ema,
        grad_clip=grad_clip, log_every=log_every,
        precision=check_precision(precision, models[0].has_energy),
    )  # fmt: skip
    if precision == "bfloat16" and not isinstance(models[0].network, MLP):
        raise ValueError(
            "precision='bfloat16' in train_stacked supports MLP networks only (under vmap, "
            "autocast leaves convolution inputs in mixed dtypes); pass precision='float32' "
            "or train each model with memscape.train"
        )
    dev = _check_run_args(checkpoint_every, threads, device)
    paths = _check_paths(out, n)
    given = [m.sigma_data for m in models]
    measured = [
        g if g is not None else (sd if sd is not None else measured_sigma_data(x))
        for g, x, (_, sd) in zip(given, xs, names, strict=True)
    ]  # every σ_data (and its check) before any model changes
    for m, sd in zip(models, measured, strict=True):
        m.sigma_data = sd
    digests: dict[int, str] = {}  # one hash per distinct training set
    for x in xs:
        if id(x) not in digests:
            digests[id(x)] = _fingerprint(x)
    configs = [
        _run_config(m, x, name, dev, {**hyper, "seed": s}, digests[id(x)])
        for m, x, (name, _), s in zip(models, xs, names, seeds, strict=True)
    ]
    try:
        ckpts = _check_checkpoints(paths, configs, steps) if resume else [None] * n
    except ValueError:
        for m, sd in zip(models, given, strict=True):
            m.sigma_data = sd  # leave the models as they came
        raise

    trainer = _StackedTrainer(models, xs, dev, hyper, seeds)
    if ckpts[0] is not None:
        trainer.restore(ckpts)  # type: ignore[arg-type]
    for p, cfg in zip(paths, configs, strict=True):
        if p is not None:
            p.mkdir(parents=True, exist_ok=True)
            write_json(p / "config.json", cfg)
    rate = trainer.run(steps, checkpoint_every, paths if any(paths) else None, progress, threads)
    trainer.save_checkpoint(paths)
    trainer.finish()
    runs = []
    for i, (m, p, cfg) in enumerate(zip(models, paths, configs, strict=True)):
        losses = _save_run(p, m, trainer.model_rows[i])
        runs.append(TrainRun(model=m, losses=losses, path=p, config=cfg, steps_per_second=rate))
    return runs


# ---------------------------------------------------------------- argument checks
def _is_list(v: Any) -> bool:
    return isinstance(v, (list, tuple))


def _check_models(models: Any) -> list[ScoreModel]:
    if not _is_list(models):
        raise TypeError(
            f"models must be a list or tuple of ScoreModels, got {type(models).__name__}"
        )
    if not models:
        raise ValueError("models must hold at least one ScoreModel, got 0")
    for i, m in enumerate(models):
        if not isinstance(m, ScoreModel):
            raise TypeError(f"models[{i}] must be a memscape ScoreModel, got {type(m).__name__}")
    seen: dict[int, int] = {}
    first = _signature(models[0])
    for i, m in enumerate(models):
        for p in m.parameters():
            if id(p) in seen:
                raise ValueError(f"models[{i}] shares its weights with models[{seen[id(p)]}]")
            seen[id(p)] = i
        if sum(1 for _ in m.parameters()) != sum(1 for _ in m.network.parameters()):
            raise ValueError(f"models[{i}] has parameters outside its network")
        sig = _signature(m)
        for key, a in first.items():
            if sig[key] != a:
                raise ValueError(
                    f"models[{i}] differs from models[0] in its {key} ({sig[key]} vs {a}): "
                    "stacked models need one architecture"
                )
    return list(models)


def _signature(m: ScoreModel) -> dict[str, Any]:
    net = m.network
    return {
        "network class": type(net).__name__,
        "parameters": [
            (k, tuple(p.shape), p.dtype, p.requires_grad) for k, p in net.named_parameters()
        ],
        "buffers": [(k, tuple(b.shape), b.dtype) for k, b in net.named_buffers()],
        "preconditioning": m.precond,
        "energy form": m.has_energy,
        "event shape": m.event_shape,
    }


def _check_data(data: Any, models: list[ScoreModel]) -> tuple[list[torch.Tensor], list]:
    n = len(models)
    if _is_list(data) and len(data) != n:
        raise ValueError(f"data must hold one training set per model ({n}), got {len(data)}")
    items = list(data) if _is_list(data) else [data] * n
    xs, names = [], []
    seen: dict[int, tuple[torch.Tensor, float | None, str]] = {}  # a shared set is read once
    for i, (m, d) in enumerate(zip(models, items, strict=True)):
        if id(d) not in seen:
            try:
                seen[id(d)] = _data_tensor(d)
            except (TypeError, ValueError) as err:
                raise type(err)(f"data[{i}]: {err}") from None
        x, sd, name = seen[id(d)]
        if tuple(x.shape[1:]) != m.event_shape:
            raise ValueError(
                f"data[{i}] samples have shape {tuple(x.shape[1:])} but the models expect "
                f"{m.event_shape}"
            )
        xs.append(x)
        names.append((name, sd))
    return xs, names


def _per_model(value: Any, n: int, name: str) -> list[Any]:
    if not _is_list(value):
        return [value] * n
    if len(value) != n:
        raise ValueError(f"{name} must hold one value per model ({n}), got {len(value)}")
    return list(value)


def _check_paths(out: Any, n: int) -> list[Path | None]:
    if out is None:
        return [None] * n
    if not _is_list(out):
        raise TypeError(
            f"out must be a list of {n} run folders (one per model), got {type(out).__name__}"
        )
    paths = [_check_out(p, f"out[{i}]") for i, p in enumerate(_per_model(out, n, "out"))]
    resolved = [p.resolve() for p in paths if p is not None]
    if len(set(resolved)) != len(resolved):
        raise ValueError("out must name a different folder for each model")
    return paths


def _check_checkpoints(paths: list[Path | None], configs: list[dict], steps: int) -> list:
    """Each model's checkpoint (all or none, all at one step), after checking it matches."""
    ckpts = [None if p is None else _find_checkpoint(p) for p in paths]
    have = [c is not None for c in ckpts]
    if any(have) and not all(have):
        raise ValueError(
            f"out[{have.index(True)}] holds a checkpoint but out[{have.index(False)}] does not: "
            "stacked models resume together (pass resume=False, or resume each with train)"
        )
    for c, cfg in zip(ckpts, configs, strict=True):
        if c is not None:
            _check_resumable(c, cfg, steps)
    done = {_checkpoint_step(c) for c in ckpts if c is not None}
    if len(done) > 1:
        raise ValueError(
            f"the checkpoints in out are at different steps ({sorted(done)}): stacked models "
            "resume together (resume each with train, or pass resume=False)"
        )
    return ckpts


def _checkpoint_step(ckpt: Path) -> int:
    """The step a checkpoint folder holds."""
    return int(read_json(ckpt / "state.json", "resume")["step"])


# ---------------------------------------------------------------- the stacked loop
class _StackedTrainer(_Trainer):
    """Stacked weights, EMA, one Adam, M generators and loss rows; the loop of :func:`train`."""

    def __init__(
        self, models: list[ScoreModel], xs: list[torch.Tensor], dev: torch.device, hyper: dict,
        seeds: list[int],
    ) -> None:  # fmt: skip
        self.models = [m.to(dev).train() for m in models]
        self.h, self.m0 = hyper, models[0]
        params, self.buffers = torch.func.stack_module_state([m.network for m in models])
        self.names = [k for k, p in params.items() if p.requires_grad]
        self.frozen = {k: p for k, p in params.items() if not p.requires_grad}
        self.params = [params[k] for k in self.names]
        self.param_data = [p.detach() for p in self.params]
        self.ema = [p.detach().clone() for p in self.params]
        self.opt = torch.optim.Adam(self.params, lr=hyper["lr"], foreach=True)
        self.gens = [torch.Generator(device=dev).manual_seed(s) for s in seeds]
        dtype = next(models[0].network.parameters()).dtype
        self.dtype = dtype
        moved: dict[int, torch.Tensor] = {}  # a training set shared by models moves once
        for x in xs:
            moved.setdefault(id(x), x.to(dev, dtype))
        self.xs = [moved[id(x)] for x in xs]
        self.sigma_data = torch.tensor([m.sigma_data for m in models], device=dev, dtype=dtype)
        self.buf = torch.zeros(hyper["log_every"], len(models), device=dev)
        self.model_rows: list[list[tuple[int, float, float]]] = [[] for _ in models]
        self.step = 0
        base = copy.deepcopy(models[0].network).to("meta")

        def net(p: dict, b: dict, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(base, (p, b), (x, c))

        self.net = torch.func.vmap(net)

    def _stacked(self) -> dict[str, torch.Tensor]:
        """The stacked parameters by name (trainable and frozen), ``(M, *shape)`` each."""
        return {**dict(zip(self.names, self.params, strict=True)), **self.frozen}

    def _bcast(self, v: torch.Tensor) -> torch.Tensor:
        """``(M, B)`` to ``(M, B, 1, …)`` against ``(M, B, *event_shape)``."""
        return v.reshape(*v.shape, *([1] * len(self.m0.event_shape)))

    def _f(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``c_skip x + c_out F_θm(c_in x, c_noise)`` (EDM eq. 7) for every model m at once."""
        sd = self.sigma_data[:, None]
        c_skip, c_out, c_in, c_noise = self.m0.precond.coefficients(sigma, sd)  # type: ignore[arg-type]
        with network_autocast(x.device, self.h["precision"]):
            out = self.net(
                self._stacked(),
                self.buffers,
                (self._bcast(c_in) * x).to(self.dtype),
                c_noise.to(self.dtype),
            )
        return torch.addcmul(self._bcast(c_skip) * x, self._bcast(c_out), out.to(x.dtype))

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``D_θm`` of :meth:`ScoreModel.denoise` for each model (energy: ``x − σ²∇ₓE``)."""
        if not self.m0.has_energy:
            return self._f(x, sigma)
        xg = x.detach().requires_grad_(True)
        r = (xg - self._f(xg, sigma)).reshape(*sigma.shape, -1)
        energy = r.pow(2).sum(-1) / (2 * sigma**2)
        (g,) = torch.autograd.grad(energy.sum(), xg, create_graph=True)
        return x - self._bcast(sigma) ** 2 * g

    def _loss(self) -> torch.Tensor:
        """EDM eq. 8 per model, ``(M,)``, from each model's own draws (train's order)."""
        b, pre = self.h["batch"], self.m0.precond
        ys, sigmas, noises = [], [], []
        for x, g in zip(self.xs, self.gens, strict=True):
            y = x[torch.randint(x.shape[0], (b,), generator=g, device=x.device)]
            ys.append(y)
            sigmas.append(pre.sample_sigma(b, generator=g, device=y.device, dtype=y.dtype))
            noises.append(torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype))
        y, sigma, noise = torch.stack(ys), torch.stack(sigmas), torch.stack(noises)
        d = self._denoise(y + self._bcast(sigma) * noise, sigma)
        w = pre.loss_weight(sigma, self.sigma_data[:, None])  # type: ignore[arg-type]
        return (w * (d - y).pow(2).reshape(*sigma.shape, -1).mean(-1)).mean(-1)

    def _clip(self, max_norm: float) -> None:
        """``clip_grad_norm_`` per model: scale model m's gradient by min(1, c/(‖g_m‖ + 1e-6))."""
        grads = [p.grad for p in self.params if p.grad is not None]
        n = len(self.models)
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(n, -1), dim=1) for g in grads])
        coef = (max_norm / (torch.linalg.vector_norm(norms, dim=0) + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.reshape(n, *([1] * (g.ndim - 1))))

    def _last_row_step(self) -> int | None:
        rows = self.model_rows[0]
        return int(rows[-1][0]) if rows else None

    def _record(self, n: int, lr: float) -> float:
        """Append each model's loss-table row of the last ``n`` steps; their mean, to show."""
        means = self.buf[:n].mean(0).tolist()
        for rows, mean in zip(self.model_rows, means, strict=True):
            rows.append((self.step, mean, lr))
        return sum(means) / len(means)

    # ------------------------------------------------------------ checkpoints
    def _state_of(self, i: int) -> dict[str, torch.Tensor]:
        """Model i's ``state_dict`` (its keys, the current stacked values)."""
        stacked = {**self._stacked(), **self.buffers}
        keys = self.models[i].state_dict().keys()
        return {k: stacked[k.removeprefix("network.")][i].detach() for k in keys}

    def save_checkpoint(self, paths: Any) -> None:  # one run folder (or None) per model
        """One :func:`memscape.train` checkpoint per model with a run folder."""
        opt = self.opt.state_dict()
        for i, path in enumerate(paths):
            if path is None:
                continue
            state = {
                j: {k: v if k == "step" else v[i] for k, v in st.items()}
                for j, st in opt["state"].items()
            }
            write_checkpoint(
                path, self._state_of(i), [e[i] for e in self.ema],
                {"state": state, "param_groups": opt["param_groups"]}, self.gens[i].get_state(),
                self.buf[:, i], self.step, self.model_rows[i],
            )  # fmt: skip

    def restore(self, ckpts: Any) -> None:  # one checkpoint folder per model
        """Load every model's weights, EMA, Adam moments, generator and rows (one step)."""
        dev = self.xs[0].device
        cs = [read_checkpoint(c, dev, self.h["log_every"]) for c in ckpts]
        stacked = {**self._stacked(), **self.buffers}
        with torch.no_grad():
            for i, c in enumerate(cs):
                for k, v in c.model.items():
                    stacked[k.removeprefix("network.")][i].copy_(v)
                for e, v in zip(self.ema, c.ema, strict=True):
                    e[i].copy_(v)
                self.gens[i].set_state(c.rng)
                self.buf[:, i].copy_(c.loss_buffer)
        adam = {
            j: {
                k: v if k == "step" else torch.stack([c.adam[j][k] for c in cs])
                for k, v in st.items()
            }
            for j, st in cs[0].adam.items()
        }
        self.opt.load_state_dict({"state": adam, "param_groups": cs[0].param_groups})
        self.model_rows = [list(c.rows) for c in cs]
        self.step = cs[0].step

    def finish(self) -> None:
        """Copy each model's EMA weights into it and switch it to eval mode."""
        with torch.no_grad():
            for i, m in enumerate(self.models):
                own = dict(m.network.named_parameters())
                for k, e in zip(self.names, self.ema, strict=True):
                    own[k].copy_(e[i])
                m.eval()
