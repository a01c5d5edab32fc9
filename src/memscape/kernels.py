"""Streamed softmax over memories: the one kernel behind modern Hopfield and exact diffusion.

Two logit forms, both streamed over chunks of memories with the running maximum taken
per query (online log-sum-exp; Milakov & Gimelshein 2018), so no ``B×K`` matrix is held:

* :func:`streamed_softmax`, dot-product logits ``ℓ_bk = β_b (x_bᵀ y_k + c_k)``
  (the dense associative memory of Krotov & Hopfield 2016 with exponential F);
* :func:`streamed_distance_softmax`, distance logits ``ℓ_bk = a_k − β_b ‖x_b − y_k‖²/2``:
  the exact diffusion denoiser (β = 1/σ², a = 0), the modern Hopfield update
  (Ramsauer et al. 2020, eq. 3, a_k = β(c_k + ‖y_k‖²/2 − M²/2)) and Gaussian mixtures
  (a_k = log w_k). Each returns

      lse_b   = log Σ_k exp ℓ_bk                               (B,)
      mean_b  = Σ_k softmax_k(ℓ_b·) y_k                        (B, d)
      cov_b   = Σ_k softmax_k(ℓ_b·) y_k y_kᵀ − mean meanᵀ      (B, d, d)   (optional)

Translation-stable numerics (distance form). Memories and queries are centred on the
memories' mean when that helps (:func:`centre_memories`); the streamed matmul form
``β(x'ᵀy' − ‖y'‖²/2)`` then loses digits only in proportion to the data's spread, not to
its distance from the origin. For the energy (``exact_lse=True``) the ``EXACT_TOP``
largest logits of every query are re-evaluated directly as ``a_k − β‖x' − y'_k‖²/2``, so
the error of ``lse`` scales with ``lse`` itself plus the (tiny) mass of the remaining terms
times their rounding; a query where that could exceed ``_LSE_ULPS`` ulps (more than
``EXACT_TOP`` memories within a few σ) is redone with every distance direct. The mean
comes with ``drift = mean − x`` formed in centred coordinates (the exact score is
``β · drift``).

Speed: ``K ≤ chunk_size`` memories without an ``lse`` (the denoiser) are one direct
pass, one matmul with the bias and β inside it, one in-place ``torch.softmax`` and one
matmul, so no slower than a naive softmax (``benchmarks/bench_denoiser.py``).

Dtypes: float16/bfloat16 (and integer) states are computed in float32
(:func:`_compute_dtype`); an inverse temperature whose logits the dtype cannot hold
raises a ``ValueError`` naming the argument (:func:`_inverse_variance`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import torch

from memscape._validation import as_sigma, check_positive

__all__ = [
    "CentredMemories",
    "DistanceStats",
    "MemoryCache",
    "SoftmaxStats",
    "centre_memories",
    "streamed_distance_softmax",
    "streamed_softmax",
]

DEFAULT_CHUNK = 2048

# exp() of shifted logits is floored here: below it float32/float64 exp produces
# subnormals, which run ~10x slower on x86. A floored term is < e^-80 (float32) or
# < e^-700 (float64) times the largest one, far below the rounding of the sums.
_EXP_FLOOR = {torch.float32: -80.0, torch.float64: -700.0}

EXACT_TOP = 8  # largest logits per query re-evaluated directly for an exact lse
_EXPANDED_OK = 2.0  # logit scale at or below this: the expanded logits are O(1), exact enough
_ROUNDING = 4.0  # |streamed logit error| ≤ this · u · scale (measured ≤ 3.5 for d = 2…3072)
_LSE_ULPS = 32  # redo a query's lse direct when its error may exceed this · eps · (1 + |lse|)
_LOGIT_HEADROOM = 16.0  # logits must stay below finfo.max / this (sums of exp and products)
_CENTRE_GAIN = 1.0  # centre when ‖mean‖² exceeds this times the mean squared spread
_OUTER_BYTES = 1 << 26  # chunk outer products y yᵀ up to 64 MiB go through one matmul
_HALF = (torch.float16, torch.bfloat16)


class SoftmaxStats(NamedTuple):
    """Result of :func:`streamed_softmax`."""

    lse: torch.Tensor  #: (B,) log Σ_k exp ℓ_bk
    mean: torch.Tensor  #: (B, d) softmax-weighted mean of the memories
    cov: torch.Tensor | None  #: (B, d, d) softmax-weighted covariance, if asked for


class DistanceStats(NamedTuple):
    """Result of :func:`streamed_distance_softmax`; ``mean`` and ``drift`` are formed on use."""

    lse: torch.Tensor | None  #: (B,) log Σ_k exp(a_k − β_b ‖x_b − y_k‖²/2) (if asked for)
    mean_centred: torch.Tensor  #: (B, d) softmax-weighted mean of the memories, minus c
    x_centred: torch.Tensor  #: (B, d) the queries minus c
    centre: torch.Tensor | None  #: (d,) c (None: 0)
    cov: torch.Tensor | None  #: (B, d, d) softmax-weighted covariance, if asked for

    @property
    def mean(self) -> torch.Tensor:
        """``(B, d)`` softmax-weighted mean of the memories (the exact denoiser)."""
        return self.mean_centred if self.centre is None else self.mean_centred + self.centre

    @property
    def drift(self) -> torch.Tensor:
        """``(B, d)`` mean − x, formed in centred coordinates (σ² × the exact score)."""
        return self.mean_centred - self.x_centred


class CentredMemories(NamedTuple):
    """Memories ``y_k`` stored as ``y_k − c`` for the distance kernel (:func:`centre_memories`)."""

    centre: torch.Tensor | None  #: (d,) c, subtracted from memories and queries (None: c = 0)
    points: torch.Tensor  #: (K, d) y_k − c
    half_sq: torch.Tensor  #: (K,) ‖y_k − c‖²/2
    radius: float  #: max_k ‖y_k − c‖

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        """Queries in centred coordinates, ``x − c``: ``(B, d)``."""
        return x if self.centre is None else x - self.centre

    def unshift(self, x: torch.Tensor) -> torch.Tensor:
        """Back to the memories' coordinates, ``x + c``: ``(B, d)``."""
        return x if self.centre is None else x + self.centre


