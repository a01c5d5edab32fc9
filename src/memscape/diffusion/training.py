"""Training a :class:`ScoreModel` with the denoising loss (Karras et al. 2022, eq. 8 and §5).

Each step draws a batch ``y`` (with replacement), noise levels ``σ ~ p_train`` and
noise ``n ~ N(0, σ²I)`` from one seeded generator and minimizes

    L = mean_b λ(σ_b) · mean_i (D_θ(y_b + n_b, σ_b) − y_b)_i²                (EDM eq. 8)

with Adam (linear learning-rate warm-up), gradient-norm clipping and an exponential
moving average (EMA) of the weights, ``θ_ema ← θ_ema + (1 − β_t)(θ − θ_ema)``,
``β_t = min(ema, (1 + t)/(10 + t))``. Sampling uses the EMA weights.

A run folder holds ``config.json`` (arguments, model, data fingerprint, versions,
seed, and ``linear_kernel``: whether float32 CPU linears ran through oneDNN,
:func:`memscape.onednn.preferred`), ``losses.csv`` (one row per ``log_every`` steps:
step, mean loss, lr), ``model.json`` + ``model.safetensors`` (EMA weights, :meth:`ScoreModel.load`) and
``checkpoint/`` (weights, EMA, Adam state, generator state; safetensors + JSON, never
pickle). Every file is written to a temporary name and moved into place; a checkpoint
folder is swapped in whole, and ``model.json`` is written last: its presence marks a
finished run. Resuming from a checkpoint gives bit-identical results to an uninterrupted
run on the CPU (on the step path and linear kernel that wrote it). The step runs eagerly
or compiled whole (``compile=``; :mod:`memscape.diffusion.fast_step`), with the same draws and the same
loss curve to float rounding. Every ``log_every`` steps the loop reports ``("train",
step, steps, rate)`` to :func:`memscape.progress.report` (a sweep shows it for the jobs
in flight). The checkpoint files are :mod:`memscape.diffusion.checkpoints`.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from memscape._validation import check_device, check_int, check_positive, check_tensor
from memscape.diffusion.checkpoints import _CKPT, read_checkpoint, write_checkpoint
from memscape.diffusion.fast_step import (
    FastStep,
    check_precision,
    edm_loss,
    use_compile,
    uses_onednn_step,
)
from memscape.diffusion.model import ScoreModel
from memscape.diffusion.preconditioning import measured_sigma_data
from memscape.io import (
    atomic_write,
    environment,
    read_json,
    write_json,
)
from memscape.onednn import onednn_linear
from memscape.progress import report

__all__ = ["TrainRun", "train"]


@dataclass
class TrainRun:
    """Result of :func:`train`.

    Attributes:
        model: the trained model, holding the EMA weights.
        losses: table with columns ``step``, ``loss`` (mean over the last ``log_every``
            steps), ``lr``.
        path: the run folder, or ``None`` when ``out`` was not given.
        config: what ``config.json`` holds.
        steps_per_second: training speed of this call (excluding checkpoint writes and
            compilation).
        compiled: whether the compiled step ran (``compile=``).
        compile_seconds: time spent compiling it (0 when eager).
    """

    model: ScoreModel
    losses: pd.DataFrame
    path: Path | None
    config: dict[str, Any] = field(default_factory=dict)
    steps_per_second: float = float("nan")
    compiled: bool = False
    compile_seconds: float = 0.0


def _data_tensor(data: Any) -> tuple[torch.Tensor, float | None, str]:
    x = getattr(data, "x", data)
    x = check_tensor(x, "data", min_ndim=2)
    if not x.is_floating_point():
        raise TypeError(f"data must be a floating-point tensor, got {x.dtype}")
    return x, getattr(data, "sigma_data", None), str(getattr(data, "name", "tensor"))


def _fingerprint(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def _check_hyper(**hyper: Any) -> dict[str, Any]:
    """Check the arguments of :func:`train` that ``config.json`` records; return them as a dict."""
    check_int(hyper["steps"], "steps")
    check_int(hyper["batch"], "batch")
    check_int(hyper["seed"], "seed", minimum=0)
    check_positive(hyper["lr"], "lr")
    check_int(hyper["warmup"], "warmup", minimum=0)
    check_int(hyper["log_every"], "log_every")
    ema = hyper["ema"]
    if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0 <= ema < 1:
        raise ValueError(f"ema must be a number in [0, 1), got {ema!r}")
    if hyper["grad_clip"] is not None:
        check_positive(hyper["grad_clip"], "grad_clip")
    return {"precision": "float32"} | hyper


def _check_run_args(
    checkpoint_every: int | None, threads: int | None, device: str | torch.device
) -> torch.device:
    """Check the arguments of :func:`train` that ``config.json`` does not record."""
    if checkpoint_every is not None:
        check_int(checkpoint_every, "checkpoint_every")
    if threads is not None:
        check_int(threads, "threads")
    return check_device(device)


def _check_out(out: str | Path | None, name: str) -> Path | None:
    path = None if out is None else Path(out)
    if path is not None and path.exists() and not path.is_dir():
        raise ValueError(f"{name} must be a folder, but {path} is a file")
    return path


def _run_config(
    model: ScoreModel,
    x: torch.Tensor,
    data_name: str,
    dev: torch.device,
    hyper: dict,
    fingerprint: str | None = None,
    onednn: bool = False,
) -> dict[str, Any]:
    """What a run folder's ``config.json`` holds (and what a resumed run must match, but
    for ``linear_kernel``: another kernel differs in rounding only, and is warned of)."""
    digest = _fingerprint(x) if fingerprint is None else fingerprint
    data_info = {"name": data_name, "shape": list(x.shape), "fingerprint": digest}
    return {
        "train": hyper,
        "model": model.config,
        "data": data_info,
        "device": str(dev),
        # the network's linears by oneDNN (memscape.onednn) or torch's default: sums differ
        # in rounding; "onednn" is the linears of ≥ 2²⁰ multiply-adds, the rest default
        "linear_kernel": "onednn" if onednn else "default",
        "versions": environment(),
    }


def train(
    model: ScoreModel,
    data: Any,
    *,
    steps: int,
    batch: int = 256,
    seed: int = 0,
    out: str | Path | None = None,
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
    compile: bool | str = "auto",
    precision: str = "float32",
) -> TrainRun:
    """Train ``model`` on ``data`` with the denoising loss of its preconditioning (EDM eq. 8).

    Args:
        model: a :class:`ScoreModel`; its σ_data is measured from ``data`` if unset.
        data: a :class:`memscape.datasets.Dataset` or a float tensor ``(N, *event_shape)``.
        steps: total optimizer steps (a resumed run continues up to ``steps``).
        batch: samples per step (drawn with replacement).
        seed: seeds the one generator behind batches, σ and noise.
        out: run folder; ``None`` keeps everything in memory.
        lr: Adam learning rate after warm-up.
        warmup: steps of linear warm-up.
        ema: EMA decay β in [0, 1).
        grad_clip: max gradient L2 norm (``None``: off).
        checkpoint_every: steps between checkpoints in ``out`` (``None``: only at the end).
        log_every: steps per loss-table row and progress-bar update.
        device: where to train (``"cpu"``, ``"cuda"``, …).
        progress: show a progress bar (step, loss, steps/s).
        resume: continue from ``out/checkpoint`` when present (its configuration must match).
        threads: torch intra-op CPU threads during training (restored afterwards); one
            thread is fastest for small MLPs on few cores. ``None`` keeps the current setting.
        compile: run the step compiled by ``torch.compile``
            (:class:`memscape.diffusion.fast_step.FastStep`: loss, gradient, clipping, Adam
            and EMA in one or two graphs over flat buffers) — ``True``, ``False`` (the eager
            step) or ``"auto"``: compiled for MLP score models with ``steps ≥``
            :data:`~memscape.diffusion.fast_step.COMPILE_AUTO_STEPS`. Same draws, same
            loss curve to float rounding (not bit for bit); checkpoints have one layout,
            and either path resumes the other's runs (bit-identically only on the path
            that wrote them: ``"auto"`` depends on the arguments only, so it does). A
            failed compilation (no C compiler, no triton) warns and trains eagerly. Not
            for energy models (``True`` raises; ``"auto"`` stays eager).
            On a CPU where :func:`memscape.onednn.preferred` (AMD with AVX-512) both
            steps run their float32 linears through oneDNN (``config.json``'s
            ``linear_kernel``). Measured (torch 2.13 CPU; MLP 256×4, batch 256; train
            and a plain eager PyTorch loop over MKL timed in turn in one process, best of
            5–10 rounds; ``benchmarks/bench_training.py``): on the project's 2-core AMD
            EPYC (AVX-512) on 1 thread, the compiled step 1.64× the loop on 2-D data and
            1.61× on 64-d data (1.30–1.35× before oneDNN), the eager step 1.11× (64-d);
            on a 2-core Intel Xeon (AVX-512, MKL kept), the compiled step 1.34–1.42× on 1
            thread and 1.64× on 2 threads (both sides), the eager step 0.96–0.99×.
            Profiled there, the 1-thread compiled step is ≈ 3.5 ms, 2.25 ms of it MKL's
            matrix products (16 a step, ~80 % of the core's AVX-512 peak at 256³) and
            0.85 ms inductor's fused elementwise kernels, against the loop's ≈ 5 ms.
            Compiling costs ≈ 40 s the first time on a machine, 3–10 s in a new process
            (inductor's on-disk cache) and nothing for later models of the same
            architecture and batch in one process; ``"auto"``'s threshold recovers the
            cached cost with margin (≈ 1.5 ms saved a step).
        precision: ``"float32"`` (the default: every operation in float32) or
            ``"bfloat16"``: mixed precision (:func:`~memscape.diffusion.fast_step.network_autocast`,
            on either step path): the network's matrix products in bfloat16 with float32
            accumulation, everything else — inputs, preconditioning, loss, gradients,
            Adam, EMA, the weights and every later use of the model — in float32. Fast
            only where the hardware multiplies bfloat16 natively (CPUs with AVX512-BF16
            or AMX, CUDA GPUs from Ampere on; elsewhere it is emulated and slower). Not
            for energy models. Recorded in ``config.json``: a run resumes only at its own
            precision. Measured (the AMD EPYC above, idle, MLP 256×4, batch 256, against
            the float32 plain loop, best of 5 interleaved rounds): compiled bfloat16 1.98×
            (2-D data) and 2.18× (64-d) on 1 thread, 2.35× on 2 threads (the Intel Xeon:
            2.09×, 2.18×, 1.94×); the loss curve of
            a seed follows float32's within 2 % (tested), and the memorized fractions of
            the flagship's quick setting (circle, K = 2, 16, 256; 2 seeds, 256 samples
            each) are float32's within binomial noise: 1.000/1.000, 0.383/0.398,
            0.477/0.480, 0.055/0.059, 0.059/0.062 (slow test at K = 2 and 256). The
            flagship trains in float32 unless run with ``--precision bfloat16``.

    Returns:
        :class:`TrainRun`. The model is left on ``device`` holding its EMA weights.
    """
    if not isinstance(model, ScoreModel):
        raise TypeError(f"model must be a memscape ScoreModel, got {type(model).__name__}")
    x, data_sigma, data_name = _data_tensor(data)
    if tuple(x.shape[1:]) != model.event_shape:
        raise ValueError(
            f"data samples have shape {tuple(x.shape[1:])} but the model expects "
            f"{model.event_shape}"
        )
    hyper = _check_hyper(
        steps=steps, batch=batch, seed=seed, lr=lr, warmup=warmup, ema=ema,
        grad_clip=grad_clip, log_every=log_every,
        precision=check_precision(precision, model.has_energy),
    )  # fmt: skip
    dev = _check_run_args(checkpoint_every, threads, device)
    compiling = use_compile(compile, model, steps)
    path = _check_out(out, "out")
    given_sigma_data = model.sigma_data
    if model.sigma_data is None:
        model.sigma_data = data_sigma if data_sigma is not None else measured_sigma_data(x)
    dtype = next(model.parameters()).dtype
    onednn = uses_onednn_step(dev, hyper["precision"], dtype)  # read once: record = behaviour
    config = _run_config(model, x, data_name, dev, hyper, onednn=onednn)
    ckpt = _find_checkpoint(path) if (path is not None and resume) else None
    if ckpt is not None:
        try:
            _check_resumable(ckpt, config, steps)
        except ValueError:
            model.sigma_data = given_sigma_data  # leave the model as it came
            raise

    trainer = _Trainer(model, x, dev, hyper, onednn)
    if ckpt is not None:
        trainer.restore(ckpt)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / "config.json", config)
    rate = trainer.run(steps, checkpoint_every, path, progress, threads, compiling)
    if path is not None:
        trainer.save_checkpoint(path)
    trainer.finish()
    losses = _save_run(path, model, trainer.rows)
    return TrainRun(model=model, losses=losses, path=path, config=config, steps_per_second=rate,
                    compiled=trainer.compiled, compile_seconds=trainer.compile_seconds)  # fmt: skip


def _save_run(path: Path | None, model: ScoreModel, rows: list) -> pd.DataFrame:
    """The loss table; with a run folder, the model (written last but for it) and losses.csv."""
    losses = pd.DataFrame(rows, columns=["step", "loss", "lr"])
    if path is not None:
        model.save(path)
        atomic_write(path / "losses.csv", lambda p: losses.to_csv(p, index=False))
    return losses


def _find_checkpoint(path: Path) -> Path | None:
    for name in (_CKPT, _CKPT + ".old"):
        if (path / name / "state.json").is_file():
            return path / name
    return None


def _check_resumable(ckpt: Path, config: dict[str, Any], steps: int) -> None:
    path = ckpt.parent
    old = read_json(path / "config.json", "resume")
    for key in ("model", "data"):
        if old.get(key) != config[key]:
            raise ValueError(
                f"cannot resume {path}: its {key} differs from this call "
                f"({old.get(key)} vs {config[key]}); pass resume=False or another out"
            )
    a = {"precision": "float32"} | {k: v for k, v in old.get("train", {}).items() if k != "steps"}
    b = {k: v for k, v in config["train"].items() if k != "steps"}
    if a != b:
        raise ValueError(f"cannot resume {path}: training arguments differ ({a} vs {b})")
    done = read_json(ckpt / "state.json", "resume")["step"]
    if done > steps:
        raise ValueError(f"steps={steps} is less than the {done} steps already in {path}")
    kernel = old.get("linear_kernel", "default")
    if kernel != config["linear_kernel"]:
        warnings.warn(
            f"resuming {path} with the {config['linear_kernel']} linear kernel where it "
            f"was trained with {kernel} (memscape.onednn, MEMSCAPE_ONEDNN): the rest of "
            "the run differs from an uninterrupted one in rounding, not bit for bit",
            RuntimeWarning,
            stacklevel=3,
        )


class _Trainer:
    """The training state (weights, EMA, Adam, generator, loss rows) and its loop."""

    fast: FastStep | None = None  # the compiled step, while it runs (a subclass keeps None)
    compiled, compile_seconds = False, 0.0
    onednn = False  # the linears through oneDNN (a subclass keeps the default kernel)

    def __init__(
        self, model: ScoreModel, x: torch.Tensor, dev: torch.device, hyper: dict, onednn: bool
    ) -> None:
        self.model = model.to(dev).train()
        self.h = hyper
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.param_data = [p.detach() for p in self.params]
        self.ema = [p.detach().clone() for p in self.params]
        self.opt = torch.optim.Adam(self.params, lr=hyper["lr"], foreach=True)
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(hyper["seed"])
        self.x = x.to(dev, self.param_data[0].dtype)
        self.buf = torch.zeros(hyper["log_every"], device=dev)
        self.rows: list[tuple[int, float, float]] = []
        self.step = 0
        self.onednn = onednn  # the linears through oneDNN (fast_step.uses_onednn_step)

    def _draw(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A step's draws from the generator, in order: batch ``y``, σ ~ p_train, noise."""
        m, g, b = self.model, self.gen, self.h["batch"]
        y = self.x[torch.randint(self.x.shape[0], (b,), generator=g, device=self.x.device)]
        sigma = m.precond.sample_sigma(b, generator=g, device=y.device, dtype=y.dtype)
        noise = torch.randn(y.shape, generator=g, device=y.device, dtype=y.dtype)
        return y, sigma, noise

    def _loss(self) -> torch.Tensor:
        with onednn_linear(self.onednn):  # where the machine rule says so: oneDNN's linears
            return edm_loss(self.model, *self._draw(), precision=self.h["precision"])

    def _clip(self, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(self.params, max_norm, foreach=True)

    def _record(self, n: int, lr: float) -> float:
        """Append the loss-table row of the last ``n`` steps; return the loss to show."""
        mean = float(self.buf[:n].mean())
        self.rows.append((self.step, mean, lr))
        return mean

    def run(
        self, steps: int, every: int | None, path: Any, progress: bool, threads: int | None,
        use_compile: bool = False,
    ) -> float:  # fmt: skip
        """Train up to ``steps`` on ``threads`` CPU threads (restored after); the steps/s."""
        old_threads = torch.get_num_threads()
        torch.set_num_threads(threads or old_threads)
        try:
            if use_compile and self.step < steps:  # seconds to a minute: say so first
                report("train", step=self.step, steps=steps, what="compiling")
                self._start_fast()
            return self._loop(steps, every, path, progress)
        finally:
            self._store_fast()
            self.fast = None
            torch.set_num_threads(old_threads)

    def _start_fast(self) -> None:
        """Build and compile the fast step from the current state (eager, warned, if it fails)."""
        t0 = time.perf_counter()
        fast = FastStep(self.model, self.params, self.h["grad_clip"], self.h["precision"],
                        split=self.onednn)  # fmt: skip
        fast.load(self.params, self.ema, self.opt)
        self.compiled = fast.try_compile(self.h["batch"])
        self.fast = fast if self.compiled else None
        self.compile_seconds = time.perf_counter() - t0

    def _store_fast(self) -> None:
        """Copy the fast step's state into the weights, EMA and Adam (the eager layout)."""
        if self.fast is not None:
            self.fast.store(self.params, self.ema, self.opt, self.step)
            for group in self.opt.param_groups:
                group["lr"] = self._lr(max(self.step - 1, 0))

    def _step(self, t: int, lr: float) -> torch.Tensor:
        """Optimizer step ``t`` (from 0) at learning rate ``lr``; the loss before it."""
        h = self.h
        decay = min(h["ema"], (1 + t) / (10 + t))
        if self.fast is not None:
            return self.fast(*self._draw(), lr=lr, adam_step=t + 1, ema_weight=1.0 - decay)
        for group in self.opt.param_groups:
            group["lr"] = lr
        loss = self._loss()  # a scalar, or one loss per stacked model (their sum is minimized)
        self.opt.zero_grad(set_to_none=True)
        loss.backward(torch.ones_like(loss))
        if h["grad_clip"] is not None:
            self._clip(h["grad_clip"])
        self.opt.step()
        torch._foreach_lerp_(self.ema, self.param_data, 1.0 - decay)
        return loss

    def _loop(self, steps: int, every: int | None, path: Any, progress: bool) -> float:
        from tqdm.auto import tqdm

        h = self.h
        bar = tqdm(total=steps, initial=self.step, disable=not progress, unit="step", desc="train")
        t0, start = time.perf_counter(), self.step
        while self.step < steps:
            t = self.step
            lr = self._lr(t)
            loss = self._step(t, lr)
            self.buf[t % h["log_every"]] = loss.detach()
            self.step = t + 1
            if self.step % h["log_every"] == 0 or self.step == steps:
                mean = self._record((self.step - 1) % h["log_every"] + 1, lr)
                bar.set_postfix(loss=f"{mean:.4g}", refresh=False)
                bar.update(self.step - bar.n)
                elapsed = time.perf_counter() - t0
                report("train", step=self.step, steps=steps,
                       rate=(self.step - start) / elapsed if elapsed > 0 else float("nan"))  # fmt: skip
            if path is not None and every is not None and self.step % every == 0:
                self.save_checkpoint(path)
        if self.step == steps > 0 and self._last_row_step() != steps:
            # a finished run resumed: its final partial row was dropped with the checkpoint's
            # rows; the restored loss buffer still holds those steps
            self._record((steps - 1) % h["log_every"] + 1, self._lr(steps - 1))
        bar.close()
        elapsed = time.perf_counter() - t0
        return (self.step - start) / elapsed if elapsed > 0 and self.step > start else float("nan")

    def _last_row_step(self) -> int | None:
        """The step of the loss table's last row (``None`` before the first)."""
        return int(self.rows[-1][0]) if self.rows else None

    def _lr(self, t: int) -> float:
        """The learning rate of step ``t`` (linear warm-up over ``warmup`` steps)."""
        h = self.h
        return h["lr"] * min(1.0, (t + 1) / h["warmup"]) if h["warmup"] else h["lr"]

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: Path) -> None:
        """Write ``path/checkpoint`` whole: into a temp folder, then swap it in."""
        self._store_fast()
        opt = self.opt.state_dict()
        write_checkpoint(
            path, self.model.state_dict(), self.ema, opt, self.gen.get_state(), self.buf,
            self.step, self.rows,
        )  # fmt: skip

    def restore(self, ckpt: Path) -> None:
        """Load weights, EMA, Adam state, generator state and loss rows from ``ckpt``."""
        c = read_checkpoint(ckpt, self.x.device, self.h["log_every"])
        self.model.load_state_dict(c.model)
        for i, e in enumerate(self.ema):
            e.copy_(c.ema[i])
        self.opt.load_state_dict({"state": c.adam, "param_groups": c.param_groups})
        self.gen.set_state(c.rng)
        self.buf.copy_(c.loss_buffer)
        self.rows, self.step = c.rows, c.step

    def finish(self) -> None:
        """Copy the EMA weights into the model and switch it to eval mode."""
        with torch.no_grad():
            for p, e in zip(self.param_data, self.ema, strict=True):
                p.copy_(e)
        self.model.eval()
