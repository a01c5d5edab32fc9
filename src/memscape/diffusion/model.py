"""Trained diffusion models: a network plus preconditioning, following the EnergyModel protocol.

Score form (``energy=False``): the preconditioned network is the denoiser,

    D_θ(x, σ) = c_skip x + c_out F_θ(c_in x, c_noise)                       (EDM eq. 7)
    s_θ(x, σ) = (D_θ(x, σ) − x) / σ².

Energy form (``energy=True``, Salimans & Ho 2021, "Should EBMs model the energy or
the score?", §3; Du et al. 2023 "Reduce, reuse, recycle", eq. 7): with ``f_θ`` the
preconditioned network above,

    E_θ(x, σ) = ‖x − f_θ(x, σ)‖² / (2σ²),     s_θ = −∇ₓE_θ (autograd),
    D_θ(x, σ) = x + σ² s_θ(x, σ).

For ``f_θ = c_skip x`` (an untrained network) ``E = ‖x‖²/2(σ²+σ_d²)·σ²/(σ²+σ_d²)``, a
Gaussian energy, so the form starts from the right large-σ limit. Training
differentiates through ``∇ₓE`` (``create_graph=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from memscape._validation import (
    as_sigma,
    check_choice,
    check_device,
    check_int,
    check_positive,
)
from memscape.diffusion.networks import MLP, UNet
from memscape.diffusion.preconditioning import Preconditioning, get_preconditioning
from memscape.io import load_tensors, read_json, save_tensors, write_json
from memscape.protocol import EnergyModel, Verbatim

__all__ = ["ScoreModel"]

_NETWORKS: dict[str, type[nn.Module]] = {"mlp": MLP, "unet": UNet}
# model.json: keys of each network's kwargs (required, optional) and the weight dtypes
_KWARGS = {
    "mlp": ({"dim"}, {"width", "layers", "emb_dim", "film"}),
    "unet": ({"shape"}, {"channels", "channel_mult", "num_res_blocks", "attention", "emb_dim"}),
}
_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def _check_model_json(cfg: Any, *, custom: bool) -> None:
    """Check every key of a ``model.json`` (written by :attr:`ScoreModel.config`), naming the bad one.

    Raises:
        ValueError: not an object, a missing or unknown key, a value of the wrong type.
    """
    if not isinstance(cfg, dict):
        raise ValueError(f"must hold a JSON object, got a {type(cfg).__name__}")
    for key in ("network", "event_shape", "precond", "sigma_data", "energy"):
        if key not in cfg:
            raise ValueError(f"missing key {key!r}")
    kind = cfg["network"]
    if kind not in (*_NETWORKS, "custom"):
        raise ValueError(f"key 'network' must be one of mlp, unet, custom; got {kind!r}")
    if kind == "custom" and not custom:
        raise ValueError("this model has a custom network: pass network= to load it")
    shape = cfg["event_shape"]
    if not (isinstance(shape, list) and shape and all(_is_count(v) for v in shape)):
        raise ValueError(f"key 'event_shape' must be a list of positive integers, got {shape!r}")
    if not isinstance(cfg["precond"], (str, dict)):
        raise ValueError(f"key 'precond' must be a name or an object, got {cfg['precond']!r}")
    sd = cfg["sigma_data"]
    if sd is not None and (isinstance(sd, bool) or not isinstance(sd, (int, float)) or sd <= 0):
        raise ValueError(f"key 'sigma_data' must be null or a positive number, got {sd!r}")
    if not isinstance(cfg["energy"], bool):
        raise ValueError(f"key 'energy' must be true or false, got {cfg['energy']!r}")
    if cfg.get("dtype", "float32") not in _DTYPES:
        raise ValueError(f"key 'dtype' must be one of {', '.join(_DTYPES)}; got {cfg['dtype']!r}")
    seed = cfg.get("seed", 0)
    if not (_is_count(seed) or seed == 0):
        raise ValueError(f"key 'seed' must be an integer >= 0, got {seed!r}")
    if kind == "custom":
        return
    kwargs = cfg.get("kwargs")
    if not isinstance(kwargs, dict):
        raise ValueError(
            f"key 'kwargs' (the {kind} network's options) must be an object, got {kwargs!r}"
        )
    required, optional = _KWARGS[kind]
    missing, unknown = sorted(required - set(kwargs)), sorted(set(kwargs) - required - optional)
    if missing:
        raise ValueError(f"missing key 'kwargs.{missing[0]}'")
    if unknown:
        raise ValueError(f"unknown key 'kwargs.{unknown[0]}' for the {kind} network")
    implied = [kwargs["dim"]] if kind == "mlp" else kwargs["shape"]
    if implied != shape:
        raise ValueError(f"key 'event_shape' {shape} does not match the {kind} kwargs ({implied})")


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


class ScoreModel(nn.Module, EnergyModel):
    """A trainable diffusion model: ``denoise``, ``score`` and, if ``energy=True``, ``energy``.

    Args:
        network: raw network ``F(x_in, c_noise) -> shape of x_in`` (an ``nn.Module``).
        event_shape: shape of one sample, e.g. ``(2,)`` or ``(1, 8, 8)``.
        precond: ``"edm"`` (default), ``"vp"``, ``"ve"`` or a :class:`Preconditioning`.
        sigma_data: data standard deviation σ_d; ``None`` until :func:`memscape.train`
            measures it from the data.
        energy: parameterize an energy ``E_θ(x, σ)`` (module docstring) instead of the score.
        spec: constructor description used by :meth:`save`/:meth:`load`
            (set by :meth:`mlp` / :meth:`unet`).

    The network runs in its parameters' dtype; inputs of another dtype (e.g. float64
    for analysis) are cast for the network call and results returned in the input's dtype.
    """

    noise_conditioned = True

    def __init__(
        self,
        network: nn.Module,
        event_shape: tuple[int, ...],
        *,
        precond: str | Preconditioning = "edm",
        sigma_data: float | None = None,
        energy: bool = False,
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(network, nn.Module):
            raise TypeError(f"network must be a torch.nn.Module, got {type(network).__name__}")
        if sigma_data is not None:
            check_positive(sigma_data, "sigma_data")
        self.network = network
        self.event_shape = tuple(int(s) for s in event_shape)
        self.precond = get_preconditioning(precond)
        self.sigma_data = None if sigma_data is None else float(sigma_data)
        self.has_energy = bool(energy)
        self.spec = spec or {"network": "custom"}

    # ---------------------------------------------------------------- constructors
    @classmethod
    def mlp(
        cls,
        dim: int,
        *,
        energy: bool = False,
        precond: str | Preconditioning = "edm",
        sigma_data: float | None = None,
        width: int = 256,
        layers: int = 4,
        emb_dim: int = 64,
        film: str = "first",
        seed: int = 0,
    ) -> ScoreModel:
        """MLP score (or energy) model for vector data ``(B, dim)``; weights drawn from ``seed``.

        ``film`` picks the σ-conditioning (:class:`memscape.diffusion.networks.MLP`).
        """
        for v, n in ((dim, "dim"), (width, "width"), (layers, "layers"), (emb_dim, "emb_dim")):
            check_int(v, n)
        check_choice(film, ("first", "all"), "film")
        kwargs = {"dim": dim, "width": width, "layers": layers, "emb_dim": emb_dim, "film": film}
        return cls._build("mlp", kwargs, (dim,), energy, precond, sigma_data, seed)

    @classmethod
    def unet(
        cls,
        shape: tuple[int, int, int],
        *,
        energy: bool = False,
        precond: str | Preconditioning = "edm",
        sigma_data: float | None = None,
        channels: int = 32,
        channel_mult: tuple[int, ...] = (1, 2),
        num_res_blocks: int = 1,
        attention: bool = False,
        emb_dim: int = 128,
        seed: int = 0,
    ) -> ScoreModel:
        """U-Net score (or energy) model for images ``(C, H, W)``; weights drawn from ``seed``."""
        if len(tuple(shape)) != 3:
            raise ValueError(f"shape must be (C, H, W), got {tuple(shape)}")
        for v in (*shape, channels, num_res_blocks, emb_dim, *channel_mult):
            check_int(v, "shape/channels/channel_mult/num_res_blocks/emb_dim")
        kwargs = {
            "shape": [int(s) for s in shape],
            "channels": channels,
            "channel_mult": [int(m) for m in channel_mult],
            "num_res_blocks": num_res_blocks,
            "attention": bool(attention),
            "emb_dim": emb_dim,
        }
        return cls._build("unet", kwargs, tuple(shape), energy, precond, sigma_data, seed)

    @classmethod
    def _build(cls, kind, kwargs, event_shape, energy, precond, sigma_data, seed) -> ScoreModel:
        check_int(seed, "seed", minimum=0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
            network = _NETWORKS[kind](**net_kwargs)
        spec = {"network": kind, "kwargs": kwargs, "seed": seed}
        return cls(
            network, event_shape, precond=precond, sigma_data=sigma_data, energy=energy, spec=spec
        )

    # ---------------------------------------------------------------- protocol
    def _sigma_data(self) -> float:
        if self.sigma_data is None:
            raise ValueError(
                "sigma_data is not set: train the model (memscape.train measures it from the "
                "data) or pass sigma_data= when building it"
            )
        return self.sigma_data

    def _f(self, x: torch.Tensor, sigma: torch.Tensor, sigma_data: Any = None) -> torch.Tensor:
        """Preconditioned network ``c_skip x + c_out F(c_in x, c_noise)`` (EDM eq. 7), unchecked.

        ``sigma_data`` overrides the model's (a tensor, for the compiled training step)."""
        sd = self._sigma_data() if sigma_data is None else sigma_data
        c_skip, c_out, c_in, c_noise = self.precond.coefficients(sigma, sd)
        p = next(self.network.parameters())
        out = self.network((_bcast(c_in, x) * x).to(p.dtype), c_noise.to(p.dtype))
        return torch.addcmul(_bcast(c_skip, x) * x, _bcast(c_out, x), out.to(x.dtype))

    def _energy(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        r = (x - self._f(x, sigma)).reshape(x.shape[0], -1)
        return r.pow(2).sum(1) / (2 * sigma**2)

    def _score(self, x: torch.Tensor, sigma: torch.Tensor, create_graph: bool) -> torch.Tensor:
        if not self.has_energy:
            return (self._f(x, sigma) - x) / _bcast(sigma, x) ** 2
        create_graph = create_graph or x.requires_grad
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self._energy(xg, sigma).sum(), xg, create_graph=create_graph)
        return -g

    def _denoise(
        self, x: torch.Tensor, sigma: torch.Tensor, create_graph: bool = False,
        sigma_data: Any = None,
    ) -> torch.Tensor:  # fmt: skip
        if not self.has_energy:
            return self._f(x, sigma, sigma_data)
        assert sigma_data is None, "an energy model's denoiser uses its own sigma_data"
        return x + _bcast(sigma, x) ** 2 * self._score(x, sigma, create_graph)

    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Energy ``E_θ = ‖x − f_θ(x, σ)‖²/(2σ²)``: ``(B, *event_shape) -> (B,)`` (energy=True)."""
        if not self.has_energy:
            raise NotImplementedError(
                "this ScoreModel has no energy (built with energy=False); use "
                "memscape.log_likelihood for -log p of a score model"
            )
        x = self._check_x(x)
        return self._public(lambda: self._energy(x, as_sigma(sigma, x)), x, False)

    def score(
        self, x: torch.Tensor, sigma: Any = None, *, create_graph: bool = False
    ) -> torch.Tensor:
        """Score ``s_θ(x, σ)``: ``(D − x)/σ²`` or ``−∇ₓE_θ`` by autograd; shape of ``x``."""
        x = self._check_x(x)
        return self._public(
            lambda: self._score(x, as_sigma(sigma, x), create_graph), x, create_graph
        )

    def denoise(self, x: torch.Tensor, sigma: Any, *, create_graph: bool = False) -> torch.Tensor:
        """Denoiser ``D_θ(x, σ)`` (EDM eq. 7; ``x + σ² s_θ`` for energy models); shape of ``x``.

        Args:
            x: ``(B, *event_shape)``.
            sigma: float or ``(B,)`` tensor, > 0.
            create_graph: keep the graph of ``∇ₓE`` (training energy models).
        """
        x = self._check_x(x)
        fn = lambda: self._denoise(x, as_sigma(sigma, x), create_graph)  # noqa: E731
        return self._public(fn, x, create_graph)

    def _public(self, fn: Any, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """Run ``fn``; keep the autograd graph only when ``x`` requires grad or it is asked for.

        Analysis code gets plain tensors (no graph into the weights); autograd Hessians and
        training (``create_graph=True``) get differentiable results.
        """
        if create_graph or x.requires_grad:
            return fn()
        if not self.has_energy:
            with torch.no_grad():
                return fn()
        return fn().detach()

    def forward(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Same as :meth:`denoise`."""
        return self.denoise(x, sigma)

    # ---------------------------------------------------------------- persistence
    @property
    def config(self) -> dict[str, Any]:
        """JSON description: network spec, event shape, preconditioning, σ_data, energy, dtype."""
        dtype = next(self.network.parameters()).dtype
        return {
            **self.spec,
            "event_shape": list(self.event_shape),
            "precond": self.precond.config(),
            "sigma_data": self.sigma_data,
            "energy": self.has_energy,
            "dtype": str(dtype).removeprefix("torch."),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``model.json`` and ``model.safetensors`` into folder ``path`` (atomically)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_tensors(path / "model.safetensors", self.state_dict())
        write_json(path / "model.json", self.config)
        return path

    @classmethod
    def load(cls, path: str | Path, *, network: nn.Module | None = None) -> ScoreModel:
        """Load a model saved by :meth:`save` or a :func:`memscape.train` run folder (EMA weights).

        Args:
            path: folder holding ``model.json`` and ``model.safetensors``.
            network: the raw network, required only for models built from a custom network.
        """
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"path must be a model or run folder, got missing path {path}")
        cfg = read_json(path / "model.json", "ScoreModel.load")
        try:
            _check_model_json(cfg, custom=network is not None)
            if cfg["network"] == "custom":
                model = cls(
                    network,  # type: ignore[arg-type]  # checked by _check_model_json
                    tuple(cfg["event_shape"]),
                    precond=cfg["precond"],
                    sigma_data=cfg["sigma_data"],
                    energy=cfg["energy"],
                )
            else:
                kwargs = {
                    k: tuple(v) if isinstance(v, list) else v for k, v in cfg["kwargs"].items()
                }
                model = getattr(cls, cfg["network"])(
                    **kwargs,
                    energy=cfg["energy"],
                    precond=cfg["precond"],
                    sigma_data=cfg["sigma_data"],
                    seed=cfg.get("seed", 0),
                )
        except (ValueError, TypeError) as err:
            raise ValueError(f"ScoreModel.load: model.json in {path}: {err}") from None
        model.to(getattr(torch, cfg.get("dtype", "float32")))
        state = load_tensors(path / "model.safetensors", "ScoreModel.load")
        bad = [
            k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())
        ]
        if bad:
            raise ValueError(
                f"ScoreModel.load: weights in {path / 'model.safetensors'} hold NaN or inf "
                f"({', '.join(bad[:3])}{', …' if len(bad) > 3 else ''}): the training diverged"
            )
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"weights in {path} do not match model.json: {err}") from err
        return model

    def to(self, *args: Any, **kwargs: Any) -> ScoreModel:  # type: ignore[override]
        """``nn.Module.to``, after checking that a requested device exists on this machine."""
        device = kwargs.get("device", args[0] if args else None)
        if isinstance(device, (str, torch.device, int)) and not isinstance(device, bool):
            check_device(device)
        return super().to(*args, **kwargs)

    # ---------------------------------------------------------------- display
    __repr__ = EnergyModel.__repr__  # one line instead of nn.Module's layer tree

    def _repr_fields(self) -> dict[str, Any]:
        """Network spec, preconditioning, σ_data, energy form, parameter count, dtype.

        The layer tree is still ``print(model.network)``.
        """
        kind = self.spec.get("network")
        if kind in _NETWORKS:
            kw = ", ".join(
                f"{k}={tuple(v) if isinstance(v, list) else v!r}"
                for k, v in self.spec["kwargs"].items()
            )
            fields: dict[str, Any] = {"net": Verbatim(f"{type(self.network).__name__}({kw})")}
        else:
            fields = {"net": Verbatim(type(self.network).__name__), "event_shape": self.event_shape}
        default = type(self.precond)()
        fields["precond"] = self.precond.name if self.precond == default else self.precond
        fields.update(sigma_data=self.sigma_data, energy=self.has_energy)
        params = list(self.network.parameters())
        fields["params"] = sum(p.numel() for p in params)
        if params:
            fields["dtype"] = params[0].dtype
        return fields