# ---------------------------------------------------------------- dtypes and ranges
def _compute_dtype(x: torch.Tensor, reference: torch.dtype) -> torch.dtype:
    """The dtype exact models compute ``x`` in: float32/float64 as given, float16 and
    bfloat16 promoted to float32, integer/bool states cast to the model's ``reference``
    dtype (itself promoted to float32 when half precision)."""
    dtype = x.dtype if x.is_floating_point() else reference
    return torch.float32 if dtype in _HALF else dtype


def _inverse_variance(
    x: torch.Tensor, sigma: Any, *, variance: float = 0.0, name: str = "sigma"
) -> tuple[Any, Any]:
    """``(σ, β)`` with ``β = 1/(v + σ²)``: Python floats for a number σ (one σ for the
    batch), else ``(B,)`` tensors in ``x``'s dtype.

    Raises a ``ValueError`` naming ``name`` when ``v + σ²`` or ``1/(v + σ²)`` is not a
    normal number of the dtype (σ² would underflow to 0 or 1/σ² overflow: σ below
    ~1.5e-154 or above ~6.7e153 in float64, below ~1.1e-19 or above ~9.2e18 in float32),
    instead of returning NaN or inf.

    Args:
        x: the states ``(B, ...)`` in the compute dtype.
        sigma: noise level, float or ``(B,)`` tensor, > 0.
        variance: ``v ≥ 0`` added to σ² (a Gaussian mixture's component variance).
        name: the argument named in errors.
    """
    fi = torch.finfo(x.dtype)
    if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
        check_positive(sigma, name)
        s = float(sigma)
        var = s * s + variance
        if not fi.tiny <= var <= 1.0 / fi.tiny:
            _sigma_range_error(s, x.dtype, variance, name)
        return s, 1.0 / var
    s_t = as_sigma(sigma, x, name)
    var64 = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1) ** 2 + variance
    bad = ~((var64 >= fi.tiny) & (var64 <= 1.0 / fi.tiny))
    if bool(bad.any()):
        value = float(torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)[bad][0])
        _sigma_range_error(value, x.dtype, variance, name)
    return s_t, 1.0 / (s_t * s_t + variance)


