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

Speed (``benchmarks/bench_denoiser.py``): every chunk is the naive kernel, one matmul
with the bias inside it, one in-place ``torch.softmax`` and one matmul, plus two max
passes that give the chunk's log-sum-exp for the merge; the chunk size follows the
cache (:func:`chunk_size_for`), and ``B×K`` logits that fit in cache are one direct
pass (no merge: the naive kernel itself). On the CPU the loop runs with subnormal
floats flushed to zero on the calling thread (:func:`memscape.numeric.flush_denormals`):
the weights of memories more than ~87 (float32) logits below a query's nearest are
subnormal, and x86 cores compute those through slow microcode (at d = 64, K = 10³,
σ = 1: 6 % of the weights, and the softmax 1.35× slower). Peaked posteriors (small σ,
large d: the nearest memory outweighs the rest by tens of logits) skip most of the second
matmul: a query whose 8 largest weights hold all but eps of its mass is summed over those
alone (:func:`_posterior_sum`; on the CPU, without autograd or covariance, where a probe
of the queries says it pays): measured 1.5–1.75× the naive kernel at d = 256, 784 and
3072, σ = 1; where posteriors are spread it stays the dense kernel. On CUDA (float32, by
default) or with ``method="sdpa"`` the mean is one ``scaled_dot_product_attention``
with augmented queries and keys.

