"""memscape.onednn: float32 linears through oneDNN, against float64 ``F.linear`` and autograd.

The truth is the same product, its gradients and its second derivatives computed in float64
by ``torch.nn.functional.linear`` and autograd (MKL, not oneDNN); a counting wrapper of the
kernel shows which calls reach oneDNN, so the rule is tested by what it does.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from memscape import onednn

pytestmark = pytest.mark.skipif(not onednn.available(), reason="no oneDNN linear kernel")


class _Counted:
    def __init__(self, kernel) -> None:
        self.kernel, self.calls = kernel, 0

    def __call__(self, *args):
        self.calls += 1
        return self.kernel(*args)


@pytest.fixture
def counted(monkeypatch) -> _Counted:
    c = _Counted(onednn._LINEAR_POINTWISE)
    monkeypatch.setattr(onednn, "_LINEAR_POINTWISE", c)
    return c


def _operands(m: int, k: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g, dtype=torch.float64)
    w = torch.randn(n, k, generator=g, dtype=torch.float64) / k**0.5
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return x, w, b


def _close(a: torch.Tensor, ref: torch.Tensor, scale: float = 1.0) -> None:
    """float32 against float64: relative to the reference's size (sums of ≤ 256 terms)."""
    err = float((a.double() - ref).abs().max())
    assert err <= 3e-6 * scale * float(ref.abs().max()), err


@pytest.mark.parametrize("bias", [True, False])
def test_product_and_gradients_match_float64(counted, bias):
    x64, w64, b64 = _operands(128, 96, 112)
    ref_x, ref_w, ref_b = (t.clone().requires_grad_() for t in (x64, w64, b64))
    ref = F.linear(ref_x, ref_w, ref_b if bias else None)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref.backward(g)
    x, w, b = (t.float().requires_grad_() for t in (x64, w64, b64))
    assert onednn.uses_onednn(x, w)
    out = onednn.linear(x, w, b if bias else None)
    out.backward(g.float())
    assert counted.calls == 3  # the product, then gᵀx and g w in the backward
    _close(out.detach(), ref.detach())
    _close(x.grad, ref_x.grad)
    _close(w.grad, ref_w.grad)
    if bias:
        _close(b.grad, ref_b.grad)
    else:
        assert b.grad is None


def test_transposed_and_strided_operands(counted):
    x64, w64, _ = _operands(128, 128, 128, seed=2)
    x, w = x64.float(), w64.float()
    wide = torch.randn(128, 256)
    pairs = ((x.t(), w), (x, w.t()), (x.t(), w.t()), (wide[:, ::2], wide[:, 1::2]))
    for a, bt in pairs:
        _close(onednn.linear(a, bt), F.linear(a.double(), bt.double()))
    assert counted.calls == 4


def test_double_backward_of_an_energy_matches_float64(counted):
    """E(x) = Σ softplus(W x + b): the gradient in x with create_graph, then the gradient of
    its squared norm in W — the second derivatives an energy model's training needs."""

    def second(x, w, b, lin):
        e = F.softplus(lin(x, w, b)).sum()
        (gx,) = torch.autograd.grad(e, x, create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum(), (w, b))

    x64, w64, b64 = _operands(128, 128, 96, seed=3)
    ref = second(*(t.clone().requires_grad_() for t in (x64, w64, b64)), F.linear)
    got = second(*(t.float().requires_grad_() for t in (x64, w64, b64)), onednn.linear)
    assert counted.calls >= 4
    for a, r in zip(got, ref, strict=True):
        _close(a, r, scale=3.0)


@pytest.mark.parametrize(
    "case",
    ["small", "float64", "bfloat16", "batched", "autocast"],
)
def test_the_rule_keeps_plain_linear_elsewhere(counted, case):
    # the assertion is that oneDNN is never called; out == F.linear is then an identity
    x, w = torch.randn(128, 128), torch.randn(128, 128)
    if case == "small":  # 64·64·64 multiply-adds: oneDNN's fixed cost loses there
        x, w = x[:64, :64], w[:64, :64]
    elif case in ("float64", "bfloat16"):
        x, w = x.to(getattr(torch, case)), w.to(getattr(torch, case))
    elif case == "batched":
        x = x.reshape(2, 64, 128)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if case == "autocast" else torch.no_grad()
    with ctx:
        assert not onednn.uses_onednn(x, w)
        out = onednn.linear(x, w)
        ref = F.linear(x, w)
    assert counted.calls == 0 and out.dtype == ref.dtype and torch.equal(out, ref)


def test_threshold_is_the_product_of_the_three_sizes():
    big = torch.randn(256, 16)  # 256·16·256 = 2²⁰
    assert onednn.uses_onednn(big, torch.randn(256, 16))
    assert not onednn.uses_onednn(big, torch.randn(255, 16))


def test_the_context_routes_nn_linear_layers_and_only_inside(counted):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 4))
    x = torch.randn(128, 128)
    plain = net(x)
    assert counted.calls == 0
    with onednn.onednn_linear(enabled=True):
        routed = net(x)
    assert counted.calls == 1  # the first layer; 128·128·4 stays with MKL
    torch.testing.assert_close(routed, plain, rtol=1e-5, atol=1e-5)
    net(x)
    with onednn.onednn_linear(enabled=False):
        net(x)
    assert counted.calls == 1