def _sigma_range_error(value: float, dtype: torch.dtype, variance: float, name: str) -> None:
    fi = torch.finfo(dtype)
    lo = math.sqrt(max(fi.tiny - variance, 0.0))
    hi = math.sqrt(1.0 / fi.tiny - variance)
    what = "σ²" if variance == 0 else "variance + σ²"
    raise ValueError(
        f"{name} = {value:g} is outside what {str(dtype).removeprefix('torch.')} "
        f"represents: {what} and its inverse must be normal numbers, so {name} must lie "
        f"in [{lo:.3g}, {hi:.3g}]; use float64 or another {name}"
    )


def _col(beta: Any, ndim: int = 2) -> Any:
    """A per-query ``(B,)`` tensor as ``(B, 1, …)`` with ``ndim`` dims; a float as is."""
    if isinstance(beta, torch.Tensor) and beta.ndim == 1:
        return beta.reshape(-1, *([1] * (ndim - 1)))
    return beta


def posterior_hessian(cov: torch.Tensor, beta: Any) -> torch.Tensor:
    """Hessian of ``−log p`` for a Gaussian-smoothed density: ``β(I − β Cov_post)``, ``(B, d, d)``.

    ``Cov_post`` is the posterior covariance of the centres and ``β`` the inverse noise
    variance (1/σ² for the exact model, 1/(v + σ²) for an isotropic mixture).
    """
    b = _col(beta, 3)
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return (eye - cov * b) * b


def _log(v: Any) -> Any:
    """``log`` of a float or a tensor."""
    return torch.log(v) if isinstance(v, torch.Tensor) else math.log(v)


def _widest_logit(
    beta: Any,
    norms: torch.Tensor,
    radius: float,
    a_max: float,
    dtype: torch.dtype,
    name: str,
) -> float:
    """``max_b β_b(‖x'_b‖ + R)²/2 + max|a|``, which bounds every streamed logit and the
    spread of every row; raises ``ValueError`` naming ``name`` when it could overflow."""
    b_max = float(beta.max()) if isinstance(beta, torch.Tensor) else beta
    widest = b_max * (float(norms.detach().max()) + radius) ** 2 / 2 + a_max
    fi = torch.finfo(dtype)
    if not widest <= fi.max / _LOGIT_HEADROOM:
        hint = "a larger sigma" if name == "sigma" else f"a smaller {name}"
        raise ValueError(
            f"{name} is out of range for {str(dtype).removeprefix('torch.')} at this "
            f"data scale: the logits β‖x − y‖²/2 reach {widest:.3g} (beyond "
            f"{fi.max / _LOGIT_HEADROOM:.3g}); use float64 or {hint}"
        )
    return widest


# ---------------------------------------------------------------- memories
def centre_memories(memories: torch.Tensor, dtype: torch.dtype | None = None) -> CentredMemories:
    """Centre ``memories`` ``(K, d)`` (or ``(K, *event_shape)``, flattened) on their mean
    when that shrinks their norms.

    The mean ``c`` is accumulated in float64. Centring is applied (one centred copy) when
    ``‖c‖² > _CENTRE_GAIN · mean_k ‖y_k − c‖²``, i.e. when it at least halves the
    rounding of the expanded logits; otherwise ``centre`` is ``None`` and the points are
    ``memories`` themselves (no copy when the dtype matches).

    Args:
        memories: ``(K, d)`` or ``(K, *event_shape)``, floating point.
        dtype: the compute dtype of the result (default: that of ``memories``).
    """
    dtype = dtype or memories.dtype
    k = memories.shape[0]
    memories = memories.reshape(k, -1)
    c64 = torch.zeros(memories.shape[1], dtype=torch.float64, device=memories.device)
    sq64 = torch.zeros((), dtype=torch.float64, device=memories.device)
    for start in range(0, k, 1 << 16):
        block = memories[start : start + (1 << 16)].to(torch.float64)
        c64 += block.sum(0)
        sq64 += block.pow(2).sum()
    c64 /= k
    centre2 = float(c64.pow(2).sum())
    spread = float(sq64) / k - centre2
    if centre2 > _CENTRE_GAIN * max(spread, 0.0):
        points = torch.cat(
            [
                (memories[s : s + (1 << 16)].to(torch.float64) - c64).to(dtype)
                for s in range(0, k, 1 << 16)
            ]
        )
        centre: torch.Tensor | None = c64.to(dtype)
    else:
        points = memories.to(dtype)
        centre = None
    half_sq = 0.5 * points.pow(2).sum(1)
    return CentredMemories(centre, points, half_sq, float(torch.sqrt(2 * half_sq.max())))


