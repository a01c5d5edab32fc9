"""One compiled training step of :func:`memscape.train`: loss, gradient, clipping, Adam, EMA.

The step of :func:`memscape.train` (EDM loss, Karras et al. 2022 eq. 8; Adam, Kingma &
Ba 2015, Algorithm 1, in PyTorch's form; gradient-norm clipping; the EMA of the weights)
is written here as pure tensor functions of flat buffers — the weights θ, Adam's
moments m and v and the EMA, each one contiguous vector — compiled by
``torch.compile(fullgraph=True)``, so inductor fuses the backward's elementwise work
(SiLU, FiLM, preconditioning) and the whole optimizer (clip, Adam, EMA: one pass over
four vectors) into a few kernels, and Python runs a few calls per step instead of
hundreds of operators. Two forms (:func:`uses_onednn_step`):

* :func:`_fused` — one graph: ``torch.func.grad_and_value`` of ``functional_call``, then
  the update (CUDA, bfloat16, and float32 on every CPU where MKL is kept);
* :func:`_split` — float32 on a CPU where :func:`memscape.onednn.preferred`: the loss
  compiled with its backward (θ a leaf that requires grad), ``torch.autograd.grad``, and
  the update compiled apart, so that the network's linear layers run through oneDNN
  (2.1× MKL's float32 products on the AVX-512 AMD CPU measured there).

The random draws (batch, σ, noise) stay outside, from the trainer's generator in the
eager order, so both paths see the same numbers; the results agree with the eager step
to float rounding (the reduction order of the gradient norm and of fused kernels
differ), not bit for bit. Resuming a compiled run with the compiled step is bit-identical.

:func:`edm_loss` is the loss of both steps (through :meth:`ScoreModel._denoise`, EDM
eq. 7); the compiled step passes σ_data as a tensor input.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from memscape.onednn import onednn_linear, preferred
from memscape.runs.sweep import is_interrupt

__all__ = [
    "COMPILE_AUTO_STEPS",
    "PRECISIONS",
    "FastStep",
    "check_precision",
    "edm_loss",
    "network_autocast",
    "use_compile",
    "uses_onednn_step",
]

#: ``compile="auto"`` compiles the step of MLP runs of at least this many steps (the
#: payback measured in :func:`memscape.train`'s docstring).
COMPILE_AUTO_STEPS = 5000

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, which train uses

#: ``train(precision=...)``: ``"float32"`` everywhere, or ``"bfloat16"`` mixed precision
#: (the network's matrix products and convolutions in bfloat16 under ``torch.autocast``;
#: inputs, preconditioning, loss, gradients, Adam, EMA and the weights in float32).
PRECISIONS = ("float32", "bfloat16")


def network_autocast(device: Any, precision: str) -> Any:
    """The context the network runs in for ``precision`` (:data:`PRECISIONS`) on ``device``:
    ``torch.autocast`` to bfloat16 (mixed precision: the weights stay float32, each matrix
    product casts its operands and accumulates in float32), or a disabled one."""
    dev = torch.device(device)
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def edm_loss(
    model: Any, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
    precision: str = "float32", sigma_data: Any = None,
) -> torch.Tensor:  # fmt: skip
    """EDM eq. 8: ``mean_b λ(σ_b) mean_i (D_θ(y_b + σ_b n_b, σ_b) − y_b)_i²`` (a scalar),
    with ``D_θ`` the preconditioned network of eq. 7 (:meth:`ScoreModel._denoise`).

    Args:
        model: a :class:`memscape.ScoreModel`.
        y: clean samples ``(B, *event_shape)``.
        sigma: noise levels ``(B,)``.
        noise: standard normal ``(B, *event_shape)`` (scaled by σ here).
        precision: the network's (:data:`PRECISIONS`); the rest is float32.
        sigma_data: overrides the model's σ_data (a 0-d tensor in the compiled step, so
            that models differing only in it share one graph); not for energy models.
    """
    b = y.shape[0]
    s = sigma.reshape(-1, *([1] * (y.ndim - 1)))
    sd = model._sigma_data() if sigma_data is None else sigma_data
    with network_autocast(y.device, precision):  # D's network output returns as y's dtype
        d = model._denoise(y + s * noise, sigma, create_graph=True, sigma_data=sigma_data)
    w = model.precond.loss_weight(sigma, sd)
    return (w * (d - y).pow(2).reshape(b, -1).mean(1)).mean()


def check_precision(precision: Any, energy: bool) -> str:
    """``precision`` checked against :data:`PRECISIONS` (bfloat16 not for energy models,
    ``energy`` true)."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bfloat16" and energy:
        raise ValueError(
            "precision='bfloat16' is not available for energy models (their denoiser is a "
            "gradient, whose second derivative needs float32); pass precision='float32'"
        )
    return precision


