"""Raw networks ``F_θ(c_in x, c_noise)`` that preconditioning turns into denoisers.

* :class:`MLP` — vector data ``(B, d)``: Fourier embedding of ``c_noise``, SiLU layers.
* :class:`UNet` — images ``(B, C, H, W)``: a small U-Net (Ronneberger et al. 2015; the
  DDPM variant of Ho et al. 2020 with residual blocks, GroupNorm, σ-embedding added in
  every block, optional self-attention at the coarsest level).

Both take ``c_noise`` as a ``(B,)`` tensor (EDM Table 1) and return the shape of ``x``.
Their output layer starts at zero, so an untrained model is ``D = c_skip x``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MLP", "FourierEmbedding", "UNet"]


class FourierEmbedding(nn.Module):
    """Fixed Fourier features ``[cos 2πf_k c, sin 2πf_k c]`` of a scalar ``c``: ``(B,) -> (B, n)``.

    Frequencies are geometric in ``[min_freq, max_freq]`` (deterministic, no seed):
    the positional embedding of Vaswani et al. 2017 as used for ``c_noise`` in EDM,
    with a range fitted to ``c_noise = ¼ ln σ ∈ [−1.6, 1.1]`` for σ ∈ [0.002, 80].
    """

    def __init__(self, num_channels: int, min_freq: float = 0.25, max_freq: float = 16.0) -> None:
        super().__init__()
        if num_channels < 2 or num_channels % 2:
            raise ValueError(f"num_channels must be an even integer >= 2, got {num_channels}")
        freqs = torch.logspace(
            math.log10(min_freq), math.log10(max_freq), num_channels // 2, dtype=torch.float64
        )
        self.register_buffer("freqs", (2 * math.pi * freqs).float())

    freqs: torch.Tensor

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """``(B,) -> (B, num_channels)``: ``[cos(2πf c), sin(2πf c)]`` over the frequencies f."""
        arg = c[:, None].to(self.freqs.dtype) * self.freqs[None, :]
        return torch.cat([arg.cos(), arg.sin()], dim=1)


class MLP(nn.Module):
    """Score MLP for vector data with σ-conditioning by FiLM.

    ``h_0 = x``, ``h_l = SiLU((1 + a_l) ⊙ W_l h_{l−1} + b_l)`` with ``(a_l, b_l)`` a linear
    map of the Fourier embedding of ``c_noise`` (feature-wise linear modulation, Perez et
    al. 2018; the adaptive scale/shift of the EDM/DDPM++ U-Net blocks) in the first layer
    (``film="first"``) or in every layer (``film="all"``; ``a_l = b_l = 0`` otherwise).
    The multiplicative term realizes the ~1/σ gains the denoiser needs at small σ; an
    additive embedding learns them far slower (it fails to memorize 4 digits in 3500
    steps). ``"all"`` has more capacity and memorizes larger training sets
    (digits, 3500 steps: memorized fraction 0.99 at K = 4 and 0.50 at K = 64, against
    0.90 and 0.21 for ``"first"``).

    Args:
        dim: data dimension d.
        width: hidden width.
        layers: number of hidden layers of size ``width``.
        emb_dim: Fourier-embedding channels of ``c_noise``.
        film: ``"first"`` or ``"all"`` layers modulated by σ.
    """

    def __init__(
        self, dim: int, width: int = 256, layers: int = 4, emb_dim: int = 64, film: str = "first"
    ) -> None:
        super().__init__()
        if film not in ("first", "all"):
            raise ValueError(f"unknown film {film!r}; expected first or all")
        self.emb = FourierEmbedding(emb_dim)
        self.n_film = 1 if film == "first" else layers
        self.film = nn.Linear(emb_dim, 2 * width * self.n_film)
        self.inp = nn.Linear(dim, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(layers - 1))
        self.out = nn.Linear(width, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """``F(x, c_noise)``: ``(B, dim)`` and ``(B,)`` -> ``(B, dim)``."""
        mod = self.film(self.emb(c_noise)).chunk(2 * self.n_film, dim=1)
        h = x
        for i, layer in enumerate([self.inp, *self.hidden]):
            h = layer(h)
            if i < self.n_film:
                h = torch.addcmul(mod[2 * i + 1], h, 1 + mod[2 * i])
            h = F.silu(h)
        return self.out(h)


def _groups(c: int) -> int:
    return 8 if c % 8 == 0 else 1


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class _Attention(nn.Module):
    """Single-head self-attention over pixels (written out so it is twice differentiable)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(_groups(c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # (b, hw, hw)
        out = (v @ attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj(out)


class UNet(nn.Module):
    """Small U-Net for images ``(B, C, H, W)``.

    Args:
        shape: event shape ``(C, H, W)``; H and W must be divisible by ``2**(levels−1)``.
        channels: base channel count.
        channel_mult: channels per level (``channels * m``); its length is the number of
            levels, with 2× average-pool down-sampling between levels.
        num_res_blocks: residual blocks per level.
        attention: self-attention in the middle (coarsest) block.
        emb_dim: σ-embedding width.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        channels: int = 32,
        channel_mult: tuple[int, ...] = (1, 2),
        num_res_blocks: int = 1,
        attention: bool = False,
        emb_dim: int = 128,
    ) -> None:
        super().__init__()
        c_img, h, w = shape
        factor = 2 ** (len(channel_mult) - 1)
        if h % factor or w % factor:
            raise ValueError(
                f"shape {tuple(shape)}: H and W must be divisible by {factor} "
                f"for {len(channel_mult)} levels (channel_mult={tuple(channel_mult)})"
            )
        self.emb = nn.Sequential(
            FourierEmbedding(emb_dim),
            nn.Linear(emb_dim, emb_dim),
            nn.SiLU(),
            nn.Linear(emb_dim, emb_dim),
        )
        self.inp = nn.Conv2d(c_img, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [channels]
        c = channels
        for level, m in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.down.append(_ResBlock(c, channels * m, emb_dim))
                c = channels * m
                skips.append(c)
            if level < len(channel_mult) - 1:
                self.down.append(nn.AvgPool2d(2))
                skips.append(c)
        self.mid1 = _ResBlock(c, c, emb_dim)
        self.attn = _Attention(c) if attention else nn.Identity()
        self.mid2 = _ResBlock(c, c, emb_dim)
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                self.up.append(_ResBlock(c + skips.pop(), channels * m, emb_dim))
                c = channels * m
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, c_img, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """``F(x, c_noise)``: ``(B, C, H, W)`` and ``(B,)`` -> ``(B, C, H, W)``."""
        emb = self.emb(c_noise)
        h = self.inp(x)
        hs = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, _ResBlock) else block(h)
            hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for block in self.up:
            h = (
                block(torch.cat([h, hs.pop()], 1), emb)
                if isinstance(block, _ResBlock)
                else block(h)
            )
        return self.out(F.silu(self.out_norm(h)))