Dtypes: float16/bfloat16 (and integer) states are computed in float32
(:func:`_compute_dtype`); an inverse temperature whose logits the dtype cannot hold
raises a ``ValueError`` naming the argument (:func:`_inverse_variance`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import torch

from memscape._validation import as_sigma, check_choice, check_int, check_positive
from memscape.numeric import flush_denormals

__all__ = [
    "CentredMemories",
    "DistanceStats",
    "MemoryCache",
    "SoftmaxStats",
    "centre_memories",
    "chunk_size_for",
    "distance_weights",
    "streamed_distance_softmax",
    "streamed_softmax",
]

DEFAULT_CHUNK = 0  # chunk_size = 0: chosen per call from B, K, d and the dtype (chunk_size_for)
METHODS = ("auto", "streamed", "sdpa")  # how streamed_distance_softmax forms the mean

# The chunk rule (chunk_size_for), measured with benchmarks/bench_denoiser.py on a 2-core
# AMD EPYC (1 MiB L2 per core, 32 MiB L3), 1 thread, d = 64…3072, B = 16…2048. The working
# set of c memories is their B×c logits plus the c×d memories that both matmuls read, the
# latter weighted by min(1, _REUSE_BATCH/B): the second read costs bandwidth only when few
# queries share it (it decides for B = 16, and hardly matters at B = 256).
_DIRECT_BYTES = 8 << 20  # whole working set up to 8 MiB: one direct pass beats chunking
_CHUNK_BYTES = 4 << 20  # a chunk's working set (c ≈ 4000 at B = 256, d = 64, float32)
_CHUNK_ALIGN = 64  # chunks are multiples of 64: unaligned logits rows cost ~10 %
_REUSE_BATCH = 32  # up to this many queries the memories count fully in the working set
_MIN_CHUNK = 512  # smaller chunks lose 5–60 % to the per-chunk merge and matmul shapes
_SDPA_ALIGN = 8  # attention head dimension padded to a multiple of this (fused kernels)
_SDPA_BYTES = 1 << 30  # queries per attention call: at most this much B×K logits

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
_GATHER_BYTES = 1 << 20  # gathered differences per block of the direct distances (L2-sized)
# Peaked posteriors (_posterior_sum, CPU, no autograd): a query whose _SPARSE_TOP largest
# weights hold all but eps of its mass gets its mean from those alone. A probe of
# _SPARSE_PROBE evenly spaced queries estimates the share q that qualifies; the top-k of
# the candidates (largest weight ≥ _SPARSE_LEAD, one row max) runs when q·d ≥
# _SPARSE_PAYBACK. Measured (bench_denoiser, 1 thread, K = 5000): the top-k and its row
# copy cost ~1.5 ns per weight, the dense p @ y ~0.022·d ns, so a query pays back from
# q·d ≈ 70; the threshold keeps a factor ~2 of margin. The probe costs < 1 % from d = 256.
_SPARSE_TOP = 8
_SPARSE_LEAD = 0.5
_SPARSE_PROBE = 8
_SPARSE_PAYBACK = 128.0


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
    derived: dict[str, torch.Tensor]  #: built from the points on first use (attention keys, K×D)

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
    return CentredMemories(centre, points, half_sq, float(torch.sqrt(2 * half_sq.max())), {})


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


# ---------------------------------------------------------------- the chunk rule
def chunk_size_for(batch: int, k: int, dim: int, element_size: int) -> int:
    """Memories per chunk of the streamed kernels for ``batch`` queries, ``k`` memories of
    dimension ``dim`` and elements of ``element_size`` bytes (what ``chunk_size=0`` uses).

    The working set of ``c`` memories is ``(B + w·d)·c`` elements: their ``B×c`` logits
    and the ``c×d`` memories both matmuls read, weighted by ``w = min(1, _REUSE_BATCH/B)``
    (re-reading them costs bandwidth only when few queries share them). Up to
    ``_DIRECT_BYTES`` for all ``k`` it is one direct pass (``k``: the naive kernel, no
    merge); otherwise chunks of at most
    ``_CHUNK_BYTES`` working set and at least ``_MIN_CHUNK`` memories, evened out over
    the same number of chunks (no short last one) and rounded up to a multiple of
    ``_CHUNK_ALIGN`` so rows of logits stay aligned. Measured with
    ``benchmarks/bench_denoiser.py`` on a 1 MiB-L2 core: within ~4 % of the best chunk
    size for B = 16…2048 and d = 64…3072.
    """
    per_memory = int((batch + dim * min(1.0, _REUSE_BATCH / max(batch, 1))) * element_size)
    if k * per_memory <= _DIRECT_BYTES:
        return max(k, 1)
    c = max(_MIN_CHUNK, _CHUNK_BYTES // per_memory)
    even = -(-k // -(-k // c))  # equal chunks (no short last one) …
    return min(k, -(-even // _CHUNK_ALIGN) * _CHUNK_ALIGN)  # … rows of aligned logits


def _resolve_chunk(chunk_size: Any, batch: int, y: torch.Tensor) -> int:
    """``chunk_size`` checked (an integer ≥ 0), with 0 replaced by :func:`chunk_size_for`."""
    chunk = check_int(chunk_size, "chunk_size", minimum=0)
    return chunk or chunk_size_for(batch, y.shape[0], y.shape[1], y.element_size())


# ---------------------------------------------------------------- the streamed loop
class _Run(NamedTuple):
    m: torch.Tensor | None  # (B, 1) running max of the streamed logits (None: not tracked)
    s: torch.Tensor | None  # (B, 1) log Σ_k exp(ℓ_k − m) ≥ 0, so lse = m + s keeps its digits
    mean: torch.Tensor  # (B, d) Σ_k softmax_k y_k
    second: torch.Tensor | None  # (B, d, d) Σ_k softmax_k y_k y_kᵀ
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


def _posterior_sum(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``Σ_k p_bk y_k`` for rows of weights ``p`` ``(B, K)`` that each sum to 1: ``(B, d)``.

    One matmul, except for peaked posteriors (small σ, large d: a query's nearest memory
    outweighs the rest by tens of logits). There a row led by a weight ≥ ``_SPARSE_LEAD``
    whose ``t = _SPARSE_TOP`` largest weights leave ``r_b = 1 − Σ_top p_bk ≤ eps`` of its
    mass takes its sum over those ``t`` memories only (``t`` gathered rows instead of
    ``K·d`` work). The dropped weights sum to ``r_b`` plus the rounding of the row's
    normalization, so component ``j`` differs from the full sum by at most that times
    ``max_k |y_kj|``: an error of order eps relative to the memories' scale (not to the
    mean's). The other rows go through the matmul. Only on the CPU and where a probe of the
    rows says it pays (the constants above); else ``p @ y``.
    """
    (b, k), d = p.shape, y.shape[1]
    t = _SPARSE_TOP
    if d < _SPARSE_PAYBACK or k <= 2 * t or p.device.type != "cpu":
        return p @ y
    eps = torch.finfo(p.dtype).eps
    probe = p[:: max(1, b // _SPARSE_PROBE)]
    qualify = float((1 - probe.topk(t, dim=1).values.sum(1) <= eps).double().mean())
    if qualify * d < _SPARSE_PAYBACK:
        return p @ y
    rows = (p.amax(1) >= _SPARSE_LEAD).nonzero().squeeze(1)
    val, idx = (p if rows.numel() == b else p[rows]).topk(t, dim=1)
    ok = 1 - val.sum(1) <= eps
    rows, val, idx = rows[ok], val[ok], idx[ok]
    if rows.numel() == 0:
        return p @ y
    part = y[idx[:, 0]] * val[:, :1]  # one gathered (rows, d) block at a time
    for j in range(1, t):
        part.addcmul_(y[idx[:, j]], val[:, j : j + 1])
    out = torch.empty(b, d, dtype=p.dtype, device=p.device)
    out[rows] = part
    if rows.numel() < b:
        dense = torch.ones(b, dtype=torch.bool, device=p.device)
        dense[rows] = False
        others = dense.nonzero().squeeze(1)
        out[others] = p[others] @ y
    return out


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


class _Logits(NamedTuple):
    """The logits ``ℓ = xs yᵀ + b`` of one stream, ``b_bk = bias_k`` (``row`` None) or
    ``row_b bias_k + post_k`` (a per-query β); a shared β is folded into ``xs`` and
    ``bias`` by the caller."""

    xs: torch.Tensor  # (B, d) queries, β folded in where per query
    bias: torch.Tensor | None = None  # (K,)
    row: torch.Tensor | None = None  # (B, 1)
    post: torch.Tensor | None = None  # (K,)

    def requires_grad(self) -> bool:
        return any(t is not None and t.requires_grad for t in self[:4])

    def chunk(self, yc: torch.Tensor, part: slice, out: torch.Tensor | None) -> torch.Tensor:
        """The logits of the memories ``yc = y[part]``, written into ``out`` when given:
        a shared bias is one in-place pass after the matmul (``mm`` then ``add_``: 20 %
        faster than ``addmm``, which copies the bias in first, at B = 256, d = 64 on an
        Intel Xeon; even at d = 784)."""
        kw: dict[str, Any] = {} if out is None else {"out": out}
        xs, row = self.xs, self.row
        if self.bias is None:
            return torch.mm(xs, yc.T, **kw)
        bias = self.bias[part]
        if row is None:
            return torch.mm(xs, yc.T, **kw).add_(bias)
        post = None if self.post is None else self.post[part]
        if out is None:
            b = row * bias if post is None else torch.addcmul(post, row, bias)
            return torch.addmm(b, xs, yc.T)
        if post is None:
            torch.mul(row, bias, out=out)
        else:
            torch.addcmul(post, row, bias, out=out)
        return out.addmm_(xs, yc.T)


def _stream(
    form: _Logits,
    y: torch.Tensor,
    chunk: int,
    *,
    need_lse: bool,
    covariance: bool = False,
    top: int = 0,
) -> _Run:
    """Softmax statistics of the logits ``form`` (:class:`_Logits`) over chunks of ``y``.

    Each chunk is one matmul (with the bias), one in-place ``torch.softmax`` (the naive
    kernel's own fused max/exp/sum) and one matmul. Chunks are merged by their
    log-sum-exp (online softmax; Milakov & Gimelshein 2018): a chunk's is
    ``max ℓ − log max softmax(ℓ)``, from two max passes (no index pass, no separate
    ``exp``), and the running mean is reweighted by ``exp(lse_old − lse_new)`` and
    ``exp(lse_chunk − lse_new)``. The log-sum-exp is kept as ``m + s`` (running max and
    the small log-mass above it), so differences to single logits keep their digits
    (the tail of :func:`_exact_lse`). ``K ≤ chunk`` without ``need_lse`` is the naive
    kernel itself. Autograd-safe: with gradients required nothing is done in place and
    the maxima keep their gradient (``lse``'s is the softmax).
    """
    xs, k = form.xs, y.shape[0]
    b = xs.shape[0]
    inplace = not (torch.is_grad_enabled() and (form.requires_grad() or y.requires_grad))
    direct = chunk >= k
    track = need_lse or not direct
    # one logits buffer for every chunk (no fresh B×chunk allocation, and its page faults)
    buf = None
    if inplace and not direct:
        buf = torch.empty(b * chunk, dtype=xs.dtype, device=xs.device)
    m = s = mean = second = tv = ti = None
    with flush_denormals(xs.device.type == "cpu"):  # subnormal weights: slow, and nil
        for start in range(0, k, chunk):
            stop = min(start + chunk, k)
            part = slice(start, stop)
            yc = y if direct else y[part]
            out = None if buf is None else buf[: b * (stop - start)].view(b, stop - start)
            logits = form.chunk(yc, part, out)
            if top:
                tv, ti = _merge_top(tv, ti, logits, top, start)
            cmax = logits.amax(dim=1, keepdim=True) if track else None
            p = torch.softmax(logits, dim=1, out=logits) if inplace else logits.softmax(1)
            m1 = _posterior_sum(p, yc) if inplace and not covariance else p @ yc
            m2 = _second_moment(p, yc) if covariance else None
            if cmax is None:
                return _Run(None, None, m1, m2, tv, ti)
            s_c = -torch.log(p.amax(dim=1, keepdim=True))  # the chunk's lse is cmax + s_c
            if m is None or s is None or mean is None:
                m, s, mean, second = cmax, s_c, m1, m2
                continue
            m_new = torch.maximum(m, cmax)
            a_old, a_new = (m - m_new) + s, (cmax - m_new) + s_c
            s = torch.logaddexp(a_old, a_new)
            w_old, w_new = torch.exp(a_old - s), torch.exp(a_new - s)
            mean = torch.addcmul(mean * w_old, m1, w_new)
            if second is not None and m2 is not None:
                second = torch.addcmul(second * w_old[:, :, None], m2, w_new[:, :, None])
            m = m_new
    assert mean is not None, "no memories"
    return _Run(m, s, mean, second, tv, ti)


def _moments(run: _Run) -> tuple[torch.Tensor, torch.Tensor | None]:
    if run.second is None:
        return run.mean, None
    return run.mean, run.second - run.mean[:, :, None] * run.mean[:, None, :]


# ---------------------------------------------------------------- the attention path
def _use_attention(method: str, x: torch.Tensor, need_lse: bool, covariance: bool) -> bool:
    """Whether the mean goes through SDPA: asked for, or by default on CUDA in float32 (where
    fused attention kernels exist; float64 has only the materializing math kernel)."""
    if need_lse or covariance:  # lse and covariance come from the streamed pass
        return False
    if method == "auto":
        return x.device.type == "cuda" and x.dtype == torch.float32
    return method == "sdpa"


def _attention_keys(memories: CentredMemories, log_weights: torch.Tensor | None) -> torch.Tensor:
    """``[y', −‖y'‖²/2, (a)]`` zero-padded to a multiple of ``_SDPA_ALIGN`` columns: ``(K, D)``.

    The same tensor serves as values: their extra columns only fill output columns that
    are dropped. Cached on ``memories`` when there are no log-weights.
    """
    y = memories.points
    k, d = y.shape
    extra = 1 if log_weights is None else 2
    width = -(-(d + extra) // _SDPA_ALIGN) * _SDPA_ALIGN
    key = f"sdpa{width}"
    if log_weights is None and key in memories.derived:
        return memories.derived[key]
    cols = [y, -memories.half_sq[:, None]]
    if log_weights is not None:
        cols.append(log_weights.to(y)[:, None])
    cols.append(y.new_zeros(k, width - d - extra))
    keys = torch.cat(cols, 1)
    if log_weights is None and not keys.requires_grad:
        memories.derived[key] = keys
    return keys


def _attention_mean(
    xc: torch.Tensor, memories: CentredMemories, beta: Any, log_weights: torch.Tensor | None
) -> torch.Tensor:
    """The posterior mean ``Σ_k softmax_k(ℓ) y'_k`` as one attention (centred coordinates).

    With ``q = [βx', β, 1]`` and ``k = v = [y', −‖y'‖²/2, a]`` at scale 1, ``q·k =
    β(x'ᵀy' − ‖y'‖²/2) + a = ℓ + β‖x'‖²/2``, a per-query shift the softmax ignores, so
    ``softmax(q kᵀ) v`` holds the mean in its first ``d`` columns
    (:func:`torch.nn.functional.scaled_dot_product_attention`, which reaches the flash
    and memory-efficient kernels). Queries go in blocks of at most ``_SDPA_BYTES`` of
    logits, the memory a non-fused (math) kernel would materialize.
    """
    b, d = xc.shape
    keys = _attention_keys(memories, log_weights)
    beta_col = _col(beta) if isinstance(beta, torch.Tensor) and beta.ndim else beta
    cols = [xc * beta_col, beta_col * xc.new_ones(b, 1)]
    if log_weights is not None:
        cols.append(xc.new_ones(b, 1))
    cols.append(xc.new_zeros(b, keys.shape[1] - d - len(cols) + 1))  # the padding
    q = torch.cat(cols, 1)[None, None]
    rows = max(1, _SDPA_BYTES // max(1, keys.shape[0] * keys.element_size()))
    kv = keys[None, None]
    attend = torch.nn.functional.scaled_dot_product_attention
    means = [attend(q[:, :, s : s + rows], kv, kv, scale=1.0) for s in range(0, max(b, 1), rows)]
    return (means[0] if len(means) == 1 else torch.cat(means, 2))[0, 0, :, :d]


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
        chunk_size: memories per chunk, or 0 (the default) for :func:`chunk_size_for`;
            memory use is ``O(B·chunk_size)``.
        covariance: also return the weighted covariance ``(B, d, d)``.

    Returns:
        :class:`SoftmaxStats` ``(lse, mean, cov)``.
    """
    b = x.shape[0]
    chunk = _resolve_chunk(chunk_size, b, memories)
    beta = beta.reshape(b, 1)
    if bool((beta == beta[0]).all()):  # one shared β: folded into x and the bias
        b0 = beta[0]
        form = _Logits(x * b0, None if bias is None else bias * b0)
    else:
        form = _Logits(x * beta, bias, beta)
    run = _stream(form, memories, chunk, need_lse=True, covariance=covariance)
    mean, cov = _moments(run)
    assert run.m is not None and run.s is not None
    return SoftmaxStats((run.m + run.s).squeeze(1), mean, cov)


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
    method: str = "auto",
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

    The mean alone (``need_lse=False``, no covariance) can instead be one attention,
    ``method="sdpa"`` (:func:`torch.nn.functional.scaled_dot_product_attention` with
    ``q = β[x', 1]``, ``k = [y', −‖y'‖²/2]``, ``v = y'``, scale 1, in the same centred
    coordinates, so as translation-stable as the streamed pass); ``"auto"`` takes it on
    CUDA in float32 and the streamed pass elsewhere (on CPU SDPA is slower). An
    ``lse`` or covariance always comes from the streamed pass.

    Args:
        x: queries ``(B, d)``, in the dtype and on the device of ``memories``.
        memories: :class:`CentredMemories` (:func:`centre_memories`).
        beta: inverse temperature, > 0: one float for the batch or ``(B,)``.
        log_weights: per-memory log-weights ``a_k`` ``(K,)`` or ``None`` for zero.
        chunk_size: memories per chunk, or 0 (the default) for :func:`chunk_size_for`
            (one direct pass when the ``B×K`` logits fit in cache); memory use is
            ``O(B·chunk_size)``.
        covariance: also return the weighted covariance ``(B, d, d)``.
        exact_lse: re-evaluate the leading logits directly (for energies).
        need_lse: compute ``lse`` (``False``: ``lse`` is ``None``, and a single chunk
            is the naive kernel: one matmul, one fused softmax, one matmul).
        method: ``"auto"``, ``"streamed"`` or ``"sdpa"``, for the mean (see above).
        name: the argument named when the logits overflow the dtype (``"sigma"`` for
            diffusion models).

    Returns:
        :class:`DistanceStats` ``(lse, mean, drift, cov)``.
    """
    method = check_choice(method, METHODS, "method")
    y, radius = memories.points, memories.radius
    chunk = _resolve_chunk(chunk_size, x.shape[0], y)
    xc = memories.shift(x)
    norms = torch.linalg.vector_norm(xc, dim=1)
    a_max = 0.0 if log_weights is None else float(log_weights.detach().abs().max())
    widest = _widest_logit(beta, norms, radius, a_max, x.dtype, name)
    need_lse = need_lse or exact_lse
    if isinstance(beta, torch.Tensor) and beta.ndim == 1 and bool((beta == beta[0]).all()):
        beta = beta[0]  # one shared β (0-d) is folded into x and the bias
    if _use_attention(method, x, need_lse, covariance):
        mean_c = _attention_mean(xc, memories, beta, log_weights)
        return DistanceStats(None, mean_c, xc, memories.centre, None)
    k = y.shape[0]
    top = EXACT_TOP if exact_lse and k > EXACT_TOP and widest > _EXPANDED_OK else 0
    opts: dict[str, Any] = {"need_lse": need_lse, "covariance": covariance, "top": top}
    if isinstance(beta, torch.Tensor) and beta.ndim == 1:
        row = beta[:, None]
        form = _Logits(xc * row, -memories.half_sq, row, log_weights)
    else:  # β folded into the queries and the bias (measured faster than addmm's α, β)
        bias = memories.half_sq * -beta
        form = _Logits(xc * beta, bias if log_weights is None else bias + log_weights)
    run = _stream(form, y, chunk, **opts)
    lse = None
    if need_lse:
        assert run.m is not None and run.s is not None
        q = beta * 0.5 * norms**2  # streamed logits = ℓ + q
        lse = run.m.squeeze(1) + run.s.squeeze(1) - q
        if exact_lse and (top or k <= EXACT_TOP):
            scale = _col(beta, 1) * (norms + radius) ** 2 / 2 + a_max
            lse = _exact_lse(xc, y, beta, log_weights, run, q, scale, chunk)
    mean_c, cov = _moments(run)
    return DistanceStats(lse, mean_c, xc, memories.centre, cov)


def distance_weights(
    x: torch.Tensor,
    memories: CentredMemories,
    beta: Any,
    log_weights: torch.Tensor | None = None,
    name: str = "beta",
) -> torch.Tensor:
    """Softmax weights ``p_bk = softmax_k(a_k − β_b ‖x_b − y_k‖²/2)``, materialized ``(B, K)``.

    The logits are formed as ``β(x'ᵀy'_k − ‖y'_k‖²/2) + a_k`` in the centred coordinates of
    ``memories`` (the ``‖x'‖²`` term is the same for every k and cancels in the softmax).
    Arguments as in :func:`streamed_distance_softmax`; raises ``ValueError`` naming
    ``name`` where the logits could overflow the dtype.
    """
    xc = memories.shift(x)
    a_max = 0.0 if log_weights is None else float(log_weights.detach().abs().max())
    norms = torch.linalg.vector_norm(xc, dim=1)
    _widest_logit(beta, norms, memories.radius, a_max, x.dtype, name)
    logits = torch.addmm(-memories.half_sq, xc, memories.points.T) * _col(beta)
    if log_weights is not None:
        logits = logits + log_weights
    return torch.softmax(logits, dim=1)


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
    ell = -0.5 * _col(beta) * _gathered_sq_dist(xc, y, idx)
    if log_weights is not None:
        ell = ell + log_weights[idx]
    a = ell.detach().amax(1)
    head = torch.exp(ell - a[:, None]).sum(1)
    if run.top_val is None or run.m is None or run.s is None:
        return a + torch.log(head)
    # the tail in the stream's own values, Z − Σ_S exp(s_k − m) with Z = e^s (the same
    # rounding as Z)
    shifted = (run.top_val - run.m).clamp(min=_EXP_FLOOR.get(xc.dtype, -math.inf))
    tail = (torch.exp(run.s.squeeze(1)) - shifted.exp().sum(1)).clamp(min=0)
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


def _gathered_sq_dist(xc: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``‖x'_b − y'_{idx_bj}‖²`` evaluated directly (not by the matmul expansion): ``(B, t)``.

    On the CPU in blocks of queries whose gathered ``(rows, t, d)`` differences stay within
    ``_GATHER_BYTES`` (cache-resident: 10–14× faster than one ``(B, t, d)`` temporary at
    d = 3072, measured), in place where no gradient is needed; elsewhere in one pass.
    """
    (b, t), d = idx.shape, xc.shape[1]
    inplace = not (torch.is_grad_enabled() and (xc.requires_grad or y.requires_grad))
    rows = max(1, _GATHER_BYTES // max(1, t * d * xc.element_size()))
    if xc.device.type != "cpu" or (rows >= b and not inplace):  # one pass off the CPU
        return (xc[:, None, :] - y[idx]).pow(2).sum(-1)
    parts = []
    for start in range(0, b, rows):
        block = slice(start, start + rows)
        if inplace:
            diff = y[idx[block]].sub_(xc[block, None, :])
            parts.append(diff.square_().sum(-1))
        else:
            parts.append((xc[block, None, :] - y[idx[block]]).pow(2).sum(-1))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


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