def use_compile(compile: Any, model: Any, steps: int) -> bool:
    """Whether :func:`memscape.train` compiles its step; ``compile`` is checked here, first.

    ``"auto"`` depends on the call's arguments only (so a resumed run takes the path of the
    run it continues): MLP score models trained for at least :data:`COMPILE_AUTO_STEPS`.
    """
    if not (
        compile is True or compile is False or (isinstance(compile, str) and compile == "auto")
    ):
        raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
    if compile is True and model.has_energy:
        raise ValueError(
            "compile=True is not available for energy models (their denoiser is a gradient); "
            "pass compile=False or 'auto'"
        )
    if compile == "auto":
        from memscape.diffusion.networks import MLP

        mlp = isinstance(model.network, MLP)
        return mlp and not model.has_energy and steps >= COMPILE_AUTO_STEPS
    return bool(compile)


class _Loss(nn.Module):
    """:func:`edm_loss` of a score model with σ_data a tensor input (for ``functional_call``).

    σ_data enters as a tensor so that models differing only in it share one compiled
    graph (a Python float would be a constant of the graph).
    """

    def __init__(self, model: nn.Module, precision: str = "float32") -> None:
        super().__init__()
        self.model = model
        self.precision = precision  # a constant of the graph (one compile per precision)

    def forward(self, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
                sigma_data: torch.Tensor) -> torch.Tensor:  # fmt: skip
        return edm_loss(self.model, y, sigma, noise, self.precision, sigma_data)


def _loss(
    loss_module: nn.Module,
    names: tuple[str, ...],
    shapes: tuple[tuple[int, ...], ...],
    theta: torch.Tensor,
    y: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    sigma_data: torch.Tensor,
    onednn: bool = False,
) -> torch.Tensor:
    """The loss of the flat weights θ; with ``onednn``, under
    :func:`memscape.onednn.onednn_linear` (the linears its rule picks go through oneDNN)."""
    numels = [math.prod(s) for s in shapes]
    views = {n: v.view(s) for n, s, v in zip(names, shapes, theta.split(numels), strict=True)}
    with onednn_linear(onednn):
        return torch.func.functional_call(loss_module, views, (y, sigma, noise, sigma_data))


def _update(
    clip: bool,
    theta: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    ema: torch.Tensor,
    grad: torch.Tensor,
    scalars: torch.Tensor,
) -> None:
    """Clip, Adam and the EMA on flat buffers, in place.

    ``scalars`` = ``[lr/(1 − β₁ᵗ), √(1 − β₂ᵗ), 1 − β_ema, σ_data, c]``: Adam's
    bias-corrected step size and denominator scale (computed in double precision by the
    caller, as ``torch.optim.Adam`` does), the EMA weight, the data's standard deviation
    and the clipping norm c (used when ``clip``). Tensors, not constants: one graph serves
    every learning rate, step, σ_data and c.
    """
    if clip:  # clip_grad_norm_: g · min(1, c/(‖g‖ + 1e-6))
        grad = grad * torch.clamp(scalars[4] / (torch.linalg.vector_norm(grad) + 1e-6), max=1.0)
    exp_avg.lerp_(grad, 1 - _BETA1)
    exp_avg_sq.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
    denom = exp_avg_sq.sqrt() / scalars[1] + _EPS
    theta.sub_(scalars[0] * exp_avg / denom)
    ema.lerp_(theta, scalars[2])


