"""Models trained with 🤗 diffusers as memscape models, in VE σ-space.

diffusers is an optional extra (``pip install "memscape[diffusers]"``); it is imported
only by :func:`load_diffusers` (and by nothing at ``import memscape``).

**VP schedulers** (DDPM, DDIM, PNDM, Euler, DPM-Solver, … — every scheduler with
``alphas_cumprod``): the training process is ``x_t = √ᾱ_t y + √(1 − ᾱ_t) ε``. Dividing by
``√ᾱ_t`` gives VE σ-space, ``x = x_t/√ᾱ_t = y + σ_t ε`` with

    σ_t = √((1 − ᾱ_t)/ᾱ_t),        x_t = x/√(1 + σ²)          (Karras et al. 2022, §C.2;
                                                               Song et al. 2021, eq. 29)

and the denoiser from each ``prediction_type`` of the network's output ``F(x_t, t)``
(Ho et al. 2020, eq. 15; Salimans & Ho 2022, "Progressive distillation", §4, eq. 9):

    epsilon        D = x − σ F
    v_prediction   D = x/(1 + σ²) − σ/√(1 + σ²) F
    sample         D = F

A σ between the training steps gets a fractional timestep by linear interpolation of
ln σ over the discrete schedule ``σ_0 < … < σ_{T−1}`` (the convention of k-diffusion's
discrete-schedule wrappers); ``quantize=True`` rounds it to the nearest training step
(needed by networks with a learned, table-lookup time embedding). The valid range is
``[σ_0, σ_{T−1}]``; a zero-terminal-SNR step (ᾱ = 0, σ = ∞) is left out of it.

**EDM schedulers** (``EDMEulerScheduler``, ``EDMDPMSolverMultistepScheduler``): the network
is preconditioned as in EDM (Karras et al. 2022, eq. 7 and Table 1),
``D = c_skip x + c_out F(c_in x, ¼ ln σ)``, with ``c_out`` negated for
``prediction_type = "v_prediction"`` (diffusers' convention); valid σ ∈
``[sigma_min, sigma_max]`` of the scheduler's config.

States are in the model's data space (for most diffusers image models, pixels scaled to
[−1, 1]). The scheduler's sampling heuristics (``clip_sample``, ``thresholding``) are not
part of the denoiser and are not applied.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from memscape._validation import check_device, check_dtype, check_int
from memscape.adapters.base import AdaptedModel, _bcast
from memscape.diffusion.preconditioning import EDMPrecond

__all__ = [
    "PREDICTION_TYPES",
    "DiffusersModel",
    "diffusers_layout",
    "from_diffusers",
    "load_diffusers",
]

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
"""The ``prediction_type`` values a VP scheduler may have (EDM schedulers: the first two)."""

_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def _diffusers() -> Any:
    try:
        import diffusers
    except ImportError:
        raise ImportError(
            "loading a diffusers model needs the diffusers package: "
            'pip install "memscape[diffusers]" (or pip install diffusers)'
        ) from None
    return diffusers


def _math_attention() -> Any:
    """Scaled dot-product attention by its math kernel, whose backward is differentiable.

    The fused kernels (flash attention on the CPU, among others) have no double
    backward, which Hessian-vector products (Lanczos) of a score-only model need.
    """
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3: the default kernel choice
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


def _scheduler_kind(scheduler: Any) -> str:
    """``"vp"`` (has ``alphas_cumprod``) or ``"edm"``; raise for anything else."""
    if not hasattr(scheduler, "config"):
        raise TypeError(
            f"scheduler must be a diffusers scheduler (with .config), got {type(scheduler).__name__}"
        )
    config = scheduler.config
    if getattr(scheduler, "alphas_cumprod", None) is not None:
        kind = "vp"
    elif hasattr(scheduler, "precondition_outputs") and "sigma_data" in config:
        kind = "edm"
    else:
        raise ValueError(
            f"scheduler {type(scheduler).__name__} is not supported: memscape adapts VP schedulers "
            "(with alphas_cumprod: DDPM, DDIM, PNDM, Euler, DPM-Solver, …) and EDM schedulers "
            "(EDMEulerScheduler); flow-matching and score-SDE VE schedulers are not adapted"
        )
    allowed = PREDICTION_TYPES if kind == "vp" else PREDICTION_TYPES[:2]
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in allowed:
        raise ValueError(
            f"unknown prediction_type {prediction!r} in the {type(scheduler).__name__} config; "
            f"expected one of {', '.join(allowed)}"
        )
    return kind


def _vp_sigmas(alphas_cumprod: Any) -> torch.Tensor:
    """``σ_t = √((1 − ᾱ_t)/ᾱ_t)`` (float64), the longest increasing finite prefix."""
    a = torch.as_tensor(alphas_cumprod).detach().to("cpu", torch.float64)
    if a.ndim != 1 or a.numel() < 2:
        raise ValueError(f"scheduler alphas_cumprod must hold >= 2 values, got {tuple(a.shape)}")
    sigma = torch.sqrt((1 - a) / a)
    ok = torch.isfinite(sigma) & (sigma > 0)
    ok[1:] &= sigma[1:] > sigma[:-1]
    n = int(ok.long().cumprod(0).sum())  # length of the valid prefix
    if n < 2:
        raise ValueError(
            "scheduler alphas_cumprod must decrease from just below 1: its σ_t = √((1 − ᾱ)/ᾱ) "
            f"is not an increasing schedule (first values {sigma[:3].tolist()})"
        )
    return sigma[:n]


class DiffusersModel(nn.Module, AdaptedModel):
    """A diffusers UNet (or any diffusers model) and its scheduler as a memscape model.

    Built by :func:`from_diffusers` / :func:`load_diffusers`; the conversions are in the
    module docstring. ``denoise(x, sigma, **conditioning)`` passes ``conditioning``
    (``class_labels=…``, ``encoder_hidden_states=…``) to the network.

    Attributes:
        unet: the network (a registered submodule: ``.to(device)`` moves it).
        scheduler: the diffusers scheduler (its config fixes the schedule and prediction type).
        kind: ``"vp"`` or ``"edm"``.
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
        sigmas: VP only: the training schedule ``σ_0 < … < σ_{T−1}``, ``(T,)`` float64 on
            the CPU (``sigma_min = sigmas[0]``, ``sigma_max = sigmas[-1]``).
        quantize: VP only: round timesteps to training steps.
    """

    def __init__(
        self,
        unet: nn.Module,
        scheduler: Any,
        *,
        event_shape: Any = None,
        quantize: bool | None = None,
    ) -> None:
        nn.Module.__init__(self)
        if not isinstance(unet, nn.Module):
            raise TypeError(f"unet must be a torch.nn.Module, got {type(unet).__name__}")
        kind = _scheduler_kind(scheduler)
        config = scheduler.config
        ucfg = getattr(unet, "config", {})
        if event_shape is None:
            size = ucfg.get("sample_size")
            channels = ucfg.get("in_channels")
            if size is None or channels is None:
                raise ValueError(
                    f"cannot read the event shape from the {type(unet).__name__} config "
                    "(no sample_size / in_channels): pass event_shape="
                )
            size = [size, size] if isinstance(size, int) else list(size)
            event_shape = (channels, *size)
        if quantize is None:
            quantize = ucfg.get("time_embedding_type") == "learned"
        if kind == "vp":
            sigmas = _vp_sigmas(scheduler.alphas_cumprod)
            lo, hi, sigma_data = float(sigmas[0]), float(sigmas[-1]), None
        else:
            sigmas = torch.empty(0, dtype=torch.float64)
            lo, hi = float(config["sigma_min"]), float(config["sigma_max"])
            sigma_data = float(config["sigma_data"])
        AdaptedModel.__init__(
            self,
            event_shape,
            sigma_min=lo,
            sigma_max=hi,
            sigma_data=sigma_data,
            name=f"{type(unet).__name__} with {type(scheduler).__name__}",
        )
        self.unet = unet
        self.scheduler = scheduler
        self.kind = kind
        self.prediction_type = config.get("prediction_type", "epsilon")
        self.sigmas = sigmas
        self.quantize = bool(quantize)
        self._learned_variance = config.get("variance_type") in ("learned", "learned_range")
        self._tables: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    # ---------------------------------------------------------------- σ ↔ timestep
    def _log_sigmas(self, device: torch.device) -> torch.Tensor:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        key = (str(device), dtype)
        if key not in self._tables:
            self._tables[key] = self.sigmas.log().to(device, dtype)
        return self._tables[key]

    def sigma_to_t(self, sigma: Any) -> torch.Tensor:
        """The (fractional) timestep of σ: linear interpolation of ln σ over the schedule.

        Args:
            sigma: σ values (a float, array or tensor), clamped to ``[sigma_min, sigma_max]``.

        Returns:
            ``t`` of σ's shape: float64 in ``[0, T − 1]`` (``long`` if ``quantize``); for an
            EDM scheduler, ``c_noise = ¼ ln σ``.
        """
        s = torch.as_tensor(sigma)
        if not s.is_floating_point():
            s = s.double()
        if self.kind == "edm":
            return 0.25 * torch.log(s)
        ls = self._log_sigmas(s.device)
        ld = torch.log(s.to(ls.dtype)).clamp(ls[0], ls[-1])
        i = (torch.searchsorted(ls, ld.reshape(-1).contiguous(), right=True) - 1).clamp(
            0, ls.numel() - 2
        )
        lo, hi = ls[i], ls[i + 1]
        t = (i + ((ld.reshape(-1) - lo) / (hi - lo)).clamp(0, 1)).reshape(s.shape)
        return t.round().long() if self.quantize else t

    def t_to_sigma(self, t: Any) -> torch.Tensor:
        """σ of a (fractional) training timestep, the inverse of :meth:`sigma_to_t` (VP only).

        ``ln σ(t) = (1 − w) ln σ_⌊t⌋ + w ln σ_⌈t⌉``, ``w = t − ⌊t⌋``; float64 on the CPU.
        """
        if self.kind != "vp":
            raise TypeError("t_to_sigma: an EDM scheduler has no discrete timesteps")
        t = torch.as_tensor(t, dtype=torch.float64).cpu()
        if bool(((t < 0) | (t > self.sigmas.numel() - 1)).any()):
            raise ValueError(
                f"t must lie in [0, {self.sigmas.numel() - 1}] (the valid training steps), "
                f"got {t.min().item():g} .. {t.max().item():g}"
            )
        ls = self.sigmas.log()
        lo, hi = t.floor().long(), t.ceil().long()
        w = t - lo
        return torch.exp((1 - w) * ls[lo] + w * ls[hi])

    def schedule_sigmas(self, num_inference_steps: int) -> torch.Tensor:
        """The σ grid of the scheduler's own inference timesteps: ``(N + 1,)`` float64, CPU.

        The scheduler's ``set_timesteps(num_inference_steps)`` (on a copy) gives the
        timesteps; their σ's are followed by the final σ (``0``, or σ of the scheduler's
        ``final_alpha_cumprod`` when it is not 1; for EDM, the scheduler's own ``sigmas``).
        :func:`memscape.diffusion.samplers.sample_euler` on this grid is the scheduler's
        deterministic DDIM (η = 0) loop in σ-space (Song et al. 2021, eq. 12–14), for
        timesteps spaced by ``T // N`` (DDIM's ``"leading"`` spacing).
        """
        check_int(num_inference_steps, "num_inference_steps")
        sched = copy.deepcopy(self.scheduler)
        sched.set_timesteps(num_inference_steps)
        if self.kind == "edm":
            return torch.as_tensor(sched.sigmas, dtype=torch.float64).cpu()
        t = torch.unique_consecutive(torch.as_tensor(sched.timesteps, dtype=torch.float64).cpu())
        final = getattr(sched, "final_alpha_cumprod", None)
        a = 1.0 if final is None else float(final)
        last = math.sqrt((1 - a) / a) if a < 1 else 0.0
        return torch.cat([self.t_to_sigma(t), torch.tensor([last], dtype=torch.float64)])

    # ---------------------------------------------------------------- the network
    def _network(self, x_in: torch.Tensor, t: torch.Tensor, x: torch.Tensor, kw: dict) -> Any:
        p = next((q for q in self.unet.parameters() if q.is_floating_point()), None)
        dtype = x.dtype if p is None else p.dtype
        out = self.unet(x_in.to(dtype), t, **kw)
        out = getattr(out, "sample", out)
        if isinstance(out, tuple):
            out = out[0]
        if self._learned_variance and isinstance(out, torch.Tensor) and out.ndim == x.ndim:
            if out.shape[1] == 2 * x.shape[1]:  # (mean, variance) channels: keep the mean
                out = out[:, : x.shape[1]]
        return self._check_output(out, x, f"network output ({self.prediction_type} prediction)")

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, kw: dict[str, Any]) -> torch.Tensor:
        s = _bcast(sigma, x)
        if self.kind == "edm":
            c_skip, c_out, c_in, c_noise = EDMPrecond().coefficients(sigma, self.sigma_data)
            if self.prediction_type == "v_prediction":
                c_out = -c_out
            out = self._network(_bcast(c_in, x) * x, c_noise, x, kw)
            return _bcast(c_skip, x) * x + _bcast(c_out, x) * out
        c_in = torch.rsqrt(1 + s**2)  # x_t = x/√(1 + σ²) = √ᾱ x
        out = self._network(c_in * x, self.sigma_to_t(sigma), x, kw)
        if self.prediction_type == "epsilon":
            return x - s * out
        if self.prediction_type == "v_prediction":
            return c_in**2 * x - s * c_in * out
        return out

    def _run(self, fn: Any, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:  # for Hessians: attention by the twice-differentiable math kernel
            with _math_attention():
                return fn()
        with torch.no_grad():
            return fn()

    def forward(self, x: torch.Tensor, sigma: Any, **conditioning: Any) -> torch.Tensor:
        """Same as :meth:`denoise`."""
        return self.denoise(x, sigma, **conditioning)

    # ---------------------------------------------------------------- display
    __repr__ = AdaptedModel.__repr__  # one line instead of nn.Module's layer tree

    def _repr_fields(self) -> dict[str, Any]:
        """Network and scheduler classes, prediction type, event shape, σ range, size, dtype."""
        fields: dict[str, Any] = {
            "unet": type(self.unet).__name__,
            "scheduler": type(self.scheduler).__name__,
            "prediction_type": self.prediction_type,
            "event_shape": self.event_shape,
            "sigma_min": float(f"{self.sigma_min:.6g}"),
            "sigma_max": float(f"{self.sigma_max:.6g}"),
        }
        if self.sigma_data is not None:
            fields["sigma_data"] = self.sigma_data
        if self.conditioning:
            fields["conditioning"] = tuple(sorted(self.conditioning))
        params = list(self.unet.parameters())
        fields["params"] = sum(p.numel() for p in params)
        if params:
            fields["dtype"] = params[0].dtype
        return fields


def from_diffusers(
    unet: nn.Module,
    scheduler: Any,
    *,
    event_shape: Any = None,
    quantize: bool | None = None,
    **conditioning: Any,
) -> DiffusersModel:
    """A diffusers network and its scheduler as a memscape model in VE σ-space.

    Args:
        unet: the network, called ``unet(x_t, t, **conditioning)`` (``UNet2DModel``,
            ``UNet2DConditionModel``, …); returns an object with ``.sample``, a tuple or a tensor.
        scheduler: the diffusers scheduler it was trained with: a VP scheduler with
            ``alphas_cumprod`` or an EDM scheduler (module docstring).
        event_shape: the shape of one state (default: ``(in_channels, *sample_size)`` of
            the network's config).
        quantize: round timesteps to training steps (default: only for a learned time
            embedding).
        **conditioning: bound keyword arguments for every call (e.g. ``class_labels=3``).

    Returns:
        a :class:`DiffusersModel` (an ``nn.Module``: ``.to(device)``, ``.double()``).

    Raises:
        ValueError: an unsupported scheduler, an unknown ``prediction_type``.
    """
    model = DiffusersModel(unet, scheduler, event_shape=event_shape, quantize=quantize)
    return model.with_conditioning(**conditioning) if conditioning else model


# -------------------------------------------------------------------- folders
def _read_config(path: Path, what: str) -> dict[str, Any]:
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{what}: cannot read {path}: {err}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{what}: {path} must hold a JSON object")
    return cfg


def diffusers_layout(path: Path) -> tuple[Path, Path | None] | None:
    """``(network folder, scheduler folder or None)`` if ``path`` is a diffusers folder, else ``None``.

    Recognized: a pipeline folder (``model_index.json``), a folder with ``unet/`` (and
    ``scheduler/``), and a bare network folder (``config.json`` with a ``_class_name``).
    """
    index = path / "model_index.json"
    if index.is_file():
        cfg = _read_config(index, "load_diffusers")
        if "unet" not in cfg:
            parts = ", ".join(k for k in cfg if not k.startswith("_"))
            raise ValueError(
                f"load_diffusers: the pipeline in {path} has no unet component ({parts}); "
                "memscape adapts pipelines with a unet and a scheduler"
            )
        sched = path / "scheduler" if "scheduler" in cfg else None
        return path / "unet", sched
    if (path / "unet" / "config.json").is_file():
        return path / "unet", path / "scheduler"
    if (path / "config.json").is_file() and "_class_name" in _read_config(
        path / "config.json", "load_diffusers"
    ):
        return path, None
    return None


def load_diffusers(
    path: str | Path,
    *,
    scheduler: Any = None,
    dtype: torch.dtype | None = None,
    device: Any = None,
    quantize: bool | None = None,
    **conditioning: Any,
) -> DiffusersModel:
    """Load a local diffusers folder (``save_pretrained``) as a memscape model; no downloads.

    Every check (layout, scheduler config and prediction type, network class, weights
    file) runs before any weights are read.

    Args:
        path: a pipeline folder (``model_index.json``, ``unet/``, ``scheduler/``), a folder
            with ``unet/`` and ``scheduler/``, or a bare network folder with ``scheduler=``.
        scheduler: a scheduler object to use instead of the folder's ``scheduler/``.
        dtype: the network's dtype (default: as saved), e.g. ``torch.float64`` for analysis.
        device: where to put the network (default: the CPU).
        quantize: see :func:`from_diffusers`.
        **conditioning: bound keyword arguments for every network call.

    Raises:
        ValueError: not a diffusers folder, a missing scheduler, an unknown scheduler or
            network class, an unknown ``prediction_type``, missing weights.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"load_diffusers: path must be a diffusers model folder, got {path}")
    layout = diffusers_layout(path)
    if layout is None:
        raise ValueError(
            f"load_diffusers: {path} is not a diffusers folder: expected model_index.json "
            "(a pipeline saved with save_pretrained), unet/ and scheduler/, or a network's "
            "config.json"
        )
    if dtype is not None:
        check_dtype(dtype)
    dev = check_device(device) if device is not None else None
    unet_dir, sched_dir = layout
    lib = _diffusers()
    if scheduler is None:
        cfg_file = None if sched_dir is None else sched_dir / "scheduler_config.json"
        if cfg_file is None or not cfg_file.is_file():
            raise ValueError(
                f"load_diffusers: missing scheduler: {path} has no scheduler/scheduler_config.json; "
                "save the pipeline's scheduler with save_pretrained, or pass scheduler="
            )
        scfg = _read_config(cfg_file, "load_diffusers")
        prediction = scfg.get("prediction_type", "epsilon")
        if prediction not in PREDICTION_TYPES:
            raise ValueError(
                f"load_diffusers: unknown prediction_type {prediction!r} in {cfg_file}; "
                f"expected one of {', '.join(PREDICTION_TYPES)}"
            )
        cls = _class(lib, scfg, cfg_file, "SchedulerMixin")
        scheduler = cls.from_pretrained(str(cfg_file.parent))
    _scheduler_kind(scheduler)  # supported, and a known prediction type: before any weights
    ucfg_file = unet_dir / "config.json"
    if not ucfg_file.is_file():
        raise ValueError(f"load_diffusers: missing network config {ucfg_file}")
    ucls = _class(lib, _read_config(ucfg_file, "load_diffusers"), ucfg_file, "ModelMixin")
    if not any((unet_dir / w).is_file() for w in _WEIGHTS):
        raise ValueError(
            f"load_diffusers: no weights in {unet_dir} (expected {' or '.join(_WEIGHTS)})"
        )
    kw: dict[str, Any] = {"local_files_only": True}
    if dtype is not None:
        kw["torch_dtype"] = dtype
    unet = ucls.from_pretrained(str(unet_dir), **kw).eval()
    if dev is not None:
        unet = unet.to(dev)
    return from_diffusers(unet, scheduler, quantize=quantize, **conditioning)


def _class(lib: Any, cfg: dict[str, Any], where: Path, base: str) -> Any:
    name = cfg.get("_class_name")
    cls = getattr(lib, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, getattr(lib, base))):
        kind = "scheduler" if base == "SchedulerMixin" else "network"
        raise ValueError(
            f"load_diffusers: {where} names {kind} class {name!r}, which diffusers "
            f"{lib.__version__} does not have"
        )
    return cls
