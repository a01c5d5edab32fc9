"""Associative memories against independent truth: naive sequential references,
learning-rule formulas from the papers, Lyapunov property, capacity numbers
(Amit-Gutfreund-Sompolinsky α_c ≈ 0.138) and Ramsauer et al. Theorem 5."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from memscape import ClassicalHopfield, DenseAM, ModernHopfield
from memscape.memories import overlap
from memscape.memories.base import AssociativeMemory


def spins(k: int, n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (k, n), generator=g) * 2 - 1).to(dtype)


def corrupt(p: torch.Tensor, frac: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(p.shape, generator=g) < frac
    return torch.where(flip, -p, p)


def naive_sweep(j: torch.Tensor, s: torch.Tensor, order, clamp=None) -> torch.Tensor:
    """Textbook asynchronous sweep: s_i ← sign(Σ_j J_ij s_j), ties keep s_i."""
    s = s.clone()
    for i in order:
        h = s @ j[:, i]
        new = torch.where(h > 0, 1.0, torch.where(h < 0, -1.0, s[:, i])).to(s)
        if clamp is not None:
            new = torch.where(clamp[:, i], s[:, i], new)
        s[:, i] = new
    return s


# ---------------------------------------------------------------- classical: learning rules
def test_hebbian_weights_formula():
    p = spins(3, 7, 0)
    w = ClassicalHopfield(p).weights
    expected = sum(torch.outer(xi, xi) for xi in p) / 7
    expected.fill_diagonal_(0)
    torch.testing.assert_close(w, expected, rtol=0, atol=1e-15)


def test_storkey_matches_elementwise_formula():
    """Storkey (1997): w_ij += (ξ_iξ_j − ξ_i h_ji − h_ij ξ_j)/n, h_ij = Σ_{k≠i,j} w_ik ξ_k."""
    p = spins(4, 9, 1)
    n = p.shape[1]
    w = [[0.0] * n for _ in range(n)]
    for xi in p.tolist():
        h = [
            [sum(w[i][k] * xi[k] for k in range(n) if k not in (i, j)) for j in range(n)]
            for i in range(n)
        ]
        w = [
            [
                0.0 if i == j else w[i][j] + (xi[i] * xi[j] - xi[i] * h[j][i] - h[i][j] * xi[j]) / n
                for j in range(n)
            ]
            for i in range(n)
        ]
    torch.testing.assert_close(
        ClassicalHopfield(p, "storkey").weights, torch.tensor(w, dtype=torch.float64)
    )


@pytest.mark.parametrize("rule", ["hebbian", "pseudoinverse", "storkey"])
def test_weights_symmetric_zero_diagonal(rule):
    w = ClassicalHopfield(spins(6, 20, 2), rule).weights
    torch.testing.assert_close(w, w.T)
    assert bool((w.diagonal() == 0).all())


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_pseudoinverse_stores_every_pattern_at_half_capacity(mode):
    """Projection rule: local field (1 − W_ii)ξ_i with W_ii = K/N-ish < 1 → fixed points."""
    p = spins(100, 200, 3)
    model = ClassicalHopfield(p, "pseudoinverse")
    assert torch.equal(model.update(p, mode=mode, generator=torch.Generator().manual_seed(0)), p)
    res = model.retrieve(p, mode=mode, max_steps=3)
    assert bool(res.converged.all()) and torch.equal(res.x, p)


def test_storkey_beats_hebbian_at_alpha_02():
    """Storkey's rule has a larger capacity: fewer unstable bits at α = 0.2."""
    p = spins(40, 200, 4)

    def unstable(rule):
        return int((ClassicalHopfield(p, rule).score(p) * p <= 0).sum())

    assert unstable("storkey") < unstable("hebbian")
    assert unstable("hebbian") > 0