class MemoryCache:
    """One :class:`CentredMemories` per model, rebuilt when the source tensor changes.

    The key is the source tensor's identity and version counter (bumped by in-place
    writes) and the requested dtype and device, so ``model.data[0] = ...`` or a new
    ``model.data`` is seen. Other per-memory vectors derived from the same sources can be
    cached alongside (:meth:`extra`).
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._sources: tuple[Any, ...] = ()
        self._value: CentredMemories | None = None
        self._extra: dict[str, torch.Tensor] = {}

    def _key_of(self, sources: tuple[Any, ...], dtype: torch.dtype, device: Any) -> tuple:
        return (
            tuple(None if t is None else (id(t), t._version) for t in sources),
            dtype,
            torch.device(device),
        )

    def get(
        self, memories: torch.Tensor, dtype: torch.dtype, device: Any, *others: Any
    ) -> CentredMemories:
        """Centred ``memories`` in ``dtype`` on ``device``; ``others`` also key the cache."""
        sources = (memories, *others)
        key = self._key_of(sources, dtype, device)
        if self._value is None or key != self._key:
            self._value = centre_memories(memories.to(device), dtype)
            self._key, self._sources, self._extra = key, sources, {}
        return self._value

    def extra(self, name: str, build: Any) -> torch.Tensor:
        """A tensor cached with the current memories (``build()`` on first use)."""
        if name not in self._extra:
            self._extra[name] = build()
        return self._extra[name]


# ---------------------------------------------------------------- the streamed loop
class _Run(NamedTuple):
    m: torch.Tensor | None  # (B, 1) running max of the logits (None: not tracked)
    z: torch.Tensor | None  # (B, 1) Σ exp(ℓ − m) (None: acc already normalized)
    acc: torch.Tensor  # (B, d) Σ exp(ℓ − m) y
    acc2: torch.Tensor | None  # (B, d, d) Σ exp(ℓ − m) y yᵀ
    top_val: torch.Tensor | None  # (B, t) the t largest logits
    top_idx: torch.Tensor | None  # (B, t) their memory indices


def _second_moment(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``Σ_k p_bk y_k y_kᵀ``: ``(B, d, d)``.

    One ``(B, K) @ (K, d²)`` matmul over the chunk's outer products when they are
    small (several times faster than the batched contraction), else ``einsum``.
    """
    k, d = y.shape
    if k * d * d * y.element_size() <= _OUTER_BYTES:
        outer = (y[:, :, None] * y[:, None, :]).reshape(k, d * d)
        return (p @ outer).reshape(p.shape[0], d, d)
    return torch.einsum("bk,ki,kj->bij", p, y, y)


