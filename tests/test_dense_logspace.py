"""DenseAM without overflow: energies, scores and flips against exact arithmetic.

The truth here is computed with Python's big integers, ``fractions.Fraction`` and
``decimal`` (60 digits), independently of torch: ``(ξ·σ)ⁿ`` at N = 784, n = 100 is an
integer of ~290 digits (beyond float32 at n ≥ 14, beyond float64 at n ≥ 107), and at
N = 64, n = 200 of ~360 digits.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
import torch

from memscape import DenseAM


def spins(k: int, n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (k, n), generator=g) * 2 - 1).to(dtype)


def flip(p: torch.Tensor, n_flips: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = p.clone()
    for row in out:
        idx = torch.randperm(p.shape[1], generator=g)[:n_flips]
        row[idx] = -row[idx]
    return out


def ints(t: torch.Tensor) -> list[list[int]]:
    return [[int(v) for v in row] for row in t.tolist()]


def F(m: int, n: int, interaction: str) -> int:
    """The interaction function on an integer overlap, exactly."""
    return max(m, 0) ** n if interaction == "rectified_polynomial" else m**n


def exact_overlaps(s: list[int], pats: list[list[int]]) -> list[int]:
    return [sum(a * b for a, b in zip(s, p, strict=True)) for p in pats]


def exact_energy(s, pats, n, interaction) -> float:
    """``−Σ_μ F(ξ_μ·σ) / Nⁿ``: the normalized energy, rounded once from the exact fraction."""
    big_n = len(s)
    return float(-Fraction(sum(F(m, n, interaction) for m in exact_overlaps(s, pats)), big_n**n))


def exact_score(s, pats, n, interaction) -> list[float]:
    """``(n/N) Σ_μ F'(ξ_μ·σ/N) ξ_μ`` with each weight rounded once from its exact fraction."""
    big_n = len(s)
    weights = [
        float(Fraction(n * F(m, n - 1, interaction), big_n**n)) for m in exact_overlaps(s, pats)
    ]
    return [math.fsum(w * p[j] for w, p in zip(weights, pats, strict=True)) for j in range(big_n)]


def exact_flip(s, i, pats, n, interaction) -> int:
    """Krotov–Hopfield eq. 3 in big integers: the value of unit i of lower energy (ties keep)."""
    gain = 0
    for p, m in zip(pats, exact_overlaps(s, pats), strict=True):
        r = m - s[i] * p[i]
        gain += F(r + p[i], n, interaction) - F(r - p[i], n, interaction)
    return 1 if gain > 0 else -1 if gain < 0 else s[i]


def exact_exp_flip(s, i, pats) -> int:
    """Exponential F: sign of Σ_μ exp(r_μ + ξ_μi) − exp(r_μ − ξ_μi), in 60-digit decimals."""
    with localcontext() as ctx:
        ctx.prec = 60
        gain = Decimal(0)
        for p, m in zip(pats, exact_overlaps(s, pats), strict=True):
            r = m - s[i] * p[i]
            gain += Decimal(r + p[i]).exp() - Decimal(r - p[i]).exp()
    return 1 if gain > 0 else -1 if gain < 0 else s[i]


