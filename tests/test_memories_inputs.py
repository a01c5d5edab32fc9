"""Updates and retrieval never write into the caller's tensors (any dtype)."""

from __future__ import annotations

import pytest
import torch

import memscape as ms


def _patterns(dtype):
    g = torch.Generator().manual_seed(3)
    return (torch.randint(0, 2, (4, 40), generator=g) * 2 - 1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("make", [ms.ClassicalHopfield, lambda p: ms.DenseAM(p, n=3)])
def test_binary_updates_leave_inputs_untouched(make, dtype):
    p = _patterns(dtype)
    net = make(p)
    cue = p.clone()
    cue[:, :10] *= -1
    before = cue.clone()
    net.update(cue, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cue, before)
    out = net.retrieve(cue, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cue, before)
    # retrieval from a 25 %-corrupted cue of 4 patterns in 40 units recovers them, which a
    # loop that stopped after one sweep with a stale "converged" flag would not report
    assert torch.equal(getattr(out, "x", out), p)


def test_modern_hopfield_update_leaves_inputs_untouched():
    g = torch.Generator().manual_seed(0)
    mem = torch.randn(5, 8, generator=g, dtype=torch.float64)
    x = mem + 0.1 * torch.randn(mem.shape, generator=g, dtype=torch.float64)
    before = x.clone()
    ms.ModernHopfield(mem, beta=4.0).update(x)
    assert torch.equal(x, before)