# ---------------------------------------------------------------- classical: dynamics
@pytest.mark.parametrize("k", [6, 7])  # even K gives exact ties h = 0
@pytest.mark.parametrize("clamped", [False, True])
def test_async_sweep_equals_naive_sequential(k, clamped):
    p = spins(k, 300, 5)
    model = ClassicalHopfield(p)
    x = corrupt(p[[0, 1, 2, 0]], 0.4, 6)
    order = torch.randperm(300, generator=torch.Generator().manual_seed(7))
    clamp = torch.rand(x.shape, generator=torch.Generator().manual_seed(8)) < 0.3
    j = p.T @ p  # sign-equivalent to W, exact integer ties
    j.fill_diagonal_(0)
    got = model.update(x, order=order, mask=clamp if clamped else None)
    want = naive_sweep(j, x, order.tolist(), clamp if clamped else None)
    assert torch.equal(got, want)


def test_sync_update_is_sign_of_field():
    p = spins(5, 40, 9)
    model = ClassicalHopfield(p, mode="sync")
    x = spins(8, 40, 10)
    h = x @ model.weights
    want = torch.where(h > 0, 1.0, torch.where(h < 0, -1.0, x)).to(x)
    assert torch.equal(model.update(x), want)


def test_async_same_seed_same_result():
    p = spins(10, 100, 11)
    x = spins(4, 100, 12)
    m = ClassicalHopfield(p)
    a = m.retrieve(x, generator=torch.Generator().manual_seed(3)).x
    b = m.retrieve(x, generator=torch.Generator().manual_seed(3)).x
    assert torch.equal(a, b)


@pytest.mark.parametrize("rule", ["hebbian", "pseudoinverse", "storkey"])
def test_classical_energy_never_increases_per_flip(rule):
    for seed in range(5):
        p = spins(8, 40, 100 + seed)
        model = ClassicalHopfield(p, rule)
        s = spins(6, 40, 200 + seed)
        e = model.energy(s)
        order = torch.randperm(40, generator=torch.Generator().manual_seed(seed)).tolist() * 3
        flips = 0
        for i in order:
            new = model.update(s, order=torch.tensor([i]))
            e_new = model.energy(new)
            assert bool((e_new <= e + 1e-12).all())
            flips += int((new != s).sum())
            s, e = new, e_new
        assert flips > 0


def test_hebbian_capacity_amit_gutfreund_sompolinsky():
    """N = 500: retrieval from the pattern itself is near perfect at α = 0.05 and
    breaks down above α_c ≈ 0.138 (here α = 0.25)."""
    n = 500
    g = torch.Generator().manual_seed(0)
    for alpha, ok in [(0.05, True), (0.25, False)]:
        p = spins(int(alpha * n), n, 13, torch.float32)
        res = ClassicalHopfield(p).retrieve(p, max_steps=200, generator=g)
        assert bool(res.converged.all())
        m = float(overlap(res.x, p).diagonal().mean())
        assert (m > 0.97) if ok else (m < 0.9), (alpha, m)