def _merge_top(
    val: torch.Tensor | None, idx: torch.Tensor | None, logits: torch.Tensor, t: int, start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running top-``t`` logits per query after one more chunk."""
    v, i = logits.topk(min(t, logits.shape[1]), dim=1)
    i = i + start
    if val is None or idx is None:
        return v, i
    v, i = torch.cat([val, v], 1), torch.cat([idx, i], 1)
    if v.shape[1] > t:
        v, j = v.topk(t, dim=1)
        i = i.gather(1, j)
    return v, i


def _stream(
    x: torch.Tensor,
    y: torch.Tensor,
    bias: torch.Tensor | None,
    beta: torch.Tensor | None,
    post: torch.Tensor | None,
    chunk_size: int,
    covariance: bool,
    top: int,
    fused: bool = False,
    scale: float = 1.0,
    bias_scale: float | None = None,
) -> _Run:
    """Online softmax over chunks of ``y`` of the logits
    ``(scale·x yᵀ + bias_scale·bias)·beta + post`` (``bias_scale`` defaults to ``scale``).

    ``bias``/``post`` are per memory ``(K,)``, ``beta`` per query ``(B, 1)`` (``None``:
    one shared β, passed as the float ``scale`` and applied inside the matmul, or already
    folded into ``x`` and ``bias``). The first chunk initializes the running sums
    directly, so ``K ≤ chunk_size`` is one pass with no rescaling. With ``fused`` (when no
    ``lse`` is needed) that pass is one in-place ``torch.softmax``, the naive kernel's own
    exp, with the bias and β inside the one matmul.
    """
    k = y.shape[0]
    inplace = not (
        torch.is_grad_enabled()
        and any(t is not None and t.requires_grad for t in (x, y, bias, beta, post))
    )
    floor = _EXP_FLOOR.get(x.dtype, -math.inf)
    m = z = acc = acc2 = tv = ti = None
    # multi-chunk: one logits buffer for every chunk (no fresh B×chunk allocation, and
    # its page faults, per chunk) unless autograd needs each chunk's own tensor
    buf = None
    if inplace and k > chunk_size:
        buf = torch.empty(x.shape[0] * chunk_size, dtype=x.dtype, device=x.device)
    for start in range(0, k, chunk_size):
        stop = min(start + chunk_size, k)
        yc = y if stop - start == k else y[start:stop]
        b_scale = scale if bias_scale is None else bias_scale
        kw: dict[str, Any] = {} if scale == b_scale == 1.0 else {"alpha": scale, "beta": b_scale}
        if buf is not None:
            kw["out"] = buf[: x.shape[0] * (stop - start)].view(x.shape[0], stop - start)
        if bias is None:
            logits = torch.mm(x, yc.T, out=kw["out"]) if "out" in kw else x @ yc.T
            if scale != 1.0:
                logits = logits.mul_(scale) if inplace else logits * scale
        else:
            logits = torch.addmm(bias if stop - start == k else bias[start:stop], x, yc.T, **kw)
        if beta is not None:
            logits = logits.mul_(beta) if inplace else logits * beta
        if post is not None:
            logits = logits.add_(post[start:stop]) if inplace else logits + post[start:stop]
        if top:
            tv, ti = _merge_top(tv, ti, logits, top, start)
        if fused and start == 0 and stop == k:  # one direct pass: fused softmax
            p = torch.softmax(logits, dim=1, out=logits) if inplace else logits.softmax(1)
            acc2 = _second_moment(p, yc) if covariance else None
            return _Run(None, None, p @ yc, acc2, tv, ti)
        cmax = logits.detach().amax(dim=1, keepdim=True)
        m_new = cmax if m is None else torch.maximum(m, cmax)
        if inplace:
            p = logits.sub_(m_new).clamp_(min=floor).exp_()
        else:
            p = (logits - m_new).clamp(min=floor).exp()
        if m is None or z is None or acc is None:  # first chunk: nothing to rescale
            z, acc = p.sum(dim=1, keepdim=True), p @ yc
            acc2 = _second_moment(p, yc) if covariance else None
        else:
            rescale = torch.exp(m - m_new)
            z = torch.addcmul(p.sum(dim=1, keepdim=True), z, rescale)
            acc = torch.addmm(acc * rescale, p, yc)
            if acc2 is not None:
                acc2 = acc2 * rescale[:, :, None] + _second_moment(p, yc)
        m = m_new
    assert m is not None and z is not None and acc is not None
    return _Run(m, z, acc, acc2, tv, ti)


def _moments(run: _Run) -> tuple[torch.Tensor, torch.Tensor | None]:
    mean = run.acc if run.z is None else run.acc / run.z
    if run.acc2 is None:
        return mean, None
    second = run.acc2 if run.z is None else run.acc2 / run.z[:, :, None]
    return mean, second - mean[:, :, None] * mean[:, None, :]


# ---------------------------------------------------------------- public kernels
def streamed_softmax(
    x: torch.Tensor,
    memories: torch.Tensor,
    beta: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    covariance: bool = False,
) -> SoftmaxStats:
    """Softmax statistics of ``ℓ_bk = β_b (x_bᵀy_k + c_k)`` streamed over memory chunks.

    Dot-product logits (dense associative memories). Distances ``‖x − y‖²`` should go
    through :func:`streamed_distance_softmax`, which is translation-stable.

    Args:
        x: queries ``(B, d)``.
        memories: ``(K, d)``, same dtype and device as ``x``.
        beta: inverse temperature per query ``(B,)`` (positive).
        bias: per-memory offset ``c_k`` of shape ``(K,)`` or ``None`` for zero.
        chunk_size: memories per chunk; memory use is ``O(B·chunk_size)`` (the
            default keeps a float32 chunk of logits in cache for B ≈ 256).
        covariance: also return the weighted covariance ``(B, d, d)``.

    Returns:
        :class:`SoftmaxStats` ``(lse, mean, cov)``.
    """
    b = x.shape[0]
    beta = beta.reshape(b, 1)
    if bool((beta == beta[0]).all()):  # one shared β is folded into the matmul
        b0 = beta[0]
        run = _stream(
            x * b0, memories, None if bias is None else bias * b0, None, None,
            chunk_size, covariance, 0,
        )  # fmt: skip
    else:
        run = _stream(x, memories, bias, beta, None, chunk_size, covariance, 0)
    mean, cov = _moments(run)
    assert run.m is not None and run.z is not None
    return SoftmaxStats((run.m + torch.log(run.z)).squeeze(1), mean, cov)


def streamed_distance_softmax(
    x: torch.Tensor,
    memories: CentredMemories,
    beta: Any,
    log_weights: torch.Tensor | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    covariance: bool = False,
    exact_lse: bool = False,
    need_lse: bool = True,
    name: str = "beta",
) -> DistanceStats:
    """Softmax statistics of ``ℓ_bk = a_k − β_b ‖x_b − y_k‖²/2``, translation-stable.

    The logits are streamed as ``β(x'ᵀy'_k − ‖y'_k‖²/2) + a_k − β‖x'‖²/2`` in the
    coordinates ``x' = x − c``, ``y' = y − c`` of ``memories`` (one matmul per chunk).
    With ``exact_lse`` the ``EXACT_TOP`` largest logits of each query are re-evaluated
    directly and the rest keep their streamed values, so the error of ``lse`` is about
    ``u·|lse|`` plus the rounding of the expanded form times the weight outside those
    terms (``u`` the unit roundoff); a query where the latter could exceed
    ``_LSE_ULPS · eps · (1 + |lse|)`` (more than ``EXACT_TOP`` memories within a few σ) is
    redone with every distance direct. All ``K ≤ EXACT_TOP`` logits are direct.

    Args:
        x: queries ``(B, d)``, in the dtype and on the device of ``memories``.
        memories: :class:`CentredMemories` (:func:`centre_memories`).
        beta: inverse temperature, > 0: one float for the batch or ``(B,)``.
        log_weights: per-memory log-weights ``a_k`` ``(K,)`` or ``None`` for zero.
        chunk_size: memories per chunk; memory use is ``O(B·chunk_size)``.
        covariance: also return the weighted covariance ``(B, d, d)``.
        exact_lse: re-evaluate the leading logits directly (for energies).
        need_lse: compute ``lse`` (``False``: ``lse`` is ``None``, and a single chunk
            goes through one fused softmax).
        name: the argument named when the logits overflow the dtype (``"sigma"`` for
            diffusion models).

    Returns:
        :class:`DistanceStats` ``(lse, mean, drift, cov)``.
    """
    y, radius = memories.points, memories.radius
    xc = memories.shift(x)
    norms = torch.linalg.vector_norm(xc, dim=1)
    a_max = 0.0 if log_weights is None else float(log_weights.detach().abs().max())
    widest = _widest_logit(beta, norms, radius, a_max, x.dtype, name)
    need_lse = need_lse or exact_lse
    k = y.shape[0]
    top = 0
    if exact_lse and k > EXACT_TOP and widest > _EXPANDED_OK:
        top = EXACT_TOP
    fused = not need_lse
    if isinstance(beta, torch.Tensor) and bool((beta == beta[0]).all()):
        beta = beta[0]  # one shared β (0-d) is folded into the matmul
    if isinstance(beta, torch.Tensor) and beta.ndim == 1:
        run = _stream(
            xc, y, -memories.half_sq, beta[:, None], log_weights, chunk_size, covariance,
            top, fused,
        )  # fmt: skip
    elif log_weights is None and not isinstance(beta, torch.Tensor):  # β inside the matmul
        run = _stream(
            xc, y, memories.half_sq, None, None, chunk_size, covariance, top, fused, beta, -beta
        )
    else:
        bias = memories.half_sq * -beta
        if log_weights is not None:
            bias = bias + log_weights
        run = _stream(xc * beta, y, bias, None, None, chunk_size, covariance, top, fused)
    lse = None
    if need_lse:
        assert run.m is not None and run.z is not None
        q = beta * 0.5 * norms**2  # streamed logits = ℓ + q
        lse = run.m.squeeze(1) + torch.log(run.z.squeeze(1)) - q
        if exact_lse and (top or k <= EXACT_TOP):
            scale = _col(beta, 1) * (norms + radius) ** 2 / 2 + a_max
            lse = _exact_lse(xc, y, beta, log_weights, run, q, scale, chunk_size)
    mean_c, cov = _moments(run)
    return DistanceStats(lse, mean_c, xc, memories.centre, cov)


def _exact_lse(
    xc: torch.Tensor,
    y: torch.Tensor,
    beta: Any,
    log_weights: torch.Tensor | None,
    run: _Run,
    q: torch.Tensor,
    scale: torch.Tensor,
    chunk_size: int,
) -> torch.Tensor:
    """``lse = log(Σ_S e^{ℓ_k} + tail)``: the leading logits ``S`` direct, the tail streamed.

    ``scale`` bounds the streamed logits' magnitude ``(B,)``; their rounding is about
    ``_ROUNDING · u · scale``. Queries where that times the tail's weight exceeds
    ``_LSE_ULPS · eps · (1 + |lse|)`` (many memories within a few σ, at large β) are redone
    with every distance direct (:func:`_direct_lse`).
    """
    b, k = xc.shape[0], y.shape[0]
    if run.top_idx is None or run.top_val is None:  # K ≤ EXACT_TOP: every term direct
        idx = torch.arange(k, device=xc.device).expand(b, k)
    else:
        idx = run.top_idx
    ell = -0.5 * _col(beta) * (xc[:, None, :] - y[idx]).pow(2).sum(-1)
    if log_weights is not None:
        ell = ell + log_weights[idx]
    a = ell.detach().amax(1)
    head = torch.exp(ell - a[:, None]).sum(1)
    if run.top_val is None or run.m is None or run.z is None:
        return a + torch.log(head)
    # the tail in the stream's own values, Z − Σ_S exp(s_k − m) (the same rounding as Z)
    shifted = (run.top_val - run.m).clamp(min=_EXP_FLOOR.get(xc.dtype, -math.inf))
    tail = (run.z.squeeze(1) - shifted.exp().sum(1)).clamp(min=0)
    tail = tail * torch.exp(run.m.squeeze(1) - q - a)
    lse = a + torch.log(head + tail)
    u = torch.finfo(xc.dtype).eps / 2
    error = (tail / (head + tail)).detach() * _ROUNDING * u * scale
    redo = error > _LSE_ULPS * 2 * u * (1 + lse.detach().abs())
    if bool(redo.any()):
        rows = redo.nonzero().squeeze(1)
        b_rows = beta[rows] if isinstance(beta, torch.Tensor) and beta.ndim else beta
        direct = _direct_lse(xc[rows], y, b_rows, log_weights, chunk_size)
        lse = lse.index_put((rows,), direct)
    return lse


def _direct_lse(
    xc: torch.Tensor,
    y: torch.Tensor,
    beta: Any,
    log_weights: torch.Tensor | None,
    chunk_size: int,
) -> torch.Tensor:
    """Streamed ``log Σ_k exp(a_k − β‖x' − y'_k‖²/2)`` with every distance evaluated directly
    (``torch.cdist`` without the matmul expansion; ~10× the cost of the matmul form)."""
    m: torch.Tensor | None = None
    z: torch.Tensor | None = None
    for start in range(0, y.shape[0], chunk_size):
        yc = y[start : start + chunk_size]
        dist = torch.cdist(xc, yc, compute_mode="donot_use_mm_for_euclid_dist")
        ell = -0.5 * _col(beta) * dist.pow(2)
        if log_weights is not None:
            ell = ell + log_weights[start : start + chunk_size]
        cmax = ell.detach().amax(1)
        if m is None or z is None:
            m, z = cmax, torch.exp(ell - cmax[:, None]).sum(1)
        else:
            m_new = torch.maximum(m, cmax)
            z = z * torch.exp(m - m_new) + torch.exp(ell - m_new[:, None]).sum(1)
            m = m_new
    assert m is not None and z is not None
    return m + torch.log(z)