def states_near(p: torch.Tensor, seed: int) -> torch.Tensor:
    """Two patterns, two corrupted patterns, two random states."""
    n = p.shape[1]
    return torch.cat([p[:2], flip(p[2:4], n // 6, seed), spins(2, n, seed + 1, p.dtype)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("interaction", ["polynomial", "rectified_polynomial"])
@pytest.mark.parametrize("n", [14, 101])
def test_polynomial_energy_and_score_at_n784_match_exact_fractions(dtype, interaction, n):
    p = spins(12, 784, 1, dtype)
    model = DenseAM(p, interaction, n=n)
    x = states_near(p, 2)
    e, score = model.energy(x), model.score(x)
    assert e.dtype == dtype and bool(torch.isfinite(e).all()) and bool(torch.isfinite(score).all())
    pats = ints(p)
    want_e = torch.tensor([exact_energy(s, pats, n, interaction) for s in ints(x)], dtype=dtype)
    want_s = torch.tensor([exact_score(s, pats, n, interaction) for s in ints(x)], dtype=dtype)
    rtol = 1e-12 if dtype == torch.float64 else 2e-5  # float32: (m/N)ⁿ rounds ~n·eps
    tiny = torch.finfo(dtype).tiny  # float32 flushes the random states' 1e-150 terms
    torch.testing.assert_close(e, want_e, rtol=rtol, atol=tiny)
    torch.testing.assert_close(score, want_s, rtol=rtol, atol=rtol * float(want_s.abs().max()))
    assert float(e[0]) <= -1.0  # a stored pattern: its own term is F(N/N) = 1


@pytest.mark.parametrize(
    "big_n,n,dtype,interaction",
    [
        (784, 100, torch.float32, "polynomial"),
        (784, 100, torch.float64, "rectified_polynomial"),
        (64, 200, torch.float64, "polynomial"),
        (64, 201, torch.float32, "rectified_polynomial"),
    ],
)
def test_unit_update_matches_the_big_integer_rule(big_n, n, dtype, interaction):
    """Eq. 3 with exact integers: (r ± 1)ⁿ is far beyond float64, the flip decision is not."""
    p = spins(40, big_n, 3, dtype)
    model = DenseAM(p, interaction, n=n)
    x = torch.cat([flip(p[:3], big_n // 4, 4), spins(3, big_n, 5, dtype)])
    pats = ints(p)
    units = torch.randperm(big_n, generator=torch.Generator().manual_seed(6))[:12].tolist()
    changed = 0
    for i in units:
        new = model.update(x, order=torch.tensor([i]))
        want = [exact_flip(s, i, pats, n, interaction) for s in ints(x)]
        assert new[:, i].tolist() == want, f"unit {i}"
        changed += int((new[:, i] != x[:, i]).sum())
        x = new
    assert changed > 0  # the corrupted units flip back (the overflowing gain froze them)


def test_exponential_update_and_energy_at_n784_float32_match_exact_decimals():
    p = spins(30, 784, 7, torch.float32)
    model = DenseAM(p, "exponential")
    x = torch.cat([flip(p[:2], 200, 8), spins(2, 784, 9, torch.float32)])
    pats = ints(p)
    for s, e in zip(ints(x), model.energy(x).tolist(), strict=True):
        m = exact_overlaps(s, pats)  # −log Σ exp(m), shifted by the max in Python floats
        want = -(max(m) + math.log(math.fsum(math.exp(v - max(m)) for v in m)))
        assert e == pytest.approx(want, rel=1e-6)
    for i in (0, 5, 400, 783):
        new = model.update(x, order=torch.tensor([i]))
        assert new[:, i].tolist() == [exact_exp_flip(s, i, pats) for s in ints(x)]
        x = new


def test_retrieval_n200_at_n64_recovers_every_pattern():
    """K = 100 > N = 64 patterns, 10 of 64 bits flipped: the nearest pattern is recovered."""
    p = spins(100, 64, 10)
    cue = flip(p, 10, 11)
    naive = (cue @ p.T + 1).pow(200)  # the old gain: (r + ξ)ⁿ overflows to inf (inf − inf = NaN)
    assert not bool(torch.isfinite(naive).all())
    res = DenseAM(p, "polynomial", n=200).retrieve(cue, generator=torch.Generator().manual_seed(0))
    assert bool(res.converged.all())
    assert torch.equal(res.x, p)


def test_retrieval_n100_at_n784_float32():
    p = spins(20, 784, 12, torch.float32)
    cue = flip(p[:4], 250, 13)
    model = DenseAM(p, "polynomial", n=100)
    res = model.retrieve(cue, generator=torch.Generator().manual_seed(1))
    assert torch.equal(res.x, p[:4])
    e = model.energy(res.x)
    assert bool(torch.isfinite(e).all()) and bool((e <= model.energy(cue)).all())


def test_half_precision_patterns_are_computed_in_float32():
    p = spins(8, 784, 14, torch.float16)
    e = DenseAM(p, "polynomial", n=100).energy(p)
    assert e.dtype == torch.float32
    torch.testing.assert_close(e, torch.full((8,), -1.0), rtol=1e-5, atol=1e-5)


def test_a_power_that_must_underflow_is_refused_before_work():
    p = spins(4, 16, 15)
    with pytest.raises(ValueError, match="n must be <= 1000"):
        DenseAM(p, "polynomial", n=5000)
    DenseAM(p, "exponential", n=5000)  # n is ignored for the exponential interaction