def test_partial_cue_retrieval_with_clamp():
    p = spins(10, 200, 14)
    model = ClassicalHopfield(p)
    mask = torch.zeros(200, dtype=torch.bool)
    mask[:100] = True  # first half known
    cue = torch.cat([p[:, :100], spins(10, 100, 15)], dim=1)
    res = model.retrieve(cue, mask=mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(res.x[:, :100], cue[:, :100])
    assert float(overlap(res.x, p).diagonal().min()) == 1.0


def test_retrieve_record_and_overlap():
    p = spins(3, 50, 16)
    res = ClassicalHopfield(p).retrieve(corrupt(p, 0.1, 0), record=True, max_steps=20)
    t = res.trajectory["x"].shape[0]
    assert res.trajectory["x"].shape == (t, 3, 50)
    assert res.trajectory["energy"].shape == (t, 3)
    assert bool((res.trajectory["energy"].diff(dim=0) <= 1e-12).all())
    torch.testing.assert_close(overlap(-p, p).diagonal(), -torch.ones(3, dtype=torch.float64))


# ---------------------------------------------------------------- dense associative memory
def naive_dense_energy(p, s, interaction, n):
    m = s @ p.T
    if interaction == "polynomial":
        return -(m**n).sum(1)
    if interaction == "rectified_polynomial":
        return -(m.clamp_min(0) ** n).sum(1)
    return -torch.exp(m).sum(1)


@pytest.mark.parametrize("interaction", ["polynomial", "rectified_polynomial", "exponential"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_dense_unit_update_picks_lower_energy(interaction, n):
    """Krotov & Hopfield eq. 3: the updated unit takes the value of lower energy
    (brute force, naive F, ties keep) — so E never increases, flip by flip."""
    p = spins(12, 20, 17)
    model = DenseAM(p, interaction, n=n)
    for seed in range(3):
        s = spins(5, 20, 300 + seed)
        for i in torch.randperm(20, generator=torch.Generator().manual_seed(seed)).tolist():
            up, down = s.clone(), s.clone()
            up[:, i], down[:, i] = 1.0, -1.0
            e_up = naive_dense_energy(p, up, interaction, n)
            e_down = naive_dense_energy(p, down, interaction, n)
            want = torch.where(e_up < e_down, 1.0, torch.where(e_down < e_up, -1.0, s[:, i]))
            new = model.update(s, order=torch.tensor([i]))
            assert torch.equal(new[:, i], want.to(s))
            assert bool((model.energy(new) <= model.energy(s) + 1e-9).all())
            s = new


def test_dense_capacity_beyond_hebbian():
    """K/N = 0.5: Hebbian (n = 2) loses the patterns, n = 3 keeps every one."""
    p = spins(50, 100, 18)
    g = torch.Generator().manual_seed(0)
    dense = DenseAM(p, "polynomial", n=3).retrieve(p, generator=g)
    assert torch.equal(dense.x, p)
    hebb = ClassicalHopfield(p).retrieve(p, generator=g)
    assert float(overlap(hebb.x, p).diagonal().mean()) < 0.9


def test_dense_exponential_large_n_no_overflow():
    """N = 1000: exp(ξ·σ) = exp(1000) overflows float64; the dynamics must not."""
    p = spins(300, 1000, 19, torch.float32)
    model = DenseAM(p, "exponential")
    cue = corrupt(p[:4], 0.3, 1)
    mask = torch.zeros(1000, dtype=torch.bool)
    mask[:10] = True
    res = model.retrieve(cue, mask=mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(res.x[:, :10], cue[:, :10])
    e = model.energy(res.x)
    assert bool(torch.isfinite(e).all())
    # the retrieved state is the pattern except possibly the clamped corrupted units
    assert bool((res.x[:, 10:] == p[:4, 10:]).all())
    torch.testing.assert_close(e, -torch.logsumexp(res.x @ p.T, 1))


# ---------------------------------------------------------------- modern Hopfield
def test_cccp_energy_never_increases():
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        k, d = (
            int(torch.randint(2, 30, (1,), generator=g)),
            int(torch.randint(1, 10, (1,), generator=g)),
        )
        mem = torch.randn(k, d, generator=g, dtype=torch.float64) * 2
        beta = float(torch.empty(1).uniform_(0.1, 10, generator=g))
        bias = torch.randn(k, generator=g, dtype=torch.float64) if seed % 2 else None
        model = ModernHopfield(mem, beta, bias=bias)
        res = model.retrieve(
            torch.randn(8, d, generator=g, dtype=torch.float64) * 3, max_steps=30, record=True
        )
        e = res.trajectory["energy"]
        assert bool((e.diff(dim=0) <= 1e-10 * (1 + e[:-1].abs())).all())


def test_modern_retrieve_converges_to_memory_and_respects_mask():
    g = torch.Generator().manual_seed(0)
    mem = torch.nn.functional.normalize(torch.randn(5, 16, generator=g, dtype=torch.float64), dim=1)
    model = ModernHopfield(mem, beta=50.0)
    cue = mem + 0.05 * torch.randn(5, 16, generator=g, dtype=torch.float64)
    res = model.retrieve(cue, tol=1e-10)
    assert bool(res.converged.all())
    torch.testing.assert_close(res.x, mem, atol=1e-6, rtol=0)
    mask = torch.arange(16) < 4
    res = model.retrieve(cue, mask=mask)
    assert torch.equal(res.x[:, :4], cue[:, :4])


def test_ramsauer_theorem5_one_step_retrieval():
    """Well-separated patterns, large β: one update from a perturbed memory lands
    within the Theorem 5 bound, and the bound is far below the perturbation."""
    g = torch.Generator().manual_seed(1)
    k, d = 20, 64
    mem = torch.nn.functional.normalize(torch.randn(k, d, generator=g, dtype=torch.float64), dim=1)
    model = ModernHopfield(mem, beta=200.0)
    assert float(model.separation().min()) > 0.3
    eps = 0.05
    noise = torch.nn.functional.normalize(
        torch.randn(k, d, generator=g, dtype=torch.float64), dim=1
    )
    xi = mem + eps * noise
    err = (model.update(xi) - mem).norm(dim=1)
    bound = model.retrieval_error_bound(xi, torch.arange(k))
    assert bool((bound < eps).all())  # not vacuous
    assert bool((err <= bound).all())
    # the bound itself, recomputed from the paper's formula
    delta = (mem @ mem.T).diagonal() - (mem @ mem.T).fill_diagonal_(-math.inf).amax(1)
    want = 2 * (k - 1) * torch.exp(-200.0 * (delta - 2 * eps * 1.0)) * 1.0
    torch.testing.assert_close(bound, want)


# ---------------------------------------------------------------- bad inputs
def test_memories_reject_bad_input():
    p = spins(3, 10, 20)
    with pytest.raises(ValueError, match="patterns"):
        ClassicalHopfield(p * 0.5)
    with pytest.raises(ValueError, match="patterns"):
        DenseAM(torch.full((2, 4), 0.0))
    with pytest.raises(ValueError, match="rule"):
        ClassicalHopfield(p, "oja")
    with pytest.raises(ValueError, match="mode"):
        ClassicalHopfield(p, mode="parallel")
    with pytest.raises(ValueError, match="mode"):
        ClassicalHopfield(p).update(p, mode="parallel")
    with pytest.raises(ValueError, match="interaction"):
        DenseAM(p, "cubic")
    with pytest.raises(ValueError, match="n"):
        DenseAM(p, n=1)
    with pytest.raises(ValueError, match="patterns"):
        ClassicalHopfield(torch.empty(0, 10))
    with pytest.raises(TypeError, match="patterns"):
        ClassicalHopfield(p.numpy())
    with pytest.raises(ValueError, match="cue"):
        ClassicalHopfield(p).retrieve(spins(2, 11, 0))
    with pytest.raises(ValueError, match="cue"):
        ClassicalHopfield(p).retrieve(p * 0.5)
    with pytest.raises(ValueError, match="order"):
        ClassicalHopfield(p).update(p, order=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="order"):
        DenseAM(p).update(p, order=torch.tensor([10]))
    with pytest.raises(ValueError, match="mask"):
        ClassicalHopfield(p).retrieve(p, mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask"):
        DenseAM(p).retrieve(p, mask=torch.ones(10))


def test_sweeps_restore_thread_count_and_follow_dtype():
    p = spins(5, 30, 21).to(torch.int64)
    n_threads = torch.get_num_threads()
    for model in (ClassicalHopfield(p), DenseAM(p)):
        out = model.update(spins(2, 30, 22, torch.float32))
        assert out.dtype == torch.float32
        assert torch.get_num_threads() == n_threads


# ---------------------------------------------------------------- one calling convention
MEMORIES = (ClassicalHopfield, DenseAM, ModernHopfield)
SHARED_RETRIEVE = ("mask", "max_steps", "generator", "record")
SHARED_UPDATE = ("mask", "generator", "sigma")


def _split(fn):
    """(positional parameter names after self, keyword-only parameters in order)."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    keyword = [p for p in params if p.kind is p.KEYWORD_ONLY]
    options = [p for p in params if p.kind is p.VAR_KEYWORD]  # the model's update options
    assert len(positional) + len(keyword) + len(options) == len(params), fn  # no *args
    return positional, keyword


@pytest.mark.parametrize("cls", MEMORIES, ids=lambda c: c.__name__)
def test_retrieve_and_update_share_one_signature(cls):
    """retrieve(cue, *, mask, max_steps, generator, record, <model options>) and
    update(x, *, mask, generator, sigma, <model options>) on every memory."""
    assert cls.retrieve is AssociativeMemory.retrieve  # one retrieve, not three alike
    positional, keyword = _split(cls.retrieve)
    assert positional == ["cue"]
    assert tuple(p.name for p in keyword[: len(SHARED_RETRIEVE)]) == SHARED_RETRIEVE
    defaults = {p.name: p.default for p in keyword}
    ref = {p.name: p.default for p in _split(ClassicalHopfield.retrieve)[1]}
    for name in SHARED_RETRIEVE:
        assert defaults[name] == ref[name], (cls.__name__, name)
    assert defaults["mask"] is None and defaults["generator"] is None
    assert defaults["record"] is False

    positional, keyword = _split(cls.update)
    assert positional == ["x"]
    assert tuple(p.name for p in keyword[: len(SHARED_UPDATE)]) == SHARED_UPDATE
    assert all(p.default is None for p in keyword)


@pytest.mark.parametrize("cls", MEMORIES, ids=lambda c: c.__name__)
def test_retrieve_refuses_options_its_update_lacks(cls):
    p = spins(3, 12, 5)
    model = cls(p)
    with pytest.raises(TypeError, match=r"unknown options \['colour'\]"):
        model.retrieve(p, colour="red")
    with pytest.raises(ValueError, match="tol"):
        model.retrieve(p, tol=0.0)


def _mask_cases():
    p = spins(6, 40, 30)
    return [
        ("classical-async", ClassicalHopfield(p), p, {}),
        ("classical-sync", ClassicalHopfield(p), p, {"mode": "sync"}),
        ("dense-poly", DenseAM(p, "polynomial", n=3), p, {}),
        ("dense-exp", DenseAM(p, "exponential"), p, {}),
        ("modern", ModernHopfield(p, beta=0.5), p, {}),
    ]


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("case", range(5), ids=[c[0] for c in _mask_cases()])
def test_mask_holds_units_fixed_in_update_and_retrieve(case, per_sample):
    """Invariant: a masked (True) unit never changes, in one update and along every
    state of a retrieval; one retrieval step is exactly one masked update."""
    _, model, p, opts = _mask_cases()[case]
    cue = corrupt(p, 0.3, 31)
    g = torch.Generator().manual_seed(32)
    mask = torch.rand(cue.shape if per_sample else cue.shape[1:], generator=g) < 0.4
    held = mask.expand_as(cue)

    one = model.update(cue, mask=mask, generator=torch.Generator().manual_seed(5), **opts)
    assert torch.equal(one[held], cue[held])
    assert not torch.equal(one, cue)  # the free units did move: the check is not vacuous
    step = model.retrieve(
        cue, mask=mask, max_steps=1, generator=torch.Generator().manual_seed(5), **opts
    )
    assert torch.equal(step.x, one)

    res = model.retrieve(cue, mask=mask, max_steps=20, record=True, generator=g, **opts)
    states = res.trajectory["x"]
    assert torch.equal(states[:, held], cue[held].expand(states.shape[0], -1))


def test_memory_reprs_are_readable():
    p = spins(10, 100, 33)
    cases = {
        ClassicalHopfield(p): ("ClassicalHopfield(", "K=10", "N=100", "rule='hebbian'"),
        DenseAM(p, n=4): ("DenseAM(", "K=10", "N=100", "n=4"),
        ModernHopfield(p[:, :16], beta=8.0): ("ModernHopfield(", "K=10", "d=16", "beta=8.0"),
    }
    for model, parts in cases.items():
        text = repr(model)
        assert text.startswith(parts[0]) and text.endswith(")"), text
        assert all(part in text for part in parts), text
        assert "dtype=float64" in text
        assert "object at 0x" not in text and "\n" not in text and len(text) < 120, text
    res = ClassicalHopfield(p).retrieve(p, record=True)
    text = repr(res)
    assert text.startswith("DescentResult(x=(10, 100) float64, converged=10/10"), text
    assert "trajectory=" in text and "tensor(" not in text and len(text) < 120, text