def _fused(
    loss_module: nn.Module, names: tuple[str, ...], shapes: tuple[tuple[int, ...], ...],
    clip: bool, theta: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
    ema: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
    scalars: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """One step in one graph (``torch.func.grad_and_value`` of the loss, then the update);
    the loss before the update."""

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        return _loss(loss_module, names, shapes, flat, y, sigma, noise, scalars[3])

    grad, loss = torch.func.grad_and_value(loss_of)(theta)
    _update(clip, theta, exp_avg, exp_avg_sq, ema, grad, scalars)
    return loss


_COMPILED: dict[str, Any] = {}  # one compiled function each per process: dynamo's cache is shared


def _compiled(name: str) -> Any:
    """``torch.compile`` of :func:`_fused`, :func:`_loss` or :func:`_update`, made once."""
    if name not in _COMPILED:
        forms: dict[str, Callable[..., Any]] = {"fused": _fused, "loss": _loss, "update": _update}
        fn = forms[name]
        _COMPILED[name] = torch.compile(fn, fullgraph=True, dynamic=False)
    return _COMPILED[name]


def uses_onednn_step(device: Any, precision: str, dtype: torch.dtype = torch.float32) -> bool:
    """Whether the step (compiled: split in two graphs, the loss with its backward and the
    update; eager: under :func:`memscape.onednn.onednn_linear`) sends the network's
    linears to oneDNN: float32 weights and precision on a CPU where
    :func:`memscape.onednn.preferred`. A compiled ``torch.func.grad`` dropped the backward
    of oneDNN's ``autograd.Function`` (torch 2.13), so the split step takes the gradient
    with ``torch.autograd.grad``, at ~0.3 ms per step more than one fused graph (measured
    at batch 256 with bfloat16 and the split form forced, so that both forms ran MKL's
    products: the fused graph stays the step of every other case)."""
    return (
        torch.device(device).type == "cpu"
        and precision == "float32"
        and dtype == torch.float32
        and preferred()
    )


def _split(
    loss_module: nn.Module, names: tuple[str, ...], shapes: tuple[tuple[int, ...], ...],
    clip: bool, theta: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
    ema: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
    scalars: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """One step as the compiled loss (forward and backward graphs, by AOTAutograd; θ
    requires grad), ``torch.autograd.grad`` and the compiled update; the loss."""
    with torch.enable_grad():  # as torch.func.grad in the fused form: even under no_grad
        loss = _compiled("loss")(loss_module, names, shapes, theta, y, sigma, noise,
                                 scalars[3], True)  # fmt: skip
        (grad,) = torch.autograd.grad(loss, theta)
    with torch.no_grad():
        _compiled("update")(clip, theta, exp_avg, exp_avg_sq, ema, grad, scalars)
    return loss.detach()


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


class FastStep:
    """The compiled step of one model's training: flat θ, m, v and EMA, and the call.

    Args:
        model: the :class:`memscape.ScoreModel` being trained (not an energy model:
            its denoiser is itself a gradient, which ``torch.func`` would nest).
        params: its trainable parameters, in ``model.parameters()`` order.
        grad_clip: max gradient L2 norm, or ``None``.
        precision: the network's (:data:`PRECISIONS`).
        split: the split form (linears through oneDNN) or the fused one; ``None``:
            :func:`uses_onednn_step`.

    :meth:`load` copies the trainer's weights, EMA and Adam moments in; :meth:`store`
    copies them back (the eager layout, so checkpoints do not depend on the path).
    """

    def __init__(
        self, model: Any, params: Sequence[torch.Tensor], grad_clip: float | None,
        precision: str = "float32", split: bool | None = None,
    ) -> None:  # fmt: skip
        self.loss_module = _Loss(model, precision)
        by_id = {id(p): n for n, p in self.loss_module.named_parameters()}
        self.names = tuple(by_id[id(p)] for p in params)
        self.shapes = tuple(tuple(p.shape) for p in params)
        self.clip = grad_clip is not None
        self.max_norm = 0.0 if grad_clip is None else float(grad_clip)
        self.sigma_data = float(model._sigma_data())
        self.event_shape = tuple(model.event_shape)
        # the caller's decision (train reads the rule once per run), else the rule
        if split is None:
            split = uses_onednn_step(params[0].device, precision, params[0].dtype)
        self.split = split
        self.theta = _flat(params).requires_grad_(self.split)  # the split step's leaf
        self.exp_avg = torch.zeros_like(self.theta)
        self.exp_avg_sq = torch.zeros_like(self.theta)
        self.ema = self.theta.detach().clone()
        self.fn: Callable[..., torch.Tensor] = _split if self.split else _compiled("fused")

    def load(self, params: Sequence[torch.Tensor], ema: list[torch.Tensor], opt: Any) -> None:
        """Copy weights, EMA and Adam moments (absent before Adam's first step: zeros) in."""
        states = [opt.state.get(p, {}) for p in params]
        with torch.no_grad():  # θ may be a leaf that requires grad (the split step)
            self.theta.copy_(_flat(params))
            self.ema.copy_(_flat(ema))
            for flat, key in ((self.exp_avg, "exp_avg"), (self.exp_avg_sq, "exp_avg_sq")):
                moments = [
                    s.get(key, torch.zeros_like(p)) for s, p in zip(states, params, strict=True)
                ]
                flat.copy_(_flat(moments))

    def store(
        self, params: Sequence[torch.Tensor], ema: list[torch.Tensor], opt: Any, step: int
    ) -> None:
        """Copy the flat state back into the parameters, the EMA list and Adam's state."""
        numels = [p.numel() for p in params]
        pieces = zip(
            params, ema, *(t.split(numels) for t in (self.theta, self.ema, self.exp_avg,
                                                     self.exp_avg_sq)), strict=True,
        )  # fmt: skip
        with torch.no_grad():
            for p, e, th, em, m, v in pieces:
                p.copy_(th.view_as(p))
                e.copy_(em.view_as(e))
                if step > 0:
                    st = opt.state[p]
                    st["step"] = torch.tensor(float(step))  # Adam's CPU scalar step
                    st["exp_avg"] = m.view_as(p).clone()
                    st["exp_avg_sq"] = v.view_as(p).clone()

    def __call__(
        self, y: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, *, lr: float,
        adam_step: int, ema_weight: float,
    ) -> torch.Tensor:  # fmt: skip
        """Run Adam step number ``adam_step`` (from 1) on the batch; the loss (0-d tensor)."""
        scalars = torch.tensor(
            [
                lr / (1 - _BETA1**adam_step),
                (1 - _BETA2**adam_step) ** 0.5,
                ema_weight,
                self.sigma_data,
                self.max_norm,
            ],
            dtype=self.theta.dtype,
        ).to(self.theta.device)
        return self.fn(
            self.loss_module, self.names, self.shapes, self.clip, self.theta, self.exp_avg,
            self.exp_avg_sq, self.ema, y, sigma, noise, scalars,
        )  # fmt: skip

    def try_compile(self, batch: int) -> bool:
        """Compile for ``batch`` on copies of the state; ``False``, with a warning, if it fails."""
        bufs = [t.detach().clone() for t in (self.theta, self.exp_avg, self.exp_avg_sq, self.ema)]
        bufs[0].requires_grad_(self.split)
        dtype, dev = self.theta.dtype, self.theta.device
        y = torch.zeros(batch, *self.event_shape, dtype=dtype, device=dev)
        sigma = torch.ones(batch, dtype=dtype, device=dev)
        scalars = torch.tensor([0.0, 1.0, 0.0, self.sigma_data, self.max_norm], dtype=dtype,
                               device=dev)  # fmt: skip
        try:
            self.fn(self.loss_module, self.names, self.shapes, self.clip, *bufs, y, sigma,
                    torch.zeros_like(y), scalars)  # fmt: skip
        except Exception as err:  # inductor/dynamo raise many types (no compiler, no triton, …)
            if is_interrupt(err):  # a Ctrl-C inside an import of the compiler: not a failure
                raise
            warnings.warn(
                f"memscape.train: compiling the training step failed ({type(err).__name__}: "
                f"{str(err)[:200]}); training with the eager step",
                RuntimeWarning,
                stacklevel=3,
            )
            return False
        return True