def test_keyword_calls_and_mismatched_operands_behave_as_f_linear(counted):
    """Inside the context F.linear keeps its signature (arguments by name) and its errors
    (a float64 bias with float32 operands is F.linear's RuntimeError, not a promotion)."""
    x64, w64, b64 = _operands(128, 128, 128, seed=5)
    x, w, b = x64.float(), w64.float(), b64.float()
    with onednn.onednn_linear(enabled=True):
        out = F.linear(input=x, weight=w, bias=b)
        out2 = F.linear(x, weight=w)
        with pytest.raises(RuntimeError):
            F.linear(x, w, b64)
    assert counted.calls == 2
    _close(out, F.linear(x64, w64, b64))
    _close(out2, F.linear(x64, w64))


def test_without_the_kernel_everything_is_plain_linear(monkeypatch):
    monkeypatch.setattr(onednn, "_LINEAR_POINTWISE", None)
    x, w = torch.randn(128, 128), torch.randn(128, 128)
    assert not onednn.available() and not onednn.uses_onednn(x, w)
    with onednn.onednn_linear(enabled=True):  # nothing to route to: no mode is pushed
        assert not torch.overrides._get_current_function_mode_stack()
    monkeypatch.setenv("MEMSCAPE_ONEDNN", "1")
    assert not onednn.preferred()  # asked for, but there is no kernel to use


@pytest.mark.parametrize(
    "vendor, capability, machine, mkl, expected",
    [
        ("AuthenticAMD", "AVX512", "x86_64", True, True),  # the measured 2.1× case
        ("GenuineIntel", "AVX512", "x86_64", True, False),  # MKL's AVX-512 path wins
        ("AuthenticAMD", "AVX2", "x86_64", True, False),  # both on AVX2: left to MKL
        ("AuthenticAMD", "AVX512", "x86_64", False, False),  # torch's BLAS is not MKL
        ("", "AVX512", "x86_64", True, False),  # unknown vendor
        ("HygonGenuine", "AVX512", "x86_64", True, False),  # not measured: MKL
        ("AuthenticAMD", "AVX512", "aarch64", True, False),
    ],
)
def test_the_machine_rule(monkeypatch, vendor, capability, machine, mkl, expected):
    monkeypatch.delenv("MEMSCAPE_ONEDNN", raising=False)
    monkeypatch.setattr(onednn, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(onednn.platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: mkl)
    onednn._machine_prefers.cache_clear()
    try:
        assert onednn.preferred() is expected
        counted = _Counted(onednn._LINEAR_POINTWISE)
        monkeypatch.setattr(onednn, "_LINEAR_POINTWISE", counted)
        with onednn.onednn_linear():  # the default follows the rule
            F.linear(torch.randn(128, 128), torch.randn(128, 128))
        assert counted.calls == int(expected)
        for value, forced in (("1", True), ("0", False), (" Auto ", expected)):
            monkeypatch.setenv("MEMSCAPE_ONEDNN", value)
            assert onednn.preferred() is forced
    finally:
        onednn._machine_prefers.cache_clear()


@pytest.mark.parametrize("value", ["yes", "2", "on"])
def test_a_bad_environment_value_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("MEMSCAPE_ONEDNN", value)
    with pytest.raises(ValueError, match=f"MEMSCAPE_ONEDNN must be 1, 0 or auto, got '{value}'"):
        onednn.preferred()


def test_the_vendor_is_one_a_linux_x86_machine_names():
    """Every x86 Linux CPU names its maker in /proc/cpuinfo: a broken parse reads ''."""
    import platform

    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip("not x86 Linux")
    assert onednn.cpu_vendor() in ("GenuineIntel", "AuthenticAMD", "HygonGenuine")


def test_train_records_the_kernel_and_rejects_a_bad_value_before_writing(monkeypatch, tmp_path):
    import memscape as ms

    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    model = ms.ScoreModel.mlp(2, width=16, layers=2, emb_dim=8)
    monkeypatch.setenv("MEMSCAPE_ONEDNN", "maybe")
    with pytest.raises(ValueError, match="MEMSCAPE_ONEDNN"):
        ms.train(model, data, steps=2, batch=8, progress=False, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    for value, kernel in (("1", "onednn"), ("0", "default")):
        monkeypatch.setenv("MEMSCAPE_ONEDNN", value)
        run = ms.train(model, data, steps=2, batch=8, progress=False, out=tmp_path / value)
        assert run.config["linear_kernel"] == kernel
    # bfloat16 autocast never reaches oneDNN, nor does float64: recorded as the default
    monkeypatch.setenv("MEMSCAPE_ONEDNN", "1")
    run = ms.train(model, data, steps=2, batch=8, progress=False, precision="bfloat16")
    assert run.config["linear_kernel"] == "default"
    run = ms.train(model.double(), data.double(), steps=2, batch=8, progress=False)
    assert run.config["linear_kernel"] == "default"
    # a run resumed with the other kernel goes on, warned that it is no longer bit-identical
    with pytest.warns(RuntimeWarning, match="trained with default"):
        run = ms.train(model.float(), data, steps=4, batch=8, progress=False, out=tmp_path / "0")
    assert run.config["linear_kernel"] == "onednn" and len(run.losses) >= 1
