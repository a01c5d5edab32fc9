"""Numerical helpers: the level crossing of a sampled curve; batches sized to free memory;
subnormals flushed on the calling thread."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memscape import numeric
from memscape.numeric import batch_size_for, flush_denormals, flushing_denormals, level_crossing


def test_crossing_interpolates_linearly_and_reports_nan_when_never_below():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert level_crossing(x, np.array([1.0, 0.8, 0.2, 0.0]), 0.5) == pytest.approx(1.5)
    assert math.isnan(level_crossing(x, np.array([1.0, 0.9, 0.8, 0.7]), 0.5))


def test_crossing_is_the_first_one_and_exact_for_a_line():
    x = np.linspace(0.5, 1.5, 11)
    assert level_crossing(x, 1.0 - x, 0.0) == pytest.approx(1.0)  # a line: exact
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    assert level_crossing(x, y, 0.5) == pytest.approx(0.55)  # the first of several
    assert math.isnan(level_crossing(x, np.full(11, -1.0), 0.0))  # starts below: no bracket
    assert level_crossing(list(x), list(1.0 - x), 0.0) == pytest.approx(1.0)  # sequences


def test_crossing_rejects_mismatched_or_unsorted_samples():
    with pytest.raises(ValueError, match="one length"):
        level_crossing([0.0, 1.0], [1.0, 0.5, 0.0], 0.5)
    with pytest.raises(ValueError, match="ascending"):
        level_crossing([1.0, 0.0], [1.0, 0.0], 0.5)


# ------------------------------------------------------------------ batch sizes
def _cpu_pages(monkeypatch, pages: int, page: int = 4096) -> None:
    names = {"SC_AVPHYS_PAGES": pages, "SC_PAGE_SIZE": page}
    monkeypatch.setattr(numeric.os, "sysconf", lambda name: names[name])


def test_cpu_batch_is_the_share_of_the_available_pages(monkeypatch):
    _cpu_pages(monkeypatch, pages=1000)  # 4 096 000 bytes free
    assert numeric.free_memory("cpu") == 4_096_000
    # ⌊0.25 · 4 096 000 / 1000⌋ = 1024, ⌊0.5 · 4 096 000 / 3000⌋ = 682
    assert batch_size_for(1000, "cpu") == 1024
    assert batch_size_for(3000, torch.device("cpu"), fraction=0.5) == 682
    assert batch_size_for(1000, "cpu", maximum=100) == 100  # the cap
    assert batch_size_for(1e9, "cpu") == 1  # nothing fits: one item, never zero


def test_cuda_batch_reads_the_devices_free_memory(monkeypatch):
    seen = []

    def mem_get_info(device):
        seen.append(device)
        return (8 << 30, 80 << 30)  # (free, total): 8 GiB free

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert batch_size_for(1 << 20, "cuda:1") == 2048  # ⌊2 GiB / 1 MiB⌋
    assert seen == [torch.device("cuda:1")]  # the device asked about, not the current one


def test_unreadable_memory_falls_back_to_the_conservative_constant(monkeypatch):
    def missing(name):
        raise ValueError(f"unrecognized configuration name {name}")  # what macOS raises

    monkeypatch.setattr(numeric.os, "sysconf", missing)
    assert numeric.free_memory("cpu") == numeric.FALLBACK_FREE_BYTES == 1 << 30
    assert numeric.free_memory("mps") == 1 << 30  # a device without a reader
    assert batch_size_for(1 << 20, "cpu") == 256  # ⌊0.25 GiB / 1 MiB⌋


def test_batch_size_for_rejects_bad_arguments():
    for bad, match in ((0, "bytes_per_item"), (math.inf, "bytes_per_item"), (-5, "bytes_per_item")):
        with pytest.raises(ValueError, match=match):
            batch_size_for(bad, "cpu")
    with pytest.raises(ValueError, match="fraction"):
        batch_size_for(10, "cpu", fraction=1.5)
    with pytest.raises(ValueError, match="maximum"):
        batch_size_for(10, "cpu", maximum=0)
    with pytest.raises(TypeError, match="maximum"):
        batch_size_for(10, "cpu", maximum=2.5)


# ---------------------------------------------------------------- flush_denormals
_SUB32 = 2.0**-140  # a float32 subnormal (normal float32 stop at 2⁻¹²⁶), exact in binary


def _subnormal_product() -> float:
    """2⁻⁷⁰ · 2⁻⁷⁰ in float32: the subnormal 2⁻¹⁴⁰ by IEEE 754, or 0 when flushed."""
    a = torch.tensor([2.0**-70], dtype=torch.float32)
    return float((a * a)[0])


def test_flush_denormals_flushes_inside_and_restores_the_callers_setting():
    assert not flushing_denormals()  # the interpreter's default
    assert _subnormal_product() == _SUB32
    with flush_denormals() as on:
        if not on:
            pytest.skip("this CPU cannot flush subnormals")
        assert flushing_denormals()
        assert _subnormal_product() == 0.0
    assert not flushing_denormals()
    assert _subnormal_product() == _SUB32


def test_flush_denormals_keeps_a_caller_that_already_flushes_flushing():
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    try:
        with flush_denormals():
            assert flushing_denormals()
        assert flushing_denormals()  # not switched off behind the caller's back
        with flush_denormals(enabled=False):
            assert flushing_denormals()
    finally:
        torch.set_flush_denormal(False)
    assert not flushing_denormals()


def test_flush_denormals_disabled_and_on_error_leave_the_setting_alone():
    with flush_denormals(enabled=False) as on:
        assert on is False and _subnormal_product() == _SUB32
    with pytest.raises(RuntimeError, match="inside"), flush_denormals():
        raise RuntimeError("inside")
    assert not flushing_denormals()


def test_serial_runs_one_thread_and_restores_the_count():
    serial = numeric.serial
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with serial(torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), serial(torch.device("cpu")):
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2  # restored on an error too
        with serial(torch.device("meta")):  # off the CPU: untouched
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
